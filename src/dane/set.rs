//! A next hop's usable TLSA records, and what matching a chain against them
//! found: the data DANE policy decides on. The matching itself, which needs the
//! TLS stack, is `tls::dane_chain`.

use std::fmt;

use super::Tlsa;

/// The usable TLSA records of one MX host, and the names a DANE-TA chain must match.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DaneSet {
    /// The TLSA base domain: the records were found at `_25._tcp.<base>`.
    pub base: String,
    /// Reference identifiers for DANE-TA: the MX host as named, and the base domain.
    pub names: Vec<String>,
    /// Usable records only (usages 2 and 3).
    pub records: Vec<Tlsa>,
}

/// Which record matched, and which certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaneMatch {
    pub record: Tlsa,
    /// Position in the presented chain (0 = the server's certificate); None when the
    /// trust anchor came from the record itself (a full certificate or public key).
    pub cert_index: Option<usize>,
}

impl fmt::Display for DaneMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = match self.cert_index {
            Some(0) => "the server certificate".to_string(),
            Some(i) => format!("certificate {} of the chain (trust anchor)", i + 1),
            None => "the trust anchor published in the record".to_string(),
        };
        write!(
            f,
            "{} TLSA {} matched {which}",
            self.record.usage_name(),
            self.record
        )
    }
}

/// Why no record matched: one reason per record tried, for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaneError {
    pub reasons: Vec<String>,
}

impl fmt::Display for DaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            return write!(f, "no usable TLSA record");
        }
        write!(f, "{}", self.reasons.join("; "))
    }
}
