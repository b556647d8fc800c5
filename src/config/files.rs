//! Checks of the files a config names (certificates, keys, CA bundles): that each
//! exists, parses, and that a key belongs to its certificate. `mxring config check`
//! and the server's start run them; other commands don't, because the operator
//! running `mxring queue list` need not be able to read the server's private key.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::load::located;
use super::{Config, ConfigError};

/// Every named file, checked; the first problem is returned with its key and line.
pub fn check_files(c: &Config, text: &str, origin: &str) -> Result<(), ConfigError> {
    let invalid = |table: &'static str, index: Option<usize>, key: &'static str, message| {
        located(origin, text, (table, index, key, message))
    };
    if let (Some(cert), Some(key)) = (&c.tls.certificate, &c.tls.private_key) {
        let chain = certificates(cert).map_err(|m| invalid("tls", None, "certificate", m))?;
        key_for(key, &chain).map_err(|m| invalid("tls", None, "private_key", m))?;
    }
    for (i, e) in c.tls.certificates.iter().enumerate() {
        let chain = certificates(&e.certificate)
            .map_err(|m| invalid("tls.certificates", Some(i), "certificate", m))?;
        key_for(&e.private_key, &chain)
            .map_err(|m| invalid("tls.certificates", Some(i), "private_key", m))?;
    }
    if let Some(dir) = &c.tls.certificate_dir {
        std::fs::read_dir(dir).map_err(|e| {
            invalid(
                "tls",
                None,
                "certificate_dir",
                format!("cannot read {}: {e}", dir.display()),
            )
        })?;
    }
    for (i, r) in c.outbound_tls.iter().enumerate() {
        if let Some(ca) = &r.ca_file {
            certificates(ca).map_err(|m| invalid("outbound_tls", Some(i), "ca_file", m))?;
        }
    }
    if let Some(ca) = &c.outbound.mta_sts_ca_file {
        certificates(ca).map_err(|m| invalid("outbound", None, "mta_sts_ca_file", m))?;
    }
    if let Some(users) = &c.auth.users_file {
        std::fs::metadata(users).map_err(|e| {
            invalid(
                "auth",
                None,
                "users_file",
                format!("cannot read {}: {e}", users.display()),
            )
        })?;
    }
    Ok(())
}

/// The certificates of a PEM file: at least one, each a well-formed X.509.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate (BEGIN CERTIFICATE)"
        ));
    }
    for (n, cert) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(cert)
            .map_err(|e| format!("certificate {} in {shown} does not parse: {e}", n + 1))?;
    }
    Ok(certs)
}

/// The private key of a PEM file, and that it belongs to the first certificate.
fn key_for(path: &Path, chain: &[CertificateDer<'static>]) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{shown} holds no usable private key: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{shown}: unsupported private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    certified
        .keys_match()
        .map_err(|_| format!("{shown} is not the key of the certificate it is paired with"))
}
