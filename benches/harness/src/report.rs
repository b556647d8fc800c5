//! The load run's final report, as a human table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{ClientTls, LoadArgs};
use crate::stats::WorkerStats;

/// Latency percentiles in milliseconds.
#[derive(Serialize, Debug)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn from(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Serialize, Debug)]
pub struct LoadReport {
    pub target: String,
    pub connections: u32,
    pub tls: String,
    pub pipelining: bool,
    pub new_connection_per_message: bool,
    /// The --rate asked for (messages/s), or null when sending as fast as possible.
    pub offered_rate: Option<f64>,
    pub messages_ok: u64,
    pub messages_failed: u64,
    pub elapsed_s: f64,
    pub messages_per_s: f64,
    /// Body bytes of accepted messages, in 10^6 bytes per second.
    pub mb_per_s: f64,
    pub body_bytes: u64,
    /// End of DATA (final ".\r\n" written) to the server's reply.
    pub data_latency_ms: Latency,
    pub connect_latency_ms: Latency,
    /// Empty (count 0) without TLS.
    pub handshake_latency_ms: Latency,
    pub connections_opened: u64,
    pub errors: BTreeMap<String, u64>,
    /// One description per error key.
    pub error_examples: BTreeMap<String, String>,
}

impl LoadReport {
    pub fn new(
        args: &LoadArgs,
        ok: u64,
        failed: u64,
        body_bytes: u64,
        elapsed: Duration,
        stats: &WorkerStats,
    ) -> LoadReport {
        let secs = elapsed.as_secs_f64().max(1e-9);
        LoadReport {
            target: args.target.clone(),
            connections: args.connections,
            tls: match args.tls {
                ClientTls::None => "none",
                ClientTls::Starttls => "starttls",
                ClientTls::Implicit => "implicit",
            }
            .to_string(),
            pipelining: !args.no_pipelining,
            new_connection_per_message: args.new_connection_per_message,
            offered_rate: args.rate,
            messages_ok: ok,
            messages_failed: failed,
            elapsed_s: secs,
            messages_per_s: ok as f64 / secs,
            mb_per_s: body_bytes as f64 / secs / 1e6,
            body_bytes,
            data_latency_ms: Latency::from(&stats.data_latency),
            connect_latency_ms: Latency::from(&stats.connect),
            handshake_latency_ms: Latency::from(&stats.handshake),
            connections_opened: stats.connections,
            errors: stats.errors.clone(),
            error_examples: stats.examples.clone(),
        }
    }

    /// At least one message went through, and every failure was the server's answer
    /// (a reply code) rather than a broken connection, timeout or protocol violation.
    pub fn success(&self) -> bool {
        self.messages_ok > 0
            && self
                .errors
                .keys()
                .all(|k| k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report is plain data")
    }

    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let pct = |l: &Latency| {
            format!(
                "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p90, l.p99, l.p999, l.max
            )
        };
        let _ = writeln!(
            s,
            "target            {} ({} connections, tls {}, pipelining {}, {})",
            self.target,
            self.connections,
            self.tls,
            if self.pipelining { "on" } else { "off" },
            if self.new_connection_per_message {
                "new connection per message"
            } else {
                "connections reused"
            }
        );
        let _ = writeln!(s, "messages ok       {}", self.messages_ok);
        let _ = writeln!(s, "messages failed   {}", self.messages_failed);
        let _ = writeln!(s, "elapsed           {:.2} s", self.elapsed_s);
        match self.offered_rate {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "throughput        {:.1} msg/s (offered {r:.1} msg/s)",
                    self.messages_per_s
                );
            }
            None => {
                let _ = writeln!(s, "throughput        {:.1} msg/s", self.messages_per_s);
            }
        }
        let _ = writeln!(s, "body throughput   {:.2} MB/s", self.mb_per_s);
        let _ = writeln!(s, "DATA-end latency  {} ms", pct(&self.data_latency_ms));
        let _ = writeln!(
            s,
            "connect latency   p50 {:.3}  p99 {:.3} ms ({} connections)",
            self.connect_latency_ms.p50, self.connect_latency_ms.p99, self.connections_opened
        );
        if self.handshake_latency_ms.count > 0 {
            let _ = writeln!(
                s,
                "TLS handshake     p50 {:.3}  p99 {:.3} ms",
                self.handshake_latency_ms.p50, self.handshake_latency_ms.p99
            );
        }
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            serde_json::to_string(&self.errors).expect("plain map")
        };
        let _ = writeln!(s, "errors            {errors}");
        for (k, v) in &self.error_examples {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }
}
