//! Does a certificate match a TLSA record: the selected part (full certificate or
//! SubjectPublicKeyInfo), then compared exactly or by SHA-256/SHA-512.

use aws_lc_rs::digest;
use x509_parser::prelude::*;

use super::Tlsa;

/// The bytes `selector` picks from a DER certificate; None when it does not parse
/// or the selector is unknown.
pub fn selected(selector: u8, cert_der: &[u8]) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert_der.to_vec()),
        1 => {
            let (_, cert) = parse_x509_certificate(cert_der).ok()?;
            Some(cert.tbs_certificate.subject_pki.raw.to_vec())
        }
        _ => None,
    }
}

/// Whether `cert_der` matches the record's selector, matching type and data. The
/// usage is not looked at here (that is the verifier's business).
pub fn matches(record: &Tlsa, cert_der: &[u8]) -> bool {
    let Some(bytes) = selected(record.selector, cert_der) else {
        return false;
    };
    match record.matching {
        0 => bytes == record.data,
        1 => digest::digest(&digest::SHA256, &bytes).as_ref() == record.data.as_slice(),
        2 => digest::digest(&digest::SHA512, &bytes).as_ref() == record.data.as_slice(),
        _ => false,
    }
}
