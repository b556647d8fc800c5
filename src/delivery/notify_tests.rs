//! The DSN a queued message's outcome makes, without a shard: who is told,
//! what the DSN's own envelope says, and how much of the original it returns.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dsn_message;
use crate::config::Config;
use crate::dsn::DsnKind;
use crate::proto::envelope::{BodyType, Ret};
use crate::proto::{Envelope, NotifyFlags, Recipient};
use crate::queue::status::{Failure, Status};
use crate::queue::QueuedMessage;

const BODY: &[u8] = b"Subject: quarterly figures\r\n\r\nthe secret body line\r\n";

fn rcpt(address: &str, notify: Option<&str>) -> Recipient {
    Recipient {
        address: address.into(),
        notify: notify.map(|n| NotifyFlags::parse(n).expect("valid NOTIFY")),
        orcpt: None,
    }
}

fn message(sender: &str, rcpts: Vec<Recipient>) -> QueuedMessage {
    let envelope = Envelope {
        sender: sender.into(),
        recipients: rcpts,
        ret: None,
        envid: Some("env-1".into()),
        body_type: BodyType::default(),
        smtputf8: false,
        client_ip: std::net::IpAddr::from([192, 0, 2, 7]),
        helo: "client.example".into(),
        tls: None,
        arrival_ms: 1_700_000_000_000,
        listener: "mx".into(),
        requiretls: false,
        tls_required_no: false,
    };
    let mut rec = QueuedMessage::new(envelope, BODY.len() as u64);
    for r in &mut rec.rcpts {
        r.status = Status::from_failure(Failure::Operator, None);
    }
    rec
}

fn config() -> Config {
    let text = "[server]\nhostname = \"mx.example.net\"\n\n[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\n";
    crate::config::load_str(text, "test").expect("a valid config")
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_360_000)
}

#[test]
fn only_recipients_whose_notify_asks_are_told() {
    let rec = message(
        "alice@example.org",
        vec![
            rcpt("never@example.com", Some("NEVER")),
            rcpt("default@example.com", None),
            rcpt("success@example.com", Some("SUCCESS")),
        ],
    );
    let dsn = dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0, 1, 2], now(), 9)
        .expect("one recipient asks for failure notices");
    assert_eq!(dsn.told, 1);
    let text = String::from_utf8_lossy(&dsn.body);
    assert!(text.contains("rfc822; default@example.com"), "{text}");
    assert!(!text.contains("never@example.com"), "{text}");
    assert!(!text.contains("success@example.com"), "{text}");

    let delayed = dsn_message(&config(), &rec, BODY, DsnKind::Delayed, &[2], now(), 9);
    assert!(delayed.is_none(), "NOTIFY=SUCCESS asks for no delay notice");
}

#[test]
fn a_null_sender_is_never_told() {
    let rec = message("", vec![rcpt("bob@example.com", Some("FAILURE"))]);
    assert!(dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0], now(), 9).is_none());
}

#[test]
fn the_dsn_goes_from_the_null_sender_to_the_original_sender_and_asks_for_no_dsn_itself() {
    let rec = message("alice@example.org", vec![rcpt("bob@example.com", None)]);
    let dsn = dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0], now(), 9).unwrap();
    let env = &dsn.record.envelope;
    assert_eq!(env.sender, "");
    assert_eq!(dsn.record.rcpts.len(), 1);
    let to = &dsn.record.rcpts[0].rcpt;
    assert_eq!(to.address, "alice@example.org");
    assert!(to.notify.is_some_and(|n| n.never));
    assert_eq!(env.listener, "dsn");
    assert_eq!(env.helo, "mx.example.net");
    assert_eq!(env.arrival_ms, 1_700_000_360_000);
    assert_eq!(dsn.record.size, dsn.body.len() as u64);
    let text = String::from_utf8_lossy(&dsn.body);
    assert!(
        text.contains("Reporting-MTA: dns; mx.example.net"),
        "{text}"
    );
    assert!(text.contains("Original-Envelope-Id: env-1"), "{text}");
}

#[test]
fn ret_full_returns_the_body_unless_the_message_asked_for_requiretls() {
    let mut rec = message("alice@example.org", vec![rcpt("bob@example.com", None)]);
    rec.envelope.ret = Some(Ret::Full);
    let full = dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0], now(), 9).unwrap();
    assert!(String::from_utf8_lossy(&full.body).contains("the secret body line"));

    rec.envelope.requiretls = true;
    let redacted = dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0], now(), 9).unwrap();
    let text = String::from_utf8_lossy(&redacted.body);
    assert!(text.contains("Subject: quarterly figures"), "{text}");
    assert!(!text.contains("the secret body line"), "{text}");

    // A delay notice returns headers only, whatever RET says.
    rec.envelope.requiretls = false;
    let delayed = dsn_message(&config(), &rec, BODY, DsnKind::Delayed, &[0], now(), 9).unwrap();
    assert!(!String::from_utf8_lossy(&delayed.body).contains("the secret body line"));
}

#[test]
fn a_dsn_quoting_eight_bit_text_is_queued_as_8bitmime() {
    let rec = message("alice@example.org", vec![rcpt("bob@example.com", None)]);
    let ascii = dsn_message(&config(), &rec, BODY, DsnKind::Failed, &[0], now(), 9).unwrap();
    assert_eq!(ascii.record.envelope.body_type, BodyType::default());
    let body = "Subject: Grüße\r\n\r\nhé\r\n".as_bytes();
    let eight = dsn_message(&config(), &rec, body, DsnKind::Failed, &[0], now(), 9).unwrap();
    assert_eq!(eight.record.envelope.body_type, BodyType::EightBitMime);
}
