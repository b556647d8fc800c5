//! What durability costs, measured where it is paid: how long the shard thread
//! spends framing a message into its log batch, how long a group commit of the log
//! takes (the write and the fdatasync apart), how long a message waits for its
//! commit, and how long an index flush takes. Operators
//! read it at `GET /metrics`; it is also how we find what bounds the DATA→250 time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Log-linear microsecond buckets: each power of two is split in four, so a
/// quantile is known to within a quarter of an octave (19 %), up to ~1 s; the last
/// bucket holds everything above.
const SUB: u32 = 4;
const OCTAVES: usize = 20;
const BUCKETS: usize = OCTAVES * SUB as usize + 1;

fn bucket_of(us: u64) -> usize {
    if us < u64::from(SUB) {
        return us as usize;
    }
    let octave = u64::BITS - 1 - us.leading_zeros(); // 2 and up
    let sub = (us >> (octave - 2)) & u64::from(SUB - 1);
    ((octave - 1) * SUB + sub as u32) as usize
}

/// The exclusive upper bound of a bucket, in µs.
fn bucket_bound(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return i + 1;
    }
    let octave = i / sub + 1;
    let step = 1u64 << (octave - 2);
    (1u64 << octave) + (i % sub + 1) * step
}

pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[bucket_of(us).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Counts per octave: (power-of-two upper bound in seconds, samples since the
    /// previous bound), the sum in seconds and the count (the rest is above the
    /// last bound). The octave edges are bucket edges, so each count is exact.
    pub fn octaves(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut total = 0;
        let mut in_octave = 0;
        let mut edges = Vec::with_capacity(OCTAVES + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            total += n;
            in_octave += n;
            let bound = bucket_bound(i);
            if i + 1 < BUCKETS && bound.is_power_of_two() {
                edges.push((bound as f64 / 1e6, std::mem::take(&mut in_octave)));
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (edges, sum, total)
    }

    pub fn summary(&self) -> HistogramSummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_bound(i);
                }
            }
            bucket_bound(BUCKETS - 1)
        };
        HistogramSummary {
            count,
            mean_us: self
                .sum_us
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0),
            p50_us_below: quantile(0.50),
            p99_us_below: quantile(0.99),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

/// Quantiles are bucket upper bounds: "p99 is under N µs".
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HistogramSummary {
    pub count: u64,
    pub mean_us: u64,
    pub p50_us_below: u64,
    pub p99_us_below: u64,
    pub max_us: u64,
}

#[derive(Default)]
pub struct StoreStats {
    /// A new message framed into its shard's pending log batch.
    pub write: Histogram,
    /// One group commit of a shard's log: the write, the fdatasync, the index entries.
    pub commit: Histogram,
    pub commit_flush: Histogram,
    pub commit_sync: Histogram,
    /// From a commit request to its release: what a client waits for before 250.
    pub commit_wait: Histogram,
    /// Requests released per commit.
    pub batched: AtomicU64,
    /// Server side of DATA→250: the session saw the final dot, to the reply written.
    pub data_to_reply: Histogram,
    /// One index flush (sled flush, then fdatasync of its files), which delivery and
    /// operator actions wait for; never on the way to a 250.
    pub index_flush: Histogram,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StoreStatsSummary {
    pub write: HistogramSummary,
    pub commit: HistogramSummary,
    pub commit_flush: HistogramSummary,
    pub commit_sync: HistogramSummary,
    pub commit_wait: HistogramSummary,
    pub mean_batch: f64,
    pub data_to_reply: HistogramSummary,
    pub index_flush: HistogramSummary,
}

impl StoreStats {
    pub fn summary(&self) -> StoreStatsSummary {
        let commit = self.commit.summary();
        let batched = self.batched.load(Ordering::Relaxed);
        StoreStatsSummary {
            write: self.write.summary(),
            commit_flush: self.commit_flush.summary(),
            commit_sync: self.commit_sync.summary(),
            commit_wait: self.commit_wait.summary(),
            data_to_reply: self.data_to_reply.summary(),
            index_flush: self.index_flush.summary(),
            mean_batch: if commit.count == 0 {
                0.0
            } else {
                batched as f64 / commit.count as f64
            },
            commit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_below_its_bucket_bound_and_at_least_the_previous_one() {
        for us in 0..100_000u64 {
            let b = bucket_of(us);
            assert!(us < bucket_bound(b), "{us} in bucket {b}");
            if b > 0 {
                assert!(us >= bucket_bound(b - 1), "{us} in bucket {b}");
            }
        }
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(300)); // in [256, 320)
        }
        h.record(Duration::from_micros(3_000)); // in [2560, 3072)
        h.record(Duration::from_micros(9_000)); // in [8192, 10240)
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us_below, 320);
        assert_eq!(s.p99_us_below, 3072);
        assert_eq!(s.max_us, 9_000);
        assert_eq!(s.mean_us, (98 * 300 + 3_000 + 9_000) / 100);
    }

    #[test]
    fn octaves_count_the_samples_between_powers_of_two() {
        let h = Histogram::default();
        h.record(Duration::from_micros(3)); // below 4 µs
        h.record(Duration::from_micros(300)); // below 512 µs
        h.record(Duration::from_secs(3600)); // above every edge
        let (edges, sum, count) = h.octaves();
        assert_eq!(count, 3);
        assert!((sum - 3600.000303).abs() < 1e-9);
        let at = |us: f64| {
            edges
                .iter()
                .find(|e| (e.0 - us / 1e6).abs() < 1e-12)
                .unwrap()
                .1
        };
        assert_eq!((at(2.0), at(4.0), at(256.0), at(512.0)), (0, 1, 0, 1));
        assert!(edges.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            edges.iter().map(|e| e.1).sum::<u64>(),
            2,
            "the hour is only in +Inf"
        );
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let s = Histogram::default().summary();
        assert_eq!((s.count, s.p99_us_below, s.max_us), (0, 0, 0));
    }

    #[test]
    fn huge_samples_land_in_the_last_bucket() {
        let h = Histogram::default();
        h.record(Duration::from_secs(3600));
        assert_eq!(h.summary().p50_us_below, bucket_bound(BUCKETS - 1));
        assert_eq!(h.summary().max_us, 3_600_000_000);
    }
}
