//! Issue 10, items 3 and 4, end to end on the real binary: the log's disk use stays
//! bounded under a steady load with a few messages held back (compaction copies
//! them forward), and after kill -9 a damaged record in the middle of the log is
//! quarantined while the records around it are recovered and delivered, and a torn
//! tail is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mxring_testkit::client::{message, Client, Outcome};
use mxring_testkit::process::Mx;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{free_port, loopback, wait_until, Toml, Workdir};

/// One shard (so the records sit in one log, in order), every domain to `sink`
/// except held.test, which goes to `held` (nobody listens there until the test
/// says so).
fn config(work: &Workdir, port: u16, sink: u16, held: u16, queue: &str) -> PathBuf {
    Toml::new(&work.join("spool"), 1)
        .listener("mx", port, "none")
        .admin("127.0.0.1:0")
        .extra("[outbound]\nunreachable_hold = \"0s\"")
        .route("\"held.test\"", loopback(held))
        .route_all(loopback(sink))
        .queue(&format!(
            "delay_warning_after = \"1h\"\ngive_up_after = \"1h\"\n{queue}"
        ))
        .write(work.join("mxring.toml"))
}

fn submit(addr: std::net::SocketAddr, to: &str, id: &str, lines: usize) {
    let mut c = Client::open(addr, Duration::from_secs(30)).unwrap();
    match c.submit("sender@client.test", to, &message(id, lines)) {
        Outcome::Acked(_) => {}
        other => panic!("{id} was not accepted: {other:?}"),
    }
    let _ = c.send(b"QUIT\r\n");
}

/// Octets of segment files in a shard's log directory.
fn log_bytes(spool: &Path) -> u64 {
    let dir = spool.join("wal").join("shard0");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// 1 MiB segments; 400 messages of about 20 KiB pass through to the sink (8 MiB,
/// eight segments' worth), and every 50th goes to a host that is down, so eight
/// held messages sit in eight different segments. Without compaction those eight
/// segments stay on disk for as long as the messages wait (thirteen with the
/// active one and the four free ones kept for reuse); with it, they are copied
/// forward and the log shrinks to the segments in use: the stated bound is seven
/// (the active one, four free, one draining, one the held messages fill).
#[test]
fn disk_use_stays_bounded_with_messages_held_back() {
    const SEGMENT: u64 = 1 << 20;
    const BOUND: u64 = 7 * SEGMENT;
    let work = Workdir::new("compaction");
    let sink = Sink::start(Script::default());
    let held_port = free_port();
    let cfg = config(
        &work,
        free_port(),
        sink.addr.port(),
        held_port,
        "retry = [\"1h\"]\nsegment_size = \"1MiB\"\ncompact_after = \"1s\"\n",
    );
    let mx = Mx::start(&cfg, work.join("mxring.log"));
    let mut held = Vec::new();
    for i in 0..400 {
        let id = format!("m{i:03}");
        if i % 50 == 25 {
            submit(mx.smtp, "someone@held.test", &id, 240);
            held.push(id);
        } else {
            submit(mx.smtp, "rcpt@sink.test", &id, 240);
        }
    }
    let passed = 400 - held.len();
    assert!(
        sink.state
            .wait_until(Duration::from_secs(60), |c| c.arrivals.len() >= passed),
        "the load did not get through: {} of {passed}",
        sink.state.counts().arrivals.len()
    );
    let spool = work.join("spool");
    let mut seen = 0;
    wait_until(Duration::from_secs(30), "the log to shrink to its bound", || {
        seen = log_bytes(&spool);
        seen <= BOUND
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: the log still takes {seen} octets, over the bound of {BOUND}, with {} messages held",
            held.len()
        )
    });
    let compacted = mxring_testkit::grep_logs(
        std::slice::from_ref(&mx.log),
        &["log segment compacted".to_string()],
    );
    assert!(
        !compacted.is_empty(),
        "the log shrank below the bound without compaction, so this test proves nothing"
    );
    // The held messages survived being moved: they arrive whole once their host is up.
    let held_sink = Sink::start_at(&format!("127.0.0.1:{held_port}"), Script::default());
    let admin = mxring::admin::AdminClient::new(mx.admin.unwrap());
    let (_, body) = admin.request("GET", "/queue").unwrap();
    let queued: Vec<mxring::admin::MessageView> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        queued.len(),
        held.len(),
        "the held messages are not all queued"
    );
    for m in &queued {
        let (status, text) = admin
            .request("POST", &format!("/queue/{}/retry", m.id))
            .unwrap();
        assert_eq!(status, 200, "{text}");
    }
    assert!(
        held_sink.state.wait_until(Duration::from_secs(30), |c| held
            .iter()
            .all(|id| c.arrivals.contains_key(id))),
        "held messages lost after compaction: {:?}",
        held_sink.state.counts().arrivals
    );
    assert!(
        held_sink.state.counts().corrupt.is_empty(),
        "a held message was damaged by compaction"
    );
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_damaged_record_is_quarantined_and_its_neighbours_delivered() {
    let work = Workdir::new("log-damage");
    let sink_port = free_port();
    let cfg = config(
        &work,
        free_port(),
        sink_port,
        free_port(),
        "retry = [\"1s\"]\n",
    );
    let mx = Mx::start(&cfg, work.join("mxring-1.log"));
    // The next hop is down: all three stay queued, one after another in the log.
    for id in ["first", "middle", "last"] {
        submit(mx.smtp, "rcpt@sink.test", id, 40);
    }
    mx.kill9();

    // The index is lost with the crash (the log is the truth)...
    let spool = work.join("spool");
    for entry in std::fs::read_dir(&spool).unwrap().flatten() {
        let name = entry.file_name();
        if name != "wal" && name != "tls" {
            let p = entry.path();
            if p.is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    // ...a bit of the middle record rots, and a write cut short follows the last.
    let segment = spool.join("wal").join("shard0").join("000000.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = find(&bytes, b"X-Test-Id: middle").expect("the middle message in the log");
    bytes[middle + 40] ^= 0x20;
    let last = find(&bytes, b"last line 000039").expect("the last message in the log");
    let end = last + find(&bytes[last..], &[0u8; 64]).unwrap();
    let end = end.next_multiple_of(8);
    let first_record = find(&bytes, b"MXRW").unwrap();
    let torn: Vec<u8> = bytes[first_record..first_record + 200].to_vec();
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();

    let sink = Sink::start_at(&format!("127.0.0.1:{sink_port}"), Script::default());
    let mx = Mx::start(&cfg, work.join("mxring-2.log"));
    assert!(
        sink.state.wait_until(Duration::from_secs(30), |c| c
            .arrivals
            .contains_key("first")
            && c.arrivals.contains_key("last")),
        "the records around the damage were not recovered: {:?}",
        sink.state.counts().arrivals
    );
    let counts = sink.state.counts();
    assert_eq!(counts.arrivals.get("first"), Some(&1));
    assert_eq!(counts.arrivals.get("last"), Some(&1));
    assert!(
        !counts.arrivals.contains_key("middle"),
        "a damaged record was delivered"
    );
    assert!(counts.corrupt.is_empty());
    drop(counts);

    let logs = [mx.log.clone()];
    let said = |needle: &str| !mxring_testkit::grep_logs(&logs, &[needle.to_string()]).is_empty();
    assert!(
        said("damaged log record moved to quarantine"),
        "the damage was not logged"
    );
    assert!(
        said("dropped the torn end of the log"),
        "the torn tail was not logged"
    );
    let quarantined: Vec<PathBuf> = std::fs::read_dir(spool.join("quarantine"))
        .expect("a quarantine directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let kept = std::fs::read(&quarantined[0]).unwrap();
    assert!(
        find(&kept, b"middle line 000001").is_some(),
        "the quarantined octets are not the damaged record"
    );
    let (_, metrics) = mxring::admin::AdminClient::new(mx.admin.unwrap())
        .request("GET", "/metrics")
        .unwrap();
    assert!(
        metrics.contains("mxring_store_damaged_records_total 1"),
        "the damage is not counted: {}",
        metrics
            .lines()
            .filter(|l| l.contains("damaged"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A message larger than a segment gets a file of its own, is delivered whole, and
/// its file goes once it is delivered.
#[test]
fn a_message_larger_than_a_segment_gets_its_own_file() {
    let work = Workdir::new("oversize");
    let sink = Sink::start(Script::default());
    let cfg = config(
        &work,
        free_port(),
        sink.addr.port(),
        free_port(),
        "retry = [\"1s\"]\nsegment_size = \"1MiB\"\n",
    );
    let mx = Mx::start(&cfg, work.join("mxring.log"));
    // About 2.6 MB: more than two segments.
    submit(mx.smtp, "rcpt@sink.test", "big", 30_000);
    submit(mx.smtp, "rcpt@sink.test", "small", 10);
    assert!(
        sink.state
            .wait_until(Duration::from_secs(30), |c| c.arrivals.contains_key("big")
                && c.arrivals.contains_key("small")),
        "not delivered: {:?}",
        sink.state.counts().arrivals
    );
    assert!(
        sink.state.counts().corrupt.is_empty(),
        "the large message was damaged"
    );
    let spool = work.join("spool");
    let mut seen = 0;
    wait_until(
        Duration::from_secs(10),
        "the large message's file to go",
        || {
            seen = log_bytes(&spool);
            seen <= 3 << 20
        },
    )
    .unwrap_or_else(|e| {
        panic!("{e}: the large message's own file stayed after delivery: {seen} octets of log")
    });
}
