//! DANE end to end (RFC 7672): mxring resolves MX, A and TLSA through the test DNS
//! server acting as a validating resolver (AD bit, `dnssec = "trust-ad"`), and
//! delivers to receiving servers started here with their own certificates. Each
//! case checks both what arrived and what did not.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use mxring_testkit::client::Client;
use mxring_testkit::dns_server::{DnsServer, Zone};
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{TestServer, Toml};

const MX: &str = "mx.dane.test";

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A self-signed certificate for the MX host.
fn self_signed() -> Identity {
    mxring::tls::self_signed(MX).unwrap()
}

/// A test CA and a certificate for `name` it signed; the chain sent is leaf + CA.
fn ca_signed(name: &str) -> (Identity, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "DANE Test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (
        (vec![leaf.der().clone(), ca.der().clone()], der_key),
        ca.der().clone(),
    )
}

fn sha256(selector: u8, cert: &CertificateDer<'_>) -> Vec<u8> {
    let bytes = mxring::dane::selected(selector, cert).unwrap();
    digest::digest(&digest::SHA256, &bytes).as_ref().to_vec()
}

fn tls_sink(id: Identity) -> Sink {
    Sink::start(Script {
        tls: Some(id),
        ..Default::default()
    })
}

/// The zone for dest.test → mx.dane.test → 127.0.0.1, signed.
fn zone() -> Zone {
    Zone::new()
        .mx("dest.test", 10, MX)
        .a(MX, Ipv4Addr::LOCALHOST)
        .signed()
}

fn tlsa_name(dest: &Sink) -> String {
    format!("_{}._tcp.{MX}", dest.addr.port())
}

/// mxring with `level` for dest.test, DNS through `dns`, MX port = `dest`'s port;
/// DSNs for sender.test go to `senders` (a literal address: DANE never applies to
/// it, so it gets the default `may`).
fn mxring(dns: &DnsServer, dest: &Sink, senders: &Sink, level: &str) -> TestServer {
    mxring_with(dns, dest, senders, level, "")
}

/// As `mxring`, with more keys for the dest.test rule (e.g. on_failure).
fn mxring_with(
    dns: &DnsServer,
    dest: &Sink,
    senders: &Sink,
    level: &str,
    rule: &str,
) -> TestServer {
    TestServer::start(
        &Toml::default()
            .listener("mx", 0, "starttls")
            .extra(&format!(
                "[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\ndnssec = \"trust-ad\"\n\
                 [outbound]\nport = {}\n\
                 [[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"{level}\"\n{rule}",
                dns.nameserver(),
                dest.addr.port(),
            ))
            .route("\"sender.test\"", senders.addr)
            .queue("retry = [\"1h\"]")
            .text(),
    )
}

fn send(s: &TestServer, notify_success: bool) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").0, 250);
    let notify = if notify_success {
        " NOTIFY=SUCCESS"
    } else {
        ""
    };
    assert_eq!(c.cmd(&format!("RCPT TO:<bob@dest.test>{notify}")).0, 250);
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(b"Subject: dane\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
}

/// The recipient's view once the first attempt is over (bounded wait).
fn after_first_attempt(s: &TestServer) -> mxring::admin::RecipientView {
    s.after_first_attempt(20)
}

fn dsn_field(dsn: &mxring_testkit::sink::Arrival, name: &str) -> String {
    let p = mxring::dsn::parse_delivery_status(&dsn.data).unwrap();
    p.recipients[0].field(name).unwrap_or("").to_string()
}

#[test]
fn dane_ee_match_is_delivered_and_the_dsn_names_the_record() {
    let id = self_signed();
    let hash = sha256(1, &id.0[0]);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 1, 1, hash));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, true);
    let got = dest.next(20);
    assert!(got.tls.is_some(), "delivered over TLS");
    let relayed = senders.next(20);
    assert_eq!(dsn_field(&relayed, "Action"), "relayed");
    let remote = dsn_field(&relayed, "Remote-MTA");
    assert!(
        remote.contains("DANE-EE TLSA 3 1 1") && remote.contains("matched the server certificate"),
        "{remote}"
    );
    assert!(
        dns.counters
            .queries()
            .iter()
            .any(|q| q.starts_with(&format!("{} TLSA", tlsa_name(&dest)))),
        "TLSA asked at the MX host as named: {:?}",
        dns.counters.queries()
    );
}

#[test]
fn dane_ee_mismatch_is_deferred_and_never_delivered() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let other = self_signed();
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 1, 1, sha256(1, &other.0[0])));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let r = after_first_attempt(&s);
    let reply = r.last_reply.unwrap_or_default();
    assert_eq!(r.state, "deferred", "{reply}");
    assert!(
        reply.starts_with("4.7.5")
            && reply.contains("TLSA")
            && reply.contains("did not match")
            && reply.contains(MX),
        "{reply}"
    );
    assert!(
        dest.arrivals.try_recv().is_err(),
        "nothing reached the host"
    );
}

#[test]
fn dane_ta_with_a_test_ca_is_delivered() {
    let (id, ca) = ca_signed(MX);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 2, 0, 1, sha256(0, &ca)));
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, true);
    let got = dest.arrivals.recv_timeout(Duration::from_secs(20));
    assert!(got.is_ok(), "not delivered: {:?}", s.queue());
    assert!(got.unwrap().tls.is_some());
    let remote = dsn_field(&senders.next(20), "Remote-MTA");
    assert!(remote.contains("DANE-TA TLSA 2 0 1"), "{remote}");
}

#[test]
fn dane_ta_name_mismatch_is_deferred() {
    let (id, ca) = ca_signed("elsewhere.test");
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 2, 0, 1, sha256(0, &ca)));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("did not match") && reply.contains("host name"),
        "{reply}"
    );
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn no_tlsa_means_may_plaintext_delivery() {
    let dest = Sink::start(Script::default()); // no STARTTLS at all
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone());
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert_eq!(dest.next(20).tls, None, "secure denial of TLSA: may");
}

#[test]
fn unusable_tlsa_means_encrypt() {
    let plain = Sink::start(Script::default());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&plain), 0, 1, 1, vec![9; 32]));
    let s = mxring(&dns, &plain, &senders, "dane");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("4.7.4") && reply.contains("TLS is required"),
        "{reply}"
    );
    assert!(plain.arrivals.try_recv().is_err(), "never in plaintext");

    // The same records in front of a TLS host with any certificate: delivered.
    let tls = tls_sink(self_signed());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&tls), 0, 1, 1, vec![9; 32]));
    let s = mxring(&dns, &tls, &senders, "dane");
    send(&s, false);
    assert!(tls.next(20).tls.is_some());
}

#[test]
fn servfail_on_tlsa_is_deferred_not_plaintext() {
    let dest = Sink::start(Script::default());
    let senders = Sink::start(Script::default());
    let dns =
        DnsServer::start(zone().rcode(&tlsa_name(&dest), RecordType::TLSA, ResponseCode::ServFail));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let r = after_first_attempt(&s);
    let reply = r.last_reply.unwrap_or_default();
    assert_eq!(r.state, "deferred");
    assert!(
        reply.starts_with("4.7.5") && reply.contains("SERVFAIL"),
        "{reply}"
    );
    assert!(
        dest.arrivals.try_recv().is_err(),
        "no downgrade to plaintext"
    );
}

#[test]
fn mx_without_ad_means_dane_is_not_applied() {
    // A TLSA record that would not match, behind an MX RRset that did not validate.
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().unsigned("dest.test", RecordType::MX).tlsa(
        &tlsa_name(&dest),
        3,
        1,
        1,
        vec![7; 32],
    ));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert!(dest.next(20).tls.is_some(), "opportunistic TLS, no DANE");
    assert!(
        !dns.counters.queries().iter().any(|q| q.contains("TLSA")),
        "no TLSA lookup behind an insecure MX: {:?}",
        dns.counters.queries()
    );
}

#[test]
fn dane_only_without_tlsa_is_deferred() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone());
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("dane-only") && reply.contains("no TLSA records"),
        "{reply}"
    );
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn unsigned_address_records_mean_dane_is_not_applied() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(
        zone()
            .unsigned(MX, RecordType::A)
            .unsigned(MX, RecordType::AAAA)
            .tlsa(&tlsa_name(&dest), 3, 1, 1, vec![7; 32]),
    );
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert!(dest.next(20).tls.is_some());
    assert!(!dns.counters.queries().iter().any(|q| q.contains("TLSA")));
}

#[test]
fn tlsa_at_the_cname_target_first_then_at_the_mx_host_as_named() {
    let id = self_signed();
    let hash = sha256(1, &id.0[0]);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let port = dest.addr.port();
    // mx.dane.test is a CNAME; the target has no TLSA, the MX name has it.
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, MX)
            .cname(MX, "real.dane.test")
            .a("real.dane.test", Ipv4Addr::LOCALHOST)
            .signed()
            .tlsa(&tlsa_name(&dest), 3, 1, 1, hash),
    );
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, false);
    assert!(dest.next(20).tls.is_some());
    let tlsa: Vec<String> = dns
        .counters
        .queries()
        .into_iter()
        .filter(|q| q.contains("TLSA"))
        .collect();
    assert!(
        tlsa.first()
            .is_some_and(|q| q.starts_with(&format!("_{port}._tcp.real.dane.test TLSA")))
            && tlsa
                .iter()
                .any(|q| q.starts_with(&format!("_{port}._tcp.{MX} TLSA"))),
        "{tlsa:?}"
    );
}

// ---------------------------------------------------------------------------
// check-tls

fn check_tls(
    target: &str,
    dns: &DnsServer,
    port: u16,
    level: TlsLevel,
) -> mxring::checktls::Report {
    let opts = mxring::checktls::CheckOptions {
        target: target.into(),
        helo: "checker.test".into(),
        port,
        dns: mxring::config::DnsConfig {
            nameservers: vec![dns.nameserver().parse().expect("the test server's address")],
            timeout: mxring::config::Dur(Duration::from_secs(2)),
            dnssec: mxring::config::Dnssec::TrustAd,
        },
        ca_file: None,
        mail_from: None,
        rcpt_to: None,
        timeout: Duration::from_secs(10),
        level,
        mta_sts: None,
    };
    run_on_chosen_backend(async move { mxring::checktls::check(&opts).await })
}

use mxring::config::TlsLevel;

#[test]
fn check_tls_tries_every_mx_and_shows_which_record_matched() {
    let good = self_signed();
    let hash = sha256(1, &good.0[0]);
    let first = tls_sink(self_signed());
    let port = first.addr.port();
    let second = Sink::start_at(
        &format!("127.0.0.2:{port}"),
        Script {
            tls: Some(good),
            ..Default::default()
        },
    );
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, "mx1.dane.test")
            .mx("dest.test", 20, "mx2.dane.test")
            .a("mx1.dane.test", Ipv4Addr::LOCALHOST)
            .a("mx2.dane.test", Ipv4Addr::new(127, 0, 0, 2))
            .signed()
            .tlsa(&format!("_{port}._tcp.mx1.dane.test"), 3, 1, 1, vec![5; 32])
            .tlsa(&format!("_{port}._tcp.mx2.dane.test"), 3, 1, 1, hash)
            .tlsa(&format!("_{port}._tcp.mx2.dane.test"), 1, 1, 1, vec![6; 32]),
    );
    let report = check_tls("dest.test", &dns, port, TlsLevel::DaneOnly);
    let text = report.text();
    for needle in [
        "MX lookup of dest.test (DNSSEC secure): mx1.dane.test (10), mx2.dane.test (20)",
        "Address lookup of mx1.dane.test (DNSSEC secure): 127.0.0.1",
        &format!("TLSA records at _{port}._tcp.mx1.dane.test (DNSSEC secure):"),
        "3 1 1 050505050505...05050505 (DANE-EE, usable)",
        "matches no certificate in the chain",
        "DANE NOT VERIFIED: DANE-EE TLSA 3 1 1 050505050505...05050505 does not match the server certificate",
        "Verdict: mx1.dane.test satisfies none, may, encrypt\n",
        "(PKIX-EE, unusable: PKIX usages are not used for SMTP",
        "(DANE-EE) matches certificate 1",
        "DANE VERIFIED: DANE-EE TLSA 3 1 1",
        "Verdict: mx2.dane.test satisfies none, may, encrypt, dane, dane-only\n",
        "Verdict: level dane-only is met (by mx2.dane.test)\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(report.passed);
    assert!(
        text.find("mx1.dane.test[").unwrap() < text.find("mx2.dane.test[").unwrap(),
        "in MX order"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains("Verdict: level dane-only"),
        "{text}"
    );
    let report = check_tls("dest.test", &dns, port, TlsLevel::Encrypt);
    assert!(report
        .text()
        .contains("Verdict: level encrypt is met (by mx1.dane.test)"));
    drop(second);
}

/// A peer that offers STARTTLS and answers the ClientHello with a fatal TLS alert,
/// as a TLS 1.0-only (protocol_version) or CBC-only (handshake_failure) server does.
fn alerting_peer(alert: u8) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        // Two connections at most: the library check and the CLI check.
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 old.test ESMTP\r\n");
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                let verb = line.to_ascii_uppercase();
                line.clear();
                if verb.starts_with("EHLO") {
                    let _ = stream.write_all(b"250-old.test\r\n250 STARTTLS\r\n");
                } else if verb.starts_with("STARTTLS") {
                    let _ = stream.write_all(b"220 2.0.0 Ready to start TLS\r\n");
                    let mut hello = [0u8; 5];
                    let _ = r.read_exact(&mut hello);
                    let _ = stream.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, alert]);
                    break;
                } else {
                    let _ = stream.write_all(b"221 2.0.0 Bye\r\n");
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn check_tls_ends_with_a_verdict_after_a_failed_handshake_and_exits_by_level() {
    let dns = DnsServer::start(Zone::new());
    for (alert, words) in [
        (70u8, "refused our TLS versions"),
        (40, "no cipher in common"),
    ] {
        let peer = alerting_peer(alert);
        let report = check_tls(&peer.to_string(), &dns, 25, TlsLevel::Encrypt);
        let text = report.text();
        assert!(
            text.contains("TLS handshake failed: the server") && text.contains(words),
            "{text}"
        );
        assert!(
            text.contains(&format!("Verdict: {} satisfies none, may\n", peer.ip())),
            "{text}"
        );
        assert!(
            text.lines()
                .last()
                .unwrap()
                .ends_with("Verdict: level encrypt is not met"),
            "{text}"
        );
        assert!(!report.passed);
        for debug in [
            "Other(",
            "OtherError",
            "Permanent {",
            "Temporary {",
            "AlertReceived",
        ] {
            assert!(
                !text.contains(debug),
                "Rust debug value {debug:?} in:\n{text}"
            );
        }
        // The command's exit status follows --level (default encrypt).
        let run = |level: Option<&str>| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"));
            cmd.args(["check-tls", &peer.to_string(), "--timeout", "10"]);
            if let Some(l) = level {
                cmd.args(["--level", l]);
            }
            cmd.output().unwrap()
        };
        let out = run(None);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = run(Some("may"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn policy_explain_shows_the_dane_decision_per_mx() {
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, MX)
            .mx("dest.test", 20, "backup.dane.test")
            .a(MX, Ipv4Addr::LOCALHOST)
            .a("backup.dane.test", Ipv4Addr::LOCALHOST)
            .signed()
            .tlsa(&format!("_25._tcp.{MX}"), 3, 1, 1, vec![3; 32])
            .tlsa("_25._tcp.backup.dane.test", 0, 1, 1, vec![4; 32]),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mxring.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\
             dnssec = \"trust-ad\"\n[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"dane-only\"\n",
            dns.nameserver()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["policy", "explain", "--config"])
        .arg(&path)
        .args(["--direction", "outbound", "--recipient", "bob@dest.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "level:     dane-only",
        "mx:        dest.test: mx.dane.test (10), backup.dane.test (20) (DNSSEC secure)",
        "dane:      mx.dane.test: DANE applies: mx.dane.test has 1 usable TLSA record(s) (3 1 1 ",
        "decision:  mx.dane.test: TLS required; the certificate must match one of these records",
        "dane:      backup.dane.test: backup.dane.test has 1 TLSA record(s), none usable (0 1 1 ",
        "decision:  backup.dane.test: deferred (4.7.5)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // A route to an address wins over the MX records, as in delivery.
    let mut cfg = std::fs::read_to_string(&path).unwrap();
    cfg.push_str("[[route]]\ndomains = [\"dest.test\"]\nnext_hop = \"[127.0.0.1]:2525\"\n");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["policy", "explain", "--config"])
        .arg(&path)
        .args(["--direction", "outbound", "--recipient", "bob@dest.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dest.test is routed to [127.0.0.1]:2525: DANE does not apply to an address")
            && !text.contains("mx:"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// The DNSSEC-aware lookups themselves, on a current-thread runtime as in a shard.

fn with_trust_ad<T>(server: &DnsServer, f: impl AsyncFnOnce(&mxring::dns::Dns) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dns = mxring::dns::Dns::new(&mxring::config::DnsConfig {
            nameservers: vec![server
                .nameserver()
                .parse()
                .expect("the test server's address")],
            timeout: mxring::config::Dur(Duration::from_secs(1)),
            dnssec: mxring::config::Dnssec::TrustAd,
        })
        .unwrap();
        f(&dns).await
    })
}

#[test]
fn answers_are_cached_with_their_status_and_failures_are_not() {
    let dns = DnsServer::start(
        zone()
            .tlsa("_25._tcp.mx.dane.test", 3, 1, 1, vec![1; 32])
            .rcode(
                "_25._tcp.broken.dane.test",
                RecordType::TLSA,
                ResponseCode::ServFail,
            ),
    );
    let (first, second, broken) = with_trust_ad(&dns, async |d| {
        let first = d.tlsa(MX, 25).await;
        let second = d.tlsa(MX, 25).await;
        let broken = (
            d.tlsa("broken.dane.test", 25).await,
            d.tlsa("broken.dane.test", 25).await,
        );
        (first, second, broken)
    });
    assert_eq!(first, second);
    let (records, secure) = first.unwrap();
    assert!(secure && records.len() == 1, "{records:?}");
    let q = dns.counters.queries();
    let count = |name: &str| q.iter().filter(|x| x.starts_with(name)).count();
    assert_eq!(
        count("_25._tcp.mx.dane.test TLSA"),
        1,
        "second answer from the cache: {q:?}"
    );
    assert!(broken.0.is_err() && broken.1.is_err(), "{broken:?}");
    // Two attempts per lookup, and the second lookup asks again: SERVFAIL is not cached.
    assert_eq!(count("_25._tcp.broken.dane.test TLSA"), 4, "{q:?}");
}

#[test]
fn a_silent_resolver_makes_dane_fail_temporarily_not_insecure() {
    let dns = DnsServer::silent();
    let start = Instant::now();
    let (mx, state) = with_trust_ad(&dns, async |d| {
        let addrs = mxring::dns::Addresses {
            ips: vec![Ipv4Addr::LOCALHOST.into()],
            secure: true,
            cname_target: None,
        };
        (
            d.mx("dest.test").await,
            d.dane_state(true, MX, &addrs, 25).await,
        )
    });
    assert!(
        matches!(mx, Err(mxring::dns::DnsFailure::Temporary { .. })),
        "{mx:?}"
    );
    match state {
        mxring::dane::DaneState::Failed(why) => assert!(why.contains("no answer"), "{why}"),
        other => panic!("a timeout on TLSA must be a failure, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp_under_trust_ad() {
    let dns = DnsServer::start(
        zone()
            .tlsa("_25._tcp.mx.dane.test", 3, 1, 1, vec![1; 32])
            .truncate_udp("_25._tcp.mx.dane.test", RecordType::TLSA),
    );
    let (records, secure) = with_trust_ad(&dns, async |d| d.tlsa(MX, 25).await).unwrap();
    assert!(secure && records.len() == 1);
    let q = dns.counters.queries();
    assert!(
        q.contains(&"_25._tcp.mx.dane.test TLSA udp".to_string())
            && q.contains(&"_25._tcp.mx.dane.test TLSA tcp".to_string()),
        "{q:?}"
    );
}

#[test]
fn dane_ee_delivers_to_an_expired_certificate_for_another_name() {
    // RFC 7672 3.1.1: under DANE-EE only the key binding counts.
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["not-the-mx.test".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2001, 1, 1);
    p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let cert = p.self_signed(&key).unwrap();
    let id: Identity = (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    );
    let hash = sha256(0, &id.0[0]);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 0, 1, hash));
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, false);
    assert!(dest.next(20).tls.is_some());
}

#[test]
fn a_mismatch_follows_on_failure_bounce() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 1, 1, vec![8; 32]));
    let s = mxring_with(&dns, &dest, &senders, "dane", "on_failure = \"bounce\"\n");
    send(&s, false);
    let dsn = senders.next(20);
    assert_eq!(dsn_field(&dsn, "Action"), "failed");
    assert_eq!(dsn_field(&dsn, "Status"), "5.7.5");
    let diag = dsn_field(&dsn, "Diagnostic-Code");
    assert!(
        diag.contains("TLSA") && diag.contains("did not match"),
        "{diag}"
    );
    assert!(dest.arrivals.try_recv().is_err());
}

/// Run on the back end `mxring serve` would pick (MXRING_IO, else auto).
fn run_on_chosen_backend<F: std::future::Future>(fut: F) -> F::Output {
    let backend = mxring::net::choose(mxring::config::IoChoice::Auto).expect("an I/O back end");
    mxring::net::run(backend, fut).expect("a runtime")
}
