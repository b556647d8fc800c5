//! Measurements: live counters shared by all workers, and per-worker histograms merged at
//! the end (so the hot path never takes a lock).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Counters read by the progress bar while the run is going.
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub body_bytes: AtomicU64,
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
}

/// One hour in microseconds: no single operation can outlast the run's hard deadline.
const MAX_US: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid")
}

/// What one worker measured.
pub struct WorkerStats {
    pub data_latency: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub handshake: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// The first description seen for each error key, to say what "io" actually was.
    pub examples: BTreeMap<String, String>,
    pub connections: u64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            data_latency: histogram(),
            connect: histogram(),
            handshake: histogram(),
            errors: BTreeMap::new(),
            examples: BTreeMap::new(),
            connections: 0,
        }
    }
}

impl WorkerStats {
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

    pub fn merge(&mut self, other: &WorkerStats) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.data_latency.add(&other.data_latency);
        let _ = self.connect.add(&other.connect);
        let _ = self.handshake.add(&other.handshake);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.examples {
            self.examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.connections += other.connections;
    }
}

/// Records a duration, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_US);
    h.saturating_record(us);
}
