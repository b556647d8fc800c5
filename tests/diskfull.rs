//! Issue 11, item 4: a full spool file system. On a small tmpfs the test mounts
//! (CI runs as root), mxring refuses new mail with 452 while the disk is full,
//! delivers what it holds meanwhile, and once space comes back it takes mail again
//! within seconds, without a restart, and without delivering anything twice (the
//! status writes that failed while full are retried). A restart afterwards finds
//! the queue empty, so nothing can be delivered again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mxring_testkit::client::{message, Client, Outcome};
use mxring_testkit::process::Mx;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{free_port, loopback, wait_until, Toml, Workdir};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount one of `size` at `dir`; the error says why not.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Write a file until the file system is full; returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
    n
}

fn submit(addr: std::net::SocketAddr, id: &str) -> Outcome {
    let mut c = match Client::open(addr, Duration::from_secs(30)) {
        Ok(c) => c,
        Err(e) => return Outcome::BrokenBefore(e),
    };
    let o = c.submit("sender@client.test", "rcpt@sink.test", &message(id, 1500));
    let _ = c.send(b"QUIT\r\n");
    o
}

fn config(work: &Workdir, spool: &Path, port: u16, sink_port: u16) -> PathBuf {
    Toml::new(spool, 1)
        .listener("mx", port, "none")
        .admin("127.0.0.1:0")
        .route_all(loopback(sink_port))
        .queue(
            "retry = [\"1s\"]\ndelay_warning_after = \"1h\"\ngive_up_after = \"1h\"\n\
             min_free_space = \"16MiB\"",
        )
        .write(work.join("mxring.toml"))
}

#[test]
fn a_full_spool_recovers_without_restart_or_duplicates() {
    let work = Workdir::new("diskfull");
    let mnt = work.join("mnt");
    let _tmpfs = match Tmpfs::mount(&mnt, "64m") {
        Ok(t) => t,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED a_full_spool_recovers_without_restart_or_duplicates: it mounts a \
                 64 MiB tmpfs and that was refused ({why}); run it as root (CI does)"
            );
            return;
        }
        Err(why) => panic!("CI must run the disk-full test, but mounting a tmpfs failed: {why}"),
    };
    let spool = mnt.join("spool");
    let (port, sink_port) = (free_port(), free_port());
    let cfg = config(&work, &spool, port, sink_port);
    let mx = Mx::start(&cfg, work.join("mxring-1.log"));

    // The next hop is down: messages stay queued.
    let queued: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    for id in &queued {
        assert!(
            matches!(submit(mx.smtp, id), Outcome::Acked(_)),
            "{id} refused with space left"
        );
    }
    // Someone else fills the file system to the brim.
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    match submit(mx.smtp, "while-full") {
        Outcome::Rejected((452, _)) | Outcome::Refused((452, _)) => {}
        other => panic!("mail accepted on a full disk: {other:?}"),
    }
    // The next hop comes up: the queued mail is delivered while the disk is full,
    // so the queue cannot record it (yet).
    let sink = Sink::start_at(&format!("127.0.0.1:{sink_port}"), Script::default());
    assert!(
        sink.state.wait_until(Duration::from_secs(60), |c| queued
            .iter()
            .all(|id| c.arrivals.contains_key(id))),
        "queued mail not delivered while the disk was full: {:?}",
        sink.state.counts()
    );
    // The store did hit the full disk (or this test would prove nothing).
    let wedged = mxring_testkit::grep_logs(
        std::slice::from_ref(&mx.log),
        &["spool write failed".to_string()],
    );
    assert!(!wedged.is_empty(), "the full disk never reached the store");
    // Space comes back: within seconds mail is taken again, and the queue empties.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut last = None;
    wait_until(
        Duration::from_secs(10),
        "mail accepted again",
        || match submit(mx.smtp, "after") {
            Outcome::Acked(_) => true,
            other => {
                last = Some(other);
                false
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}: still refused after space came back: {last:?}"));
    eprintln!(
        "mail accepted again {:?} after space came back",
        freed.elapsed()
    );
    wait_until(Duration::from_secs(30), "the queue to drain", || {
        mx.queue_len() == Some(0)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: queue not empty after space came back: {:?} left",
            mx.queue_len()
        )
    });
    // A restart finds nothing left to deliver again.
    mx.sigterm();
    assert!(mx.wait_exit(Duration::from_secs(30)).is_some());
    let mx = Mx::start(&cfg, work.join("mxring-2.log"));
    assert_eq!(
        mx.queue_len(),
        Some(0),
        "messages came back after the restart"
    );
    let counts = sink.state.counts();
    let twice: Vec<_> = counts.arrivals.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert_eq!(counts.arrivals.get("after"), Some(&1));
}
