//! Prometheus metrics: process-wide counters that the shards bump where things
//! happen, and gauges and histograms read from the shards at scrape time. Served
//! at `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! Counters are atomics shared by every shard. They are touched once per
//! connection, reply or message, never per byte, so the shared cache line costs
//! nothing next to the work it counts.

mod labels;
mod render;

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use labels::{
    ConnectionLabels, DeliveryLabels, DeliveryOutcome, DsnKind, DsnLabels, FailureClass,
    ListenerLabels, PolicyLabels, ReplyLabels,
};
pub use render::{render, SecondsHistogram, ShardGauges};

/// Every counter mxring keeps. One instance per process ([`global`]).
#[derive(Default)]
pub struct Metrics {
    /// Messages acknowledged with 250 (on stable storage), by listener.
    pub messages_received: Family<ListenerLabels, Counter>,
    /// Per-recipient results of delivery attempts, by outcome and reason class.
    pub recipients: Family<DeliveryLabels, Counter>,
    /// Delay, failure and success DSNs queued for the sender.
    pub dsns: Family<DsnLabels, Counter>,
    /// Inbound connections accepted, by listener and the TLS they ended up with.
    pub connections: Family<ConnectionLabels, Counter>,
    /// Inbound TLS handshakes that failed (STARTTLS or implicit), by listener.
    pub handshake_failures: Family<ListenerLabels, Counter>,
    /// Inbound 4xx and 5xx replies, by code and enhanced status.
    pub inbound_errors: Family<ReplyLabels, Counter>,
    /// TLS policy decisions, by direction, rule and whether TLS was required.
    pub policy_decisions: Family<PolicyLabels, Counter>,
    /// Log records found damaged: quarantined at recovery, or failing their
    /// checksum when read for delivery.
    pub store_damaged_records: Counter,
}

impl Metrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "mxring_messages_received",
            "Messages accepted with 250 after they reached stable storage",
            self.messages_received.clone(),
        );
        r.register(
            "mxring_recipients",
            "Per-recipient results of delivery attempts (delivered, deferred, bounced) by reason class",
            self.recipients.clone(),
        );
        r.register(
            "mxring_dsns",
            "Delivery status notifications queued for senders, by kind",
            self.dsns.clone(),
        );
        r.register(
            "mxring_inbound_connections",
            "Inbound connections by listener and TLS version in use when they ended",
            self.connections.clone(),
        );
        r.register(
            "mxring_inbound_tls_handshake_failures",
            "Inbound TLS handshakes that failed, by listener",
            self.handshake_failures.clone(),
        );
        r.register(
            "mxring_inbound_error_replies",
            "Inbound 4xx and 5xx replies, by reply code and enhanced status",
            self.inbound_errors.clone(),
        );
        r.register(
            "mxring_policy_decisions",
            "TLS policy decisions by direction and rule",
            self.policy_decisions.clone(),
        );
        r.register(
            "mxring_store_damaged_records",
            "Queue log records found damaged (quarantined at start, or failing their checksum when read)",
            self.store_damaged_records.clone(),
        );
    }

    /// Count the error replies in a block of server output (one or more replies,
    /// CRLF-terminated, as the session wrote them). Only the last line of a
    /// multi-line reply carries a space after the code, so each reply counts once.
    pub fn count_inbound_replies(&self, out: &[u8]) {
        for line in out.split(|&b| b == b'\n') {
            let Some(code) = line.get(..3) else { continue };
            if line.get(3) != Some(&b' ') || !matches!(code[0], b'4' | b'5') {
                continue;
            }
            if !code.iter().all(u8::is_ascii_digit) {
                continue;
            }
            let status = line
                .get(4..)
                .and_then(|rest| rest.split(|&b| b == b' ').next())
                .filter(|s| s.len() >= 5 && s[0] == code[0] && s[1] == b'.')
                .map(|s| String::from_utf8_lossy(s).trim_end().to_string())
                .unwrap_or_default();
            self.inbound_errors
                .get_or_create(&ReplyLabels {
                    code: String::from_utf8_lossy(code).into_owned(),
                    status,
                })
                .inc();
        }
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_counted_once_each_with_their_status() {
        let m = Metrics::default();
        m.count_inbound_replies(
            b"250-mx\r\n250 OK\r\n530 5.7.0 Must issue a STARTTLS command first\r\n\
              550-5.1.1 first line\r\n550 5.1.1 no such user\r\n421 closing\r\n",
        );
        let get = |code: &str, status: &str| {
            m.inbound_errors
                .get(&ReplyLabels {
                    code: code.into(),
                    status: status.into(),
                })
                .map(|c| c.get())
        };
        assert_eq!(get("530", "5.7.0"), Some(1));
        assert_eq!(get("550", "5.1.1"), Some(1));
        assert_eq!(get("421", ""), Some(1));
        assert_eq!(get("250", ""), None);
    }
}
