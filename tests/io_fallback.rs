//! The real binary where io_uring is blocked (issue 17): `mxring serve` runs under a
//! seccomp filter that makes io_uring's system calls fail with EPERM, as Docker's
//! default profile does. With `io = "auto"` it warns, runs every shard on epoll and
//! relays mail end to end over STARTTLS (in and out); with `io = "uring"` it refuses
//! to start, says why, and exits non-zero. And a shard whose runtime cannot start
//! (the probe's tiny ring is allowed, a real one is not) stops the process with a
//! clear message and exit status 70 instead of leaving a server that serves nothing.
//!
//! MXRING_IO is removed from the child's environment: these tests are about the
//! config key, and must mean the same in CI's second (MXRING_IO=epoll) run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::seccomp::{block_io_uring, block_large_io_urings};
use mxring_testkit::sink::Sink;

const START_LIMIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path, io: &str, next_hop: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("mxring.toml");
    let text = format!(
        "[server]\nhostname = \"mx.test\"\nshards = 2\nio = \"{io}\"\nspool = \"{spool}\"\n\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [[route]]\ndomains = [\"*\"]\nnext_hop = \"[{ip}]:{port}\"\n\
         [queue]\nretry = [\"1s\"]\n",
        spool = dir.join("spool").display(),
        ip = next_hop.ip(),
        port = next_hop.port(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn mxring_blocked(config: &std::path::Path) -> Command {
    let mut cmd = mxring(config);
    block_io_uring(&mut cmd);
    cmd
}

fn mxring(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxring"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("MXRING_IO")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn auto_falls_back_to_epoll_and_relays_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let dest = Sink::with_tls();
    let cfg = config(dir.path(), "auto", dest.addr);
    let mut child = mxring_blocked(&cfg).spawn().expect("spawn mxring");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let copier = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Every line up to "listening", which comes only once every shard accepts.
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                panic!("mxring did not start ({e}); its log:\n{}", log.join("\n"));
            }
        };
        log.push(line.clone());
        if line.contains(" listening") {
            let a = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next();
            break a.unwrap().parse().unwrap();
        }
    };
    let text = log.join("\n");
    let warnings: Vec<_> = log
        .iter()
        .filter(|l| l.contains("io_uring is unavailable"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning about io_uring:\n{text}");
    assert!(
        warnings[0].contains("Operation not permitted"),
        "the warning names the kernel's reason:\n{text}"
    );
    let shards: Vec<_> = log
        .iter()
        .filter(|l| l.contains("shard accepting"))
        .collect();
    assert_eq!(
        shards.len(),
        2,
        "both shards report before listening:\n{text}"
    );
    assert!(
        shards.iter().all(|l| l.contains("backend=epoll")),
        "every shard runs on epoll:\n{text}"
    );

    let mut c = Client::connect(addr);
    c.cmd("EHLO client.test");
    c.starttls(TlsVersion::Tls13);
    assert_eq!(c.tls().unwrap().0, "TLSv1_3");
    c.cmd("EHLO client.test");
    let (code, reply) = c.send_mail(
        "alice@sender.test",
        &["bob@dest.test"],
        "Subject: epoll\r\n\r\nrelayed without io_uring\r\n",
    );
    assert_eq!(code, 250, "{reply}");
    let a = dest.next(20);
    assert_eq!(a.rcpts, ["bob@dest.test"]);
    assert_eq!(a.tls.as_deref(), Some("TLSv1_3"), "delivered over STARTTLS");
    assert!(a.data.ends_with(b"relayed without io_uring\r\n"));

    // SIGTERM: it drains and exits 0 on epoll too.
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = done_rx
        .recv_timeout(Duration::from_secs(40))
        .expect("mxring stopped after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    waiter.join().unwrap();
    copier.join().unwrap();
}

#[test]
fn uring_refuses_to_start_when_io_uring_is_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "uring", "127.0.0.1:9".parse().unwrap());
    let out = mxring_blocked(&cfg).output().expect("run mxring");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("io_uring is unavailable")
            && stderr.contains("Operation not permitted")
            && stderr.contains("[server] io = \"uring\" asks for it"),
        "a clear refusal naming the reason and the setting:\n{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_shard_that_cannot_start_stops_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "uring", "127.0.0.1:9".parse().unwrap());
    let mut cmd = mxring(&cfg);
    block_large_io_urings(&mut cmd);
    let child = cmd.spawn().expect("spawn mxring");
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(START_LIMIT) {
        Ok(out) => out.expect("run mxring"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (the waiter still waits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("mxring stayed up with a shard that could not start");
        }
    };
    runner.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert!(
        stderr.contains("(io_uring back end) failed: its io_uring runtime could not start")
            && stderr.contains("Operation not permitted")
            && stderr.contains("mxring stops"),
        "a clear message naming the shard and the reason:\n{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}
