//! The real binary, `mxring serve --config FILE`, as a child process. Its stderr
//! (RUST_LOG=info) is copied line by line into a log file; start-up is complete
//! when the "listening" and "admin API" lines have been seen (a signal, not a sleep).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a start may take before the test gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Mx {
    child: Option<Child>,
    pub pid: u32,
    pub smtp: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    copier: Option<JoinHandle<()>>,
}

enum Ready {
    Smtp(SocketAddr),
    Admin(SocketAddr),
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
    /// Start mxring and wait until it listens. Panics (with the log) if it exits first.
    pub fn start(config: &Path, log: PathBuf) -> Mx {
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
                if line.contains(" listening") {
                    if let Some(a) = field(&line, "addr=") {
                        let _ = tx.send(Ready::Smtp(a));
                    }
                } else if line.contains("admin API") {
                    if let Some(a) = field(&line, "address=") {
                        let _ = tx.send(Ready::Admin(a));
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut smtp, mut admin) = (None, None);
        while smtp.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ready::Smtp(a)) => smtp = Some(a),
                Ok(Ready::Admin(a)) => admin = Some(a),
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let _ = copier.join();
                    panic!(
                        "mxring did not start ({e:?}, status {status:?}); log {}:\n{}",
                        log.display(),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        Mx {
            child: Some(child),
            pid,
            smtp: smtp.unwrap(),
            admin: admin.unwrap(),
            log,
            copier: Some(copier),
        }
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
        let (status, body) = mxring::admin::AdminClient::new(self.admin)
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

/// The `mxring` binary cargo built next to the running test: tests live in
/// `target/<profile>/deps/`, the binary in `target/<profile>/`. The kit is a library,
/// so `env!("CARGO_BIN_EXE_mxring")` (set only when compiling the package's own
/// integration tests) is not available here.
pub fn mxring_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_mxring") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary under target/<profile>/deps");
    let bin = dir.join("mxring");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo test builds it for the mxring package's tests)",
        bin.display()
    );
    bin
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}
