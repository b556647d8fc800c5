//! A client certificate for outbound TLS, for partners whose servers require one
//! (`[[outbound_tls]] client_certificate` / `client_private_key`). Added to an
//! existing client configuration, so every verification mode can carry one.

use std::path::Path;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::TlsSetupError;

/// `base` presenting the certificate in `cert` (with `key`) when the server asks.
pub fn with_client_certificate(
    base: &rustls::ClientConfig,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let certified = super::sni::load_pair(cert, key)?;
    let mut config = base.clone();
    config.client_auth_cert_resolver = Arc::new(OneCertificate(certified));
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OneCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Only when our key can sign with a scheme the server accepts.
        self.0
            .key
            .choose_scheme(sigschemes)
            .is_some()
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
