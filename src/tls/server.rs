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
    let mut config = rustls::ServerConfig::builder_with_provider(server_provider())
        .with_protocol_versions(protocol_versions(c.tls.min_version))?
        .with_no_client_auth()
        .with_cert_resolver(set);
    // Our order, not the client's: see `server_provider`.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The provider with the suites in the order the server prefers: AES-GCM first where
/// the CPU has AES instructions (fastest and constant-time there), ChaCha20-Poly1305
/// first where it has not (where software AES is slow and leaks through timing).
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = (*provider()).clone();
    p.cipher_suites = preferred_order(&p.cipher_suites, hardware_aes());
    Arc::new(p)
}

/// `suites` reordered for the server: a stable sort, so each group keeps the
/// provider's order (AES-256 before AES-128).
fn preferred_order(
    suites: &[rustls::SupportedCipherSuite],
    hardware_aes: bool,
) -> Vec<rustls::SupportedCipherSuite> {
    let chacha = |s: &rustls::SupportedCipherSuite| {
        s.suite().as_str().is_some_and(|n| n.contains("CHACHA20"))
    };
    let mut v = suites.to_vec();
    v.sort_by_key(|s| chacha(s) == hardware_aes);
    v
}

/// Whether AES-GCM runs in hardware here (AES-NI and carry-less multiply on
/// x86-64, the crypto extensions on aarch64).
pub fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;

    fn names(v: &[rustls::SupportedCipherSuite]) -> Vec<&'static str> {
        v.iter().map(|s| s.suite().as_str().unwrap()).collect()
    }

    #[test]
    fn aes_gcm_first_with_hardware_aes_chacha_first_without() {
        let all = provider().cipher_suites.clone();
        let with = names(&preferred_order(&all, true));
        assert!(with[0].contains("AES_256_GCM"), "{with:?}");
        assert!(
            with.iter().position(|n| n.contains("CHACHA20"))
                > with.iter().rposition(|n| n.contains("AES"))
        );
        let without = names(&preferred_order(&all, false));
        assert!(without[0].contains("CHACHA20"), "{without:?}");
        assert!(
            without.iter().rposition(|n| n.contains("CHACHA20"))
                < without.iter().position(|n| n.contains("AES"))
        );
    }

    /// Issue 11, item 8: a client that lists ChaCha20 first still gets the
    /// server's choice, over a real (in-memory) handshake, TLS 1.3 and 1.2.
    #[test]
    fn the_server_picks_the_suite_not_the_client() {
        let config = crate::config::load_str("[[listener]]\naddress = \"127.0.0.1:0\"\n", "test");
        let server = server_config(&config.unwrap()).unwrap();
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let mut p = (*provider()).clone();
            p.cipher_suites = vec![
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ];
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(p))
                .with_protocol_versions(&[version])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny))
                .with_no_client_auth();
            let mut c = rustls::ClientConnection::new(
                Arc::new(client),
                "mxring.localhost".try_into().unwrap(),
            )
            .unwrap();
            let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
            while c.is_handshaking() || s.is_handshaking() {
                let mut buf = Vec::new();
                while c.wants_write() {
                    c.write_tls(&mut buf).unwrap();
                }
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets().unwrap();
                buf.clear();
                while s.wants_write() {
                    s.write_tls(&mut buf).unwrap();
                }
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets().unwrap();
            }
            let got = s
                .negotiated_cipher_suite()
                .unwrap()
                .suite()
                .as_str()
                .unwrap();
            if hardware_aes() {
                assert!(got.contains("AES_256_GCM"), "{version:?}: {got}");
            } else {
                assert!(got.contains("CHACHA20"), "{version:?}: {got}");
            }
        }
    }

    /// The handshake test checks suite choice, not the (self-signed) certificate.
    #[derive(Debug)]
    struct AcceptAny;

    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}
