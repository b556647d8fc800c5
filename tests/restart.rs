//! Durability across a hard crash: every message that got a 250 is still queued
//! after `kill -9` and a restart of the real binary.

use std::process::Command;

use mxring_testkit::client::{queued_id, Client};
use mxring_testkit::process::Mx;
use mxring_testkit::{closed_port, free_port, Toml};

#[test]
fn kill_9_after_250_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin = closed_port();
    let dead_end = closed_port();
    let config = Toml::new(&dir.path().join("spool"), 2)
        .listener("mx", port, "none")
        .admin(&admin.to_string())
        .route_all(dead_end)
        .write(dir.path().join("mxring.toml"));

    let mx = Mx::start(&config, dir.path().join("mxring-1.log"));
    let addr = mx.smtp;
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
    mx.kill9();

    let mx = Mx::start(&config, dir.path().join("mxring-2.log"));
    let out = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["queue", "list", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    mx.kill9();
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
