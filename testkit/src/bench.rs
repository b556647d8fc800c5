//! For the bench harness's integration tests: run `mxring-bench sink` on a free
//! loopback port, run `mxring-bench load` against it, and collect both JSON reports.
//! Every process has a --duration backstop and every wait a bound.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The `mxring-bench` binary cargo built for the harness's tests (see
/// `process::built_bin`).
pub fn bin() -> PathBuf {
    crate::process::built_bin("mxring-bench")
}

pub struct Sink {
    pub child: Child,
    pub addr: String,
}

/// Starts a sink on a free loopback port and returns once it is listening.
pub fn start_sink(extra: &[&str]) -> Sink {
    let mut child = Command::new(bin())
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--duration",
            "60",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sink");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .expect("sink stderr");
    let addr = line
        .trim()
        .strip_prefix("sink listening on ")
        .unwrap_or_else(|| panic!("unexpected sink output {line:?}"))
        .to_string();
    Sink { child, addr }
}

/// Waits for a child with a bound, killing it if it overstays.
pub fn finish(mut child: Child, limit: Duration) -> (i32, String) {
    let Some(status) = crate::process::wait_child(&mut child, limit) else {
        panic!("process did not finish within {limit:?}");
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status.code().unwrap_or(-1), out)
}

pub fn load(addr: &str, extra: &[&str]) -> (i32, Value) {
    let child = Command::new(bin())
        .args([
            "load",
            "--target",
            addr,
            "--json",
            "--quiet",
            "--timeout",
            "10",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start load");
    let (code, out) = finish(child, Duration::from_secs(90));
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, report)
}

pub fn sink_report(sink: Sink) -> Value {
    let (code, out) = finish(sink.child, Duration::from_secs(90));
    assert_eq!(code, 0, "sink exit status");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mxring-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Asks a process to finish as Ctrl-C would (the sink then reports and exits).
pub fn interrupt(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
}

/// Stops a sink with SIGINT and returns its report.
pub fn stop_sink(sink: Sink) -> Value {
    interrupt(&sink.child);
    sink_report(sink)
}
