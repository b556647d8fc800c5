//! The server side: one rustls ServerConfig built from `[tls]`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{protocol_versions, provider, self_signed, TlsSetupError};
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

pub fn server_config(c: &Config) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let (certs, key) = match (&c.tls.certificate, &c.tls.private_key) {
        (Some(cert), Some(key)) => load_certified_key(cert, key)?,
        _ => self_signed(&c.server.hostname)?,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(protocol_versions(c.tls.min_version))?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // Many MTAs offer no SNI; honour the client's suite order only when it is sane,
    // which with AEAD-only suites it always is.
    config.ignore_client_order = false;
    Ok(Arc::new(config))
}
