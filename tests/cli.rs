//! The `mxring` binary as an operator runs it: output into a closed pipe, and
//! JSON log lines.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::client::Client;

fn mxring() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxring"))
}

/// `mxring ... | head -1`: the reader is gone before the command writes.
#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    for args in [
        &[
            "policy",
            "explain",
            "--direction",
            "outbound",
            "--recipient",
            "a@b.test",
        ][..],
        &["config", "check"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = mxring()
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_text_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("json.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.test\"\nshards = 1\nspool = \"{}\"\n\
             [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
             [admin]\naddress = \"\"\n[log]\nformat = \"json\"\n{}",
            dir.path().join("spool").display(),
            common::route_all(common::closed_port())
        ),
    )
    .unwrap();
    let mut child = mxring()
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let line = lines.next().expect("a log line").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let listening = loop {
        let v = next();
        if v["message"] == "listening" {
            break v;
        }
    };
    assert_eq!(listening["listener"], "mx", "{listening}");
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert!(listening["timestamp"].is_string(), "{listening}");
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    let mut c = Client::connect(addr);
    c.cmd("EHLO client.test");
    assert_eq!(c.send_mail("a@src.test", &["b@dst.test"], "hi\n").0, 250);
    let queued = loop {
        let v = next();
        if v["message"] == "queued" {
            break v;
        }
    };
    for field in [
        "id", "shard", "from", "rcpts", "size", "client", "tls", "cipher",
    ] {
        assert!(!queued[field].is_null(), "no {field}: {queued}");
    }
    assert_eq!(queued["from"], "a@src.test", "{queued}");
    assert_eq!(queued["tls"], "none", "{queued}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
