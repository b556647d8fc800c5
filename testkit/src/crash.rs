//! Pieces of the crash test (tests/crash.rs): the real `mxring serve` as a child
//! process with its log kept in a file, a counting receiving SMTP server, a
//! fallible SMTP client (a broken connection is an outcome, not a panic), and a
//! small seeded PRNG for the kill moments.

use std::path::{Path, PathBuf};

/// xorshift64*: enough randomness for kill moments, reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    /// Seed from `MXRING_CRASH_SEED` if set (to replay a run), else from the clock.
    pub fn from_env_or_time() -> (Rng, u64) {
        let seed = std::env::var("MXRING_CRASH_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (Rng(seed.max(1)), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A temp dir for the spool and mxring's logs. Removed when the test passes, kept
/// (and its path printed) when it fails, so the logs can be read afterwards.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
}

impl Workdir {
    pub fn new(label: &str) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mxring-{label}-"))
            .tempdir()
            .unwrap();
        Workdir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl Drop for Workdir {
    /// Also kept when `MXRING_CRASH_KEEP` is set, to read the logs of a good run.
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed || std::env::var_os("MXRING_CRASH_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                let kept = d.keep();
                eprintln!(
                    "crash: {}; spool and mxring logs kept in {}",
                    if failed {
                        "test failed"
                    } else {
                        "MXRING_CRASH_KEEP set"
                    },
                    kept.display()
                );
            }
        }
    }
}

/// A loopback port nobody listens on right now (mxring binds it itself, with
/// SO_REUSEADDR, and keeps it across restarts so clients can come back).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The config used by both tests: two shards, plaintext listener on `port`, admin
/// API on an ephemeral port, every domain routed to the sink, retries after 1 s.
pub fn write_config(work: &Workdir, port: u16, sink: std::net::SocketAddr, extra: &str) -> PathBuf {
    let path = work.join("mxring.toml");
    let text = format!(
        "[server]\nhostname = \"mx.test\"\nshards = 2\nspool = \"{spool}\"\n\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\ndomains = [\"*\"]\nnext_hop = \"[{ip}]:{sport}\"\n\
         [queue]\nretry = [\"1s\"]\ndelay_warning_after = \"1h\"\ngive_up_after = \"1h\"\n\
         {extra}",
        spool = work.join("spool").display(),
        ip = sink.ip(),
        sport = sink.port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// FNV-1a 64, to check that a body arrives byte for byte.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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
