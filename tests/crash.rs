//! Crash tests of the real binary (issue 6, DESIGN.md "Durability: what 250 means").
//!
//! 1. `kill -9` at random moments under load, restarts on the same spool: every
//!    message that got a 250 reaches the next hop (at least once).
//! 2. SIGTERM with deliveries in flight: the process drains and exits 0, idle
//!    sessions get 421 4.3.2, and after a restart every message arrives exactly once.
//!
//! `MXRING_CRASH_KILLS` sets the number of kills (default 3, the CI form; the full
//! run uses 20). `MXRING_CRASH_SEED` replays the kill moments of a printed seed.
//! On failure the temp dir with the spool and mxring's logs (RUST_LOG=info) is kept
//! and its path printed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mxring_testkit::client::{message, Client, Outcome};
use mxring_testkit::process::Mx;
use mxring_testkit::sink::Sink;
use mxring_testkit::{free_port, grep_logs, settle, Rng, Toml, Workdir};

const CLIENTS: usize = 8;
/// Bound on "every acknowledged message has arrived" after the last restart.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Whether mxring is up, and in which incarnation: clients wait on it instead of
/// retrying connections in a loop while the server is down.
struct Gate {
    state: Mutex<(u64, bool)>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            state: Mutex::new((0, false)),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// A new incarnation is listening.
    fn open(&self) {
        let mut s = self.state.lock().unwrap();
        *s = (s.0 + 1, true);
        self.cv.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap().1 = false;
    }

    fn stop(&self) {
        let _s = self.state.lock().unwrap();
        self.stop.store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Wait for an incarnation newer than `after` to be up; None once stopping.
    fn wait_up(&self, after: u64) -> Option<u64> {
        let mut s = self.state.lock().unwrap();
        loop {
            if self.stopped() {
                return None;
            }
            if s.1 && s.0 > after {
                return Some(s.0);
            }
            s = self.cv.wait(s).unwrap();
        }
    }
}

/// What one client thread saw.
#[derive(Default)]
struct Ledger {
    /// Test id -> mxring queue id, for every message answered 250.
    acked: HashMap<String, String>,
    /// Body sent, no final reply (connection broke): may or may not arrive.
    unacked: Vec<String>,
    /// A final reply other than 250 after the body.
    rejected: Vec<(String, String)>,
    /// Never got as far as the body.
    not_submitted: Vec<String>,
    /// Sample of how connections broke.
    breaks: Vec<String>,
    connects: usize,
}

impl Ledger {
    fn merge(&mut self, o: Ledger) {
        self.acked.extend(o.acked);
        self.unacked.extend(o.unacked);
        self.rejected.extend(o.rejected);
        self.not_submitted.extend(o.not_submitted);
        self.breaks.extend(o.breaks.into_iter().take(2));
        self.connects += o.connects;
    }
}

/// One load thread: reused connections, messages back to back, reconnecting after
/// every break once mxring is up again.
fn load(n: usize, addr: std::net::SocketAddr, gate: &Gate) -> Ledger {
    let mut ledger = Ledger::default();
    let mut seq = 0u64;
    let mut failed_gen = 0;
    'outer: while let Some(gen) = gate.wait_up(failed_gen) {
        let mut smtp = match Client::open(addr, Duration::from_secs(20)) {
            Ok(s) => s,
            Err(_) => {
                // This incarnation is gone; wait for the next one.
                failed_gen = gen;
                continue;
            }
        };
        ledger.connects += 1;
        while !gate.stopped() {
            seq += 1;
            let id = format!("c{n}-{seq}");
            // Mostly small messages; one in 32 is ~180 KB (stored as a sled blob).
            let lines = if seq.is_multiple_of(32) {
                2300
            } else {
                5 + (seq as usize * 7) % 40
            };
            let data = message(&id, lines);
            match smtp.submit("sender@client.test", &format!("{id}@sink.test"), &data) {
                Outcome::Acked(qid) => {
                    ledger.acked.insert(id, qid);
                }
                Outcome::Rejected(r) => {
                    ledger.rejected.push((id, r.1));
                    continue 'outer;
                }
                Outcome::Refused(r) => {
                    ledger.not_submitted.push(id);
                    ledger.breaks.push(format!("refused: {}", r.1.trim()));
                    continue 'outer;
                }
                Outcome::BrokenBefore(e) => {
                    ledger.not_submitted.push(id);
                    ledger.breaks.push(e);
                    continue 'outer;
                }
                Outcome::Broken(e) => {
                    ledger.unacked.push(id);
                    ledger.breaks.push(e);
                    continue 'outer;
                }
            }
        }
        let _ = smtp.send(b"QUIT\r\n");
        break;
    }
    ledger
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// (log file, queue id) for every message that one mxring process logged as
/// delivered more than once ("delivery attempt ... result=delivered" lines).
fn delivered_twice_in_one_run(logs: &[PathBuf]) -> Vec<(String, String)> {
    let mut twice = Vec::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for line in text.lines() {
            if !(line.contains("delivery attempt") && line.contains("result=delivered")) {
                continue;
            }
            if let Some(id) = line
                .split(" id=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                *seen.entry(id).or_default() += 1;
            }
        }
        let name = log.file_name().unwrap().to_string_lossy();
        twice.extend(
            seen.into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(id, _)| (name.to_string(), id.to_string())),
        );
    }
    twice.sort();
    twice
}

/// Wait, at most `limit`, until every id in `ids` has arrived at the sink (woken by
/// each arrival). Gives up early once mxring's queue is empty: the sink counts a
/// message before its 250 and mxring removes it only after that 250, so an id
/// still missing then will never arrive.
fn wait_arrived(sink: &Sink, mx: &Mx, limit: Duration, ids: &[&String]) -> bool {
    // Cheap first test: the full check only once there are enough arrivals.
    let all = |c: &mxring_testkit::sink::Counts| {
        c.arrivals.len() >= ids.len() && ids.iter().all(|id| c.arrivals.contains_key(*id))
    };
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if sink
            .state
            .wait_until(left.min(Duration::from_millis(500)), all)
        {
            return true;
        }
        if left.is_zero() || mx.queue_len() == Some(0) {
            return sink.state.wait_until(Duration::ZERO, all);
        }
    }
}

/// Poll the admin API (bounded; there is no event for "queue empty") until the
/// queue is empty. Returns the last length seen.
fn wait_queue_empty(mx: &Mx, limit: Duration) -> Option<usize> {
    settle(limit, || mx.queue_len(), |n| *n == Some(0))
}

/// The config used by both tests: two shards, plaintext listener on `port`, admin
/// API on an ephemeral port, every domain routed to the sink, retries after 1 s.
fn write_config(work: &Workdir, port: u16, sink: std::net::SocketAddr, extra: &str) -> PathBuf {
    Toml::new(&work.join("spool"), 2)
        .listener("mx", port, "none")
        .admin("127.0.0.1:0")
        .route_all(sink)
        .queue("retry = [\"1s\"]\ndelay_warning_after = \"1h\"\ngive_up_after = \"1h\"")
        .extra(extra)
        .write(work.join("mxring.toml"))
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let started = Instant::now();
    let kills = env_usize("MXRING_CRASH_KILLS", 3);
    let (mut rng, seed) = Rng::from_env_or_time("MXRING_CRASH_SEED");
    eprintln!("crash: kills={kills} seed={seed} (replay with MXRING_CRASH_SEED={seed})");
    let work = Workdir::new("crash");
    // A next hop a little slower than the load (10 ms per message, 4 connections
    // per shard), so that a backlog of acknowledged, undelivered messages builds
    // up in the spool and every kill hits a queue, not just a few messages.
    let sink = Sink::delayed(Duration::from_millis(10));
    let config = write_config(
        &work,
        free_port(),
        sink.addr,
        "[outbound]\nmax_connections_per_host = 4\n",
    );
    let mut logs: Vec<PathBuf> = vec![work.join("run0.log")];
    let mut mx = Mx::start(&config, logs[0].clone());
    let addr = mx.smtp;
    let gate = Arc::new(Gate::new());
    gate.open();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let gate = gate.clone();
            std::thread::spawn(move || load(n, addr, &gate))
        })
        .collect();

    let mut moments = Vec::new();
    for k in 1..=kills {
        let delay = rng.range(100, 600);
        moments.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        gate.close();
        mx.kill9();
        logs.push(work.join(&format!("run{k}.log")));
        mx = Mx::start(&config, logs[k].clone());
        assert_eq!(mx.smtp, addr, "the listener moved");
        gate.open();
    }
    let load_time = started.elapsed();
    gate.stop();
    let mut ledger = Ledger::default();
    for c in clients {
        ledger.merge(c.join().expect("client thread panicked"));
    }
    eprintln!(
        "crash: load {:.1?}, kill moments {moments:?} ms, {} connections, {} acknowledged, \
         {} unacknowledged, {} rejected, {} never submitted; sample breaks: {:?}",
        load_time,
        ledger.connects,
        ledger.acked.len(),
        ledger.unacked.len(),
        ledger.rejected.len(),
        ledger.not_submitted.len(),
        ledger.breaks.iter().take(4).collect::<Vec<_>>()
    );
    assert!(!ledger.acked.is_empty(), "no message was ever acknowledged");

    // Drain into the sink, now answering at once: every acknowledged id must
    // arrive (bounded).
    sink.set_delay(Duration::ZERO);
    let drain_start = Instant::now();
    let acked: Vec<&String> = ledger.acked.keys().collect();
    let all_arrived = wait_arrived(&sink, &mx, DRAIN_LIMIT, &acked);
    let drained_in = drain_start.elapsed();
    // Let the queue empty too, so that late redeliveries (duplicates) are counted.
    let left = if all_arrived {
        wait_queue_empty(&mx, Duration::from_secs(20))
    } else {
        mx.queue_len()
    };

    let c = sink.state.counts();
    let lost: Vec<&String> = ledger
        .acked
        .keys()
        .filter(|id| !c.arrivals.contains_key(*id))
        .collect();
    let duplicated = c.arrivals.values().filter(|&&n| n > 1).count();
    // Duplicates are excusable only across a crash (a delivery answered 250 whose
    // removal the killed process had not committed). One process reporting the
    // same message delivered twice has no such excuse.
    let twice_in_one_run = delivered_twice_in_one_run(&logs);
    let unacked_arrived = ledger
        .unacked
        .iter()
        .filter(|id| c.arrivals.contains_key(*id))
        .count();
    let rejected_arrived: Vec<&String> = ledger
        .rejected
        .iter()
        .map(|(id, _)| id)
        .filter(|id| c.arrivals.contains_key(*id))
        .collect();
    let known: HashSet<&String> = ledger
        .acked
        .keys()
        .chain(&ledger.unacked)
        .chain(ledger.rejected.iter().map(|(id, _)| id))
        .collect();
    let phantoms: Vec<&String> = c.arrivals.keys().filter(|id| !known.contains(id)).collect();
    let line = format!(
        "crash: kills={kills} acknowledged={} lost={} duplicated={duplicated} \
         unacknowledged_arrived={unacked_arrived} seed={seed}",
        ledger.acked.len(),
        lost.len()
    );
    eprintln!("{line}");
    eprintln!(
        "crash: drained in {drained_in:.1?}; queue left {left:?}; unacknowledged={} \
         rejected={} rejected_arrived={} never_submitted_arrived={} corrupt={} without_id={} \
         delivered_twice_by_one_process={} total {:.1?}",
        ledger.unacked.len(),
        ledger.rejected.len(),
        rejected_arrived.len(),
        phantoms.len(),
        c.corrupt.len(),
        c.without_id,
        twice_in_one_run.len(),
        started.elapsed()
    );

    if !lost.is_empty()
        || !c.corrupt.is_empty()
        || !phantoms.is_empty()
        || !twice_in_one_run.is_empty()
    {
        let qids: Vec<String> = lost
            .iter()
            .take(10)
            .map(|id| ledger.acked[*id].clone())
            .chain(twice_in_one_run.iter().take(10).map(|(_, q)| q.clone()))
            .collect();
        eprintln!(
            "crash: FAILURE; logs in {}; lost (test id -> queue id), first 10: {:?}",
            work.path().display(),
            lost.iter()
                .take(10)
                .map(|id| format!("{id} -> {}", ledger.acked[*id]))
                .collect::<Vec<_>>()
        );
        for l in grep_logs(&logs, &qids).iter().take(60) {
            eprintln!("  {l}");
        }
        eprintln!(
            "crash: corrupt bodies: {:?}; arrived but never submitted: {:?}; \
             delivered twice by one process (log, queue id): {:?}",
            c.corrupt.iter().take(10).collect::<Vec<_>>(),
            phantoms.iter().take(10).collect::<Vec<_>>(),
            twice_in_one_run.iter().take(10).collect::<Vec<_>>()
        );
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged message(s) never arrived: {line}",
        lost.len()
    );
    assert!(
        c.corrupt.is_empty(),
        "bodies changed in transit: {:?}",
        c.corrupt
    );
    assert!(
        phantoms.is_empty(),
        "messages arrived that were never submitted: {phantoms:?}"
    );
    assert!(
        twice_in_one_run.is_empty(),
        "one process delivered the same message twice (log, queue id): {twice_in_one_run:?}"
    );
    drop(c);

    mx.sigterm();
    let status = mx.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "mxring did not stop cleanly on SIGTERM: {status:?}; log {}",
        logs.last().unwrap().display()
    );
}

#[test]
fn sigterm_drains_without_loss_or_duplicates() {
    const MESSAGES: usize = 200;
    const SENDERS: usize = 4;
    let started = Instant::now();
    let work = Workdir::new("sigterm");
    let sink = Sink::delayed(Duration::from_millis(300));
    // Few deliveries per shard, so that at SIGTERM some are in flight and most are
    // still queued (they must wait for the restart, not be lost or doubled).
    let config = write_config(
        &work,
        free_port(),
        sink.addr,
        "[outbound]\nmax_deliveries_per_shard = 8\n",
    );
    let logs = [work.join("run0.log"), work.join("run1.log")];
    let mx = Mx::start(&config, logs[0].clone());
    let addr = mx.smtp;

    let senders: Vec<_> = (0..SENDERS)
        .map(|n| {
            let log = logs[0].clone();
            std::thread::spawn(move || {
                let mut smtp = Client::open(addr, Duration::from_secs(30)).unwrap();
                let mut acked = Vec::new();
                for i in 0..MESSAGES / SENDERS {
                    let id = format!("s{n}-{i}");
                    let data = message(&id, 10 + i % 30);
                    match smtp.submit("sender@client.test", &format!("{id}@sink.test"), &data) {
                        Outcome::Acked(q) => acked.push((id, q)),
                        other => panic!("{id}: {other:?}; log {}", log.display()),
                    }
                }
                let _ = smtp.send(b"QUIT\r\n");
                let _ = smtp.try_reply();
                acked
            })
        })
        .collect();
    let acked: HashMap<String, String> = senders
        .into_iter()
        .flat_map(|t| t.join().expect("sender panicked"))
        .collect();
    assert_eq!(acked.len(), MESSAGES);
    let sent_in = started.elapsed();

    // An idle session, open at SIGTERM time: it must be told 421 4.3.2.
    let mut idle = Client::open(addr, Duration::from_secs(40)).unwrap();
    assert!(
        sink.state
            .wait_until(Duration::from_secs(10), |c| c.in_flight > 0),
        "no delivery in flight; log {}",
        logs[0].display()
    );
    let (in_flight, before) = {
        let c = sink.state.counts();
        (c.in_flight, c.arrivals.len())
    };
    let term_at = Instant::now();
    mx.sigterm();
    let idle_reply = idle.try_reply();
    let status = mx.wait_exit(Duration::from_secs(60));
    let stop_time = term_at.elapsed();
    let (at_exit, abandoned) = {
        let c = sink.state.counts();
        (c.arrivals.len(), c.abandoned.clone())
    };
    eprintln!(
        "sigterm: {MESSAGES} acknowledged in {sent_in:.1?}; at SIGTERM {in_flight} in flight, \
         {before} delivered; exit after {stop_time:.1?} with {status:?}; {at_exit} delivered \
         at exit, {} abandoned in flight; idle session got {idle_reply:?}",
        abandoned.len()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "mxring did not exit successfully within 60 s of SIGTERM: {status:?}; log {}",
        logs[0].display()
    );
    match &idle_reply {
        Ok((421, text)) if text.contains("4.3.2") => {}
        other => panic!(
            "idle session at SIGTERM got {other:?}, not 421 4.3.2; log {}",
            logs[0].display()
        ),
    }

    // Restart on the same spool with a sink that answers at once.
    sink.set_delay(Duration::ZERO);
    let mx = Mx::start(&config, logs[1].clone());
    let restart_at = Instant::now();
    let all = wait_arrived(
        &sink,
        &mx,
        Duration::from_secs(60),
        &acked.keys().collect::<Vec<_>>(),
    );
    let left = if all {
        wait_queue_empty(&mx, Duration::from_secs(20))
    } else {
        mx.queue_len()
    };
    let c = sink.state.counts();
    let missing: Vec<String> = acked
        .keys()
        .filter(|id| !c.arrivals.contains_key(*id))
        .cloned()
        .collect();
    let mut doubled: Vec<(String, u32)> = c
        .arrivals
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(id, &n)| (id.clone(), n))
        .collect();
    doubled.sort();
    eprintln!(
        "sigterm: messages={MESSAGES} arrived={} missing={} duplicated={} abandoned={} \
         corrupt={} queue_left={left:?}; rest delivered {:.1?} after restart; total {:.1?}",
        c.arrivals.len(),
        missing.len(),
        doubled.len(),
        c.abandoned.len(),
        c.corrupt.len(),
        restart_at.elapsed(),
        started.elapsed()
    );
    if !missing.is_empty() || !doubled.is_empty() {
        let ids: Vec<&String> = missing
            .iter()
            .chain(doubled.iter().map(|(id, _)| id))
            .collect();
        let qids: Vec<String> = ids.iter().take(10).map(|id| acked[*id].clone()).collect();
        eprintln!(
            "sigterm: FAILURE; logs in {}; missing {:?}; duplicated {:?}; queue ids {qids:?}",
            work.path().display(),
            missing.iter().take(10).collect::<Vec<_>>(),
            doubled.iter().take(10).collect::<Vec<_>>()
        );
        for l in grep_logs(&logs, &qids).iter().take(60) {
            eprintln!("  {l}");
        }
    }
    assert!(
        missing.is_empty(),
        "{} message(s) never arrived",
        missing.len()
    );
    assert!(
        doubled.is_empty(),
        "graceful stop duplicated {} message(s): {:?}",
        doubled.len(),
        doubled.iter().take(10).collect::<Vec<_>>()
    );
    assert!(c.corrupt.is_empty(), "bodies changed: {:?}", c.corrupt);
    drop(c);

    mx.sigterm();
    let status = mx.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "second stop: {status:?}"
    );
}
