//! The accept path over real loopback sockets and real TLS: plain and STARTTLS mail
//! into the queue, the required and implicit listeners, relay control, limits, and
//! a kill -9 restart that keeps every acknowledged message.

use mxring::config::TlsVersion;
use mxring_testkit::client::{queued_id, Client};
use mxring_testkit::{closed_port, route_all, TestServer};

fn listeners() -> String {
    // Mail is routed to a closed port: it stays queued, and no test looks up DNS.
    format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:0\"\ntls = \"required\"\n\
         [[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\n\
         [[listener]]\nname = \"plain\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n{}",
        route_all(closed_port())
    )
}

#[test]
fn plain_message_is_queued_with_envelope_and_received_header() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("mx"));
    assert_eq!(c.greeting.0, 220);
    let (code, text) = c.cmd("EHLO client.test");
    assert_eq!(code, 250);
    for ext in [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(text.contains(ext), "EHLO lacks {ext}: {text}");
    }
    let (code, text) = c.send_mail(
        "alice@sender.test",
        &["bob@dest.test"],
        "Subject: plain\n\nhello\n.leading dot\n",
    );
    assert_eq!(code, 250, "{text}");
    assert!(text.starts_with("250 2.0.0 Ok: queued as "), "{text}");
    let id = queued_id(&text);
    let (status, body) = s.admin().request("GET", &format!("/queue/{id}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let view: mxring::admin::MessageView = serde_json::from_str(&body).unwrap();
    assert_eq!(view.sender, "alice@sender.test");
    assert_eq!(view.recipients[0].address, "bob@dest.test");
    assert_eq!(view.helo, "client.test");
    assert_eq!(view.tls, None);
    let headers = view.headers.unwrap();
    assert!(
        headers.starts_with(
            "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (mxring) with ESMTP id "
        ),
        "{headers}"
    );
    assert!(headers.contains(&id));
    assert!(headers.contains("Subject: plain"));
}

#[test]
fn starttls_mail_records_version_and_cipher() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    c.starttls(TlsVersion::Tls13);
    let (v, cipher) = c.tls().unwrap();
    let cipher = cipher.replacen("TLS13_", "TLS_", 1);
    assert_eq!(v, "TLSv1_3");
    let (_, text) = c.cmd("EHLO client.test");
    assert!(
        !text.contains("STARTTLS"),
        "STARTTLS offered again after TLS: {text}"
    );
    let (code, text) = c.send_mail(
        "a@sender.test",
        &["b@dest.test"],
        "Subject: tls\n\nsecret\n",
    );
    assert_eq!(code, 250, "{text}");
    let q = s.queue();
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].tls.as_deref(),
        Some(format!("TLSv1.3 {cipher}").as_str())
    );
    let (_, body) = s
        .admin()
        .request("GET", &format!("/queue/{}", q[0].id))
        .unwrap();
    assert!(
        body.contains(&format!("(using TLSv1.3 with cipher {cipher})")),
        "{body}"
    );
    assert!(body.contains("with ESMTPS id"), "{body}");
}

#[test]
fn tls12_client_is_accepted_and_recorded() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.starttls(TlsVersion::Tls12);
    assert_eq!(c.tls().unwrap().0, "TLSv1_2");
    c.cmd("EHLO c");
    assert_eq!(c.send_mail("a@s.test", &["b@d.test"], "x\n").0, 250);
    assert!(s.queue()[0]
        .tls
        .as_deref()
        .unwrap()
        .starts_with("TLSv1.2 TLS_ECDHE_ECDSA_WITH_"));
}

#[test]
fn required_listener_refuses_mail_until_starttls() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("secure"));
    let (_, ehlo) = c.cmd("EHLO c");
    assert!(ehlo.contains("STARTTLS"));
    for cmd in [
        "MAIL FROM:<a@s.test>",
        "RCPT TO:<b@d.test>",
        "DATA",
        "BDAT 0 LAST",
    ] {
        let (code, text) = c.cmd(cmd);
        assert_eq!(code, 530, "{cmd}: {text}");
        assert!(
            text.contains("530 5.7.0 Must issue a STARTTLS command first"),
            "{text}"
        );
    }
    c.starttls(TlsVersion::Tls13);
    c.cmd("EHLO c");
    assert_eq!(c.send_mail("a@s.test", &["b@d.test"], "x\n").0, 250);
    assert_eq!(s.queue().len(), 1);
}

#[test]
fn implicit_tls_listener_speaks_tls_from_the_first_byte() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect_tls(s.addr("smtps"));
    assert_eq!(c.greeting.0, 220);
    assert!(c.tls().is_some());
    let (_, ehlo) = c.cmd("EHLO c");
    assert!(!ehlo.contains("STARTTLS"));
    assert_eq!(c.send_mail("a@s.test", &["b@d.test"], "x\n").0, 250);
    assert!(s.queue()[0].tls.is_some());
}

#[test]
fn starttls_injection_is_not_executed() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    // RSET and a MAIL ride in the same packet as STARTTLS: they must be dropped.
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
    let (code, _) = c.reply();
    assert_eq!(code, 220);
    c.upgrade(TlsVersion::Tls13);
    // After TLS, the session was reset: RCPT without MAIL is out of sequence.
    let (code, text) = c.cmd("RCPT TO:<b@d.test>");
    assert_eq!(code, 503, "{text}");
}

#[test]
fn relay_is_denied_to_outsiders_and_our_domains_are_accepted() {
    let s = TestServer::start(&format!(
        "{}[relay]\nnetworks = []\ndomains = [\"local.test\"]\n",
        listeners()
    ));
    let mut c = Client::connect(s.addr("plain"));
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@s.test>");
    let (code, text) = c.cmd("RCPT TO:<x@elsewhere.test>");
    assert_eq!(code, 554);
    assert!(
        text.contains("554 5.7.1 <x@elsewhere.test>: Relay access denied"),
        "{text}"
    );
    assert_eq!(c.cmd("RCPT TO:<x@local.test>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<x@[127.0.0.1]>").0, 554);
}

#[test]
fn size_limit_is_enforced_at_mail_and_in_data() {
    let small = TestServer::start_cfg("max_message_size = 2000\n", &listeners());
    let mut c = Client::connect(small.addr("plain"));
    c.cmd("EHLO c");
    let (code, text) = c.cmd("MAIL FROM:<a@s.test> SIZE=5000");
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("552 5.3.4"));
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd("RCPT TO:<b@d.test>");
    c.cmd("DATA");
    let big = "y".repeat(900);
    c.send_raw(format!("{big}\r\n{big}\r\n{big}\r\n.\r\n").as_bytes());
    let (code, text) = c.reply();
    assert_eq!(code, 552, "{text}");
    assert!(small.queue().is_empty());
    // The session goes on.
    assert_eq!(c.cmd("NOOP").0, 250);
}

#[test]
fn metrics_report_what_durability_cost() {
    let s = TestServer::start(&listeners());
    let mut c = Client::connect(s.addr("plain"));
    c.cmd("EHLO client.test");
    for n in 0..3 {
        let (code, text) = c.send_mail(
            "alice@sender.test",
            &["bob@dest.test"],
            &format!("Subject: {n}\n\nhi\n"),
        );
        assert_eq!(code, 250, "{text}");
    }
    // The session records DATA→250 after the 250 is written and before it reads the
    // next command, so a reply to NOOP means the last one is counted.
    assert_eq!(c.cmd("NOOP").0, 250);
    let (status, body) = s.admin().request("GET", "/metrics.json").unwrap();
    assert_eq!(status, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(m["queued"], 3, "{m}");
    let store: mxring::queue::stats::StoreStatsSummary =
        serde_json::from_value(m["store"].clone()).unwrap_or_else(|e| panic!("{e}: {m}"));
    // Every 250 followed a write, a commit wait and a reply; the delivery attempts to
    // the closed port may add commits of their own, never fewer.
    assert!(store.write.count >= 3, "{store:?}");
    assert!(store.commit_wait.count >= 3, "{store:?}");
    assert!(store.commit.count >= 1, "{store:?}");
    assert_eq!(store.data_to_reply.count, 3, "{store:?}");
    assert!(
        store.commit.max_us > 0,
        "an fdatasync takes time: {store:?}"
    );
    assert!(store.commit_wait.p99_us_below >= store.commit_wait.p50_us_below);
}
