//! Certificate descriptions and verification for check-tls: the chain against the
//! system roots (or a CA file), and the host name, reported separately.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::*;

pub fn describe(der: &[u8]) -> String {
    match parse_x509_certificate(der) {
        Ok((_, c)) => format!(
            "subject= {} issuer= {} valid {} to {}",
            c.subject(),
            c.issuer(),
            c.validity().not_before,
            c.validity().not_after
        ),
        Err(e) => format!("(unparsable certificate: {e})"),
    }
}

/// DNS names a certificate is for: its subjectAltNames, else its CN.
pub fn names(der: &[u8]) -> Vec<String> {
    let Ok((_, c)) = parse_x509_certificate(der) else {
        return vec![];
    };
    let mut v = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => v.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    v.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
                }
                _ => {}
            }
        }
    }
    if v.is_empty() {
        v.extend(
            c.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    v
}

pub struct Checked {
    pub chain: Result<(), String>,
    /// Err carries the names the certificate is for.
    pub host: Result<(), String>,
}

pub fn verify(chain: &[Vec<u8>], host: &str, ca_file: Option<&Path>) -> Checked {
    let Some(end) = chain.first() else {
        return Checked {
            chain: Err("no certificate".into()),
            host: Err("none".into()),
        };
    };
    let verifier = match build_verifier(ca_file) {
        Ok(v) => v,
        Err(e) => {
            return Checked {
                chain: Err(e),
                host: Err("unchecked".into()),
            }
        }
    };
    let end = CertificateDer::from(end.clone());
    let inter: Vec<CertificateDer> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let cert_names = names(&end);
    let self_signed = inter.is_empty() && is_self_signed(&end);
    let check = |name: &str| -> Result<(), String> {
        let sn = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?,
        };
        verifier
            .verify_server_cert(&end, &inter, &sn, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| {
                // webpki says "unknown issuer" or "CA used as end entity" (openssl's
                // self-signed certificates are CA:TRUE); a person wants to hear this.
                if self_signed {
                    "self-signed certificate".to_string()
                } else {
                    crate::tls::words::error(&e)
                }
            })
    };
    // The chain is judged with a name the certificate is for, so a name mismatch
    // is reported apart from trust.
    let chain_result = match cert_names.first() {
        Some(n) => check(n),
        None => check(host),
    };
    let host_result = match &chain_result {
        Ok(()) => check(host).map_err(|_| cert_names.join(", ")),
        Err(_) => {
            let ok = cert_names.iter().any(|n| name_matches(n, host));
            if ok {
                Ok(())
            } else {
                Err(cert_names.join(", "))
            }
        }
    };
    Checked {
        chain: chain_result,
        host: host_result,
    }
}

/// Issued by itself: subject and issuer are the same name.
fn is_self_signed(der: &[u8]) -> bool {
    parse_x509_certificate(der)
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}

fn name_matches(pattern: &str, host: &str) -> bool {
    if let Some(rest) = pattern.strip_prefix("*.") {
        host.split_once('.')
            .is_some_and(|(_, h)| h.eq_ignore_ascii_case(rest))
    } else {
        pattern.eq_ignore_ascii_case(host)
    }
}

fn build_verifier(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            for c in
                CertificateDer::pem_file_iter(p).map_err(|e| format!("{}: {e}", p.display()))?
            {
                roots
                    .add(c.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted roots available".into());
    }
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crate::tls::provider(),
    )
    .build()
    .map_err(|e| e.to_string())
}
