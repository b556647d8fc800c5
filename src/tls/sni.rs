//! Server certificates chosen by the client's SNI name: a rustls
//! `ResolvesServerCert` over an exact-name table and a wildcard table, with the
//! default certificate for clients that send no SNI or a name nobody has.
//! Built whole from the config; a SIGHUP builds a new set and swaps it in, so a
//! bad file never leaves a half-loaded set behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{provider, TlsSetupError};

/// One certificate in the set, with where it came from (for `mxring tls show`).
#[derive(Clone, Debug)]
pub struct LoadedCertificate {
    /// The file, or "self-signed default (FILE)".
    pub source: String,
    /// The SNI names it is chosen for; empty for the default.
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

#[derive(Debug)]
pub struct CertificateSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`: it matches one more label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    loaded: Vec<LoadedCertificate>,
}

impl CertificateSet {
    /// A set with only a default certificate.
    pub fn new(default: LoadedCertificate) -> CertificateSet {
        CertificateSet {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: default.key.clone(),
            loaded: vec![default],
        }
    }

    /// Add a certificate for `names` (its SANs when empty). A name already taken
    /// keeps its first certificate: files listed earlier win.
    pub fn add(&mut self, mut cert: LoadedCertificate) {
        if cert.names.is_empty() {
            cert.names = cert
                .key
                .end_entity_cert()
                .map(|c| dns_names(c.as_ref()))
                .unwrap_or_default();
        }
        for name in &cert.names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let table = match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()),
                None => self.exact.entry(name),
            };
            table.or_insert_with(|| cert.key.clone());
        }
        self.loaded.push(cert);
    }

    /// The certificate for an SNI name: exact, then wildcard, then the default.
    pub fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some(k) = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
        {
            return k.clone();
        }
        self.default.clone()
    }

    /// Every certificate, the default first.
    pub fn loaded(&self) -> &[LoadedCertificate] {
        &self.loaded
    }
}

impl ResolvesServerCert for CertificateSet {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(hello.server_name()))
    }
}

/// Read a PEM chain and key into a signing certificate, checking they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let (chain, key_der) = super::load_certified_key(cert, key)?;
    certified(chain, key_der, cert, key)
}

pub fn certified(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    CertifiedKey::from_der(chain, key_der, &provider())
        .map(Arc::new)
        .map_err(|e| TlsSetupError::Pem {
            path: key.display().to_string(),
            message: match e {
                rustls::Error::InconsistentKeys(_) => {
                    format!("this key does not belong to {}", cert.display())
                }
                other => format!("unusable private key: {other}"),
            },
        })
}

/// The `NAME.pem` + `NAME.key` pairs of a directory, in name order. A `.pem`
/// without its `.key` is an error that names it.
pub fn directory_pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, TlsSetupError> {
    let read = |e: std::io::Error| TlsSetupError::Read {
        path: dir.display().to_string(),
        source: e,
    };
    let mut pairs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().is_some_and(|e| e == "pem") {
            let key = path.with_extension("key");
            if !key.is_file() {
                return Err(TlsSetupError::Pem {
                    path: path.display().to_string(),
                    message: format!("no private key {} beside it", key.display()),
                });
            }
            pairs.push((path, key));
        }
    }
    pairs.sort();
    Ok(pairs)
}

/// DNS names (subjectAltName) of a certificate, else its common name.
pub fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::*;
    let Ok((_, c)) = parse_x509_certificate(der) else {
        return vec![];
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            c.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    names
}

/// SHA-256 of a certificate, as `AB:CD:...` (what `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(der: &[u8]) -> String {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let hash = suite.tls13().expect("a TLS 1.3 suite").common.hash_provider;
    hash.hash(der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(names: &[&str]) -> Arc<CertifiedKey> {
        let (chain, key) = super::super::selfsigned::generate(
            &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        certified(chain, key, Path::new("c"), Path::new("k")).unwrap()
    }

    fn loaded(source: &str, key: Arc<CertifiedKey>, names: &[&str]) -> LoadedCertificate {
        LoadedCertificate {
            source: source.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            key,
        }
    }

    #[test]
    fn exact_before_wildcard_before_default() {
        let default = cert_for(&["mx.test"]);
        let exact = cert_for(&["www.a.test"]);
        let wild = cert_for(&["*.a.test"]);
        let other = cert_for(&["b.test", "mail.b.test"]);
        let mut set = CertificateSet::new(loaded("default", default.clone(), &[]));
        // The wildcard comes first in the file, yet the exact name wins.
        set.add(loaded("wild", wild.clone(), &[]));
        set.add(loaded("exact", exact.clone(), &[]));
        set.add(loaded("other", other.clone(), &[]));
        let is = |a: &Arc<CertifiedKey>, b: &Arc<CertifiedKey>| Arc::ptr_eq(a, b);
        assert!(is(&set.choose(Some("www.a.test")), &exact));
        assert!(is(&set.choose(Some("WWW.A.test.")), &exact));
        assert!(is(&set.choose(Some("smtp.a.test")), &wild));
        // A wildcard covers one label only, and not the bare domain.
        assert!(is(&set.choose(Some("x.smtp.a.test")), &default));
        assert!(is(&set.choose(Some("a.test")), &default));
        assert!(is(&set.choose(Some("mail.b.test")), &other));
        assert!(is(&set.choose(Some("unknown.test")), &default));
        assert!(is(&set.choose(None), &default));
        assert_eq!(
            set.loaded()[1].names,
            ["*.a.test"],
            "names default to the SANs"
        );
    }

    #[test]
    fn configured_names_override_the_sans_and_first_file_wins() {
        let default = cert_for(&["mx.test"]);
        let one = cert_for(&["one.test"]);
        let two = cert_for(&["two.test"]);
        let mut set = CertificateSet::new(loaded("default", default, &[]));
        set.add(loaded("one", one.clone(), &["alias.test"]));
        set.add(loaded("two", two, &["alias.test", "two.test"]));
        assert!(Arc::ptr_eq(&set.choose(Some("alias.test")), &one));
        // `one` was given names, so its SAN is not among them.
        assert!(!Arc::ptr_eq(&set.choose(Some("one.test")), &one));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_with_both_files_named() {
        let (chain, _) = super::super::selfsigned::generate(&["a.test".into()]).unwrap();
        let (_, other_key) = super::super::selfsigned::generate(&["b.test".into()]).unwrap();
        let err = certified(chain, other_key, Path::new("a.pem"), Path::new("b.key"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "b.key: this key does not belong to a.pem");
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        let f = fingerprint(b"");
        assert!(f.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }
}
