//! SIGHUP reloads policy and routes without dropping connections; a bad new config
//! is refused with a message and the old one stays in force.

use std::time::Duration;

use mxring_testkit::client::Client;
use mxring_testkit::process::Mx;
use mxring_testkit::{closed_port, free_port, Toml};

fn config(
    domains: &str,
    port: u16,
    admin: std::net::SocketAddr,
    spool: &std::path::Path,
    server_extra: &str,
) -> String {
    Toml::new(spool, 2)
        .server(server_extra)
        .listener("mx", port, "starttls")
        .admin(&admin.to_string())
        .extra(&format!("[relay]\nnetworks = []\ndomains = [{domains}]"))
        .route_all(closed_port())
        .text()
}

fn rcpt(addr: std::net::SocketAddr, to: &str) -> u16 {
    let mut c = Client::connect(addr);
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd(&format!("RCPT TO:<{to}>")).0
}

#[test]
fn sighup_reloads_policy_and_keeps_connections_and_refuses_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin = closed_port();
    let file = dir.path().join("mxring.toml");
    let spool = dir.path().join("spool");
    std::fs::write(&file, config("\"a.test\"", port, admin, &spool, "")).unwrap();
    let mx = Mx::start(&file, dir.path().join("mxring.log"));
    let wait_for = |needle: &str| mx.wait_log(needle, Duration::from_secs(20));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(rcpt(addr, "x@a.test"), 250);
    assert_eq!(rcpt(addr, "x@b.test"), 554);

    // Write the config file and send SIGHUP.
    let reload_with = |text: String| {
        std::fs::write(&file, text).unwrap();
        mx.sighup();
    };
    let mut kept = Client::connect(addr);
    kept.cmd("EHLO kept");
    reload_with(config(
        "\"b.test\"",
        port,
        admin,
        &spool,
        "command_timeout = \"1s\"\n",
    ));
    // Each of the 2 shards logs when it has applied the new settings.
    wait_for("configuration reloaded");
    wait_for("configuration reloaded");
    // Every shard applies it; new connections may land on any of them.
    for _ in 0..8 {
        assert_eq!(rcpt(addr, "x@b.test"), 250);
        assert_eq!(rcpt(addr, "x@a.test"), 554);
    }
    assert_eq!(
        kept.cmd("NOOP").0,
        250,
        "the open connection survived the reload"
    );
    // New sessions take the reloaded timeouts (the default is 5 minutes).
    let started = std::time::Instant::now();
    let mut idle = Client::connect(addr);
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The session that began before the reload keeps the timeout it began with.
    assert_eq!(kept.cmd("NOOP").0, 250);

    reload_with("[server]\nshardz = 1\n".into());
    let refused = wait_for("reload refused");
    assert!(refused.contains("shardz"), "{refused}");
    assert_eq!(rcpt(addr, "x@b.test"), 250, "the old config stays in force");

    // A key that needs a restart is named, not silently ignored.
    reload_with(config(
        "\"b.test\"",
        port,
        admin,
        &spool,
        "max_connections_per_ip = 7\n",
    ));
    let warned = wait_for("only after a restart");
    assert!(warned.contains("server.max_connections_per_ip"), "{warned}");
    // Each of the 2 shards logs when it has applied the new settings.
    wait_for("configuration reloaded");
    wait_for("configuration reloaded");

    mx.sigterm();
    let status = mx.wait_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
