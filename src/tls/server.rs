//! The server side: one rustls ServerConfig built from `[tls]`, whose certificate
//! is chosen per SNI name from `[tls] certificate`, `[[tls.certificates]]` and
//! `[tls] certificate_dir` (or the self-signed default kept in the spool).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::sni::{certified, directory_pairs, load_pair, CertificateSet, LoadedCertificate};
use super::{protocol_versions, provider, TlsSetupError};
use crate::config::Config;

/// Read a PEM chain and key.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let pem = |path: &Path, e: rustls::pki_types::pem::Error| TlsSetupError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, e))?;
    if certs.is_empty() {
        return Err(TlsSetupError::Pem {
            path: cert.display().to_string(),
            message: "no certificate found".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e))?;
    Ok((certs, key_der))
}

/// Every certificate the config names, loaded and checked. Any bad file fails the
/// whole set, with the file named, so a reload keeps the old one.
pub fn certificate_set(c: &Config) -> Result<CertificateSet, TlsSetupError> {
    let default = match (&c.tls.certificate, &c.tls.private_key) {
        (Some(cert), Some(key)) => LoadedCertificate {
            source: cert.display().to_string(),
            names: vec![],
            key: load_pair(cert, key)?,
        },
        _ => {
            let mut names = vec![c.server.hostname.clone()];
            for n in &c.tls.self_signed_names {
                if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                    names.push(n.clone());
                }
            }
            let ((chain, key), path) = super::selfsigned::self_signed_in_spool(
                &c.server.spool,
                &names,
                SystemTime::now(),
            )?;
            let key_path = path.with_extension("key");
            LoadedCertificate {
                source: format!("self-signed default ({})", path.display()),
                names: vec![],
                key: certified(chain, key, &path, &key_path)?,
            }
        }
    };
    let mut set = CertificateSet::new(default);
    for cert in named_certificates(c)? {
        set.add(cert);
    }
    Ok(set)
}

/// The certificates chosen by SNI: `[[tls.certificates]]`, then `[tls] certificate_dir`.
pub fn named_certificates(c: &Config) -> Result<Vec<LoadedCertificate>, TlsSetupError> {
    let mut out = Vec::new();
    for e in &c.tls.certificates {
        out.push(LoadedCertificate {
            source: e.certificate.display().to_string(),
            names: e.names.clone(),
            key: load_pair(&e.certificate, &e.private_key)?,
        });
    }
    if let Some(dir) = &c.tls.certificate_dir {
        for (cert, key) in directory_pairs(dir)? {
            out.push(LoadedCertificate {
                source: cert.display().to_string(),
                names: vec![],
                key: load_pair(&cert, &key)?,
            });
        }
    }
    Ok(out)
}

pub fn server_config(c: &Config) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let set = Arc::new(certificate_set(c)?);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(protocol_versions(c.tls.min_version))?
        .with_no_client_auth()
        .with_cert_resolver(set);
    // Many MTAs offer no SNI; honour the client's suite order only when it is sane,
    // which with AEAD-only suites it always is.
    config.ignore_client_order = false;
    Ok(Arc::new(config))
}
