//! The client side: configurations for delivery and check-tls. Opportunistic and
//! `encrypt` levels do not check the certificate (RFC 7435); `verify` checks the
//! chain against the system roots or a configured CA file, and the host name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{protocol_versions, provider, TlsSetupError};
use crate::config::TlsVersion;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientVerification {
    /// Accept any certificate (handshake signatures are still checked).
    None,
    /// Check the chain against these roots: the system's when `ca_file` is None.
    Chain { ca_file: Option<std::path::PathBuf> },
    /// Check the chain against the system roots and, when given, this CA file too
    /// (MTA-STS: public roots, plus a private CA where the operator adds one).
    SystemAnd { ca_file: Option<std::path::PathBuf> },
}

pub fn client_config(
    verification: &ClientVerification,
    min: TlsVersion,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    client_config_versions(verification, protocol_versions(min))
}

/// A client offering exactly `versions` (check-tls probes each one alone).
pub fn client_config_versions(
    verification: &ClientVerification,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let builder =
        rustls::ClientConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
    let config = match verification {
        ClientVerification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
        ClientVerification::Chain { ca_file } => builder
            .with_root_certificates(roots(ca_file.as_deref())?)
            .with_no_client_auth(),
        ClientVerification::SystemAnd { ca_file } => {
            let mut store = roots(None)?;
            if let Some(path) = ca_file {
                for cert in roots(Some(path))?.roots {
                    store.roots.push(cert);
                }
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut store = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = |e: rustls::pki_types::pem::Error| TlsSetupError::Pem {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(pem)? {
                store.add(cert.map_err(pem)?)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
        }
    }
    Ok(store)
}

/// Accepts every certificate but still verifies the handshake signature, so the
/// session keys are bound to the key in the presented certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
