//! The sink: a few threads, each accepting on its own listening socket (SO_REUSEPORT:
//! the kernel spreads new connections over them) and running its connections as tasks
//! on a current-thread tokio runtime. Counts messages, stops by itself.

use std::fs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};
use tokio::sync::watch;
use tokio::task::LocalSet;

use crate::cli::{SinkArgs, SinkTls};
use crate::limits;
use crate::signal;
use crate::sink_session;
use crate::sink_state::{Behaviour, SinkState};
use crate::tls;

/// After the stop condition, how long open connections get to say QUIT: long enough for
/// a load generator's last replies, short enough that a client that never quits cannot
/// keep the sink alive.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How often the main thread checks the stop conditions.
const POLL: Duration = Duration::from_millis(50);
/// Pending connections each listening socket may queue (capped by net.core.somaxconn).
const BACKLOG: i32 = 4096;

#[derive(Serialize)]
struct SinkReport {
    listen: String,
    threads: u32,
    fd_limit: u64,
    messages: u64,
    accepted: u64,
    rejected: u64,
    bytes: u64,
    connections: u64,
    peak_connections: u64,
    bdat_messages: u64,
    /// From the first MAIL FROM to the last message.
    elapsed_s: f64,
    messages_per_s: f64,
    mb_per_s: f64,
    dump_errors: u64,
}

pub fn run(args: SinkArgs) -> Result<i32, String> {
    let tls = match args.tls {
        SinkTls::None => None,
        SinkTls::Starttls | SinkTls::Implicit => Some(tls::server_config(
            args.cert.as_deref(),
            args.key.as_deref(),
        )?),
    };
    if let Some(dir) = &args.dump_dir {
        fs::create_dir_all(dir).map_err(|e| format!("--dump-dir {}: {e}", dir.display()))?;
    }
    let threads = args.threads.unwrap_or_else(limits::default_threads);
    // The sink cannot know how many clients will come: take every descriptor allowed.
    let fd_limit = limits::nofile_to_hard();
    let addr = args
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen {}: {e}", args.listen))?
        .next()
        .ok_or_else(|| format!("--listen {}: no address", args.listen))?;
    let (listeners, local) = bind(addr, threads).map_err(|e| format!("listen {addr}: {e}"))?;
    // Printed even with --json (on stderr) so scripts using port 0 can find the port.
    eprintln!("sink listening on {local}");

    let state = Arc::new(SinkState::new(
        tls,
        args.tls == SinkTls::Implicit,
        Behaviour {
            reply_code: args.reply_code,
            reject_rate: args.reject_rate,
            reject_code: args.reject_code,
            reply_delay: args.reply_delay,
            dump_dir: args.dump_dir.clone(),
        },
    ));
    signal::install();
    // `stop`: accept no more connections; `abort`: drop the ones still open.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(false);
    let ready = Arc::new(Barrier::new(threads as usize + 1));
    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let state = state.clone();
        let (stop_rx, abort_rx, ready) = (stop_rx.clone(), abort_rx.clone(), ready.clone());
        let h = thread::Builder::new()
            .name(format!("sink-{i}"))
            .spawn(move || accept_thread(listener, state, stop_rx, abort_rx, &ready))
            .map_err(|e| format!("starting sink thread {i}: {e}"))?;
        handles.push(h);
    }
    ready.wait();

    let start = Instant::now();
    let end = args.duration.map(|d| start + Duration::from_secs(d));
    let mut next_progress = start + Duration::from_secs(1);
    let mut last_count = 0;
    loop {
        if signal::interrupted()
            || end.is_some_and(|e| Instant::now() >= e)
            || args
                .messages
                .is_some_and(|m| state.messages.load(Ordering::Relaxed) >= m)
            || handles.iter().any(|h| h.is_finished())
        {
            break;
        }
        if args.progress && Instant::now() >= next_progress {
            let n = state.messages.load(Ordering::Relaxed);
            eprintln!(
                "[sink {:>5.0}s] {n} messages, {} in the last second, {} connections open",
                start.elapsed().as_secs_f64(),
                n - last_count,
                state.active.load(Ordering::SeqCst)
            );
            last_count = n;
            next_progress += Duration::from_secs(1);
        }
        thread::sleep(POLL);
    }
    stop_tx.send_replace(true);
    let drain_end = Instant::now() + DRAIN_GRACE;
    while state.active.load(Ordering::SeqCst) > 0 && Instant::now() < drain_end {
        thread::sleep(Duration::from_millis(10));
    }
    abort_tx.send_replace(true);
    for h in handles {
        let _ = h.join();
    }

    let report = report(&state, local.to_string(), threads, fd_limit);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("plain data")
        );
    } else {
        println!("listen            {}", report.listen);
        println!(
            "messages          {} ({} accepted, {} rejected)",
            report.messages, report.accepted, report.rejected
        );
        println!(
            "connections       {} ({} open at most; {} threads, open-files limit {})",
            report.connections, report.peak_connections, report.threads, report.fd_limit
        );
        println!(
            "elapsed           {:.2} s (first MAIL to last message)",
            report.elapsed_s
        );
        println!("throughput        {:.1} msg/s", report.messages_per_s);
        println!("body throughput   {:.2} MB/s", report.mb_per_s);
        if report.dump_errors > 0 {
            println!("dump errors       {}", report.dump_errors);
        }
    }
    Ok(0)
}

/// One listening socket per thread on the same address; the first picks the port when
/// the address asks for port 0.
fn bind(addr: SocketAddr, n: u32) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let mut addr = addr;
    let mut out = Vec::new();
    for i in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        if i == 0 {
            addr = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| std::io::Error::other("listening socket has no IP address"))?;
        }
        out.push(s.into());
    }
    Ok((out, addr))
}

fn accept_thread(
    listener: std::net::TcpListener,
    state: Arc<SinkState>,
    mut stop_rx: watch::Receiver<bool>,
    mut abort_rx: watch::Receiver<bool>,
    ready: &Barrier,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        eprintln!("mxring-bench sink: could not start an event loop; this thread serves no one");
        ready.wait();
        return;
    };
    let local = LocalSet::new();
    ready.wait();
    local.block_on(&rt, async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mxring-bench sink: listening socket unusable: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((tcp, _)) => {
                        tokio::task::spawn_local(sink_session::serve(tcp, state.clone()));
                    }
                    // Out of descriptors or a connection reset before it was accepted:
                    // pause briefly rather than spin, then go on serving the others.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                _ = stop_rx.wait_for(|s| *s) => break,
            }
        }
        drop(listener);
        let _ = abort_rx.wait_for(|a| *a).await;
    });
}

fn report(state: &SinkState, local: String, threads: u32, fd_limit: u64) -> SinkReport {
    let messages = state.messages.load(Ordering::Relaxed);
    let accepted = state.accepted.load(Ordering::Relaxed);
    let bytes = state.bytes.load(Ordering::Relaxed);
    let secs = state.active_span().as_secs_f64();
    let rate = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    SinkReport {
        listen: local,
        threads,
        fd_limit,
        messages,
        accepted,
        rejected: messages - accepted,
        bytes,
        connections: state.connections.load(Ordering::Relaxed),
        peak_connections: state.peak_active.load(Ordering::Relaxed),
        bdat_messages: state.bdat_messages.load(Ordering::Relaxed),
        elapsed_s: secs,
        messages_per_s: rate(messages as f64),
        mb_per_s: rate(bytes as f64) / 1e6,
        dump_errors: state.dump_errors.load(Ordering::Relaxed),
    }
}
