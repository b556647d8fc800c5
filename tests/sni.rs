//! Certificates per SNI name over real TLS handshakes: three names get three
//! certificates (exact, wildcard, from certificate_dir), an unknown name and no SNI
//! get the default; the self-signed default keeps its fingerprint across a restart;
//! a SIGHUP adds a certificate file without dropping connections, and a bad file
//! keeps the old set and is named.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mxring::tls::{client_config_versions, ClientVerification};
use mxring_testkit::client::Client;
use mxring_testkit::process::Mx;
use mxring_testkit::{free_port, TestServer, Toml};
use rustls::pki_types::ServerName;

/// Write a self-signed certificate for `names` as `dir/stem.pem` + `dir/stem.key`;
/// returns its DER.
fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

/// The end-entity certificate an implicit-TLS listener presents for `sni` (None:
/// no SNI, as a client connecting by address sends), after reading the banner.
fn served(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let config =
        client_config_versions(&ClientVerification::None, &[&rustls::version::TLS13]).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut banner = [0u8; 3];
    tls.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"220");
    let der = tls.conn.peer_certificates().unwrap()[0].to_vec();
    let _ = tls.write_all(b"QUIT\r\n");
    der
}

fn fingerprint(der: &[u8]) -> String {
    mxring::tls::sni::fingerprint(der)
}

#[test]
fn sni_picks_the_certificate_per_name_and_the_default_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let default = write_cert(dir.path(), "default", &["mx.test"]);
    let exact = write_cert(dir.path(), "exact", &["www.a.test"]);
    let wildcard = write_cert(dir.path(), "wild", &["*.a.test"]);
    let from_dir = write_cert(&certs, "b.test", &["b.test", "mail.b.test"]);
    let d = dir.path().display();
    let s = TestServer::start(&format!(
        "[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [tls]\ncertificate = \"{d}/default.pem\"\nprivate_key = \"{d}/default.key\"\ncertificate_dir = \"{d}/certs\"\n\
         [[tls.certificates]]\ncertificate = \"{d}/wild.pem\"\nprivate_key = \"{d}/wild.key\"\n\
         [[tls.certificates]]\ncertificate = \"{d}/exact.pem\"\nprivate_key = \"{d}/exact.key\"\n"
    ));
    let addr = s.addr("smtps");
    assert_eq!(
        served(addr, Some("www.a.test")),
        exact,
        "exact name before the wildcard"
    );
    assert_eq!(served(addr, Some("SMTP.a.test")), wildcard);
    assert_eq!(served(addr, Some("mail.b.test")), from_dir);
    assert_eq!(served(addr, Some("unknown.test")), default);
    assert_eq!(served(addr, None), default);
    // STARTTLS picks by SNI the same way.
    let tcp = TcpStream::connect(s.addr("mx")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(tcp.try_clone().unwrap());
    let mut w = tcp;
    let read_reply = |r: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    };
    assert!(read_reply(&mut r).starts_with("220"));
    w.write_all(b"EHLO c.test\r\n").unwrap();
    assert!(read_reply(&mut r).starts_with("250"));
    w.write_all(b"STARTTLS\r\n").unwrap();
    assert!(read_reply(&mut r).starts_with("220"));
    let config =
        client_config_versions(&ClientVerification::None, &[&rustls::version::TLS12]).unwrap();
    let conn = rustls::ClientConnection::new(config, "b.test".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, w);
    tls.write_all(b"NOOP\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line).unwrap();
    assert!(line.starts_with("250"), "{line}");
    assert_eq!(
        tls.conn.peer_certificates().unwrap()[0].as_ref(),
        from_dir.as_slice()
    );
}

#[test]
fn the_self_signed_default_keeps_its_fingerprint_across_a_restart() {
    let listener =
        "[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n\
                    [tls]\nself_signed_names = [\"mx2.test\"]\n";
    let s = TestServer::start(listener);
    let first = served(s.addr("smtps"), Some("mx.test"));
    let spool = s.stop();
    assert!(spool.path().join("tls/self-signed.pem").exists());
    let s = TestServer::start_on(spool, "", listener);
    let again = served(s.addr("smtps"), None);
    assert_eq!(fingerprint(&first), fingerprint(&again));
    let names = mxring::tls::sni::dns_names(&again);
    assert_eq!(names, ["mx.test", "mx2.test"]);
    // A year, not 1975 to 4096.
    let (_, x) = x509_parser::parse_x509_certificate(&again).unwrap();
    let days = (x.validity().not_after.timestamp() - x.validity().not_before.timestamp()) / 86400;
    assert!((365..=367).contains(&days), "{days} days");
}

#[test]
fn a_thousand_certificates_in_a_directory_load_fast_and_each_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let mut ders = Vec::new();
    for i in 0..1000 {
        ders.push(write_cert(
            dir.path(),
            &format!("host{i}.test"),
            &[&format!("host{i}.test")],
        ));
    }
    let text = format!(
        "[server]\nspool = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n[tls]\ncertificate_dir = \"{}\"\n",
        dir.path().join("spool").display(),
        dir.path().display()
    );
    let config = mxring::config::load_str(&text, "test").unwrap();
    let started = Instant::now();
    let set = mxring::tls::certificate_set(&config).unwrap();
    let took = started.elapsed();
    println!("1000 certificate pairs loaded in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?} for 1000 pairs");
    assert_eq!(set.loaded().len(), 1001);
    for (i, der) in ders.iter().enumerate() {
        let chosen = set.choose(Some(&format!("host{i}.test")));
        assert_eq!(chosen.cert[0].as_ref(), der.as_slice(), "host{i}.test");
    }
}

#[test]
fn sighup_adds_a_certificate_file_and_a_bad_one_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let a = write_cert(&certs, "a.test", &["a.test"]);
    let port = free_port();
    let file = dir.path().join("mxring.toml");
    std::fs::write(
        &file,
        Toml::new(&dir.path().join("spool"), 2)
            .admin("")
            .listener("smtps", port, "implicit")
            .extra(&format!("[tls]\ncertificate_dir = \"{}\"", certs.display()))
            .text(),
    )
    .unwrap();
    let mx = Mx::start_without_admin(&file, dir.path().join("mxring.log"));
    let wait_for = |needle: &str| mx.wait_log(needle, Duration::from_secs(20));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let default = served(addr, Some("b.test"));
    assert_ne!(default, a);
    assert_eq!(served(addr, Some("a.test")), a);
    let mut kept = Client::connect_tls(addr);
    kept.cmd("EHLO kept.test");

    let hup = || mx.sighup();
    let b = write_cert(&certs, "b.test", &["b.test"]);
    hup();
    wait_for("configuration reloaded");
    wait_for("configuration reloaded");
    assert_eq!(
        kept.cmd("NOOP").0,
        250,
        "the open connection survived the reload"
    );
    for _ in 0..4 {
        // Either shard may take the connection; both have the new set.
        assert_eq!(served(addr, Some("b.test")), b);
    }
    // `mxring tls show` lists it with its fingerprint.
    let show = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["tls", "show", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{out}");
    assert!(
        out.contains(&fingerprint(&b)) && out.contains("names:       b.test"),
        "{out}"
    );
    assert!(out.contains("self-signed default"), "{out}");

    // A certificate without its key: the reload is refused, the file named.
    std::fs::write(
        certs.join("c.test.pem"),
        std::fs::read(certs.join("b.test.pem")).unwrap(),
    )
    .unwrap();
    hup();
    let refused = wait_for("reload refused");
    assert!(refused.contains("c.test.pem"), "{refused}");
    assert_eq!(served(addr, Some("b.test")), b, "the old set stays");
    assert_eq!(kept.cmd("NOOP").0, 250);
    // A garbled certificate is named too.
    std::fs::remove_file(certs.join("c.test.pem")).unwrap();
    std::fs::write(
        certs.join("d.test.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        certs.join("d.test.key"),
        std::fs::read(certs.join("b.test.key")).unwrap(),
    )
    .unwrap();
    hup();
    let refused = wait_for("reload refused");
    assert!(refused.contains("d.test.pem"), "{refused}");
    assert_eq!(served(addr, Some("a.test")), a);

    mx.sigterm();
    let status = mx.wait_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
