//! The load generator: one thread per connection, a shared message budget, a deadline.
//!
//! A thread per connection keeps each connection's code a plain sequence of blocking
//! calls, and with small stacks a few thousand threads are cheap; the benchmark's limit is
//! the server under test, not the scheduler.

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::cli::{ClientTls, LoadArgs};
use crate::message::{write_headers, BodyPool, Envelope};
use crate::report::LoadReport;
use crate::signal;
use crate::smtp_client::{ClientOpts, Failure, Session};
use crate::stats::{record, Counters, WorkerStats};
use crate::tls;

/// Enough for rustls handshakes and our buffers, small enough for thousands of threads.
const WORKER_STACK: usize = 256 * 1024;
/// When a run is bounded only by message count, it still must end by itself.
const MESSAGES_ONLY_DEADLINE: Duration = Duration::from_secs(3600);
/// Time allowed past --duration for in-flight transactions and QUITs to finish.
const DURATION_GRACE: Duration = Duration::from_secs(60);
/// Pause after a failed connection attempt so a dead server is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// State every worker reads.
struct Shared {
    opts: ClientOpts,
    pool: BodyPool,
    env: Envelope,
    counters: Counters,
    budget: Option<u64>,
    claimed: AtomicU64,
    stop: AtomicBool,
    /// End of --duration; set once every worker thread exists (see `run`).
    soft_end: OnceLock<Instant>,
    duration: Option<Duration>,
    connections: u32,
    /// Start of the run; with --rate, every worker's send schedule counts from here.
    started: OnceLock<Instant>,
    /// With --rate: the time between two messages on one connection.
    pace: Option<Duration>,
    new_connection_per_message: bool,
    run_id: u32,
}

impl Shared {
    /// Takes the right to send one more message, or says the run is over.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self
            .soft_end
            .get()
            .is_some_and(|end| Instant::now() >= *end)
        {
            return false;
        }
        match self.budget {
            Some(max) => self.claimed.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }
}

pub fn run(args: LoadArgs) -> Result<i32, String> {
    let addrs: Vec<_> = args
        .target
        .to_socket_addrs()
        .map_err(|e| format!("--target {}: {e}", args.target))?
        .collect();
    let host = args
        .target
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&args.target);
    let tls_config = match args.tls {
        ClientTls::None => None,
        _ => Some(tls::client_config(args.tls_version)?),
    };
    let sizes = match &args.size_dist {
        Some(d) => d.0.clone(),
        None => vec![(args.size, 1)],
    };

    let server_name = tls::server_name(host)?;
    if let Some(cfg) = &tls_config {
        tls::warm_up(cfg, server_name.clone());
    }

    let shared = Arc::new(Shared {
        opts: ClientOpts {
            addrs,
            tls: args.tls,
            tls_config,
            server_name,
            helo: args.helo.clone(),
            timeout: Duration::from_secs(args.timeout.max(1)),
            allow_pipelining: !args.no_pipelining,
        },
        pool: BodyPool::new(&sizes),
        env: Envelope::new(&args.from, &args.to_domain, args.recipients),
        counters: Counters::default(),
        budget: args.messages,
        claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        soft_end: OnceLock::new(),
        duration: args.duration.map(Duration::from_secs),
        connections: args.connections,
        started: OnceLock::new(),
        pace: args
            .rate
            .map(|r| Duration::from_secs_f64(f64::from(args.connections) / r)),
        new_connection_per_message: args.new_connection_per_message,
        run_id: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0),
    });
    signal::install();

    // Workers wait at the barrier until all are spawned and the clock has started: on a
    // small machine the first workers would otherwise hog the CPU while the rest are still
    // being created, and a --duration run would end with many connections never used.
    let barrier = Arc::new(Barrier::new(args.connections as usize + 1));
    let (tx, rx) = mpsc::channel();
    for id in 0..args.connections {
        let worker_shared = shared.clone();
        let barrier = barrier.clone();
        let tx = tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("conn-{id}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                barrier.wait();
                let stats = worker(id, &worker_shared);
                let _ = tx.send(stats);
            });
        if let Err(e) = spawned {
            // The workers already spawned wait at the barrier forever; exiting ends them.
            return Err(format!("spawning connection thread {id}: {e}"));
        }
    }
    drop(tx);
    let start = Instant::now();
    let _ = shared.started.set(start);
    if let Some(d) = shared.duration {
        let _ = shared.soft_end.set(start + d);
    }
    let hard_end = start
        + match shared.duration {
            Some(d) => d + DURATION_GRACE,
            None => MESSAGES_ONLY_DEADLINE,
        };
    barrier.wait();

    let bar = progress_bar(&args);
    let mut merged = WorkerStats::default();
    let mut finished = 0;
    let mut deadline_hit = false;
    while finished < args.connections {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(stats) => {
                merged.merge(&stats);
                finished += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if signal::interrupted() {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if Instant::now() >= hard_end {
            // Workers stuck past the deadline are abandoned; process exit ends them.
            deadline_hit = true;
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        update_progress(&bar, &shared, start, &args);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if deadline_hit {
        merged.error("deadline");
    }

    let c = &shared.counters;
    let report = LoadReport::new(&args, c.ok(), c.failed(), c.body_bytes(), elapsed, &merged);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(if report.success() { 0 } else { 1 })
}

fn worker(id: u32, shared: &Shared) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut rng = SmallRng::from_entropy();
    let mut session: Option<Session> = None;
    let mut buf = Vec::new();
    let mut seq = 0u64;
    let counters = &shared.counters;
    let mut pacer = shared
        .pace
        .map(|interval| Pacer::new(shared, id, shared.connections, interval));
    loop {
        if let Some(p) = pacer.as_mut() {
            if !p.wait_for_slot(shared) {
                break;
            }
        }
        if !shared.claim() {
            break;
        }
        seq += 1;
        if session.is_none() {
            match Session::open(&shared.opts) {
                Ok(s) => {
                    stats.connections += 1;
                    record(&mut stats.connect, s.connect_time);
                    if let Some(h) = s.handshake_time {
                        record(&mut stats.handshake, h);
                    }
                    session = Some(s);
                }
                Err(f) => {
                    // The claimed message could not be sent: it counts as failed, which
                    // also keeps a --messages run against a dead server bounded.
                    stats.failure(f.key(), || f.detail());
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(RECONNECT_BACKOFF);
                    continue;
                }
            }
        }
        let s = session.as_mut().expect("opened above");

        let body = shared.pool.pick(&mut rng);
        buf.clear();
        let msg_id = format!("{:08x}.{id}.{seq}", shared.run_id);
        write_headers(&mut buf, &shared.env, &msg_id, SystemTime::now());
        buf.extend_from_slice(body);
        buf.extend_from_slice(b".\r\n");

        match s.send(&shared.env, &buf) {
            Ok(sent) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters
                    .body_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                record(&mut stats.data_latency, sent.data_latency);
                for code in sent.rejected_rcpts {
                    stats.error(code.to_string());
                }
            }
            Err(f) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                stats.failure(f.key(), || f.detail());
                if matches!(f, Failure::Closed | Failure::Io(_)) {
                    thread::sleep(RECONNECT_BACKOFF);
                }
            }
        }
        if s.dead || shared.new_connection_per_message {
            let s = session.take().expect("session is open here");
            if !s.dead {
                s.quit();
            }
        }
    }
    if let Some(s) = session {
        s.quit();
    }
    stats
}

/// A fixed send schedule for one connection (open loop): the server's latency does not
/// slow the offered load down, unless a reply takes longer than the interval.
struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    fn new(shared: &Shared, id: u32, connections: u32, interval: Duration) -> Pacer {
        let start = *shared.started.get().unwrap_or(&Instant::now());
        // Connections start staggered over one interval, so the offered load is even
        // rather than arriving in bursts of one message per connection.
        let offset = interval.mul_f64(f64::from(id) / f64::from(connections.max(1)));
        Pacer {
            next: start + offset,
            interval,
        }
    }

    /// Sleeps until this connection's next slot; false when the run ends first.
    fn wait_for_slot(&mut self, shared: &Shared) -> bool {
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return false;
            }
            if shared.soft_end.get().is_some_and(|end| self.next >= *end) {
                return false;
            }
            let now = Instant::now();
            if now >= self.next {
                break;
            }
            // In short steps, so Ctrl-C is seen even at very low rates.
            thread::sleep((self.next - now).min(Duration::from_millis(100)));
        }
        let now = Instant::now();
        self.next += self.interval;
        // A server that fell behind by more than a slot gets no burst to catch up.
        if self.next + self.interval < now {
            self.next = now;
        }
        true
    }
}

fn progress_bar(args: &LoadArgs) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    // The bar tracks whichever bound is set; with both, message count is the more exact.
    let bar = match (args.messages, args.duration) {
        (Some(m), _) => ProgressBar::new(m),
        (None, Some(d)) => ProgressBar::new(d),
        (None, None) => ProgressBar::new_spinner(),
    };
    let unit = if args.messages.is_some() { "msgs" } else { "s" };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit}  {{msg}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}

fn update_progress(bar: &ProgressBar, shared: &Shared, start: Instant, args: &LoadArgs) {
    let c = &shared.counters;
    let done = c.ok() + c.failed();
    let secs = start.elapsed().as_secs_f64();
    if args.messages.is_some() {
        bar.set_position(done);
    } else {
        bar.set_position(secs as u64);
    }
    let rate = if secs > 0.0 {
        c.ok() as f64 / secs
    } else {
        0.0
    };
    bar.set_message(format!("{rate:.0} msg/s, {} failed", c.failed()));
}
