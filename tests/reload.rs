//! SIGHUP reloads policy and routes without dropping connections; a bad new config
//! is refused with a message and the old one stays in force.


use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mxring_testkit::client::Client;
use mxring_testkit::closed_port;

fn config(
    domains: &str,
    port: u16,
    admin: std::net::SocketAddr,
    spool: &std::path::Path,
    server_extra: &str,
) -> String {
    let dead = closed_port();
    format!(
        "[server]\nhostname = \"mx.test\"\nshards = 2\nspool = \"{}\"\n{server_extra}\
         [[listener]]\naddress = \"127.0.0.1:{port}\"\ntls = \"starttls\"\n[admin]\naddress = \"{admin}\"\n\
         [relay]\nnetworks = []\ndomains = [{domains}]\n[[route]]\ndomains = [\"*\"]\nnext_hop = \"[{}]:{}\"\n",
        spool.display(),
        dead.ip(),
        dead.port()
    )
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = closed_port();
    let file = dir.path().join("mxring.toml");
    let spool = dir.path().join("spool");
    std::fs::write(&file, config("\"a.test\"", port, admin, &spool, "")).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_mxring"))
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("listening");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(rcpt(addr, "x@a.test"), 250);
    assert_eq!(rcpt(addr, "x@b.test"), 554);

    let pid = child.0.id().to_string();
    // Write the config file and send SIGHUP.
    let reload_with = |text: String| {
        std::fs::write(&file, text).unwrap();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
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

    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.0.wait().unwrap().success());
}

/// The server is killed if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
