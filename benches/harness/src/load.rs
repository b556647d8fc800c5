//! The load generator: a few threads, each a current-thread tokio runtime running its
//! share of the connections as tasks. A shared message budget and deadline end the run;
//! every message claimed is counted as accepted or failed, with the reason.
//!
//! Threads of this process: one per --threads, plus the main thread (which only
//! watches the clock, the signal flag and the progress bar).

use std::cell::RefCell;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mxring::proto::client::{OutboundRcpt, OutboundTx, TxOutcome};
use mxring::proto::envelope::BodyType;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinSet, LocalSet};

use crate::cli::{ClientTls, LoadArgs, OnOff};
use crate::client::{Client, ClientOpts, Message, SetupTimes, TxTimes};
use crate::failure::Failure;
use crate::limits;
use crate::message::{write_headers, BodyPool, Envelope, DEFAULT_MIX};
use crate::progress::Progress;
use crate::report::{LoadReport, RunFacts};
use crate::schedule::{Offered, Pacer};
use crate::signal;
use crate::stats::{record, Counters, ThreadStats};
use crate::tls;

/// When a run is bounded only by message count, it still must end by itself.
const MESSAGES_ONLY_DEADLINE: Duration = Duration::from_secs(3600);
/// Time allowed past --duration for in-flight transactions and QUITs to finish.
const DURATION_GRACE: Duration = Duration::from_secs(60);
/// Pause after a failed connection attempt so a dead server is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// TCP connects in progress at once, across the run (see `Client::open`).
const CONNECTS_IN_FLIGHT: usize = 256;
/// How often the main thread checks the signal flag and redraws the progress bar.
const TICK: Duration = Duration::from_millis(100);
/// Longest wait for every connection to open its first session before the clock
/// starts anyway (the ones still opening then are measured as they come).
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);
/// Bodies up to this size are copied next to their headers and written in one go;
/// larger ones are written from the shared pool, so 10,000 connections of large
/// messages do not each hold a copy.
const COPY_BODY_MAX: usize = 16 * 1024;

/// State every connection reads.
struct Shared {
    opts: ClientOpts,
    pool: BodyPool,
    env: Envelope,
    tx_template: OutboundTx,
    counters: Counters,
    budget: Option<u64>,
    /// Messages this run took on (each ends as accepted, failed or lost at the deadline).
    claimed: AtomicU64,
    stop: AtomicBool,
    started: OnceLock<Instant>,
    /// End of --duration.
    soft_end: OnceLock<Instant>,
    hard_end: OnceLock<Instant>,
    offered: Option<Offered>,
    connections: u32,
    new_connection_per_message: bool,
    connect_gate: Semaphore,
    /// Connections done opening their first session (or failing to) before the clock.
    warmed: AtomicU64,
    /// Told when the last connection is done warming up.
    warm_done: mpsc::Sender<()>,
    warm_sessions: AtomicU64,
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
            Some(max) => {
                let taken = self
                    .claimed
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    });
                taken.is_ok()
            }
            None => {
                self.claimed.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// Counts connections done warming up; the last one tells the main thread.
    fn warmed_up(&self, n: u64) {
        if self.warmed.fetch_add(n, Ordering::Relaxed) + n == u64::from(self.connections) {
            let _ = self.warm_done.send(());
        }
    }

    fn budget_spent(&self) -> bool {
        self.budget
            .is_some_and(|max| self.claimed.load(Ordering::Relaxed) >= max)
    }

    fn start(&self) -> Instant {
        *self
            .started
            .get()
            .expect("set before the threads are released")
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
    let threads = args
        .threads
        .unwrap_or_else(limits::default_threads)
        .min(args.connections);
    let fd_limit = limits::raise_nofile(u64::from(args.connections) + limits::headroom(threads))?;
    let server_name = tls::server_name(host)?;
    let connector = match args.tls {
        ClientTls::None => None,
        _ => {
            let cfg = tls::client_config(args.tls_version, args.tls_resumption == OnOff::On)?;
            tls::warm_up(&cfg, server_name.clone());
            Some(tokio_rustls::TlsConnector::from(cfg))
        }
    };
    let sizes = match (&args.size_dist, args.size) {
        (Some(d), _) => d.0.clone(),
        (None, Some(s)) => vec![(s, 1)],
        (None, None) => DEFAULT_MIX.to_vec(),
    };
    let offered = match (args.rate, args.ramp) {
        (Some(r), _) => Some(Offered::Fixed(r)),
        (None, Some(r)) => Some(Offered::Ramp(r)),
        (None, None) => None,
    };
    // A ramp alone runs for its own length.
    let duration = args
        .duration
        .map(Duration::from_secs)
        .or(args.ramp.map(|r| r.over));
    let env = Envelope::new(&args.from, &args.to_domain, args.recipients, args.domains);
    let tx_template = OutboundTx {
        sender: env.from.clone(),
        rcpts: env
            .recipients
            .iter()
            .map(|r| OutboundRcpt {
                address: r.clone(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        size: 0,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        requiretls: false,
    };

    let (warm_done, warm_rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        opts: ClientOpts {
            addrs,
            tls: args.tls,
            connector,
            server_name,
            helo: args.helo.clone(),
            timeout: Duration::from_secs(args.timeout.max(1)),
            pipelining: !args.no_pipelining,
            bdat: args.bdat,
        },
        pool: BodyPool::new(&sizes),
        env,
        tx_template,
        counters: Counters::default(),
        budget: args.messages,
        claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        started: OnceLock::new(),
        soft_end: OnceLock::new(),
        hard_end: OnceLock::new(),
        offered,
        connections: args.connections,
        new_connection_per_message: args.new_connection_per_message,
        connect_gate: Semaphore::new(CONNECTS_IN_FLIGHT),
        warmed: AtomicU64::new(0),
        warm_done,
        warm_sessions: AtomicU64::new(0),
        run_id: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0),
    });
    signal::install();

    // Threads wait at the barrier until all runtimes exist. Then, with reused
    // connections, every connection opens its session before the clock starts: a run of
    // ten thousand connections measures ten thousand live sessions, not the ramp-up.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(false);
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let mut handles = Vec::new();
    // Each thread says when it is done, so the run ends (and its wall-clock time, as
    // other tools measure it, stops) at once rather than at the next progress tick.
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..threads {
        let ids: Vec<u32> = (t..args.connections).step_by(threads as usize).collect();
        let shared = shared.clone();
        let barrier = barrier.clone();
        let (stop_rx, go_rx) = (stop_rx.clone(), go_rx.clone());
        let done = done_tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || {
                let stats = worker_thread(ids, shared, stop_rx, go_rx, &barrier);
                let _ = done.send(());
                stats
            });
        match spawned {
            Ok(h) => handles.push(h),
            // The threads already started wait at the barrier; exiting ends them.
            Err(e) => return Err(format!("starting load thread {t}: {e}")),
        }
    }
    drop(done_tx);
    barrier.wait();
    let warm_up_end = Instant::now() + WARM_UP_LIMIT;
    while !args.new_connection_per_message && Instant::now() < warm_up_end && !signal::interrupted()
    {
        match warm_rx.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let start = Instant::now();
    let _ = shared.started.set(start);
    if let Some(d) = duration {
        let _ = shared.soft_end.set(start + d);
    }
    let hard_end = start
        + match duration {
            Some(d) => d + DURATION_GRACE,
            None => MESSAGES_ONLY_DEADLINE,
        };
    let _ = shared.hard_end.set(hard_end);
    go_tx.send_replace(true);

    let stop = |why: &AtomicBool| {
        why.store(true, Ordering::Relaxed);
        stop_tx.send_replace(true);
    };
    let progress = Progress::new(&args, duration);
    let mut open_series = Vec::new();
    let mut peak_threads = limits::thread_count().unwrap_or(0);
    let mut running = handles.len();
    while running > 0 {
        match done_rx.recv_timeout(TICK) {
            Ok(()) => running -= 1,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if signal::interrupted() || shared.soft_end.get().is_some_and(|e| now >= *e) {
            stop(&shared.stop);
        }
        // One sample of the open sessions per second of the run, taken at its end.
        while open_series.len() < now.duration_since(start).as_secs() as usize {
            open_series.push(shared.counters.open());
        }
        peak_threads = peak_threads.max(limits::thread_count().unwrap_or(0));
        progress.update(&shared.counters, start);
    }
    // The run's length is up to its last message, not its last QUIT.
    let last = Duration::from_micros(shared.counters.last_done_us.load(Ordering::Relaxed));
    let elapsed = if last.is_zero() {
        start.elapsed()
    } else {
        last
    };
    progress.finish();

    let mut merged = ThreadStats::default();
    for h in handles {
        match h.join() {
            Ok(stats) => merged.merge(&stats),
            Err(_) => merged.failure("internal".into(), || {
                "a load thread stopped unexpectedly; its measurements are missing".into()
            }),
        }
    }
    let c = &shared.counters;
    let (ok, mut failed) = (c.ok(), c.failed());
    // Messages still in flight when the hard deadline ended the threads.
    let lost = shared
        .claimed
        .load(Ordering::Relaxed)
        .saturating_sub(ok + failed);
    if lost > 0 {
        failed += lost;
        *merged.errors.entry("deadline".into()).or_default() += lost;
        merged.examples.insert(
            "deadline".into(),
            format!(
                "{lost} messages were still waiting for the server when the run's hard \
                 deadline ({} s) passed",
                hard_end.duration_since(start).as_secs()
            ),
        );
    }
    let facts = RunFacts {
        ok,
        failed,
        body_bytes: c.body_bytes(),
        elapsed,
        threads,
        peak_threads,
        fd_limit,
        peak_open_sessions: c.peak_open_sessions.load(Ordering::Relaxed),
        sessions_before_start: shared.warm_sessions.load(Ordering::Relaxed),
        open_series,
        offered,
    };
    let report = LoadReport::new(&args, &facts, &merged);
    if let Some(path) = &args.csv {
        crate::series::write_csv(path, &report.series)
            .map_err(|e| format!("--csv {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        crate::plot::draw(path, &report).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(if report.success() { 0 } else { 1 })
}

fn worker_thread(
    ids: Vec<u32>,
    shared: Arc<Shared>,
    stop_rx: watch::Receiver<bool>,
    mut go_rx: watch::Receiver<bool>,
    barrier: &Barrier,
) -> ThreadStats {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let stats = Rc::new(RefCell::new(ThreadStats::default()));
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            barrier.wait();
            shared.warmed_up(ids.len() as u64);
            let mut s = ThreadStats::default();
            s.failure("internal".into(), || {
                format!("could not start an event loop: {e}")
            });
            return s;
        }
    };
    let local = LocalSet::new();
    barrier.wait();
    local.block_on(&rt, async {
        let mut set = JoinSet::new();
        for id in ids {
            set.spawn_local(connection(
                id,
                shared.clone(),
                stats.clone(),
                stop_rx.clone(),
                go_rx.clone(),
            ));
        }
        let _ = go_rx.wait_for(|g| *g).await;
        let hard_end = *shared.hard_end.get().expect("set before go");
        let all = async { while set.join_next().await.is_some() {} };
        // Past the hard deadline the tasks are dropped; run() counts their messages.
        let _ = tokio::time::timeout_at(hard_end.into(), all).await;
    });
    drop(local);
    drop(rt);
    let taken = std::mem::take(&mut *stats.borrow_mut());
    taken
}

/// One connection slot: opens sessions as needed and sends messages until the run ends.
async fn connection(
    id: u32,
    sh: Arc<Shared>,
    st: Rc<RefCell<ThreadStats>>,
    mut stop: watch::Receiver<bool>,
    mut go: watch::Receiver<bool>,
) {
    let counters = &sh.counters;
    let mut client: Option<Client> = None;
    if !sh.new_connection_per_message {
        // Warm-up: a failure here is not a message's; the loop below tries again and
        // counts it then.
        let mut times = SetupTimes::default();
        if let Ok(c) = Client::open(&sh.opts, &sh.connect_gate, &mut times).await {
            counters.session_opened();
            sh.warm_sessions.fetch_add(1, Ordering::Relaxed);
            record_setup(&mut st.borrow_mut(), &times, None);
            client = Some(c);
        }
        sh.warmed_up(1);
    }
    if go.wait_for(|g| *g).await.is_err() {
        return;
    }
    let start = sh.start();
    let mut rng = SmallRng::from_entropy();
    let mut head = Vec::with_capacity(2048);
    let mut tx = sh.tx_template.clone();
    let mut seq = 0u64;
    let mut pacer = sh.offered.map(|o| Pacer::new(o, start, id, sh.connections));
    let mut unsent = None;
    loop {
        // Open loop: the message's clock starts at its slot, even when the connection
        // is late for it, so queueing behind a slow server shows in the latency.
        let began = match pacer.as_mut() {
            Some(p) => {
                let slot = p.next();
                if sh.soft_end.get().is_some_and(|e| slot >= *e) {
                    break;
                }
                if slot > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(slot.into()) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                p.advance();
                slot
            }
            None => Instant::now(),
        };
        if !sh.claim() {
            unsent = Some(began);
            break;
        }
        seq += 1;
        if client.is_none() {
            let mut times = SetupTimes::default();
            match Client::open(&sh.opts, &sh.connect_gate, &mut times).await {
                Ok(c) => {
                    counters.session_opened();
                    record_setup(&mut st.borrow_mut(), &times, Some(start));
                    client = Some(c);
                }
                Err(f) => {
                    // The claimed message could not be sent: it counts as failed, which
                    // also keeps a --messages run against a dead server bounded.
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    record_failure(&mut st.borrow_mut(), &f, start);
                    counters.message_done(start.elapsed());
                    if times.connect.is_some() {
                        st.borrow_mut().connections += 1;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RECONNECT_BACKOFF) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    continue;
                }
            }
        }
        let c = client.as_mut().expect("opened above");

        let body = sh.pool.pick(&mut rng);
        head.clear();
        let msg_id = format!("{:08x}.{id}.{seq}", sh.run_id);
        write_headers(&mut head, &sh.env, &msg_id, SystemTime::now());
        let msg = if body.len() <= COPY_BODY_MAX {
            head.extend_from_slice(body);
            head.extend_from_slice(b".\r\n");
            Message {
                head: &head,
                body: &[],
            }
        } else {
            Message { head: &head, body }
        };
        tx.size = msg.size();
        let mut times = TxTimes::default();
        let result = c.send(&sh.opts, &tx, &msg, &mut times).await;
        let now = Instant::now();
        counters.message_done(now - start);
        {
            let mut s = st.borrow_mut();
            match result.map_err(|f| (f.key(), f)).and_then(classify) {
                Ok(rejected_rcpts) => {
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                    counters
                        .body_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    let latency = now - began;
                    if let Some(d) = times.mail_rcpt {
                        record(&mut s.phases.mail_rcpt, d);
                    }
                    if let Some(d) = times.data_end {
                        record(&mut s.phases.data_end, d);
                    }
                    record(&mut s.phases.message, latency);
                    let sec = s.second(now - start);
                    sec.ok += 1;
                    record(&mut sec.latency, latency);
                    if let Some(d) = times.data_end {
                        record(&mut sec.data_end, d);
                    }
                    for code in rejected_rcpts {
                        s.error(code.to_string());
                    }
                }
                Err((_, f)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    record_failure(&mut s, &f, start);
                }
            }
        }
        if c.dead || sh.new_connection_per_message {
            let c = client.take().expect("session is open here");
            counters.session_closed();
            if !c.dead {
                c.quit().await;
            }
        }
    }
    // Time ran out with messages still due (a --messages budget running out is not that).
    if let (Some(p), Some(&end), false) = (pacer.as_ref(), sh.soft_end.get(), sh.budget_spent()) {
        let first = u64::from(unsent.is_some_and(|t| t < end));
        st.borrow_mut().backlog += first + p.overdue(Instant::now(), end);
    }
    if let Some(c) = client {
        counters.session_closed();
        c.quit().await;
    }
}

/// Accepted (with the codes of any recipients refused), or failed with the code that
/// decided it: MAIL's, the recipients' when none was accepted, else the data reply's.
fn classify(o: TxOutcome) -> Result<Vec<u16>, (String, Failure)> {
    let refused: Vec<u16> = o
        .rcpts
        .iter()
        .flatten()
        .filter(|r| !r.is_positive())
        .map(|r| r.code)
        .collect();
    if o.data
        .as_ref()
        .is_some_and(|d| (200..300).contains(&d.code))
    {
        return Ok(refused);
    }
    let code = if !o.mail.is_positive() {
        o.mail.code
    } else if let Some(d) = o.data.as_ref() {
        d.code
    } else {
        refused.first().copied().unwrap_or(451)
    };
    Err((code.to_string(), Failure::Reply(code)))
}

/// `start` is None for sessions opened before the clock started (counted in second 0).
fn record_setup(s: &mut ThreadStats, t: &SetupTimes, start: Option<Instant>) {
    s.connections += 1;
    let at = start.map_or(Duration::ZERO, |t| t.elapsed());
    s.second(at).connections += 1;
    if let Some(d) = t.connect {
        record(&mut s.phases.connect, d);
    }
    if let Some(d) = t.banner {
        record(&mut s.phases.banner, d);
    }
    for d in &t.ehlo {
        record(&mut s.phases.ehlo, *d);
    }
    if let Some(d) = t.starttls {
        record(&mut s.phases.starttls, d);
    }
    if t.resumed {
        s.tls_resumed += 1;
    }
}

fn record_failure(s: &mut ThreadStats, f: &Failure, start: Instant) {
    s.failure(f.key(), || f.detail());
    s.second(start.elapsed()).failed += 1;
}
