//! End-to-end: run the sink binary on a loopback port, drive it with the load generator,
//! and check both sides counted the same messages. Every process has a --duration
//! backstop and every wait a timeout, so a failing test cannot hang.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use mxring_testkit::bench::{bin, load, sink_report, start_sink, temp_dir};

#[test]
fn plaintext_pipelined_reused_connections() {
    let sink = start_sink(&["--messages", "300"]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--messages",
            "300",
            "--connections",
            "6",
            "--duration",
            "30",
            "--size",
            "1k",
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["messages_ok"], 300);
    assert_eq!(r["messages_failed"], 0);
    assert_eq!(r["connections_opened"], 6);
    let s = sink_report(sink);
    assert_eq!(s["messages"], 300);
    // The sink counts headers too, so it saw more than the bodies alone.
    assert_eq!(r["body_bytes"], 300 * 1024);
    assert!(s["bytes"].as_u64().unwrap() > 300 * 1024);
}

#[test]
fn starttls_new_connection_each_message_both_versions() {
    for version in ["1.2", "1.3"] {
        let sink = start_sink(&["--tls", "starttls", "--messages", "40"]);
        let (code, r) = load(
            &sink.addr,
            &[
                "--messages",
                "40",
                "--connections",
                "4",
                "--tls",
                "starttls",
                "--tls-version",
                version,
                "--new-connection-per-message",
                "--no-pipelining",
                "--duration",
                "30",
            ],
        );
        assert_eq!(code, 0, "{r}");
        assert_eq!(r["messages_ok"], 40);
        assert_eq!(r["connections_opened"], 40);
        assert_eq!(r["handshake_latency_ms"]["count"], 40);
        assert_eq!(sink_report(sink)["messages"], 40);
    }
}

#[test]
fn dumped_messages_are_what_was_sent() {
    let dir = temp_dir("dump");
    let sink = start_sink(&["--messages", "5", "--dump-dir", dir.to_str().unwrap()]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--messages",
            "5",
            "--connections",
            "1",
            "--size",
            "500",
            "--recipients",
            "2",
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(sink_report(sink)["messages"], 5);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    for f in files {
        let m = std::fs::read_to_string(&f).unwrap();
        assert!(m.starts_with(
            "From: <bench@load.test>\r\nTo: <user1@example.com>,\r\n <user2@example.com>\r\n"
        ));
        assert!(m.contains("\r\nMessage-ID: <"));
        let (_, body) = m.split_once("\r\n\r\n").expect("header/body separator");
        assert_eq!(body.len(), 500);
        assert!(body.ends_with("\r\n"));
        for line in m.split("\r\n") {
            assert!(line.len() <= 78, "{line:?}");
            assert!(line.bytes().all(|b| (32..127).contains(&b)));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejected_messages_fail_the_run() {
    let sink = start_sink(&["--messages", "20", "--reply-code", "451"]);
    let (code, r) = load(&sink.addr, &["--messages", "20", "--connections", "2"]);
    assert_ne!(code, 0);
    assert_eq!(r["messages_ok"], 0);
    assert_eq!(r["messages_failed"], 20);
    assert_eq!(r["errors"]["451"], 20);
    let s = sink_report(sink);
    assert_eq!(s["messages"], 20);
    assert_eq!(s["rejected"], 20);
}

#[test]
fn unreachable_target_ends_with_failure() {
    let (code, r) = load(
        &mxring_testkit::closed_port().to_string(),
        &["--messages", "3", "--connections", "1"],
    );
    assert_ne!(code, 0);
    assert_eq!(r["messages_failed"], 3);
    assert_eq!(r["errors"]["connect"], 3);
}

/// The sink's own protocol handling, spoken by hand: pipelined BDAT and DATA with
/// dot-stuffing, answered in order.
#[test]
fn sink_handles_bdat_and_dot_stuffing() {
    let dir = temp_dir("raw");
    let sink = start_sink(&["--messages", "2", "--dump-dir", dir.to_str().unwrap()]);
    let mut s = TcpStream::connect(&sink.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"EHLO t\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 7\r\nhello\r\nBDAT 3 LAST\r\nx\r\n",
    )
    .unwrap();
    s.write_all(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("354 ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "sink closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("250 CHUNKING\r\n") || got.contains("250-CHUNKING\r\n"),
        "{got}"
    );
    assert!(got.contains("250 2.0.0 7 octets received\r\n"), "{got}");
    s.write_all(b"..leading dot\r\n.\r\nQUIT\r\n").unwrap();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(got.matches("250 2.0.0 Ok: queued\r\n").count(), 2, "{got}");
    assert!(got.ends_with("221 2.0.0 Bye\r\n"), "{got}");
    assert_eq!(sink_report(sink)["messages"], 2);
    assert_eq!(
        std::fs::read(dir.join("00000000.eml")).unwrap(),
        b"hello\r\nx\r\n"
    );
    assert_eq!(
        std::fs::read(dir.join("00000001.eml")).unwrap(),
        b".leading dot\r\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate_paces_the_offered_load() {
    // 40 messages at 40/s over 4 connections: each connection sends every 100 ms, the
    // connections staggered by 25 ms, so the last message cannot go before ~0.98 s.
    // Unpaced, 40 messages to a loopback sink take milliseconds.
    let sink = start_sink(&["--messages", "40"]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--messages",
            "40",
            "--connections",
            "4",
            "--rate",
            "40",
            "--duration",
            "30",
        ],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["messages_ok"], 40);
    assert_eq!(r["offered_rate"], 40.0);
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 0.95, "40 messages at 40/s took only {elapsed} s");
    assert_eq!(sink_report(sink)["messages"], 40);
}

#[test]
fn rate_must_be_positive() {
    for bad in ["0", "-5", "fast", "NaN"] {
        let out = Command::new(bin())
            .args(["load", "--target", "127.0.0.1:9", "--messages", "1"])
            .arg(format!("--rate={bad}"))
            .output()
            .expect("run load");
        assert_eq!(out.status.code(), Some(2), "--rate {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("messages per second"), "--rate {bad}: {err}");
    }
}
