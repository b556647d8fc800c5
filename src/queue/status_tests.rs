use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::dsn::{build_dsn, parse_delivery_status, DsnKind, DsnReport, ReturnContent};
use crate::proto::Recipient;

fn rule(bounce: bool) -> Option<TlsRule> {
    Some(TlsRule {
        rule: "[[outbound_tls]] #1".into(),
        domain: "dest.test".into(),
        bounce,
    })
}

fn reply(code: u16, text: &str) -> Reply {
    Reply::from_parsed(&crate::proto::reply::ParsedReply {
        code,
        lines: vec![text.into()],
    })
}

/// (state, code, who decided, last reply) of a failure as the status it leads to.
fn classified(f: Failure) -> (&'static str, String, Decider, String) {
    let s = Status::from_failure(f, None);
    (
        s.name(),
        s.code().unwrap().to_string(),
        s.decided_by(),
        s.last_reply().unwrap(),
    )
}

#[test]
fn each_failure_kind_has_its_state_code_decider_and_words() {
    let dns = |status| Failure::Dns {
        status,
        text: "no.test: no such domain".into(),
    };
    assert_eq!(
        classified(dns(Enhanced::new(5, 1, 2))),
        (
            "failed",
            "5.1.2".into(),
            Decider::Dns,
            "no.test: no such domain".into()
        )
    );
    assert_eq!(classified(dns(Enhanced::new(4, 4, 3))).0, "deferred");

    assert_eq!(
        classified(Failure::Connect {
            text: "connect to h[127.0.0.1]:25: Connection refused".into()
        }),
        (
            "deferred",
            "4.4.1".into(),
            Decider::Network,
            "4.4.1 connect to h[127.0.0.1]:25: Connection refused".into()
        )
    );

    let tls = |problem, required_by| Failure::Tls {
        problem,
        text: "TLS is required, but was not offered by host h".into(),
        required_by,
    };
    let policy = Decider::TlsPolicy {
        rule: "[[outbound_tls]] #1".into(),
        domain: "dest.test".into(),
    };
    assert_eq!(
        classified(tls(TlsProblem::NotOffered, rule(false))),
        (
            "deferred",
            "4.7.4".into(),
            policy.clone(),
            "4.7.4 TLS is required, but was not offered by host h".into()
        )
    );
    // on_failure = "bounce": the same condition, failed for good, class 5.
    let (state, code, by, text) = classified(tls(TlsProblem::NotOffered, rule(true)));
    assert_eq!((state, code.as_str(), &by), ("failed", "5.7.4", &policy));
    assert!(text.starts_with("5.7.4 "), "{text}");
    let (state, code, _, _) = classified(tls(TlsProblem::DaneMismatch, rule(true)));
    assert_eq!((state, code.as_str()), ("failed", "5.7.5"));
    // No rule required it (a DANE lookup that failed): the network, retried.
    let (state, code, by, _) = classified(tls(TlsProblem::DaneUnavailable, None));
    assert_eq!(
        (state, code.as_str(), by),
        ("deferred", "4.7.5", Decider::Network)
    );

    assert_eq!(
        classified(Failure::Remote {
            reply: reply(550, "5.1.1 no such user")
        }),
        (
            "failed",
            "5.1.1".into(),
            Decider::RemoteHost,
            "550 5.1.1 no such user".into()
        )
    );
    // A reply without an enhanced code gets its class's basic one.
    let (state, code, _, _) = classified(Failure::Remote {
        reply: reply(451, "later"),
    });
    assert_eq!((state, code.as_str()), ("deferred", "4.0.0"));

    let proto = |problem| Failure::Protocol {
        problem,
        text: "lost connection with h".into(),
    };
    let (state, code, by, _) = classified(proto(ProtocolProblem::LostConnection));
    assert_eq!(
        (state, code.as_str(), by),
        ("deferred", "4.4.2", Decider::Network)
    );
    let (state, code, by, _) = classified(proto(ProtocolProblem::SessionRefused));
    assert_eq!(
        (state, code.as_str(), by),
        ("deferred", "4.4.0", Decider::RemoteHost)
    );
    let (state, code, by, _) = classified(proto(ProtocolProblem::MessageTooBig));
    assert_eq!(
        (state, code.as_str(), by),
        ("failed", "5.3.4", Decider::RemoteHost)
    );
    assert_eq!(classified(proto(ProtocolProblem::NoSmtpUtf8)).1, "5.6.7");
    assert_eq!(classified(proto(ProtocolProblem::Unexpected)).1, "4.5.0");

    // An expiry fails, keeps the last attempt's code and who decided it.
    let expired = Failure::Expired {
        after: "24h".into(),
        last: Some(Box::new(tls(TlsProblem::NotOffered, rule(false)))),
    };
    assert_eq!(expired.expired_after(), Some("24h"));
    let (state, code, by, text) = classified(expired);
    assert_eq!((state, code.as_str(), &by), ("failed", "4.7.4", &policy));
    assert!(text.contains("not offered"), "{text}");
    let never_tried = Failure::Expired {
        after: "1h".into(),
        last: None,
    };
    assert_eq!(
        classified(never_tried).1,
        "4.4.7",
        "expired without an attempt"
    );

    assert_eq!(
        classified(Failure::Operator),
        (
            "failed",
            "5.0.0".into(),
            Decider::Operator,
            "bounced with mxring queue bounce".into()
        )
    );
}

#[test]
fn delivered_and_pending() {
    let s = Status::Delivered {
        reply: reply(250, "2.0.0 Ok: queued as X"),
        remote: None,
    };
    assert_eq!(
        (s.name(), s.code().unwrap().to_string(), s.is_done()),
        ("delivered", "2.0.0".into(), true)
    );
    assert_eq!(Status::Pending.code(), None);
    assert!(!Status::Pending.is_done());
}

#[test]
fn a_later_attempt_that_reached_no_host_keeps_the_earlier_host() {
    let earlier = Status::Deferred {
        failure: Failure::Remote {
            reply: reply(451, "4.3.0 later"),
        },
        remote: Some(RemoteMta {
            name: "mx.dest.test[127.0.0.1]:25".into(),
            tls: None,
        }),
    };
    let mut now = Status::from_failure(
        Failure::Dns {
            status: Enhanced::new(4, 4, 3),
            text: "timeout".into(),
        },
        None,
    );
    now.keep_remote_of(&earlier);
    assert_eq!(now.remote().unwrap().name, "mx.dest.test[127.0.0.1]:25");
}

#[test]
fn enhanced_codes_parse_strictly_and_round_trip() {
    assert_eq!(Enhanced::parse("4.7.4"), Some(Enhanced::new(4, 7, 4)));
    assert_eq!(Enhanced::parse("5.1.10").unwrap().to_string(), "5.1.10");
    for bad in ["6.0.0", "4.7", "4.7.4.1", "4.x.1", "", "4..1", "4.1234.1"] {
        assert_eq!(Enhanced::parse(bad), None, "{bad}");
    }
}

#[test]
fn status_is_stored_as_tagged_json_and_read_back() {
    let s = Status::Failed {
        failure: Failure::Tls {
            problem: TlsProblem::CertificateNotVerified,
            text: "Server certificate not verified".into(),
            required_by: rule(true),
        },
        remote: Some(RemoteMta {
            name: "h[127.0.0.1]:25".into(),
            tls: None,
        }),
    };
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["state"], "failed");
    assert_eq!(json["failure"]["kind"], "tls");
    assert_eq!(json["failure"]["problem"], "certificate_not_verified");
    assert_eq!(
        json["failure"]["required_by"]["rule"],
        "[[outbound_tls]] #1"
    );
    let back: Status = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

/// The DSN builder reads the typed status: code, diagnostic, who decided.
#[test]
fn dsn_from_the_typed_status_says_who_decided() {
    let rcpt = Recipient {
        address: "bob@dest.test".into(),
        notify: None,
        orcpt: None,
    };
    let remote = Some(RemoteMta {
        name: "mx.dest.test[127.0.0.1]:25".into(),
        tls: None,
    });
    let build = |status: &Status| {
        let r = status.dsn_recipient(&rcpt, DsnKind::Failed, None, None);
        let rs = [r];
        let dsn = build_dsn(&DsnReport {
            reporting_mta: "mx.test",
            original_sender: "alice@src.test",
            original_envid: None,
            arrival: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            recipients: &rs,
            ret: ReturnContent::Headers,
            original_message: b"Subject: x\r\n\r\nbody\r\n",
            now: UNIX_EPOCH + Duration::from_secs(1_700_003_600),
            message_id_seed: 7,
        });
        let p = parse_delivery_status(&dsn).unwrap();
        let r = &p.recipients[0];
        let field = |n| r.field(n).unwrap_or_default().to_string();
        let words = p.notification.unwrap().replace("\r\n    ", " ");
        (field("Status"), field("Diagnostic-Code"), words)
    };

    let policy = Status::Failed {
        failure: Failure::Tls {
            problem: TlsProblem::NotOffered,
            text: "TLS is required, but was not offered by host mx.dest.test".into(),
            required_by: rule(true),
        },
        remote: remote.clone(),
    };
    let (status, diag, words) = build(&policy);
    assert_eq!(status, "5.7.4");
    assert_eq!(
        diag,
        "smtp; 5.7.4 TLS is required, but was not offered by host mx.dest.test"
    );
    assert!(
        words.contains("policy requires TLS for dest.test ([[outbound_tls]] #1)"),
        "{words}"
    );
    assert!(!words.contains("said:"), "{words}");

    let remote_said = Status::Failed {
        failure: Failure::Remote {
            reply: reply(550, "5.1.1 no such user"),
        },
        remote: remote.clone(),
    };
    let (status, diag, words) = build(&remote_said);
    assert_eq!(status, "5.1.1");
    assert_eq!(diag, "smtp; 550 5.1.1 no such user");
    assert!(
        words.contains("host mx.dest.test[127.0.0.1]:25 said: 550 5.1.1 no such user"),
        "{words}"
    );

    let expired = Status::Failed {
        failure: Failure::Expired {
            after: "24h".into(),
            last: Some(Box::new(Failure::Connect {
                text: "connect to mx.dest.test[127.0.0.1]:25: Connection refused".into(),
            })),
        },
        remote: None,
    };
    let (status, _, words) = build(&expired);
    assert_eq!(status, "4.4.1");
    assert!(
        words.contains(
            "this mail system gave up after 24h; the last attempt: the connection failed"
        ),
        "{words}"
    );

    let (status, _, words) = build(&Status::Failed {
        failure: Failure::Operator,
        remote,
    });
    assert_eq!(status, "5.0.0");
    assert!(
        words.contains("returned by the administrator of this mail system"),
        "{words}"
    );
}

#[test]
fn metric_labels_follow_the_typed_failure() {
    use crate::metrics::{DeliveryOutcome, FailureClass};
    let of = |s: Status| {
        let l = s.metric_labels();
        (l.outcome, l.reason)
    };
    let tls = |required_by| Failure::Tls {
        problem: TlsProblem::NotOffered,
        text: "x".into(),
        required_by,
    };
    assert_eq!(
        of(Status::from_failure(tls(rule(true)), None)),
        (DeliveryOutcome::bounced, FailureClass::tls_policy)
    );
    assert_eq!(
        of(Status::from_failure(tls(None), None)),
        (DeliveryOutcome::deferred, FailureClass::connection)
    );
    assert_eq!(
        of(Status::Failed {
            failure: Failure::Expired {
                after: "1h".into(),
                last: Some(Box::new(tls(rule(false))))
            },
            remote: None
        }),
        (DeliveryOutcome::bounced, FailureClass::expired)
    );
    assert_eq!(
        of(Status::from_failure(
            Failure::Protocol {
                problem: ProtocolProblem::Unexpected,
                text: "x".into()
            },
            None
        )),
        (DeliveryOutcome::deferred, FailureClass::other)
    );
}
