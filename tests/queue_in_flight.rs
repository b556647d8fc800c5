//! Operator actions while a delivery is in flight: the next hop holds its reply to
//! the end of data until the test has acted, so the action lands mid-attempt.
//! A retry then does nothing (no second delivery); bounce and delete wait for the
//! attempt to end and apply only to the recipients still pending then.

use std::process::Command;
use std::time::Duration;

use mxring_testkit::client::{queued_id, Client};
use mxring_testkit::sink::{hold, Hold, Script, Sink};
use mxring_testkit::{TestServer, Toml};

/// Mail for dest.test goes to `dest`; DSNs (to sender.test) to `senders`.
fn start(dest: &Sink, senders: &Sink) -> TestServer {
    TestServer::start(
        &Toml::default()
            .listener("mx", 0, "none")
            .route("\"dest.test\"", dest.addr)
            .route("\"sender.test\"", senders.addr)
            .queue("retry = [\"1s\"]")
            .text(),
    )
}

/// A next hop that holds its first reply to the end of data; `data_reply` is
/// that reply (None: 250).
fn holding_sink(data_reply: Option<&str>) -> (Sink, Hold) {
    let (gate, held) = hold();
    let sink = Sink::start(Script {
        hold: Some(gate),
        data_replies: data_reply.map(str::to_string).into_iter().collect(),
        ..Default::default()
    });
    (sink, held)
}

fn send(s: &TestServer) -> String {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    let (code, text) = c.send_mail(
        "alice@sender.test",
        &["bob@dest.test"],
        "Subject: in flight\r\n\r\nbody\r\n",
    );
    assert_eq!(code, 250, "{text}");
    queued_id(&text)
}

fn action(s: &TestServer, id: &str, what: &str) -> (u16, serde_json::Value) {
    let (status, body) = s
        .admin()
        .request("POST", &format!("/queue/{id}/{what}"))
        .unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

/// A second delivery (or DSN) would arrive within this; its absence is checked
/// after the queue is empty, so no attempt of the message can still be starting.
const QUIET: Duration = Duration::from_secs(2);

#[test]
fn retry_during_an_attempt_answers_in_progress_and_delivers_once() {
    let (dest, held) = holding_sink(None);
    let senders = Sink::start(Script::default());
    let s = start(&dest, &senders);
    let id = send(&s);
    held.wait_reached(20);

    let (status, v) = action(&s, &id, "retry");
    assert_eq!(status, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("delivery in progress"), "{msg}");

    // The CLI says the same, with exit status 75 (EX_TEMPFAIL).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    let admin = s.server.as_ref().unwrap().admin.unwrap();
    std::fs::write(
        &config,
        format!("[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"{admin}\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["queue", "retry", &id, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("delivery in progress"), "{err}");

    held.release();
    let a = dest.next(20);
    assert_eq!(a.rcpts, vec!["bob@dest.test".to_string()]);
    s.wait_queue_empty(20);
    assert!(
        dest.arrivals.recv_timeout(QUIET).is_err(),
        "the message was delivered twice"
    );
    assert!(senders.arrivals.try_recv().is_err(), "no DSN is due");
}

#[test]
fn bounce_during_an_attempt_that_succeeds_sends_no_failure_dsn() {
    let (dest, held) = holding_sink(None);
    let senders = Sink::start(Script::default());
    let s = start(&dest, &senders);
    let id = send(&s);
    held.wait_reached(20);

    let (status, v) = action(&s, &id, "bounce");
    assert_eq!(status, 202, "{v}");
    let msg = v["result"].as_str().unwrap();
    assert!(
        msg.contains("will take effect when the delivery in progress ends"),
        "{msg}"
    );
    // Nothing happened yet: the message is still queued, its recipient not failed.
    let q = s.queue();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_ne!(q[0].recipients[0].state, "failed", "{q:?}");

    held.release();
    dest.next(20);
    s.wait_queue_empty(20);
    assert!(
        senders.arrivals.recv_timeout(QUIET).is_err(),
        "a failure DSN was sent for a delivered message"
    );
}

#[test]
fn bounce_during_an_attempt_that_defers_fails_the_recipient_when_it_ends() {
    let (dest, held) = holding_sink(Some("451 4.3.0 try again later"));
    let senders = Sink::start(Script::default());
    let s = start(&dest, &senders);
    let id = send(&s);
    held.wait_reached(20);
    let (status, v) = action(&s, &id, "bounce");
    assert_eq!(status, 202, "{v}");
    held.release();

    let dsn = senders.next(20);
    assert_eq!(dsn.from, "", "a DSN comes from the null sender");
    let text = String::from_utf8_lossy(&dsn.data).replace("\r\n    ", " ");
    assert!(text.contains("Action: failed"), "{text}");
    assert!(
        text.contains("returned by the administrator of this mail system"),
        "{text}"
    );
    s.wait_queue_empty(20);
    assert!(
        dest.arrivals.try_recv().is_err(),
        "the 451 was not a delivery"
    );
}

#[test]
fn delete_during_an_attempt_removes_the_message_when_it_ends() {
    let (dest, held) = holding_sink(Some("451 4.3.0 try again later"));
    let senders = Sink::start(Script::default());
    let s = start(&dest, &senders);
    let id = send(&s);
    held.wait_reached(20);

    let (status, v) = action(&s, &id, "delete");
    assert_eq!(status, 202, "{v}");
    let msg = v["result"].as_str().unwrap();
    assert!(
        msg.contains("will take effect when the delivery in progress ends"),
        "{msg}"
    );
    assert_eq!(s.queue().len(), 1, "kept while the attempt runs");

    // The attempt defers (451): without the delete the message would stay queued
    // and be retried after 1s.
    held.release();
    s.wait_queue_empty(20);
    assert!(
        dest.arrivals.recv_timeout(QUIET).is_err(),
        "the deleted message was attempted again"
    );
    assert!(senders.arrivals.try_recv().is_err(), "delete sends no DSN");
}
