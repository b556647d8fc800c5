//! Hostile clients against the real binary (`mxring serve` as a child process), where
//! the test must see the server's own resources: its open fds, its TCP connections
//! in /proc/net/tcp, and its memory in /proc/PID/status.

mod crash_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crash_support::process::Mx;
use crash_support::{free_port, grep_logs, Workdir};

/// One shard (so per-IP limits are exact), plaintext, every domain routed to a
/// closed port (nothing is delivered; mail stays queued).
fn start(work: &Workdir, server_keys: &str) -> Mx {
    let closed = free_port();
    let path = work.join("mxring.toml");
    let text = format!(
        "[server]\nhostname = \"mx.test\"\nshards = 1\nspool = \"{spool}\"\n{server_keys}\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\
         [[route]]\ndomains = [\"*\"]\nnext_hop = \"[127.0.0.1]:{closed}\"\n",
        spool = work.join("spool").display(),
        port = free_port(),
    );
    std::fs::write(&path, text).unwrap();
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

/// Poll `what` (bounded by `secs`) until `ok` holds of it; the server has no event
/// for "that connection is gone" that a test could wait on instead.
fn wait_until<T: std::fmt::Debug>(
    secs: u64,
    mut what: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = what();
        if ok(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
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
    let baseline = open_fds(mx.pid);
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
