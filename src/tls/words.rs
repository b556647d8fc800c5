//! rustls errors in words for people (logs, DSNs, check-tls). rustls's own Display
//! shows Rust names for some cases (`Other(OtherError(CaUsedAsEndEntity))`,
//! `received fatal alert: ProtocolVersion`); these say what happened.

use rustls::{AlertDescription, CertificateError, Error};

/// A rustls error in words.
pub fn error(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => certificate(c),
        Error::AlertReceived(AlertDescription::ProtocolVersion) => {
            "the server refused our TLS versions (we offer TLS 1.2 and 1.3 only)".into()
        }
        Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "the server refused the handshake (no cipher in common: we offer AEAD ciphers only, no CBC)".into()
        }
        Error::AlertReceived(a) => format!("the server sent the TLS alert \"{}\"", spaced(&format!("{a:?}"))),
        Error::PeerIncompatible(p) => format!(
            "the server is incompatible with TLS 1.2/1.3 with AEAD ciphers: {}",
            spaced(&format!("{p:?}"))
        ),
        Error::PeerMisbehaved(p) => format!("the server broke the TLS protocol: {}", spaced(&format!("{p:?}"))),
        Error::InvalidMessage(m) => format!("the server sent an invalid TLS message: {}", spaced(&format!("{m:?}"))),
        Error::NoCertificatesPresented => "the server sent no certificate".into(),
        Error::DecryptError => "a TLS record could not be decrypted".into(),
        Error::General(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A certificate problem in words.
pub fn certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::BadEncoding => "the certificate does not parse".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the certificate is not valid yet".into()
        }
        CertificateError::Revoked => "the certificate is revoked".into(),
        CertificateError::UnknownIssuer => "certificate issued by an unknown authority".into(),
        CertificateError::BadSignature => "a signature in the chain is invalid".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the certificate is not valid for the host name".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the certificate is not for TLS servers".into()
        }
        CertificateError::ApplicationVerificationFailure => {
            "the certificate was rejected by our verification".into()
        }
        CertificateError::Other(o) => {
            let raw = o.to_string();
            match raw.as_str() {
                "CaUsedAsEndEntity" => "a CA certificate is used as the server certificate".into(),
                "EndEntityUsedAsCa" => "a server certificate is used as a CA".into(),
                "UnknownIssuer" => "certificate issued by an unknown authority".into(),
                _ => spaced(&raw),
            }
        }
        other => spaced(&format!("{other:?}")),
    }
}

/// The handshake error inside an io::Error from the transport, in words.
pub fn io_error(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(tls) => error(tls),
        None => e.to_string(),
    }
}

/// `CaUsedAsEndEntity` → "ca used as end entity"; leaves other text as is.
fn spaced(name: &str) -> String {
    let name = name.split(['(', '{']).next().unwrap_or(name).trim();
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rust_names_in_words() {
        let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(error(&e), "certificate issued by an unknown authority");
        assert_eq!(spaced("CaUsedAsEndEntity"), "ca used as end entity");
        let a = error(&Error::AlertReceived(AlertDescription::ProtocolVersion));
        assert!(a.contains("TLS versions"), "{a}");
    }
}
