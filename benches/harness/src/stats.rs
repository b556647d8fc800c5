//! Measurements: live counters shared by all threads (for the progress bar), and per
//! thread histograms and per-second buckets merged at the end, so the hot path never
//! takes a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Counters read while the run is going.
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub body_bytes: AtomicU64,
    /// Sessions open now (greeting and hello done, not yet quit).
    pub open_sessions: AtomicU64,
    pub peak_open_sessions: AtomicU64,
    /// Microseconds from the start of the run to the latest message that completed.
    pub last_done_us: AtomicU64,
}

impl Counters {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::Relaxed)
    }
    pub fn open(&self) -> u64 {
        self.open_sessions.load(Ordering::Relaxed)
    }
    pub fn session_opened(&self) {
        let now = self.open_sessions.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open_sessions.fetch_max(now, Ordering::Relaxed);
    }
    pub fn message_done(&self, at: Duration) {
        self.last_done_us
            .fetch_max(at.as_micros() as u64, Ordering::Relaxed);
    }
    pub fn session_closed(&self) {
        self.open_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One hour in microseconds: no single operation can outlast the run's hard deadline.
const MAX_US: u64 = 3_600_000_000;
/// Per-second buckets keep two significant digits up to a minute: enough for a p99 per
/// second, at a twentieth of the memory of the run-wide histograms.
const SERIES_MAX_US: u64 = 60_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid")
}

fn series_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, SERIES_MAX_US, 2).expect("static histogram bounds are valid")
}

/// Records a duration, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, h.high());
    h.saturating_record(us);
}

/// The phases of a session and of a message, each its own histogram.
pub struct Phases {
    pub connect: Histogram<u64>,
    pub banner: Histogram<u64>,
    pub ehlo: Histogram<u64>,
    pub starttls: Histogram<u64>,
    pub mail_rcpt: Histogram<u64>,
    pub data_end: Histogram<u64>,
    /// A whole message: from its scheduled start (open loop) or from the moment the
    /// connection was free for it (closed loop) to the server's final reply; includes
    /// opening a connection when the message needed one.
    pub message: Histogram<u64>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            connect: histogram(),
            banner: histogram(),
            ehlo: histogram(),
            starttls: histogram(),
            mail_rcpt: histogram(),
            data_end: histogram(),
            message: histogram(),
        }
    }
}

impl Phases {
    fn merge(&mut self, o: &Phases) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.connect.add(&o.connect);
        let _ = self.banner.add(&o.banner);
        let _ = self.ehlo.add(&o.ehlo);
        let _ = self.starttls.add(&o.starttls);
        let _ = self.mail_rcpt.add(&o.mail_rcpt);
        let _ = self.data_end.add(&o.data_end);
        let _ = self.message.add(&o.message);
    }
}

/// What happened in one second of the run (by completion time).
pub struct Second {
    pub ok: u64,
    pub failed: u64,
    pub connections: u64,
    /// Message latency of the messages accepted in this second.
    pub latency: Histogram<u64>,
    pub data_end: Histogram<u64>,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            ok: 0,
            failed: 0,
            connections: 0,
            latency: series_histogram(),
            data_end: series_histogram(),
        }
    }
}

/// What one thread measured.
#[derive(Default)]
pub struct ThreadStats {
    pub phases: Phases,
    pub errors: BTreeMap<String, u64>,
    /// The first description seen for each error key, to say what "io" actually was.
    pub examples: BTreeMap<String, String>,
    pub connections: u64,
    pub tls_resumed: u64,
    /// Open loop: messages due before the end of the run that were never sent, because
    /// their connection was still behind schedule when the run ended.
    pub backlog: u64,
    pub series: Vec<Second>,
}

impl ThreadStats {
    pub fn error(&mut self, key: impl Into<String>) {
        *self.errors.entry(key.into()).or_default() += 1;
    }

    pub fn failure(&mut self, key: String, detail: impl FnOnce() -> String) {
        // Reply codes speak for themselves; examples are for the opaque kinds.
        let is_code = key.bytes().all(|b| b.is_ascii_digit());
        if !is_code && !self.examples.contains_key(&key) {
            self.examples.insert(key.clone(), detail());
        }
        self.error(key);
    }

    /// The bucket of the second `at` (time since the start of the run) falls in.
    pub fn second(&mut self, at: Duration) -> &mut Second {
        let i = at.as_secs() as usize;
        if self.series.len() <= i {
            self.series.resize_with(i + 1, Second::default);
        }
        &mut self.series[i]
    }

    pub fn merge(&mut self, other: &ThreadStats) {
        self.phases.merge(&other.phases);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.examples {
            self.examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.connections += other.connections;
        self.tls_resumed += other.tls_resumed;
        self.backlog += other.backlog;
        if self.series.len() < other.series.len() {
            self.series.resize_with(other.series.len(), Second::default);
        }
        for (mine, theirs) in self.series.iter_mut().zip(&other.series) {
            mine.ok += theirs.ok;
            mine.failed += theirs.failed;
            mine.connections += theirs.connections;
            let _ = mine.latency.add(&theirs.latency);
            let _ = mine.data_end.add(&theirs.data_end);
        }
    }
}
