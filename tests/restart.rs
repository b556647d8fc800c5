//! Durability across a hard crash: every message that got a 250 is still queued
//! after `kill -9` and a restart of the real binary.


use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use mxring_testkit::client::{queued_id, Client};
use mxring_testkit::closed_port;

/// Start `mxring serve` and wait for its "listening" log line (a signal, not a sleep).
fn spawn(config: &std::path::Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mxring exited before listening")
            .unwrap();
        if line.contains("listening") {
            let a = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break a.parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[test]
fn kill_9_after_250_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let admin = closed_port();
    let dead_end = closed_port();
    let config = dir.path().join("mxring.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.test\"\nshards = 2\nspool = \"{}/spool\"\n\
             [[listener]]\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
             [admin]\naddress = \"{admin}\"\n\
             [[route]]\ndomains = [\"*\"]\nnext_hop = \"[{}]:{}\"\n",
            dir.path().display(),
            dead_end.ip(),
            dead_end.port()
        ),
    )
    .unwrap();

    let (mut child, addr) = spawn(&config);
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut c = Client::connect(addr);
        c.cmd("EHLO c");
        let (code, text) = c.send_mail(
            "a@s.test",
            &["b@d.test"],
            &format!("Subject: {i}\n\nbody {i}\n"),
        );
        assert_eq!(code, 250, "{text}");
        ids.push(queued_id(&text));
    }
    child.kill().unwrap(); // SIGKILL: no flush, no goodbye.
    child.wait().unwrap();

    let (mut child, _) = spawn(&config);
    let out = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["queue", "list", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<mxring::admin::MessageView> = serde_json::from_slice(&out.stdout).unwrap();
    for id in &ids {
        assert!(
            list.iter().any(|m| &m.id == id),
            "message {id} was acknowledged but is gone after kill -9"
        );
    }
}
