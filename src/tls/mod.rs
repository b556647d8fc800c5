//! rustls configurations (aws-lc-rs provider; TLS 1.2 and 1.3 with AEAD suites only),
//! certificate loading, and the self-signed certificate made when none is configured.

mod client;
mod client_cert;
mod dane;
mod dane_chain;
#[cfg(test)]
mod dane_chain_tests;
mod selfsigned;
mod server;
pub mod sni;
pub mod words;

pub use client::{client_config, client_config_versions, ClientVerification};
pub use client_cert::with_client_certificate;
pub use dane::{dane_client_config, DaneOutcome, DaneVerifier};
pub use dane_chain::verify as verify_dane_chain;
pub use selfsigned::{self_signed, self_signed_in_spool, spool_paths};
pub use server::{certificate_set, load_certified_key, named_certificates, server_config};

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::TlsVersion;
use crate::proto::TlsFacts;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// The aws-lc-rs provider. Every suite it offers for TLS 1.2 and 1.3 is an AEAD
/// (AES-GCM or ChaCha20-Poly1305), so no filtering is needed; a test checks this.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn protocol_versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        TlsVersion::Tls12 => &BOTH,
        TlsVersion::Tls13 => &ONLY13,
    }
}

/// Version and suite of an established connection, in the names logs and headers use.
pub fn facts(conn: &rustls::CommonState) -> Option<(TlsVersion, TlsFacts)> {
    let version = match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => TlsVersion::Tls13,
        rustls::ProtocolVersion::TLSv1_2 => TlsVersion::Tls12,
        _ => return None,
    };
    let suite = conn.negotiated_cipher_suite()?;
    let cipher = suite
        .suite()
        .as_str()
        // The IANA names (RFC 8446 writes TLS_AES_128_GCM_SHA256; rustls says TLS13_...).
        .map(|n| n.replacen("TLS13_", "TLS_", 1))
        .unwrap_or_else(|| format!("{:?}", suite.suite()));
    Some((
        version,
        TlsFacts {
            version: version.name().to_string(),
            cipher,
            dane: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_suite_is_aead_and_tls12_or_13() {
        for suite in &provider().cipher_suites {
            let name = suite.suite().as_str().unwrap_or("?");
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name}"
            );
        }
    }
}
