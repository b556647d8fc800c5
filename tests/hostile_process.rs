//! Hostile clients against the real binary (`mxring serve` as a child process), where
//! the test must see the server's own resources: its open fds, its TCP connections
//! in /proc/net/tcp, and its memory in /proc/PID/status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mxring_testkit::process::Mx;
use mxring_testkit::{closed_port, free_port, grep_logs, settle, Toml, Workdir};

/// One shard (so per-IP limits are exact), plaintext, every domain routed to a
/// closed port (nothing is delivered; mail stays queued).
fn start(work: &Workdir, server_keys: &str) -> Mx {
    let path = Toml::new(&work.join("spool"), 1)
        .server(server_keys)
        .listener("mx", free_port(), "none")
        .admin("127.0.0.1:0")
        .route_all(closed_port())
        .write(work.join("mxring.toml"));
    Mx::start(&path, work.join("mxring.log"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Server-side ESTABLISHED TCP connections on `addr`'s port (IPv4 loopback).
fn established_on(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = format!(":{:04X}", addr.port());
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&port) && f[3] == "01"
        })
        .count()
}

/// A kilobyte figure from /proc/PID/status (VmRSS, VmHWM).
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Poll `what` (bounded by `secs`) until `ok` holds of it; the server has no event
/// for "that connection is gone" that a test could wait on instead.
fn wait_until<T>(secs: u64, what: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    settle(Duration::from_secs(secs), what, ok)
}

/// A reading that stayed the same for half a second (bounded to ten seconds).
fn wait_stable(mut what: impl FnMut() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = what();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = what();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Flood NOOPs without ever reading, until neither direction moves any more.
fn flood_without_reading(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let flood = b"NOOP\r\n".repeat(2000);
    let mut stuck = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stuck < 5 && Instant::now() < deadline {
        match s.write(&flood) {
            Ok(_) => stuck = 0,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stuck += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => break,
        }
    }
    s
}

/// Issue 11, item 3: clients that flood and never read are dropped for real at
/// `command_timeout`: the server's fds and TCP connections go, and only then the
/// per-IP slots, so a second wave cannot exceed `max_connections_per_ip`.
#[test]
fn never_reading_clients_are_closed_with_their_fds_and_slots() {
    const N: usize = 30;
    let work = Workdir::new("never-read");
    let mx = start(
        &work,
        &format!("command_timeout = \"2s\"\nmax_connections_per_ip = {N}\n"),
    );
    // One honest session first, so whatever the server opens on first use (its
    // resolver, the delivery side) is in the baseline.
    {
        let mut s = TcpStream::connect(mx.smtp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"EHLO warm.test\r\nQUIT\r\n").unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
    }
    wait_until(10, || established_on(mx.smtp), |&n| n == 0);
    let baseline = wait_stable(|| open_fds(mx.pid));
    let floods: Vec<_> = (0..N)
        .map(|_| {
            let addr = mx.smtp;
            std::thread::spawn(move || flood_without_reading(addr))
        })
        .collect();
    let wave1: Vec<TcpStream> = floods.into_iter().map(|t| t.join().unwrap()).collect();
    let fds = wait_until(30, || open_fds(mx.pid), |&n| n <= baseline);
    let conns = established_on(mx.smtp);
    assert!(
        fds <= baseline && conns == 0,
        "after dropping {N} non-reading clients the server still has {fds} fds \
         (baseline {baseline}) and {conns} established connections"
    );
    let dropped = grep_logs(
        std::slice::from_ref(&mx.log),
        &["client does not read its replies; connection dropped".to_string()],
    );
    assert_eq!(dropped.len(), N, "{dropped:?}");
    // The slots are free again, and only as many as the limit are taken.
    let mut wave2 = Vec::new();
    for i in 0..N + 5 {
        let mut s = TcpStream::connect(mx.smtp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 128];
        let n = s.read(&mut buf).unwrap();
        let greeting = String::from_utf8_lossy(&buf[..n]).to_string();
        if i < N {
            assert!(greeting.starts_with("220 "), "connection {i}: {greeting:?}");
        } else {
            assert!(
                greeting.starts_with("421 4.7.0"),
                "connection {i}: {greeting:?}"
            );
        }
        wave2.push(s);
    }
    let conns = wait_until(10, || established_on(mx.smtp), |&n| n <= N);
    assert!(conns <= N, "{conns} connections for a limit of {N}");
    drop(wave1);
    drop(wave2);
}

/// Issue 11, item 5: ten concurrent DATA streams far over `max_message_size` are
/// counted and discarded, not kept: the server's peak RSS grows by a few MiB per
/// session, not by the size of what the clients send.
#[test]
fn oversized_data_streams_do_not_grow_memory() {
    const STREAMS: usize = 10;
    const SEND: usize = 60 << 20;
    let work = Workdir::new("oversized");
    // The default limit, 50 MiB: each stream is over it, and under it for a while.
    let mx = start(&work, "");
    let before = status_kib(mx.pid, "VmRSS:");
    let line = [b"x".repeat(78), b"\r\n".to_vec()].concat();
    let chunk = line.repeat(64 * 1024 / line.len());
    let threads: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (addr, chunk) = (mx.smtp, chunk.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s.write_all(
                    b"EHLO big.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n",
                )
                .unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&seen).contains("354 ") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0);
                    seen.extend_from_slice(&buf[..n]);
                }
                let mut sent = 0;
                while sent < SEND {
                    s.write_all(&chunk).unwrap();
                    sent += chunk.len();
                }
                s.write_all(b".\r\n").unwrap();
                seen.clear();
                while !seen.ends_with(b"\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0);
                    seen.extend_from_slice(&buf[..n]);
                }
                String::from_utf8_lossy(&seen).to_string()
            })
        })
        .collect();
    for t in threads {
        let reply = t.join().unwrap();
        assert!(reply.starts_with("552 5.3.4"), "{reply:?}");
    }
    // What was spilled of them is gone with the refusals.
    let left: Vec<_> = std::fs::read_dir(work.join("spool").join("incoming"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "spill files left: {left:?}");
    let peak = status_kib(mx.pid, "VmHWM:");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("RSS before {before} KiB, peak {peak} KiB: +{grown_mib} MiB for {STREAMS} streams of {} MiB", SEND >> 20);
    assert!(
        grown_mib <= (STREAMS as u64) * 4,
        "peak RSS grew by {grown_mib} MiB for {STREAMS} oversized streams"
    );
}
