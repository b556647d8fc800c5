//! The DANE verifier for outbound delivery: a rustls `ServerCertVerifier` carrying
//! the TLSA set, so the decision is made inside the handshake (rustls #816 advises
//! against checking afterwards). Handshake signatures are verified with the
//! provider's algorithms, so the session is bound to the key in the certificate
//! that matched. The outcome (which record matched, or why none did) is kept for
//! the delivery log, the DSN and the deferral text.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::dane_chain::verify;
use crate::dane::{DaneError, DaneMatch, DaneSet};

/// What the verifier decided, once the handshake got that far.
pub type DaneOutcome = Arc<Mutex<Option<Result<DaneMatch, DaneError>>>>;

#[derive(Debug)]
pub struct DaneVerifier {
    set: DaneSet,
    provider: Arc<CryptoProvider>,
    outcome: DaneOutcome,
}

impl DaneVerifier {
    pub fn new(set: DaneSet) -> (Arc<DaneVerifier>, DaneOutcome) {
        let outcome: DaneOutcome = Arc::default();
        let v = DaneVerifier {
            set,
            provider: super::provider(),
            outcome: outcome.clone(),
        };
        (Arc::new(v), outcome)
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        // The reference names come from the TLSA set (MX host, base domain).
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let result = verify(&self.set, &chain, now);
        let ok = result.is_ok();
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config that accepts exactly the peers `set` matches.
pub fn dane_client_config(
    set: DaneSet,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(Arc<rustls::ClientConfig>, DaneOutcome), super::TlsSetupError> {
    let (verifier, outcome) = DaneVerifier::new(set);
    let config = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), outcome))
}
