//! Delivery end to end: mxring relays to receiving SMTP servers the test starts on
//! loopback. Exactly-once arrival, retries, delay and failure DSNs on a schedule of
//! seconds, immediate failure DSNs for 5xx, and a restart that keeps the schedule.

use std::time::Duration;

use mxring_testkit::client::{queued_id, Client};
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{wait_for, wait_until, TestServer};

const LISTENER: &str = "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n";

/// Mail for dest.test goes to `dest`; mail for sender.test (DSNs) to `senders`.
fn routes(dest: &Sink, senders: &Sink, queue: &str) -> String {
    format!(
        "{LISTENER}[[route]]\ndomains = [\"dest.test\"]\nnext_hop = \"[127.0.0.1]:{}\"\n\
         [[route]]\ndomains = [\"sender.test\"]\nnext_hop = \"[127.0.0.1]:{}\"\n[queue]\n{queue}",
        dest.addr.port(),
        senders.addr.port()
    )
}

fn send(s: &TestServer, rcpts: &[&str], body: &str) -> String {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    let (code, text) = c.send_mail("alice@sender.test", rcpts, body);
    assert_eq!(code, 250, "{text}");
    queued_id(&text)
}

/// The message as it arrives: our Received header, then exactly what was sent.
fn strip_received(data: &[u8]) -> &[u8] {
    assert!(
        data.starts_with(b"Received: from client.test"),
        "{}",
        String::from_utf8_lossy(data)
    );
    let mut pos = 0;
    loop {
        let nl = data[pos..].windows(2).position(|w| w == b"\r\n").unwrap() + pos + 2;
        pos = nl;
        if data.get(pos) != Some(&b'\t') {
            return &data[pos..];
        }
    }
}

#[test]
fn every_message_arrives_exactly_once_and_byte_identical_over_starttls() {
    let dest = Sink::with_tls();
    let senders = Sink::start(Script::default());
    let s = TestServer::start(&routes(&dest, &senders, "retry = [\"1s\"]\n"));
    let mut sent = Vec::new();
    for i in 0..30 {
        let body = format!(
            "Subject: m{i}\r\nX-N: {i}\r\n\r\nline one\r\n.dot line\r\n{}\r\n",
            "z".repeat(i * 30)
        );
        send(&s, &["bob@dest.test"], &body);
        sent.push(body);
    }
    let mut got = Vec::new();
    for _ in 0..30 {
        let a = dest.next(20);
        assert_eq!(a.from, "alice@sender.test");
        assert_eq!(a.rcpts, ["bob@dest.test"]);
        assert_eq!(
            a.tls.as_deref(),
            Some("TLSv1_3"),
            "opportunistic TLS was offered and must be used"
        );
        got.push(String::from_utf8(strip_received(&a.data).to_vec()).unwrap());
    }
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert!(
        dest.arrivals
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "a message arrived twice"
    );
    assert!(senders.arrivals.try_recv().is_err(), "no DSN expected");
}

#[test]
fn temporary_failure_is_retried_and_then_delivered() {
    let dest = Sink::start(Script {
        data_replies: ["451 4.3.0 try again later".to_string()].into(),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let s = TestServer::start(&routes(&dest, &senders, "retry = [\"1s\"]\n"));
    let id = send(&s, &["bob@dest.test"], "Subject: retry\r\n\r\nbody\r\n");
    let a = dest.next(20);
    assert!(strip_received(&a.data).ends_with(b"body\r\n"));
    // Delivered on the second attempt: the queue empties.
    let q = s.queue();
    assert!(q.iter().all(|m| m.id != id) || q.iter().any(|m| m.id == id && m.attempts >= 1));
}

#[test]
fn permanent_failure_sends_a_failure_dsn_at_once() {
    let dest = Sink::start(Script {
        rcpt_reply: Some("550 5.1.1 <bob@dest.test>: no such user".into()),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let s = TestServer::start(&routes(&dest, &senders, "retry = [\"1h\"]\n"));
    send(
        &s,
        &["bob@dest.test"],
        "Subject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nbody\r\n",
    );
    let dsn = senders.next(20);
    assert_eq!(dsn.from, "", "a DSN comes from the null sender");
    assert_eq!(dsn.rcpts, ["alice@sender.test"]);
    let parsed = mxring::dsn::parse_delivery_status(&dsn.data).unwrap();
    assert_eq!(
        parsed.per_message.field("Reporting-MTA"),
        Some("dns; mx.test")
    );
    assert!(parsed.per_message.field("Arrival-Date").is_some());
    let r = &parsed.recipients[0];
    assert_eq!(r.field("Final-Recipient"), Some("rfc822; bob@dest.test"));
    assert_eq!(r.field("Action"), Some("failed"));
    assert_eq!(r.field("Status"), Some("5.1.1"));
    assert!(
        r.field("Remote-MTA").unwrap().starts_with("dns; 127.0.0.1"),
        "{:?}",
        r.field("Remote-MTA")
    );
    assert!(
        r.field("Diagnostic-Code").unwrap().contains("550 5.1.1"),
        "{:?}",
        r.field("Diagnostic-Code")
    );
    assert!(r.field("Last-Attempt-Date").is_some());
    assert_eq!(
        parsed
            .returned_content_type
            .as_deref()
            .map(|c| c.split(';').next().unwrap()),
        Some("text/rfc822-headers")
    );
    // The message left the queue; the DSN was delivered, so the queue empties.
    s.wait_queue_empty(20);
}

#[test]
fn always_deferred_gives_a_delay_dsn_then_a_failure_dsn() {
    let replies: Vec<String> = (0..100)
        .map(|_| "451 4.7.1 greylisted, try later".to_string())
        .collect();
    let dest = Sink::start(Script {
        data_replies: replies.into(),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let s = TestServer::start(&routes(
        &dest,
        &senders,
        "retry = [\"1s\"]\ndelay_warning_after = \"2s\"\ngive_up_after = \"5s\"\n",
    ));
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<alice@sender.test> RET=FULL ENVID=env42");
    c.cmd("RCPT TO:<bob@dest.test> NOTIFY=DELAY,FAILURE ORCPT=rfc822;bob@dest.test");
    c.cmd("DATA");
    c.send_raw(b"Subject: slow\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);

    let delay = senders.next(30);
    let d = mxring::dsn::parse_delivery_status(&delay.data).unwrap();
    assert_eq!(d.per_message.field("Original-Envelope-Id"), Some("env42"));
    let r = &d.recipients[0];
    assert_eq!(r.field("Action"), Some("delayed"));
    assert_eq!(r.field("Status"), Some("4.7.1"));
    assert_eq!(r.field("Original-Recipient"), Some("rfc822;bob@dest.test"));
    assert!(r.field("Will-Retry-Until").is_some());
    assert!(r
        .field("Diagnostic-Code")
        .unwrap()
        .contains("451 4.7.1 greylisted"));

    let fail = senders.next(30);
    let f = mxring::dsn::parse_delivery_status(&fail.data).unwrap();
    let r = &f.recipients[0];
    assert_eq!(r.field("Action"), Some("failed"));
    assert_eq!(r.field("Status"), Some("4.7.1"));
    assert!(r.field("Will-Retry-Until").is_none());
    assert_eq!(
        f.returned_content_type
            .as_deref()
            .map(|c| c.split(';').next().unwrap()),
        Some("message/rfc822"),
        "RET=FULL"
    );
    assert!(dest.arrivals.try_recv().is_err(), "never delivered");
    s.wait_queue_empty(20);
}

#[test]
fn null_sender_never_gets_a_dsn() {
    let dest = Sink::start(Script {
        rcpt_reply: Some("550 5.1.1 no".into()),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let s = TestServer::start(&routes(&dest, &senders, "retry = [\"1h\"]\n"));
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    assert_eq!(c.cmd("MAIL FROM:<>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@dest.test>").0, 250);
    c.cmd("DATA");
    c.send_raw(b"Subject: bounce\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
    // Wait until the message is gone (failed), then check no DSN was sent.
    s.wait_queue_empty(20);
    assert!(
        senders
            .arrivals
            .recv_timeout(Duration::from_secs(1))
            .is_err(),
        "bounce loop: DSN to <>"
    );
}

#[test]
fn restart_keeps_pending_messages_and_their_schedule() {
    let replies: Vec<String> = (0..3).map(|_| "451 4.3.0 not yet".to_string()).collect();
    let dest = Sink::start(Script {
        data_replies: replies.into(),
        ..Default::default()
    });
    let senders = Sink::start(Script::default());
    let cfg = routes(&dest, &senders, "retry = [\"1s\"]\n");
    let s = TestServer::start(&cfg);
    let id = send(&s, &["bob@dest.test"], "Subject: survive\r\n\r\nbody\r\n");
    // Wait for the first deferral to be recorded.
    wait_until(Duration::from_secs(20), "the first deferral", || {
        s.queue().iter().any(|m| m.id == id && m.attempts >= 1)
    })
    .unwrap();
    let spool = s.stop();
    let s = TestServer::start_on(spool, "", &cfg);
    let q = s.queue();
    let m = q
        .iter()
        .find(|m| m.id == id)
        .expect("the pending message survives the restart");
    assert!(m.attempts >= 1, "attempt count survives the restart");
    assert!(
        m.recipients[0]
            .last_reply
            .as_deref()
            .unwrap_or("")
            .contains("451"),
        "{:?}",
        m.recipients
    );
    assert!(m.next_attempt_ms > 0);
    let a = dest.next(30);
    assert!(strip_received(&a.data).ends_with(b"body\r\n"));
}

#[test]
fn an_unreachable_next_hop_is_not_tried_for_every_message() {
    let dead = mxring_testkit::closed_port();
    let cfg = format!(
        "{LISTENER}[[route]]\ndomains = [\"*\"]\nnext_hop = \"[127.0.0.1]:{}\"\n\
         [outbound]\nunreachable_hold = \"1h\"\n[queue]\nretry = [\"1h\"]\n",
        dead.port()
    );
    let s = TestServer::start(&cfg);
    // One connection, so one shard (the hold is per shard).
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    let mut submit = |n: u32| {
        let (code, text) = c.send_mail(
            "alice@sender.test",
            &["bob@dest.test"],
            &format!("Subject: {n}\r\n\r\nbody {n}\r\n"),
        );
        assert_eq!(code, 250, "{text}");
        queued_id(&text)
    };
    let reply_of = |s: &TestServer, id: &str| -> Option<String> {
        let q = s.queue();
        let m = q.iter().find(|m| m.id == id)?;
        if m.attempts == 0 {
            return None;
        }
        m.recipients[0].last_reply.clone()
    };
    let wait_reply = |s: &TestServer, id: &str| -> String {
        wait_for(
            Duration::from_secs(20),
            &format!("an attempt for {id}"),
            || reply_of(s, id),
        )
        .unwrap()
    };
    let first = submit(1);
    let r1 = wait_reply(&s, &first);
    assert!(r1.contains("Connection refused"), "{r1}");
    assert!(!r1.contains("not tried again"), "{r1}");
    let later: Vec<String> = (2..=3).map(&mut submit).collect();
    for id in &later {
        let r = wait_reply(&s, id);
        assert!(r.contains("Connection refused"), "{r}");
        assert!(r.contains("(not tried again within 1h)"), "{r}");
        // A held (untried) address does not restart its own hold.
        assert_eq!(r.matches("not tried again").count(), 1, "{r}");
        assert!(r.starts_with("4.4.1"), "{r}");
    }
    // The hop comes up; an operator's retry really tries, despite the hold.
    let sink = Sink::start_at(&format!("127.0.0.1:{}", dead.port()), Script::default());
    for id in std::iter::once(&first).chain(&later) {
        let (status, body) = s
            .admin()
            .request("POST", &format!("/queue/{id}/retry"))
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let mut bodies: Vec<String> = (0..3)
        .map(|_| String::from_utf8_lossy(strip_received(&sink.next(20).data)).into_owned())
        .collect();
    bodies.sort();
    assert!(bodies[0].ends_with("body 1\r\n"), "{bodies:?}");
    assert!(bodies[2].ends_with("body 3\r\n"), "{bodies:?}");
    s.wait_queue_empty(20);
}
