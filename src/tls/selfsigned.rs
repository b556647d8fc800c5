//! The self-signed ECDSA P-256 certificate served when none is configured
//! (opportunistic TLS needs no CA). It is valid for a year and kept in the spool
//! (`tls/self-signed.pem` and `.key`), so its fingerprint stays the same across
//! restarts and can be pinned; it is made anew when its names change or when less
//! than 30 days of validity are left at start or SIGHUP.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TlsSetupError;

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Starts a day early: a client whose clock is a little behind still accepts it.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// A new self-signed certificate for `hostname`, held in memory only.
pub fn self_signed(hostname: &str) -> Result<Pair, TlsSetupError> {
    generate(&[hostname.to_string()])
}

/// A new self-signed certificate for `names` (the first is its common name),
/// valid from yesterday for a year.
pub fn generate(names: &[String]) -> Result<Pair, TlsSetupError> {
    let g = generate_pem(names, SystemTime::now())?;
    Ok((g.chain, g.key))
}

/// The certificate and key, DER and PEM.
struct Generated {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn generate_pem(names: &[String], now: SystemTime) -> Result<Generated, TlsSetupError> {
    let gen = |e: rcgen::Error| TlsSetupError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    let (y, m, d) = ymd(now - BACKDATE);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(now + VALIDITY);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params.self_signed(&key).map_err(gen)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(Generated {
        chain: vec![cert.der().clone()],
        key: key_der,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn ymd(t: SystemTime) -> (i32, u8, u8) {
    use chrono::Datelike;
    let d: chrono::DateTime<chrono::Utc> = t.into();
    (d.year(), d.month() as u8, d.day() as u8)
}

/// Where the spool keeps the self-signed default.
pub fn spool_paths(spool: &Path) -> (PathBuf, PathBuf) {
    let dir = spool.join("tls");
    (dir.join("self-signed.pem"), dir.join("self-signed.key"))
}

/// The self-signed default kept in `spool`: reused while it is for `names` and has
/// more than 30 days left, else made anew and stored. Returns it and its file.
pub fn self_signed_in_spool(
    spool: &Path,
    names: &[String],
    now: SystemTime,
) -> Result<(Pair, PathBuf), TlsSetupError> {
    let (cert_path, key_path) = spool_paths(spool);
    if let Some(pair) = reusable(&cert_path, &key_path, names, now) {
        return Ok((pair, cert_path));
    }
    let Generated {
        chain,
        key,
        cert_pem,
        key_pem,
    } = generate_pem(names, now)?;
    store(&cert_path, &key_path, &cert_pem, &key_pem)?;
    tracing::info!(
        certificate = %cert_path.display(),
        names = %names.join(", "),
        fingerprint = %super::sni::fingerprint(chain[0].as_ref()),
        "made a self-signed certificate, valid for a year; it is reused on restart"
    );
    Ok(((chain, key), cert_path))
}

fn reusable(cert: &Path, key: &Path, names: &[String], now: SystemTime) -> Option<Pair> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_file(key).ok()?;
    let end = chain.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(end.as_ref()).ok()?;
    let mut have = super::sni::dns_names(end.as_ref());
    let mut want = names.to_vec();
    have.sort();
    want.sort();
    if have != want {
        return None;
    }
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64;
    let validity = parsed.validity();
    let renew = RENEW_BEFORE.as_secs() as i64;
    if validity.not_before.timestamp() > secs || validity.not_after.timestamp() - secs < renew {
        return None;
    }
    Some((chain, key))
}

fn store(cert: &Path, key: &Path, cert_pem: &str, key_pem: &str) -> Result<(), TlsSetupError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsSetupError::Read { path, source }
    };
    let dir = cert.parent().expect("spool_paths gives a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    // Write both under temporary names, then rename: a crash never leaves a
    // certificate beside a key of another one.
    for (path, text, mode) in [(key, key_pem, 0o600), (cert, cert_pem, 0o644)] {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn validity(der: &[u8]) -> (i64, i64) {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    #[test]
    fn valid_for_about_a_year_from_yesterday() {
        let (chain, _) = self_signed("mx.test").unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (from, to) = validity(chain[0].as_ref());
        assert!(from <= now && now - from <= 2 * 86400, "{from} vs {now}");
        let days = (to - now) / 86400;
        assert!((363..=366).contains(&days), "{days} days");
    }

    #[test]
    fn kept_in_the_spool_reused_and_renewed_near_its_end_or_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let want = names(&["mx.test", "mx2.test"]);
        let ((first, _), path) = self_signed_in_spool(dir.path(), &want, now).unwrap();
        assert_eq!(path, dir.path().join("tls/self-signed.pem"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("tls/self-signed.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let ((again, _), _) = self_signed_in_spool(dir.path(), &want, now).unwrap();
        assert_eq!(first, again, "same certificate after a restart");
        // Ten months on it is still fine; with 20 days left it is renewed.
        let later = now + Duration::from_secs(300 * 86400);
        let ((same, _), _) = self_signed_in_spool(dir.path(), &want, later).unwrap();
        assert_eq!(first, same);
        let near_end = now + Duration::from_secs(345 * 86400);
        let ((renewed, _), _) = self_signed_in_spool(dir.path(), &want, near_end).unwrap();
        assert_ne!(first, renewed);
        let ((renamed, _), _) =
            self_signed_in_spool(dir.path(), &names(&["mx.test"]), near_end).unwrap();
        assert_ne!(renewed, renamed, "new names, new certificate");
        assert_eq!(
            super::super::sni::dns_names(renamed[0].as_ref()),
            ["mx.test"]
        );
    }
}
