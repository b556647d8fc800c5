//! DANE for SMTP (RFC 7672, RFC 7671): TLSA records, matching a certificate chain
//! against them, and what the DNS said about a next hop. Pure: no I/O, no runtime,
//! no TLS stack. Matching a chain is `tls::dane_chain` and the rustls verifier that
//! applies it inside the handshake `tls::dane`; the lookups are in `dns`.

mod matcher;
mod set;
mod tlsa;

pub use matcher::{matches, selected};
pub use set::{DaneError, DaneMatch, DaneSet};
pub use tlsa::Tlsa;

/// What DNS says about DANE for one MX host (RFC 7672 section 2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaneState {
    /// DANE does not apply; the reason is written for a person.
    NotApplicable(String),
    /// Secure TLSA records exist, but none is usable (e.g. only PKIX usages 0/1):
    /// TLS is still required, without authentication (RFC 7672 section 2.2).
    Unusable { base: String, records: Vec<Tlsa> },
    /// Usable, DNSSEC-validated TLSA records: the peer must match one of them.
    Usable(DaneSet),
    /// The lookup failed (SERVFAIL, bogus, timeout): a temporary failure, never a
    /// reason to downgrade.
    Failed(String),
}

impl DaneState {
    /// One line for logs, `policy explain` and check-tls.
    pub fn describe(&self) -> String {
        match self {
            DaneState::NotApplicable(why) => format!("DANE does not apply: {why}"),
            DaneState::Unusable { base, records } => format!(
                "{base} has {} TLSA record(s), none usable ({}): TLS required without authentication",
                records.len(),
                records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
            ),
            DaneState::Usable(set) => format!(
                "DANE applies: {} has {} usable TLSA record(s) ({})",
                set.base,
                set.records.len(),
                set.records.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
            ),
            DaneState::Failed(why) => format!("DANE lookup failed: {why}"),
        }
    }
}
