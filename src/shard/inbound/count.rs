//! The connection counters: one count per connection, by listener and TLS.

use crate::metrics;

/// Counts the connection once, when it ends, with the TLS it had by then.
pub(super) struct ConnectionCount {
    listener: String,
    pub tls: String,
}

impl ConnectionCount {
    pub fn new(listener: &str) -> Self {
        ConnectionCount {
            listener: listener.to_string(),
            tls: "none".into(),
        }
    }

    pub fn handshake_failed(&self) {
        metrics::global()
            .handshake_failures
            .get_or_create(&metrics::ListenerLabels {
                listener: self.listener.clone(),
            })
            .inc();
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        metrics::global()
            .connections
            .get_or_create(&metrics::ConnectionLabels {
                listener: std::mem::take(&mut self.listener),
                tls: std::mem::take(&mut self.tls),
            })
            .inc();
    }
}
