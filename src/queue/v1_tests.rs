//! Format-1 records as today's: the committed format-1 spool, and records of each
//! kind of result format 1 could hold.

use super::status::{Failure, Status, TlsProblem};
use super::v1;
use super::QueuedMessage;

fn convert(json: &str) -> QueuedMessage {
    v1::QueuedMessage::decode(json.as_bytes()).unwrap().into()
}

/// A format-1 record with one recipient whose status is `rcpt` (JSON).
fn record(rcpt: &str) -> String {
    format!(
        r#"{{"envelope":{{"sender":"a@src.test","recipients":[{{"address":"b@dest.test","notify":"SUCCESS,FAILURE","orcpt":"rfc822;b@dest.test"}}],"ret":null,"envid":null,"body_type":"SevenBit","smtputf8":false,"client_ip":"127.0.0.1","helo":"c.test","tls":null,"arrival_ms":1700000000000,"listener":"mx"}},"rcpts":[{rcpt}],"attempts":1,"next_attempt_ms":1700000060000,"delay_warned":false,"size":10}}"#
    )
}

#[test]
fn the_committed_format_1_spool_converts_with_every_recipient_next_to_its_status() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spool-v1");
    let copy = tempfile::tempdir().unwrap();
    for f in ["conf", "db"] {
        std::fs::copy(fixture.join(f), copy.path().join(f)).unwrap();
    }
    // Format 1's segment size, fixed when that spool was made.
    let db = sled::Config::new()
        .path(copy.path())
        .segment_size(8 << 20)
        .open()
        .unwrap();
    let mut rcpts = Vec::new();
    for shard in 0..2 {
        for kv in db
            .open_tree(format!("shard{shard}/records"))
            .unwrap()
            .iter()
        {
            let (_, v) = kv.unwrap();
            let rec: QueuedMessage = v1::QueuedMessage::decode(&v).unwrap().into();
            assert!(
                rec.envelope.recipients.is_empty(),
                "moved next to their status"
            );
            for r in rec.rcpts {
                rcpts.push((r.rcpt.address.clone(), r));
            }
        }
    }
    rcpts.sort_by(|a, b| a.0.cmp(&b.0));
    let addresses: Vec<&str> = rcpts.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "bob@dest-one.test",
            "dave@dest-one.test",
            "erin@dest-two.test",
            "frank@dest-two.test",
            "grace@dest-three.test",
            "ivan@dest-one.test",
            "mallory@dest-four.test"
        ]
    );
    for (address, r) in &rcpts {
        match &r.status {
            Status::Deferred {
                failure: Failure::Connect { .. },
                remote: Some(_),
            } => {
                assert_eq!(r.attempts, 1, "{address}");
                let reply = r.status.last_reply().unwrap();
                assert!(
                    reply.starts_with("4.4.1 connect to ") && reply.contains("refused"),
                    "{address}: {reply}"
                );
            }
            // Written before the first attempt ended.
            Status::Pending => assert_eq!(r.attempts, 0, "{address}"),
            other => panic!("{address}: {other:?}"),
        }
    }
}

#[test]
fn each_format_1_result_becomes_its_typed_status() {
    let r = convert(&record(
        r#"{"state":"TemporaryFailure","attempts":1,"last_reply":"4.4.1 connect to h[127.0.0.1]:25: Connection refused","status":"4.4.1","remote_mta":"h[127.0.0.1]:25","tls":null,"last_attempt_ms":1700000001000,"decided_by":{"by":"network"}}"#,
    ));
    let rc = &r.rcpts[0];
    assert_eq!(rc.rcpt.address, "b@dest.test");
    assert!(rc.rcpt.notify.unwrap().success);
    assert_eq!(rc.last_attempt_ms, Some(1_700_000_001_000));
    assert_eq!(
        rc.status.last_reply().unwrap(),
        "4.4.1 connect to h[127.0.0.1]:25: Connection refused",
        "the same words as before"
    );
    assert_eq!(rc.status.remote().unwrap().name, "h[127.0.0.1]:25");

    let r = convert(&record(
        r#"{"state":"Failed","attempts":1,"last_reply":"550 5.1.1 no such user","status":"5.1.1","remote_mta":"h[127.0.0.1]:25","tls":null,"last_attempt_ms":1,"decided_by":{"by":"remote_host"}}"#,
    ));
    match &r.rcpts[0].status {
        Status::Failed {
            failure: Failure::Remote { reply },
            ..
        } => assert_eq!(
            (reply.code, reply.text.as_str()),
            (550, "550 5.1.1 no such user")
        ),
        other => panic!("{other:?}"),
    }

    let r = convert(&record(
        r#"{"state":"Failed","attempts":3,"last_reply":"4.7.4 TLS is required, but was not offered by host h","status":"4.7.4","remote_mta":"h","tls":null,"last_attempt_ms":1,"decided_by":{"by":"tls_policy","rule":"[[outbound_tls]] #1","domain":"dest.test"},"expired_after":"24h"}"#,
    ));
    let st = &r.rcpts[0].status;
    assert_eq!(st.name(), "failed");
    assert_eq!(st.code().unwrap(), "4.7.4");
    let f = st.failure().unwrap();
    assert_eq!(f.expired_after(), Some("24h"));
    match f {
        Failure::Expired {
            last: Some(last), ..
        } => assert!(matches!(
            **last,
            Failure::Tls {
                problem: TlsProblem::NotOffered,
                required_by: Some(_),
                ..
            }
        )),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        st.last_reply().unwrap(),
        "4.7.4 TLS is required, but was not offered by host h"
    );

    let r = convert(&record(
        r#"{"state":"Failed","attempts":0,"last_reply":"bounced with mxring queue bounce","status":"5.0.0","remote_mta":null,"tls":null,"last_attempt_ms":1,"decided_by":{"by":"operator"}}"#,
    ));
    assert!(matches!(
        r.rcpts[0].status,
        Status::Failed {
            failure: Failure::Operator,
            ..
        }
    ));

    let r = convert(&record(
        r#"{"state":"Delivered","attempts":1,"last_reply":"250 2.0.0 Ok","status":"2.0.0","remote_mta":"h","tls":null,"last_attempt_ms":1,"decided_by":{"by":"remote_host"}}"#,
    ));
    assert_eq!(r.rcpts[0].status.name(), "delivered");
    assert!(r.all_done());
}
