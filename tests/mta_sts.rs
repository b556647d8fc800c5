//! MTA-STS end to end (RFC 8461): mxring reads `_mta-sts.dest.test` TXT from the
//! test DNS server, fetches the policy over HTTPS from a server started here
//! (certificate from a test CA named in `[outbound] mta_sts_ca_file`, port from
//! `mta_sts_port`), and delivers to receiving servers with their own certificates.
//! Each case checks what arrived and what did not.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use mxring_testkit::ca::Ca;
use mxring_testkit::client::Client;
use mxring_testkit::dns_server::{DnsServer, Zone};
use mxring_testkit::https::{HttpsServer, Response};
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{wait_for, wait_until, TestServer, Toml};

const MX: &str = "mx.sts.test";
const DOMAIN: &str = "dest.test";

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

/// dest.test → mx.sts.test → 127.0.0.1, with the STS TXT record of `id` and the
/// policy host on 127.0.0.1.
fn zone(id: &str) -> Zone {
    Zone::new()
        .mx(DOMAIN, 10, MX)
        .a(MX, Ipv4Addr::LOCALHOST)
        .txt(&format!("_mta-sts.{DOMAIN}"), &format!("v=STSv1; id={id};"))
        .txt(&format!("_mta-sts.{DOMAIN}"), "some-other=record")
        .a(&format!("mta-sts.{DOMAIN}"), Ipv4Addr::LOCALHOST)
}

fn tls_sink(id: Identity) -> Sink {
    Sink::start(Script {
        tls: Some(id),
        ..Default::default()
    })
}

/// One mxring run's surroundings: a temp dir for the CA file (kept apart from
/// the spool so the spool can outlive a run).
struct Env {
    ca: Ca,
    files: tempfile::TempDir,
    senders: Sink,
}

impl Env {
    fn new() -> Env {
        Env {
            ca: Ca::new(),
            files: tempfile::tempdir().unwrap(),
            senders: Sink::start(Script::default()),
        }
    }

    fn policy_server(&self, body: &str) -> HttpsServer {
        HttpsServer::start(
            self.ca.issue(&format!("mta-sts.{DOMAIN}")),
            Response::policy(body),
        )
    }

    fn config(&self, dns: &DnsServer, dest: &Sink, sts_port: u16, extra: &str) -> String {
        Toml::default()
            .listener("mx", 0, "starttls")
            .extra(&format!(
                "[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\
                 [outbound]\nport = {}\nmta_sts_port = {sts_port}\nmta_sts_ca_file = \"{}\"",
                dns.nameserver(),
                dest.addr.port(),
                self.ca.write(self.files.path()).display(),
            ))
            .route("\"sender.test\"", self.senders.addr)
            .queue("retry = [\"1h\"]")
            .extra(extra)
            .text()
    }

    fn start(&self, dns: &DnsServer, dest: &Sink, sts: &HttpsServer, extra: &str) -> TestServer {
        TestServer::start(&self.config(dns, dest, sts.addr.port(), extra))
    }
}

fn send(s: &TestServer) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<bob@{DOMAIN}>")).0, 250);
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(b"Subject: sts\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
}

/// The recipient's view once the first attempt is over (bounded wait).
fn after_first_attempt(s: &TestServer) -> mxring::admin::RecipientView {
    s.after_first_attempt(20)
}

fn assert_deferred_by_sts(s: &TestServer, dest: &Sink, words: &[&str]) {
    let r = after_first_attempt(s);
    let reply = r.last_reply.clone().unwrap_or_default();
    assert_eq!(r.state, "deferred", "{reply}");
    assert!(
        // 4.7.5, or 4.7.4 when the host offers no STARTTLS at all (RFC 3463's
        // "security features not supported", as for any rule that requires TLS).
        (reply.starts_with("4.7.5") || reply.starts_with("4.7.4")) && reply.contains("MTA-STS"),
        "{reply}"
    );
    for w in words {
        assert!(reply.contains(w), "`{w}` missing from: {reply}");
    }
    assert!(
        dest.arrivals.try_recv().is_err(),
        "nothing reached the host"
    );
}

#[test]
fn enforce_with_a_matching_mx_is_delivered_over_verified_tls() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", "*.sts.test"));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    send(&s);
    let got = dest.next(20);
    assert!(got.tls.is_some(), "delivered over TLS");
    assert_eq!(sts.count(), 1, "the policy was fetched once");
    let req = &sts.requests.lock().unwrap()[0];
    assert!(
        req.head
            .starts_with("GET /.well-known/mta-sts.txt HTTP/1.1"),
        "{}",
        req.head
    );
    assert!(
        req.head
            .to_ascii_lowercase()
            .contains(&format!("host: mta-sts.{DOMAIN}")),
        "{}",
        req.head
    );
}

#[test]
fn enforce_with_a_non_matching_mx_is_deferred_and_never_delivered() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", "mx.elsewhere.test"));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    send(&s);
    assert_deferred_by_sts(&s, &dest, &[MX, "does not match", "mx.elsewhere.test"]);
}

#[test]
fn enforce_with_a_self_signed_mx_is_deferred_and_never_delivered() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("enforce", MX));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    send(&s);
    assert_deferred_by_sts(&s, &dest, &["certificate"]);
}

#[test]
fn enforce_with_an_mx_that_offers_no_starttls_is_deferred() {
    let env = Env::new();
    let dest = Sink::start(Script::default());
    let sts = env.policy_server(&policy("enforce", MX));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    send(&s);
    assert_deferred_by_sts(&s, &dest, &["not offered"]);
}

#[test]
fn testing_mode_delivers_to_a_self_signed_non_matching_mx() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("testing", "mx.elsewhere.test"));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(
        &dns,
        &dest,
        &sts,
        "[tls_report]\nenabled = true\ninterval = \"1h\"\n",
    );
    send(&s);
    dest.next(20);
    assert_eq!(sts.count(), 1, "the policy was fetched");
    // Counted for the domain's TLS report: a session the policy would have failed.
    let counts = wait_for(Duration::from_secs(10), "a count in the TLS report", || {
        let (status, body) = s.admin().request("GET", "/tls-report").unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array().is_some_and(|a| !a.is_empty()).then_some(v)
    })
    .unwrap();
    let c = &counts[0];
    assert_eq!(c["policy_type"], "sts", "{c}");
    assert_eq!(c["success"], 0, "{c}");
    assert_eq!(c["failures"][0]["result_type"], "validation-failure", "{c}");
    assert_eq!(c["failures"][0]["count"], 1, "{c}");
}

#[test]
fn an_explicit_rule_wins_over_an_enforce_policy() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("enforce", "mx.elsewhere.test"));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(
        &dns,
        &dest,
        &sts,
        &format!("[[outbound_tls]]\ndomains = [\"{DOMAIN}\"]\nlevel = \"encrypt\"\n"),
    );
    send(&s);
    dest.next(20);
}

#[test]
fn mta_sts_off_ignores_the_policy() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("enforce", "mx.elsewhere.test"));
    let dns = DnsServer::start(zone("1"));
    let cfg = env
        .config(&dns, &dest, sts.addr.port(), "")
        .replace("[outbound]\n", "[outbound]\nmta_sts = false\n");
    let s = TestServer::start(&cfg);
    send(&s);
    dest.next(20);
    assert_eq!(sts.count(), 0, "no fetch with mta_sts = false");
}

#[test]
fn a_usable_dane_record_wins_over_an_enforce_policy() {
    let env = Env::new();
    let id = mxring::tls::self_signed(MX).unwrap();
    let spki = mxring::dane::selected(1, &id.0[0]).unwrap();
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki)
        .as_ref()
        .to_vec();
    let dest = tls_sink(id);
    let sts = env.policy_server(&policy("enforce", "mx.elsewhere.test"));
    let dns = DnsServer::start(
        zone("1")
            .tlsa(&format!("_{}._tcp.{MX}", dest.addr.port()), 3, 1, 1, hash)
            .signed(),
    );
    let cfg = env
        .config(&dns, &dest, sts.addr.port(), "")
        .replace(
            "timeout = \"2s\"\n",
            "timeout = \"2s\"\ndnssec = \"trust-ad\"\n",
        )
        .replace("[outbound]\n", "[outbound]\ndefault_tls = \"dane\"\n");
    let s = TestServer::start(&cfg);
    send(&s);
    dest.next(20);
}

#[test]
fn a_new_policy_id_triggers_a_refetch_and_the_same_id_uses_the_cache() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", MX));
    let spool = tempfile::tempdir().unwrap();

    // Run 1: fetched, delivered.
    let dns = DnsServer::start(zone("1"));
    let s = TestServer::start_on(spool, "", &env.config(&dns, &dest, sts.addr.port(), ""));
    send(&s);
    dest.next(20);
    assert_eq!(sts.count(), 1);
    let spool = s.stop();

    // Run 2, same id: the cached policy is used, nothing fetched.
    sts.set(Response::policy(&policy("enforce", "mx.elsewhere.test")));
    let s = TestServer::start_on(spool, "", &env.config(&dns, &dest, sts.addr.port(), ""));
    send(&s);
    dest.next(20);
    assert_eq!(sts.count(), 1, "same id: no refetch");
    let spool = s.stop();

    // Run 3, new id: the new policy is fetched and applies (its MX list no longer
    // names the host).
    let dns = DnsServer::start(zone("2"));
    let s = TestServer::start_on(spool, "", &env.config(&dns, &dest, sts.addr.port(), ""));
    send(&s);
    assert_deferred_by_sts(&s, &dest, &["mx.elsewhere.test"]);
    assert_eq!(sts.count(), 2, "a new id is fetched");
}

#[test]
fn the_cache_survives_a_restart_with_the_policy_server_down() {
    let env = Env::new();
    let good = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", MX));
    let sts_port = sts.addr.port();
    let spool = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(zone("1"));
    let s = TestServer::start_on(spool, "", &env.config(&dns, &good, sts_port, ""));
    send(&s);
    good.next(20);
    let spool = s.stop();
    drop(sts);
    // Let the listener thread see its stop flag and close the port.
    wait_until(
        Duration::from_secs(5),
        "the policy server to go down",
        || std::net::TcpStream::connect(("127.0.0.1", sts_port)).is_err(),
    )
    .unwrap();

    // A new id is published but can't be fetched: the cached enforce policy stays
    // in force, so a self-signed MX is refused.
    let bad = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let dns = DnsServer::start(zone("2"));
    let s = TestServer::start_on(spool, "", &env.config(&dns, &bad, sts_port, ""));
    send(&s);
    assert_deferred_by_sts(&s, &bad, &["certificate"]);
}

/// Fetches straight from the library: what a policy server may not do.
#[test]
fn fetch_refuses_redirects_other_types_large_bodies_and_untrusted_certificates() {
    let ca = Ca::new();
    let files = tempfile::tempdir().unwrap();
    let tls = mxring::mta_sts::lookup::https_config(Some(ca.write(files.path()))).unwrap();
    let server = HttpsServer::start(
        ca.issue(&format!("mta-sts.{DOMAIN}")),
        Response::policy("x"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |port: u16| {
        rt.block_on(mxring::mta_sts::fetch::fetch(
            DOMAIN,
            &["127.0.0.1".parse().unwrap()],
            port,
            tls.clone(),
        ))
    };
    let port = server.addr.port();
    assert_eq!(get(port).unwrap(), "x");

    server.set(Response {
        status: 301,
        headers: vec![("Location".into(), "https://elsewhere.test/".into())],
        body: vec![],
    });
    let e = get(port).unwrap_err();
    assert!(e.text.contains("redirect") && !e.webpki, "{e}");

    server.set(Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: b"<html>".to_vec(),
    });
    assert!(get(port).unwrap_err().text.contains("text/html"));

    server.set(Response {
        status: 404,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"no".to_vec(),
    });
    assert!(get(port).unwrap_err().text.contains("HTTP 404"));

    server.set(Response::policy(&"x".repeat(70 * 1024)));
    assert!(get(port).unwrap_err().text.contains("larger than 64 KiB"));

    server.set(Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: b"ok".to_vec(),
    });
    assert_eq!(
        get(port).unwrap(),
        "ok",
        "parameters after text/plain are fine"
    );

    let untrusted = HttpsServer::start(
        mxring::tls::self_signed(&format!("mta-sts.{DOMAIN}")).unwrap(),
        Response::policy("x"),
    );
    let e = get(untrusted.addr.port()).unwrap_err();
    assert!(e.webpki && e.text.contains("certificate"), "{e}");

    let wrong_name = HttpsServer::start(ca.issue("mta-sts.other.test"), Response::policy("x"));
    let e = get(wrong_name.addr.port()).unwrap_err();
    assert!(e.webpki, "{e}");
}

/// dest.test with two MX hosts: one the policy names, one it doesn't.
fn two_mx_zone() -> Zone {
    zone("7")
        .mx(DOMAIN, 20, "backup.other.test")
        .a("backup.other.test", Ipv4Addr::LOCALHOST)
}

#[test]
fn explain_lookup_shows_the_txt_the_policy_and_each_mx() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", "*.sts.test"));
    let dns = DnsServer::start(two_mx_zone());
    let path = env.files.path().join("mxring.toml");
    std::fs::write(&path, env.config(&dns, &dest, sts.addr.port(), "")).unwrap();
    let explain = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
            .args(["policy", "explain", "--config"])
            .arg(&path)
            .args(["--direction", "outbound", "--recipient", "bob@dest.test"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = explain(&["--lookup"]);
    for needle in [
        "mta-sts:   TXT _mta-sts.dest.test: v=STSv1; id=7",
        "mta-sts:   policy id 7 (fetched now): mode enforce, max_age 86400s, mx *.sts.test",
        "decision:  mx.sts.test: matches `*.sts.test`: level verify",
        "decision:  backup.other.test: MX host backup.other.test does not match the MTA-STS policy of dest.test",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(sts.count(), 1);
    let quiet = explain(&[]);
    assert!(quiet.contains("give --lookup"), "{quiet}");
    assert_eq!(sts.count(), 1, "no fetch without --lookup");
}

#[test]
fn check_tls_shows_the_policy_and_which_mx_it_allows() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", "*.sts.test"));
    let dns = DnsServer::start(two_mx_zone());
    let ca = env.ca.write(env.files.path());
    let opts = mxring::checktls::CheckOptions {
        target: DOMAIN.into(),
        helo: "checker.test".into(),
        port: dest.addr.port(),
        dns: mxring::config::DnsConfig {
            nameservers: vec![dns.nameserver().parse().expect("the test server's address")],
            timeout: mxring::config::Dur(Duration::from_secs(2)),
            dnssec: mxring::config::Dnssec::Off,
        },
        ca_file: Some(ca.clone()),
        mail_from: None,
        rcpt_to: None,
        timeout: Duration::from_secs(10),
        level: mxring::config::TlsLevel::Verify,
        mta_sts: Some(mxring::mta_sts::StsSettings {
            port: sts.addr.port(),
            ca_file: Some(ca),
        }),
    };
    let backend = mxring::net::choose(mxring::config::IoChoice::Auto).unwrap();
    let report =
        mxring::net::run(backend, async move { mxring::checktls::check(&opts).await }).unwrap();
    let text = report.text();
    println!("{text}");
    for needle in [
        "MTA-STS TXT _mta-sts.dest.test: v=STSv1; id=7",
        "MTA-STS policy id 7 (fetched now): mode enforce",
        "MTA-STS enforce: mx.sts.test matches `*.sts.test` and its certificate verified: delivery would go ahead",
        "MTA-STS enforce: MX host backup.other.test does not match the MTA-STS policy of dest.test",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn tls_required_no_delivers_despite_an_enforce_policy() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("enforce", "mx.elsewhere.test"));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").0, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<bob@{DOMAIN}>")).0, 250);
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(b"Subject: not secret\r\nTLS-Required: No\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
    let got = dest.next(20);
    assert!(String::from_utf8_lossy(&got.data).contains("TLS-Required: No"));
}

// ---------------------------------------------------------------------------
// TLS reporting (RFC 8460)

/// The JSON report inside a report mail (base64 of gzip, per RFC 8460 5.3).
fn report_of(mail: &[u8]) -> serde_json::Value {
    use base64::Engine;
    use std::io::Read;
    let text = String::from_utf8_lossy(mail);
    let part = text
        .split("Content-Type: application/tlsrpt+gzip")
        .nth(1)
        .expect("a tlsrpt+gzip part");
    let b64: String = part
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("\r\n--")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn tls_reports_arrive_as_gzip_json_with_the_counts_and_result_types() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let reports = Sink::start(Script::default());
    let sts = HttpsServer::start(
        env.ca
            .issue_names(&["mta-sts.dest.test", "mta-sts.dest2.test"]),
        Response::policy(&policy("enforce", "*.sts.test")),
    );
    let rua = "v=TLSRPTv1; rua=mailto:rpt@reports.test";
    let dns = DnsServer::start(
        zone("1")
            .txt("_smtp._tls.dest.test", rua)
            .mx("dest2.test", 10, "mx.other.test")
            .a("mx.other.test", Ipv4Addr::LOCALHOST)
            .a("mta-sts.dest2.test", Ipv4Addr::LOCALHOST)
            .txt("_mta-sts.dest2.test", "v=STSv1; id=1;")
            .txt("_smtp._tls.dest2.test", rua),
    );
    let s = env.start(
        &dns,
        &dest,
        &sts,
        &format!(
            "[tls_report]\nenabled = true\ninterval = \"3s\"\norganization = \"Test Org\"\ncontact = \"tls@mx.test\"\n\
             [[route]]\ndomains = [\"reports.test\"]\nnext_hop = \"[{}]:{}\"\n",
            reports.addr.ip(),
            reports.addr.port()
        ),
    );
    for to in ["bob@dest.test", "carol@dest.test", "dan@dest2.test"] {
        let mut c = Client::connect(s.addr("mx"));
        c.cmd("EHLO client.test");
        assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").0, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).0, 250);
        assert_eq!(c.cmd("DATA").0, 354);
        c.send_raw(b"Subject: sts\r\n\r\nbody\r\n.\r\n");
        assert_eq!(c.reply().0, 250);
    }
    dest.next(20);
    dest.next(20);
    // Sum what arrives per domain (a period boundary may split the counts over
    // two reports) until the three sessions are all reported.
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut types = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok < 2 || failed < 1 {
        assert!(
            Instant::now() < deadline,
            "reports incomplete: {ok} ok, {failed} failed"
        );
        let Ok(mail) = reports.arrivals.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        assert_eq!(mail.rcpts, vec!["rpt@reports.test".to_string()]);
        let text = String::from_utf8_lossy(&mail.data).to_string();
        assert!(text.contains("report-type=\"tlsrpt\""), "{text}");
        assert!(text.contains("TLS-Report-Submitter: mx.test"), "{text}");
        let v = report_of(&mail.data);
        assert_eq!(v["organization-name"], "Test Org");
        assert_eq!(v["contact-info"], "tls@mx.test");
        assert!(v["report-id"].as_str().is_some_and(|r| !r.is_empty()));
        for p in v["policies"].as_array().unwrap() {
            assert_eq!(p["policy"]["policy-type"], "sts", "{p}");
            let domain = p["policy"]["policy-domain"].as_str().unwrap();
            assert!(
                text.contains(&format!("TLS-Report-Domain: {domain}")),
                "{text}"
            );
            let good = p["summary"]["total-successful-session-count"]
                .as_u64()
                .unwrap();
            let bad = p["summary"]["total-failure-session-count"]
                .as_u64()
                .unwrap();
            match domain {
                "dest.test" => {
                    ok += good;
                    assert_eq!(bad, 0, "{p}");
                }
                "dest2.test" => {
                    failed += bad;
                    assert_eq!(good, 0, "{p}");
                    for f in p["failure-details"].as_array().unwrap() {
                        assert_eq!(f["receiving-mx-hostname"], "mx.other.test");
                        types.push(f["result-type"].as_str().unwrap().to_string());
                    }
                }
                other => panic!("a report for {other}: {p}"),
            }
        }
    }
    assert_eq!((ok, failed), (2, 1));
    assert_eq!(types, vec!["validation-failure"]);
}

#[test]
fn tls_report_show_prints_the_running_servers_counts() {
    let env = Env::new();
    let dest = tls_sink(mxring::tls::self_signed(MX).unwrap());
    let sts = env.policy_server(&policy("enforce", MX));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(
        &dns,
        &dest,
        &sts,
        "[tls_report]\nenabled = true\ninterval = \"1h\"\n",
    );
    send(&s);
    assert_deferred_by_sts(&s, &dest, &["certificate"]);
    let path = env.files.path().join("show.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"{}\"\n",
            s.server.as_ref().unwrap().admin.unwrap()
        ),
    )
    .unwrap();
    let show = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
            .args(["tls-report", "show", "--config"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = show(&["--domain", DOMAIN]);
    assert!(
        text.contains("dest.test  policy sts: 0 successful, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("1 x certificate-not-trusted at {MX} [127.0.0.1]")),
        "{text}"
    );
    let other = show(&["--domain", "other.test"]);
    assert!(
        other.contains("no TLS sessions counted for other.test"),
        "{other}"
    );
}

#[test]
fn an_https_rua_gets_the_report_posted_as_tlsrpt_gzip() {
    use std::io::Read;
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&policy("enforce", "*.sts.test"));
    let endpoint = HttpsServer::start(
        env.ca.issue("reports.dest.test"),
        Response {
            status: 201,
            headers: vec![],
            body: vec![],
        },
    );
    let dns = DnsServer::start(zone("1").a("reports.dest.test", Ipv4Addr::LOCALHOST).txt(
        "_smtp._tls.dest.test",
        &format!(
            "v=TLSRPTv1; rua=https://reports.dest.test:{}/v1/tlsrpt",
            endpoint.addr.port()
        ),
    ));
    let s = env.start(
        &dns,
        &dest,
        &sts,
        "[tls_report]\nenabled = true\ninterval = \"2s\"\n",
    );
    send(&s);
    dest.next(20);
    wait_until(Duration::from_secs(20), "a report posted", || {
        endpoint.count() > 0
    })
    .unwrap();
    let req = endpoint.requests.lock().unwrap()[0].clone();
    assert!(
        req.head.starts_with("POST /v1/tlsrpt HTTP/1.1"),
        "{}",
        req.head
    );
    assert!(
        req.head
            .to_ascii_lowercase()
            .contains("content-type: application/tlsrpt+gzip"),
        "{}",
        req.head
    );
    let mut json = String::new();
    flate2::read::GzDecoder::new(&req.body[..])
        .read_to_string(&mut json)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &v["policies"][0];
    assert_eq!(p["policy"]["policy-domain"], "dest.test", "{v}");
    assert_eq!(p["summary"]["total-successful-session-count"], 1, "{v}");
}

#[test]
fn a_policy_past_half_its_max_age_is_fetched_again_while_the_cached_one_serves() {
    let env = Env::new();
    let dest = tls_sink(env.ca.issue(MX));
    let sts = env.policy_server(&format!(
        "version: STSv1\r\nmode: enforce\r\nmx: {MX}\r\nmax_age: 4\r\n"
    ));
    let dns = DnsServer::start(zone("1"));
    let s = env.start(&dns, &dest, &sts, "");
    let fetched = Instant::now();
    send(&s);
    dest.next(20);
    assert_eq!(sts.count(), 1);
    // The condition under test is the policy's age: wait until it passed half
    // of max_age (2 s), then deliver again.
    while fetched.elapsed() < Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(50));
    }
    send(&s);
    dest.next(20);
    wait_until(Duration::from_secs(10), "the policy fetched again", || {
        sts.count() >= 2
    })
    .unwrap();
}
