//! One scrape: the process counters, then what is read from the shards now (queue
//! depth per shard, the store's timings as histograms), in the Prometheus text
//! format.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// What one shard reports at scrape time.
pub struct ShardGauges {
    pub shard: usize,
    pub queued: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

/// A histogram in seconds kept elsewhere (the store keeps its own buckets), read
/// at scrape time.
#[derive(Clone, Debug)]
pub struct SecondsHistogram {
    /// The metric name without its unit (`_seconds` is appended).
    pub name: &'static str,
    pub help: &'static str,
    /// (upper bound in seconds, samples in this bucket alone), ascending; the
    /// encoder accumulates them, and +Inf holds `count`.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug)]
struct Histograms(Vec<SecondsHistogram>);

impl Collector for Histograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for h in &self.0 {
            encoder
                .encode_descriptor(h.name, h.help, Some(&Unit::Seconds), MetricType::Histogram)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

/// The whole scrape.
pub fn render(shards: &[ShardGauges], histograms: Vec<SecondsHistogram>) -> String {
    let mut registry = Registry::default();
    super::global().register(&mut registry);
    let depth: Family<ShardLabel, Gauge> = Family::default();
    for g in shards {
        depth
            .get_or_create(&ShardLabel {
                shard: g.shard.to_string(),
            })
            .set(g.queued as i64);
    }
    registry.register(
        "mxring_queue_depth",
        "Messages in the queue, per shard",
        depth,
    );
    registry.register_collector(Box::new(Histograms(histograms)));
    let mut text = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}
