//! TLS policy end to end. Inbound: each rule kind against plaintext and TLS
//! clients, mixed recipients in one transaction. Outbound: mandatory levels against
//! receiving servers without STARTTLS, with self-signed and CA-signed certificates,
//! TLS 1.2 only, and a CIDR rule on the MX address. And check-tls's transcript.

use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::TestServer;

const LISTENER: &str =
    "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n";

fn inbound(rules: &str, sink: &Sink) -> TestServer {
    TestServer::start(&format!(
        "{LISTENER}[relay]\nnetworks = []\ndomains = [\"bank.test\", \"corp.test\"]\n{}{rules}",
        mxring_testkit::route_all(sink.addr)
    ))
}

#[test]
fn client_ip_rule_requires_tls_at_mail() {
    let sink = Sink::start(Script::default());
    let s = inbound(
        "[[inbound_tls]]\nclients = [\"127.0.0.0/8\", \"2001:db8::/32\"]\nrequire = true\n",
        &sink,
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    let (code, text) = c.cmd("MAIL FROM:<a@outside.test>");
    assert_eq!(code, 530, "{text}");
    assert!(text.contains("530 5.7.0 Must issue a STARTTLS command first"));
    c.starttls(TlsVersion::Tls13);
    c.cmd("EHLO c");
    assert_eq!(
        c.send_mail("a@outside.test", &["x@bank.test"], "hi\n").0,
        250
    );
    assert_eq!(sink.next(20).rcpts, ["x@bank.test"]);
}

#[test]
fn sender_rule_requires_tls_for_that_sender_only() {
    let sink = Sink::start(Script::default());
    let s = inbound(
        "[[inbound_tls]]\nsenders = [\"*@partner.test\"]\nrequire = true\n",
        &sink,
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    assert_eq!(c.cmd("MAIL FROM:<ceo@partner.test>").0, 530);
    assert_eq!(c.cmd("MAIL FROM:<someone@else.test>").0, 250);
}

#[test]
fn recipient_rules_refuse_some_recipients_and_keep_the_others() {
    let sink = Sink::start(Script::default());
    let s = inbound(
        "[[inbound_tls]]\nrecipients = [\"*@bank.test\", \"john.smith\"]\nrequire = true\n",
        &sink,
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    assert_eq!(c.cmd("MAIL FROM:<a@outside.test>").0, 250);
    let (code, text) = c.cmd("RCPT TO:<teller@bank.test>");
    assert_eq!(code, 530, "{text}");
    assert_eq!(c.cmd("RCPT TO:<John.Smith@corp.test>").0, 530);
    assert_eq!(c.cmd("RCPT TO:<jane@corp.test>").0, 250);
    c.cmd("DATA");
    c.send_raw(b"Subject: mixed\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
    let a = sink.next(20);
    assert_eq!(
        a.rcpts,
        ["jane@corp.test"],
        "only the accepted recipient is queued and delivered"
    );
    // Over TLS every recipient is accepted.
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.starttls(TlsVersion::Tls12);
    c.cmd("EHLO c");
    assert_eq!(
        c.send_mail(
            "a@outside.test",
            &["teller@bank.test", "john.smith@corp.test"],
            "x\n"
        )
        .0,
        250
    );
}

#[test]
fn minimum_tls_version_rule_refuses_tls12_clients() {
    let sink = Sink::start(Script::default());
    let s = inbound(
        "[[inbound_tls]]\nrecipients = [\"*\"]\nrequire = true\nmin_version = \"1.3\"\n",
        &sink,
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.starttls(TlsVersion::Tls12);
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@outside.test>");
    let (code, text) = c.cmd("RCPT TO:<x@bank.test>");
    assert_eq!(code, 530, "{text}");
    assert!(
        text.contains("TLSv1.3 or later is required, this session uses TLSv1.2"),
        "{text}"
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.starttls(TlsVersion::Tls13);
    c.cmd("EHLO c");
    assert_eq!(
        c.send_mail("a@outside.test", &["x@bank.test"], "x\n").0,
        250
    );
}

// ---- outbound ----

fn outbound(dest: &Sink, senders: &Sink, rule: &str, queue: &str) -> TestServer {
    TestServer::start(&format!(
        "{LISTENER}[[route]]\ndomains = [\"dest.test\"]\nnext_hop = \"[{}]:{}\"\n\
         [[route]]\ndomains = [\"sender.test\"]\nnext_hop = \"[{}]:{}\"\n{rule}[queue]\n{queue}",
        dest.addr.ip(),
        dest.addr.port(),
        senders.addr.ip(),
        senders.addr.port()
    ))
}

fn send(s: &TestServer, to: &str) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(
        c.send_mail("alice@sender.test", &[to], "Subject: policy\n\nbody\n")
            .0,
        250
    );
}

fn dsn_field(dsn: &mxring_testkit::sink::Arrival, name: &str) -> String {
    let p = mxring::dsn::parse_delivery_status(&dsn.data).unwrap();
    p.recipients[0].field(name).unwrap_or("").to_string()
}

#[test]
fn encrypt_without_starttls_is_deferred_never_sent_plain_then_warned_and_bounced() {
    let dest = Sink::start(Script::default()); // no STARTTLS
    let senders = Sink::start(Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"encrypt\"\n",
        "retry = [\"1s\"]\ndelay_warning_after = \"2s\"\ngive_up_after = \"5s\"\n",
    );
    send(&s, "bob@dest.test");
    let delay = senders.next(30);
    assert_eq!(dsn_field(&delay, "Action"), "delayed");
    assert_eq!(dsn_field(&delay, "Status"), "4.7.4");
    assert!(
        dsn_field(&delay, "Diagnostic-Code")
            .contains("TLS is required, but was not offered by host"),
        "{}",
        dsn_field(&delay, "Diagnostic-Code")
    );
    let fail = senders.next(30);
    assert_eq!(dsn_field(&fail, "Action"), "failed");
    // The sender is told who decided: this server's policy and its rule, and that
    // it gave up; never "host ... said" about a decision the remote host did not make.
    let words = first_part(&fail);
    assert!(
        words.contains("this mail system gave up after 5s"),
        "{words}"
    );
    assert!(
        words.contains("policy requires TLS for dest.test ([[outbound_tls]] #1)"),
        "{words}"
    );
    assert!(
        words.contains("switch off mandatory TLS for dest.test"),
        "{words}"
    );
    assert!(!words.contains("said:"), "{words}");
    assert!(
        dest.arrivals.try_recv().is_err(),
        "must never be delivered in plaintext"
    );
}

/// The human-readable part of a DSN, folded lines joined.
fn first_part(dsn: &mxring_testkit::sink::Arrival) -> String {
    let text = String::from_utf8_lossy(&dsn.data);
    let start = text.find("This is the mail system").expect("first part");
    let end = text[start..]
        .find("\r\n--")
        .map_or(text.len(), |e| start + e);
    text[start..end]
        .replace("\r\n    ", " ")
        .replace("\r\n", " ")
}

#[test]
fn encrypt_with_on_failure_bounce_fails_at_once() {
    let dest = Sink::start(Script::default());
    let senders = Sink::start(Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"encrypt\"\non_failure = \"bounce\"\n",
        "retry = [\"1h\"]\n",
    );
    send(&s, "bob@dest.test");
    let fail = senders.next(20);
    assert_eq!(dsn_field(&fail, "Action"), "failed");
    assert_eq!(dsn_field(&fail, "Status"), "5.7.4");
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn self_signed_peer_is_fine_for_encrypt_and_deferred_under_verify() {
    let dest = Sink::with_tls();
    let senders = Sink::start(Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"encrypt\"\n\
         [[outbound_tls]]\ndomains = [\"verify.test\"]\nlevel = \"verify\"\n\
         [[route]]\ndomains = [\"verify.test\"]\nnext_hop = \"[127.0.0.1]:PORT\"\n"
            .replace("PORT", &dest.addr.port().to_string())
            .as_str(),
        "retry = [\"1h\"]\n",
    );
    send(&s, "bob@dest.test");
    let a = dest.next(20);
    assert_eq!(a.tls.as_deref(), Some("TLSv1_3"));
    send(&s, "carol@verify.test");
    // Deferred with 4.7.5: wait until the attempt is recorded.
    let mut q = Vec::new();
    let r = mxring_testkit::wait_for(
        std::time::Duration::from_secs(20),
        "an attempt for carol@verify.test",
        || {
            q = s.queue();
            q.iter()
                .flat_map(|m| m.recipients.iter())
                .find(|r| r.address == "carol@verify.test" && r.attempts > 0)
                .cloned()
        },
    )
    .unwrap_or_else(|e| panic!("{e}: no attempt recorded: {q:?}"));
    assert_eq!(r.state, "deferred");
    assert!(
        r.last_reply
            .as_deref()
            .unwrap()
            .contains("Server certificate not verified"),
        "{r:?}"
    );
    assert!(
        dest.arrivals.try_recv().is_err(),
        "verify must not deliver to an unverified peer"
    );
}

#[test]
fn verify_with_a_configured_ca_delivers() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mxring test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["mx.dest.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let dest = Sink::start(Script {
        tls: Some((vec![leaf.der().clone()], key)),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let rule = format!(
        "[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"verify\"\nmatch_names = [\"mx.dest.test\"]\nca_file = \"{}\"\n",
        ca_file.display()
    );
    let s = outbound(&dest, &senders, &rule, "retry = [\"1h\"]\n");
    send(&s, "bob@dest.test");
    let a = dest.next(20);
    assert!(a.tls.is_some());
}

#[test]
fn tls12_only_peer_is_deferred_under_a_tls13_minimum() {
    let dest = Sink::start(Script {
        tls: Some(mxring::tls::self_signed("sink.test").unwrap()),
        tls12_only: true,
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"encrypt\"\nmin_version = \"1.3\"\non_failure = \"bounce\"\n",
        "retry = [\"1h\"]\n",
    );
    send(&s, "bob@dest.test");
    let fail = senders.next(20);
    assert_eq!(dsn_field(&fail, "Action"), "failed");
    assert!(
        dsn_field(&fail, "Diagnostic-Code").contains("TLS"),
        "{}",
        dsn_field(&fail, "Diagnostic-Code")
    );
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn cidr_rule_on_the_mx_address_applies_per_mx() {
    let dest = Sink::start(Script::default()); // plaintext only
                                               // The DSN goes to another loopback address, outside the rule's range.
    let senders = Sink::start_at("127.0.0.2:0", Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\nmx_ips = [\"127.0.0.1/32\"]\nlevel = \"encrypt\"\non_failure = \"bounce\"\n",
        "retry = [\"1h\"]\n",
    );
    send(&s, "bob@dest.test");
    let fail = senders.next(20);
    assert_eq!(dsn_field(&fail, "Status"), "5.7.4");
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn per_account_rule_turns_tls_off_for_one_sender_only() {
    let dest = Sink::with_tls();
    let senders = Sink::start(Script::default());
    let s = outbound(
        &dest,
        &senders,
        "[[outbound_tls]]\nsenders = [\"*@plain.test\"]\nlevel = \"none\"\n",
        "retry = [\"1h\"]\n",
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    assert_eq!(
        c.send_mail("bob@plain.test", &["x@dest.test"], "x\n").0,
        250
    );
    assert_eq!(dest.next(20).tls, None, "level none never starts TLS");
    send(&s, "y@dest.test");
    assert!(
        dest.next(20).tls.is_some(),
        "everyone else gets opportunistic TLS"
    );
}

#[test]
fn check_tls_transcript_and_verdict() {
    let dest = Sink::with_tls();
    let opts = mxring::checktls::CheckOptions {
        target: dest.addr.to_string(),
        helo: "checker.test".into(),
        port: 25,
        dns: Default::default(),
        ca_file: None,
        mail_from: Some("a@b.test".into()),
        rcpt_to: Some("c@d.test".into()),
        timeout: std::time::Duration::from_secs(10),
        level: mxring::config::TlsLevel::Encrypt,
        mta_sts: None,
    };
    let report = run_on_chosen_backend(async move { mxring::checktls::check(&opts).await });
    let text = report.text();
    for needle in [
        "Connected to server",
        "<-- 220 sink.test ESMTP",
        "--> EHLO checker.test",
        "TLS is an option on this server",
        "--> STARTTLS",
        "STARTTLS command works on this server",
        "Protocol: TLSv1.3",
        "Cipher in use: TLS_AES_",
        "Certificate 1 of 1 in chain: subject= CN=sink.test",
        "Cert NOT VALIDATED",
        "Cert Hostname DOES NOT VERIFY (127.0.0.1 != sink.test)",
        "~~> EHLO checker.test",
        "~~> MAIL FROM:<a@b.test>",
        "Recipient OK",
        "~~> QUIT",
        "Verdict: 127.0.0.1 satisfies none, may, encrypt",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .all(|l| l.starts_with('[') && l.as_bytes()[8] == b']'),
        "{text}"
    );
    assert!(report.verdict.encrypt && !report.verdict.verify);
    let plain = Sink::start(Script::default());
    let opts = mxring::checktls::CheckOptions {
        target: plain.addr.to_string(),
        helo: "checker.test".into(),
        port: 25,
        dns: Default::default(),
        ca_file: None,
        mail_from: None,
        rcpt_to: None,
        timeout: std::time::Duration::from_secs(10),
        level: mxring::config::TlsLevel::Encrypt,
        mta_sts: None,
    };
    let report = run_on_chosen_backend(async move { mxring::checktls::check(&opts).await });
    assert!(report
        .text()
        .contains("TLS is not an option on this server"));
    assert!(report.text().contains("satisfies none, may\n"));
}

/// A server that refuses EHLO gets HELO from check-tls, as from delivery (the same
/// ClientSession), and the check goes on in plaintext to MAIL and RCPT.
#[test]
fn check_tls_falls_back_to_helo_when_ehlo_is_refused() {
    let old = Sink::start(Script {
        ehlo_reply: Some("502 5.5.1 EHLO not implemented".into()),
        // It could do TLS, but HELO announces no STARTTLS.
        tls: Some(mxring::tls::self_signed("sink.test").unwrap()),
        ..Default::default()
    });
    let opts = |level| mxring::checktls::CheckOptions {
        target: old.addr.to_string(),
        helo: "checker.test".into(),
        port: 25,
        dns: Default::default(),
        ca_file: None,
        mail_from: Some("a@b.test".into()),
        rcpt_to: Some("c@d.test".into()),
        timeout: std::time::Duration::from_secs(10),
        level,
        mta_sts: None,
    };
    let may = opts(mxring::config::TlsLevel::May);
    let report = run_on_chosen_backend(async move { mxring::checktls::check(&may).await });
    let text = report.text();
    let expected = [
        "--> EHLO checker.test",
        "<-- 502 5.5.1 EHLO not implemented",
        "EHLO refused: trying HELO, as delivery does",
        "--> HELO checker.test",
        "<-- 250 2.0.0 Ok",
        "We can use this server",
        "TLS is not an option on this server",
        "--> MAIL FROM:<a@b.test>\n",
        "Sender is OK",
        "--> RCPT TO:<c@d.test>\n",
        "Recipient OK",
        "--> QUIT",
        "Verdict: 127.0.0.1 satisfies none, may\n",
        "Verdict: level may is met (by 127.0.0.1)\n",
    ];
    let mut at = 0;
    for needle in expected {
        let found = text[at..].find(needle);
        assert!(
            found.is_some(),
            "missing {needle:?} (in this order) in:\n{text}"
        );
        at += found.unwrap_or(0) + needle.len();
    }
    assert!(!text.contains("STARTTLS"), "{text}");
    assert!(report.passed && report.verdict.may && !report.verdict.encrypt);
    let encrypt = opts(mxring::config::TlsLevel::Encrypt);
    let report = run_on_chosen_backend(async move { mxring::checktls::check(&encrypt).await });
    assert!(!report.passed, "{}", report.text());
}

/// Run on the back end `mxring serve` would pick (MXRING_IO, else auto).
fn run_on_chosen_backend<F: std::future::Future>(fut: F) -> F::Output {
    let backend = mxring::net::choose(mxring::config::IoChoice::Auto).expect("an I/O back end");
    mxring::net::run(backend, fut).expect("a runtime")
}
