//! Which changes a SIGHUP cannot apply. The shards rebuild policy, routes, TLS and
//! session settings from a reloaded file, but sockets, threads, the spool, the
//! resolver and the per-address and pool limits are built once at start: an operator
//! who edits those must be told that a restart is needed, not find out later.
//!
//! Everything else is read from the current snapshot at one point: an inbound
//! session when its connection comes (its timeouts), a delivery attempt when it
//! starts (routes, TLS rules, the outbound timeouts), the delivery loop on each
//! pass (`outbound.idle_timeout`), and outbound TLS client configs (CA bundles,
//! client certificates) are built again after each reload.

use std::fmt::Debug;

use super::Config;

pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differ(a: &impl Debug, b: &impl Debug) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let checks: [(&'static str, bool); 15] = [
        ("listener", differ(&old.listeners, &new.listeners)),
        ("server.shards", old.server.shards != new.server.shards),
        ("server.io", old.server.io != new.server.io),
        ("server.spool", old.server.spool != new.server.spool),
        (
            "queue.segment_size",
            old.queue.segment_size != new.queue.segment_size,
        ),
        (
            "server.max_connections_per_ip",
            old.server.max_connections_per_ip != new.server.max_connections_per_ip,
        ),
        (
            "server.connection_rate_per_ip",
            old.server.connection_rate_per_ip != new.server.connection_rate_per_ip,
        ),
        ("admin", differ(&old.admin, &new.admin)),
        ("dns", differ(&old.dns, &new.dns)),
        (
            "outbound.max_connections_per_host",
            old.outbound.max_connections_per_host != new.outbound.max_connections_per_host,
        ),
        (
            "outbound.max_deliveries_per_shard",
            old.outbound.max_deliveries_per_shard != new.outbound.max_deliveries_per_shard,
        ),
        // The MTA-STS fetcher and the TLS report loop are built when a shard starts.
        (
            "outbound.mta_sts",
            old.outbound.mta_sts != new.outbound.mta_sts,
        ),
        (
            "outbound.mta_sts_ca_file",
            old.outbound.mta_sts_ca_file != new.outbound.mta_sts_ca_file,
        ),
        (
            "outbound.mta_sts_port",
            old.outbound.mta_sts_port != new.outbound.mta_sts_port,
        ),
        ("tls_report", differ(&old.tls_report, &new.tls_report)),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn load(text: &str) -> Config {
        let listener = "[[listener]]\naddress = \"127.0.0.1:2525\"\n";
        let text = if text.contains("[[listener]]") {
            text.to_string()
        } else {
            format!("{listener}{text}")
        };
        load_str(&text, "test").unwrap()
    }

    #[test]
    fn reloadable_edits_need_no_restart() {
        let old = load("[server]\nmax_recipients = 10\n");
        let new = load(
            "[server]\nmax_recipients = 20\ncommand_timeout = \"1m\"\n\
             tls_handshake_timeout = \"5s\"\nproxy_header_timeout = \"5s\"\n\
             [outbound]\nunreachable_hold = \"1m\"\nidle_timeout = \"1s\"\n\
             tls_handshake_timeout = \"5s\"\nrcpt_to_timeout = \"1m\"\n",
        );
        assert!(restart_only_changes(&old, &new).is_empty());
    }

    #[test]
    fn socket_thread_and_resolver_edits_are_named() {
        let old = load("");
        let new = load(
            "[server]\nshards = 3\nmax_connections_per_ip = 5\n\
             [[listener]]\naddress = \"127.0.0.1:2600\"\n\
             [outbound]\nmax_connections_per_host = 2\n",
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            vec![
                "listener",
                "server.shards",
                "server.max_connections_per_ip",
                "outbound.max_connections_per_host"
            ]
        );
    }
}
