//! The real binary, `mxring serve --config FILE`, as a child process. Its stderr
//! (RUST_LOG=info) is copied line by line into a log file; start-up is complete
//! when the "listening" and "admin API" lines have been seen (a signal, not a sleep).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a start may take before the test gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Mx {
    child: Option<Child>,
    pub pid: u32,
    /// The address of the first listener that logged "listening".
    pub smtp: SocketAddr,
    /// The admin API's address, when `start` waited for it.
    pub admin: Option<SocketAddr>,
    pub log: PathBuf,
    /// Every log line not yet looked at by `start` or `wait_log`.
    lines: Mutex<mpsc::Receiver<String>>,
    copier: Option<JoinHandle<()>>,
}

fn field(line: &str, key: &str) -> Option<SocketAddr> {
    line.split(key)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Mx {
    /// Start mxring and wait until it listens and its admin API is up. Panics (with
    /// the log) if it exits first.
    pub fn start(config: &Path, log: PathBuf) -> Mx {
        Self::spawn(config, log, true)
    }

    /// As `start`, for a config without an admin API: waits for "listening" only.
    pub fn start_without_admin(config: &Path, log: PathBuf) -> Mx {
        Self::spawn(config, log, false)
    }

    fn spawn(config: &Path, log: PathBuf, admin_api: bool) -> Mx {
        let mut child = Command::new(mxring_bin())
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mxring");
        let pid = child.id();
        let stderr = child.stderr.take().unwrap();
        let mut file = std::fs::File::create(&log).unwrap();
        let (tx, rx) = mpsc::channel();
        let copier = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        let mut mx = Mx {
            child: Some(child),
            pid,
            smtp: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            log,
            lines: Mutex::new(rx),
            copier: Some(copier),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut smtp, mut admin) = (None, None);
        while smtp.is_none() || (admin_api && admin.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match mx.lines.get_mut().unwrap().recv_timeout(left) {
                Ok(line) => line,
                Err(e) => mx.fail(&format!("mxring did not start ({e})")),
            };
            if line.contains(" listening") {
                smtp = smtp.or(field(&line, "addr="));
            } else if line.contains("admin API") {
                admin = admin.or(field(&line, "address="));
            }
        }
        mx.smtp = smtp.unwrap();
        mx.admin = admin;
        mx
    }

    /// Wait for the next log line containing `needle` (lines before it are passed
    /// over) and return it; fails the test, showing the log, after `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => {
                    drop(lines);
                    panic!(
                        "no log line with {needle:?} within {limit:?}; log {}:\n{}",
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    )
                }
            }
        }
    }

    /// Kill the child and fail the test with its log.
    fn fail(&mut self, why: &str) -> ! {
        let status = self.child.take().map(|mut c| {
            let _ = c.kill();
            c.wait()
        });
        if let Some(c) = self.copier.take() {
            let _ = c.join();
        }
        panic!(
            "{why} (status {status:?}); log {}:\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGKILL: no flush, no goodbye. Returns once the process is gone and its
    /// log fully copied.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(c) = self.copier.take() {
            let _ = c.join();
        }
    }

    pub fn sigterm(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    /// SIGHUP: reload the configuration.
    pub fn sighup(&self) {
        signal(self.pid, libc::SIGHUP);
    }

    /// Wait for the process to exit by itself, at most `limit`. On timeout it is
    /// killed and None is returned.
    pub fn wait_exit(mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(limit) {
            Ok(s) => Some(s.unwrap()),
            Err(_) => {
                signal(self.pid, libc::SIGKILL);
                None
            }
        };
        let _ = waiter.join();
        if let Some(c) = self.copier.take() {
            let _ = c.join();
        }
        status
    }

    /// The queue as the admin API reports it (None if the API did not answer).
    pub fn queue_len(&self) -> Option<usize> {
        let (status, body) = mxring::admin::AdminClient::new(self.admin?)
            .request("GET", "/queue")
            .ok()?;
        if status != 200 {
            return None;
        }
        let list: Vec<mxring::admin::MessageView> = serde_json::from_str(&body).ok()?;
        Some(list.len())
    }
}

impl Drop for Mx {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait for `child` to exit, at most `limit` (a bounded poll of `try_wait`). On
/// timeout it is killed and reaped, and None is returned.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = crate::wait_for(limit, "the process to exit", || {
        child.try_wait().expect("try_wait on our own child")
    });
    match status {
        Ok(s) => Some(s),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// The `mxring` binary cargo built next to the running test.
pub fn mxring_bin() -> PathBuf {
    built_bin("mxring")
}

/// A binary of the workspace that cargo built next to the running test: tests live
/// in `target/<profile>/deps/`, binaries in `target/<profile>/`. The kit is a
/// library, so `env!("CARGO_BIN_EXE_<name>")` (set only when compiling a package's
/// own integration tests) is not available here.
pub fn built_bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary under target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} does not exist: cargo builds it for its own package's tests",
        bin.display()
    );
    bin
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Every line of the given log files that contains one of `needles`.
pub fn grep_logs(logs: &[PathBuf], needles: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for log in logs {
        let Ok(text) = std::fs::read_to_string(log) else {
            continue;
        };
        for line in text.lines() {
            if needles.iter().any(|n| line.contains(n.as_str())) {
                out.push(format!(
                    "{}: {line}",
                    log.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    out
}
