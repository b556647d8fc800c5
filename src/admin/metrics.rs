//! `GET /metrics`: the process counters plus what the shards hold now.

use crate::metrics::{render, SecondsHistogram, ShardGauges};
use crate::queue::stats::{Histogram, StoreStats};

use super::ShardHandle;

pub fn prometheus(shards: &[ShardHandle]) -> String {
    let gauges: Vec<ShardGauges> = shards
        .iter()
        .enumerate()
        .map(|(i, h)| ShardGauges {
            shard: i,
            queued: h.queue.len(),
        })
        .collect();
    // The spool keeps one set of timings for every shard (commits are shared).
    let histograms = shards
        .first()
        .map(|h| store_histograms(h.queue.timings()))
        .unwrap_or_default();
    render(&gauges, histograms)
}

fn store_histograms(store: &StoreStats) -> Vec<SecondsHistogram> {
    type Pick = fn(&StoreStats) -> &Histogram;
    let kinds: [(&'static str, &'static str, Pick); 7] = [
        (
            "mxring_store_write",
            "Framing a new message into its shard's log batch, on the shard thread",
            |s| &s.write,
        ),
        (
            "mxring_store_commit",
            "One group commit of a shard's log",
            |s| &s.commit,
        ),
        (
            "mxring_store_commit_flush",
            "The write part of a group commit of a shard's log",
            |s| &s.commit_flush,
        ),
        (
            "mxring_store_commit_sync",
            "The fdatasync part of a group commit of a shard's log",
            |s| &s.commit_sync,
        ),
        (
            "mxring_store_index_flush",
            "One flush of the queue index (delivery and operator actions wait for it)",
            |s| &s.index_flush,
        ),
        (
            "mxring_store_commit_wait",
            "How long a message waits for its commit before its 250",
            |s| &s.commit_wait,
        ),
        (
            "mxring_data_to_reply",
            "Server side of DATA to 250: final dot seen to reply written",
            |s| &s.data_to_reply,
        ),
    ];
    kinds
        .into_iter()
        .map(|(name, help, pick)| {
            let (buckets, sum, count) = pick(store).octaves();
            SecondsHistogram {
                name,
                help,
                buckets,
                sum,
                count,
            }
        })
        .collect()
}
