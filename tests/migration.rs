//! Issue 10, item 5: a spool written by the first store (format 1, sled only,
//! committed in tests/fixtures/spool-v1) is opened by this build, migrated to the
//! log-and-index format, and every message in it is delivered, byte for byte, to
//! every one of its recipients. A spool marked with a newer format is refused with
//! a clear message, and nothing in it is touched.

use std::path::{Path, PathBuf};

use std::time::Duration;

use mxring_testkit::process::Mx;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{free_port, loopback, wait_until, Toml, Workdir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spool-v1")
}

/// A copy of the fixture (the test must not change the committed files).
fn copy_fixture(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["conf", "db"] {
        std::fs::copy(fixture().join(name), to.join(name)).unwrap();
    }
}

/// Two shards, every domain to `hop`. The fixture's messages were queued on
/// 2026-12-01 and age with the calendar: no delay or give-up time may fire.
fn config(work: &Workdir, port: u16, hop: u16) -> PathBuf {
    Toml::new(&work.join("spool"), 2)
        .listener("mx", port, "none")
        .admin("127.0.0.1:0")
        .route_all(loopback(hop))
        .queue("retry = [\"1h\"]\ndelay_warning_after = \"3650d\"\ngive_up_after = \"3650d\"")
        .write(work.join("mxring.toml"))
}

/// What the fixture holds (see its README): message id, recipients, and a line
/// the body must contain so many times.
const EXPECTED: [(&str, &[&str], &str, usize); 5] = [
    ("fx1", &["bob@dest-one.test"], "first fixture message", 1),
    (
        "fx2",
        &[
            "dave@dest-one.test",
            "erin@dest-two.test",
            "frank@dest-two.test",
        ],
        "three recipients",
        1,
    ),
    ("fx3", &["grace@dest-three.test"], "bounce-like", 1),
    ("fx4", &["ivan@dest-one.test"], "X-Pad: bbbbbbbb", 4000),
    ("fx5", &["mallory@dest-four.test"], "\r\nline\r\n", 1000),
];

fn message_id(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let line = text.lines().find(|l| l.starts_with("Message-ID: <"))?;
    Some(line["Message-ID: <".len()..].split('@').next()?.to_string())
}

#[test]
fn a_format_1_spool_is_migrated_and_every_message_delivered() {
    let work = Workdir::new("migration");
    let spool = work.join("spool");
    copy_fixture(&spool);
    // The next hop is down at first, so the migrated queue can be looked at whole.
    let hop = free_port();
    let cfg = config(&work, free_port(), hop);
    let mx = Mx::start(&cfg, work.join("mxring.log"));

    // Migrated with their schedule and status: all five are queued.
    let admin = mxring::admin::AdminClient::new(mx.admin.unwrap());
    let (status, body) = admin.request("GET", "/queue").unwrap();
    assert_eq!(status, 200, "{body}");
    let queued: Vec<mxring::admin::MessageView> = serde_json::from_str(&body).unwrap();
    let mut senders: Vec<&str> = queued.iter().map(|m| m.sender.as_str()).collect();
    senders.sort_unstable();
    assert_eq!(
        senders,
        [
            "",
            "alice@origin.test",
            "carol@origin.test",
            "heidi@origin.test",
            "judy@origin.test"
        ],
        "the migrated queue is not the fixture's"
    );
    // The next hop comes up and the operator asks for them now.
    let sink = Sink::start_at(&format!("127.0.0.1:{hop}"), Script::default());
    sink.keep();
    for m in &queued {
        let what = format!("the retry of {} to be taken", m.id);
        wait_until(Duration::from_secs(30), &what, || {
            let (status, body) = admin
                .request("POST", &format!("/queue/{}/retry", m.id))
                .unwrap();
            match status {
                // 404: the attempt due at start found the hop up and delivered it.
                200 | 404 => true,
                // An attempt (the one due at start) is still running.
                409 => false,
                _ => panic!("retry of {}: {status} {body}", m.id),
            }
        })
        .unwrap();
    }

    let wanted: usize = EXPECTED.iter().map(|(_, r, _, _)| r.len()).sum();
    let all_in = sink.state.wait_until(Duration::from_secs(60), |c| {
        c.kept.iter().map(|k| k.recipients.len()).sum::<usize>() >= wanted
    });
    let kept = sink.state.counts().kept.clone();
    assert!(
        all_in,
        "not every recipient of the fixture got its message: {} of {wanted} arrived",
        kept.iter().map(|k| k.recipients.len()).sum::<usize>()
    );
    for (id, rcpts, line, times) in EXPECTED {
        let copies: Vec<_> = kept
            .iter()
            .filter(|k| message_id(&k.data).as_deref() == Some(id))
            .collect();
        let mut got: Vec<&str> = copies
            .iter()
            .flat_map(|k| k.recipients.iter().map(String::as_str))
            .collect();
        got.sort_unstable();
        assert_eq!(got, rcpts, "{id} went to the wrong recipients");
        for k in copies {
            let text = String::from_utf8_lossy(&k.data);
            assert_eq!(
                text.matches(line).count(),
                times,
                "{id}'s body did not come through whole"
            );
        }
    }
    let logs = [mx.log.clone()];
    let migrated = mxring_testkit::grep_logs(&logs, &["spool migrated from format 1".to_string()]);
    assert_eq!(migrated.len(), 1, "the migration was not logged once");
    wait_until(
        Duration::from_secs(30),
        "the queue to empty after delivery",
        || mx.queue_len() == Some(0),
    )
    .unwrap();
    mx.sigterm();
    assert!(mx.wait_exit(Duration::from_secs(30)).is_some());
    // Migrated once: a restart finds format 2 and nothing left to deliver.
    let mx = Mx::start(&cfg, work.join("mxring-2.log"));
    assert_eq!(mx.queue_len(), Some(0));
    let again = mxring_testkit::grep_logs(
        std::slice::from_ref(&mx.log),
        &["spool migrated".to_string()],
    );
    assert!(again.is_empty(), "migrated a second time: {again:?}");
    assert_eq!(
        sink.state.counts().kept.len(),
        kept.len(),
        "something was delivered again after the restart"
    );
}

#[test]
fn a_spool_of_a_newer_format_is_refused_and_left_alone() {
    let work = Workdir::new("migration-newer");
    let spool = work.join("spool");
    copy_fixture(&spool);
    {
        let db = sled::Config::new()
            .path(&spool)
            .segment_size(8 << 20)
            .open()
            .unwrap();
        db.insert(b"mxring/spool-format", &3u32.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let before = std::fs::read(spool.join("db")).unwrap();
    let sink = Sink::start(Script::default());
    let cfg = config(&work, free_port(), sink.addr.port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mxring started on a newer spool");
    assert!(
        stderr.contains("is of format 3, written by a newer mxring"),
        "the refusal does not say why: {stderr}"
    );
    assert!(
        !spool.join("wal").exists(),
        "the refused spool was written to"
    );
    assert_eq!(
        std::fs::read(spool.join("db")).unwrap(),
        before,
        "the refused spool's index was changed"
    );
    assert_eq!(sink.state.counts().without_id, 0);
}
