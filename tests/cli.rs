//! The `mxring` binary as an operator runs it: output into a closed pipe, and
//! JSON log lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mxring_testkit::client::Client;

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

/// `mxring serve` as a child process logging JSON, one shard, admin off.
struct JsonServer {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    _dir: tempfile::TempDir,
}

impl JsonServer {
    fn start(extra: &str) -> JsonServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("json.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mx.test\"\nshards = 1\nspool = \"{}\"\n\
                 [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
                 [admin]\naddress = \"\"\n[log]\nformat = \"json\"\n{extra}",
                dir.path().join("spool").display(),
            ),
        )
        .unwrap();
        let mut child = mxring()
            .args(["serve", "--config"])
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        JsonServer {
            child,
            lines,
            _dir: dir,
        }
    }

    /// The next log line with this message (each must be JSON).
    fn next(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self.lines.next().expect("a log line").unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["message"] == message {
                return v;
            }
        }
    }

    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert!(self.child.wait().unwrap().success());
    }
}

fn send_one(addr: std::net::SocketAddr, rcpt: &str) {
    let mut c = Client::connect(addr);
    c.cmd("EHLO client.test");
    assert_eq!(c.send_mail("a@src.test", &[rcpt], "hi\n").0, 250);
}

#[test]
fn json_logs_are_one_object_per_line_with_the_text_fields() {
    let mut s = JsonServer::start(&mxring_testkit::route_all(mxring_testkit::closed_port()));
    let listening = s.next("listening");
    assert_eq!(listening["listener"], "mx", "{listening}");
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert!(listening["timestamp"].is_string(), "{listening}");
    send_one(
        listening["addr"].as_str().unwrap().parse().unwrap(),
        "b@dst.test",
    );
    let queued = s.next("queued");
    for field in [
        "id", "shard", "from", "rcpts", "size", "client", "tls", "cipher",
    ] {
        assert!(!queued[field].is_null(), "no {field}: {queued}");
    }
    assert_eq!(queued["from"], "a@src.test", "{queued}");
    assert_eq!(queued["tls"], "none", "{queued}");
    s.stop();
}

/// A failed MX lookup is an attempt like any other: it gets its log line.
#[test]
fn a_dns_failure_gets_the_delivery_log_line() {
    let dns = mxring_testkit::dns_server::DnsServer::start(mxring_testkit::dns_server::Zone::new());
    let mut s = JsonServer::start(&format!(
        "[dns]\nnameservers = [\"{}\"]\n",
        dns.nameserver()
    ));
    let listening = s.next("listening");
    send_one(
        listening["addr"].as_str().unwrap().parse().unwrap(),
        "b@nowhere.test",
    );
    let attempt = s.next("delivery attempt");
    assert_eq!(attempt["to"], "b@nowhere.test", "{attempt}");
    assert_eq!(attempt["status"], "5.1.2", "{attempt}");
    assert_eq!(attempt["result"], "failed", "{attempt}");
    assert_eq!(attempt["mx_ip"], "none", "{attempt}");
    s.stop();
}

/// `mxring queue show ID` prints a summary for people; `--json` the API's JSON.
#[test]
fn queue_show_is_readable_and_json_on_request() {
    let s = mxring_testkit::TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n{}",
        mxring_testkit::route_all(mxring_testkit::closed_port())
    ));
    send_one(s.addr("mx"), "b@dst.test");
    let id = s.queue()[0].id.clone();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    let admin = s.server.as_ref().unwrap().admin.unwrap();
    std::fs::write(
        &config,
        format!("[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"{admin}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = mxring()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["queue", "show", &id]);
    for want in [
        format!("Queue ID:     {id}"),
        "Sender:       a@src.test".to_string(),
        "Recipients:".to_string(),
        "  b@dst.test  ".to_string(),
        "Headers:".to_string(),
        "  Received: from client.test".to_string(),
    ] {
        assert!(text.contains(&want), "no `{want}` in:\n{text}");
    }
    assert!(
        !text.trim_start().starts_with('{'),
        "not JSON by default:\n{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["queue", "show", &id, "--json"])).unwrap();
    assert_eq!(json["id"], id.as_str());
    let state = json["recipients"][0]["state"].as_str().unwrap().to_string();
    assert!(["pending", "deferred"].contains(&state.as_str()), "{state}");
    assert!(
        run(&["queue", "list"]).contains(&state),
        "the list uses the same words"
    );
}

/// explain speaks the config's own words: `on_failure: bounce`, `tls = "required"`.
#[test]
fn explain_prints_config_spellings_not_rust_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("explain.toml");
    std::fs::write(
        &config,
        "[[listener]]\nname = \"securemx\"\naddress = \"127.0.0.1:0\"\ntls = \"required\"\n\
         [[outbound_tls]]\ndomains = [\"their.test\"]\nlevel = \"encrypt\"\non_failure = \"bounce\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = mxring()
            .args(["policy", "explain", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let outbound = run(&["--direction", "outbound", "--recipient", "a@their.test"]);
    assert!(outbound.contains("on_failure: bounce"), "{outbound}");
    let inbound = run(&["--direction", "inbound", "--recipient", "a@x.test"]);
    assert!(
        inbound.contains("listener securemx (tls = \"required\")"),
        "{inbound}"
    );
    for text in [&outbound, &inbound] {
        assert!(
            !text.contains("Bounce") && !text.contains("Required"),
            "{text}"
        );
    }
}
