//! A test certificate authority: certificates for loopback servers (MX hosts,
//! HTTPS policy hosts) that mxring verifies against its PEM file.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A CA and its key; `issue` signs a leaf for one name (chain: leaf + CA).
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Default for Ca {
    fn default() -> Ca {
        Ca::new()
    }
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "mxring Test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    pub fn issue(&self, name: &str) -> Identity {
        self.issue_names(&[name])
    }

    /// A leaf valid for every name in `names`.
    pub fn issue_names(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        (
            vec![leaf.der().clone(), self.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// Write the CA certificate as PEM into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("sts-ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}
