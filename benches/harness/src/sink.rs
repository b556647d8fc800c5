//! The sink: accepts SMTP connections (a thread each), counts messages, stops by itself.

use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{SinkArgs, SinkTls};
use crate::signal;
use crate::sink_session;
use crate::sink_state::SinkState;
use crate::tls;

const CONNECTION_STACK: usize = 256 * 1024;
/// After the stop condition, how long open connections get to say QUIT: long enough for
/// a load generator's last replies, short enough that a client that never quits cannot
/// keep the sink alive.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How often the accept loop wakes to check stop conditions.
const POLL_MS: i32 = 50;

#[derive(Serialize)]
struct SinkReport {
    listen: String,
    messages: u64,
    accepted: u64,
    rejected: u64,
    bytes: u64,
    connections: u64,
    /// From the first connection to the last message.
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
    let listener =
        TcpListener::bind(&args.listen).map_err(|e| format!("listen {}: {e}", args.listen))?;
    // std listens with a backlog of 128; a load generator opening hundreds of connections
    // at once would overflow it and see SYN retransmits (1 s stalls) that are not the
    // server's doing. Calling listen(2) again on Linux just raises the backlog.
    // SAFETY: a valid listening socket descriptor.
    unsafe {
        libc::listen(listener.as_raw_fd(), 4096);
    }
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Printed even with --json (on stderr) so scripts using port 0 can find the port.
    eprintln!("sink listening on {local}");

    let state = Arc::new(SinkState::new(
        tls,
        args.tls == SinkTls::Implicit,
        args.reply_code,
        args.dump_dir.clone(),
    ));
    signal::install();
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
        // poll(2) rather than a blocking accept, so stop conditions are checked even
        // when no client comes; it adds no latency to accepting.
        if !readable(&listener, POLL_MS) {
            continue;
        }
        let Ok((tcp, _)) = listener.accept() else {
            continue;
        };
        state.connection_opened();
        let st = state.clone();
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                sink_session::serve(tcp, &st);
                st.connection_closed();
            });
        if spawned.is_err() {
            // Out of threads: the socket was moved into the closure and is closed now.
            state.connection_closed();
        }
    }
    drop(listener);

    let drain_end = Instant::now() + DRAIN_GRACE;
    while state.active.load(Ordering::SeqCst) > 0 && Instant::now() < drain_end {
        thread::sleep(Duration::from_millis(10));
    }

    let report = report(&state, local.to_string());
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
        println!("connections       {}", report.connections);
        println!(
            "elapsed           {:.2} s (first connection to last message)",
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

fn report(state: &SinkState, local: String) -> SinkReport {
    let messages = state.messages.load(Ordering::Relaxed);
    let accepted = state.accepted.load(Ordering::Relaxed);
    let bytes = state.bytes.load(Ordering::Relaxed);
    let secs = state.active_span().as_secs_f64();
    let rate = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    SinkReport {
        listen: local,
        messages,
        accepted,
        rejected: messages - accepted,
        bytes,
        connections: state.connections.load(Ordering::Relaxed),
        elapsed_s: secs,
        messages_per_s: rate(messages as f64),
        mb_per_s: rate(bytes as f64) / 1e6,
        dump_errors: state.dump_errors.load(Ordering::Relaxed),
    }
}

/// Waits up to `timeout_ms` for the listener to have a pending connection.
fn readable(listener: &TcpListener, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}
