//! The next hop: a plaintext receiving SMTP server on loopback, std threads, one per
//! connection. It counts, per `X-Test-Id:` header value, how many times a message
//! was answered 250, and checks each body against its `X-Test-Sum:` header.
//!
//! With a reply delay, a message is "in flight" between its final dot and the 250.
//! If the client closes the connection during that delay, the transaction was
//! abandoned before any reply, so it is counted as `abandoned`, not as an arrival
//! (the client is right to send it again later).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default, Debug)]
pub struct Counts {
    /// Test id -> how many times it was answered 250.
    pub arrivals: HashMap<String, u32>,
    /// Messages between their final dot and the reply right now.
    pub in_flight: usize,
    /// In flight at some point (a delivery was seen in progress).
    pub started: usize,
    /// Test ids whose transaction the client abandoned before the reply.
    pub abandoned: Vec<String>,
    /// Messages without an X-Test-Id (DSNs, for example).
    pub without_id: usize,
    /// Test ids whose body did not match its checksum.
    pub corrupt: Vec<String>,
    /// With `keep` set: every message answered 250, with its recipients.
    pub kept: Vec<Kept>,
}

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

pub struct SinkState {
    counts: Mutex<Counts>,
    changed: Condvar,
    /// Delay before the reply to the final dot, in ms (0: answer at once).
    pub delay_ms: AtomicU64,
    /// Keep every message (for tests that check more than the test headers).
    pub keep: AtomicBool,
}

impl SinkState {
    pub fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap()
    }

    /// Wait until `done` holds (re-checked on every change), at most `limit`.
    /// Returns whether it held.
    pub fn wait_until(&self, limit: Duration, mut done: impl FnMut(&Counts) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut c = self.counts.lock().unwrap();
        loop {
            if done(&c) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Also wake every 50 ms, whatever happens: a bounded poll as a backstop.
            c = self
                .changed
                .wait_timeout(c, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap());
        self.changed.notify_all();
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub state: Arc<SinkState>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(delay: Duration) -> Sink {
        Self::start_at("127.0.0.1:0", delay)
    }

    /// Listen on a given address (a port the server was told about before).
    pub fn start_at(bind: &str, delay: Duration) -> Sink {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(SinkState {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            keep: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &st);
                });
            }
        });
        Sink { addr, state, stop }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, state: &SinkState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 sink.test ESMTP crash-test sink\r\n")?;
    let mut rcpts = 0usize;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n250 ENHANCEDSTATUSCODES\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 2.0.0 Ok\r\n"
        } else if upper.starts_with("RSET") {
            rcpts = 0;
            b"250 2.0.0 Ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            rcpts = 0;
            to.clear();
            b"250 2.1.0 Ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            rcpts += 1;
            let text = String::from_utf8_lossy(&line);
            to.push(
                text.split(['<', '>'])
                    .nth(1)
                    .unwrap_or_default()
                    .to_string(),
            );
            b"250 2.1.5 Ok\r\n"
        } else if upper.starts_with("DATA") {
            if rcpts == 0 {
                b"554 5.5.1 Error: no valid recipients\r\n"
            } else {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let Some(data) = read_data(&mut r)? else {
                    return Ok(());
                };
                rcpts = 0;
                if !receive(&data, r.get_ref(), state, std::mem::take(&mut to)) {
                    // Abandoned by the client before the reply: nothing to answer.
                    let _ = r.get_ref().shutdown(Shutdown::Both);
                    return Ok(());
                }
                b"250 2.0.0 Ok: queued by sink\r\n"
            }
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            b"500 5.5.2 Error: command not recognized\r\n"
        };
        w.write_all(reply)?;
    }
}

/// The message up to the final dot, dot-unstuffed; None if the connection ended first.
fn read_data(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut l = Vec::new();
    loop {
        l.clear();
        if r.read_until(b'\n', &mut l)? == 0 {
            return Ok(None);
        }
        if l == b".\r\n" {
            return Ok(Some(data));
        }
        data.extend_from_slice(if l.starts_with(b".") { &l[1..] } else { &l });
    }
}

/// Record one message. Returns false if the client abandoned it during the delay.
fn receive(data: &[u8], stream: &TcpStream, state: &SinkState, to: Vec<String>) -> bool {
    let (id, good) = inspect(data);
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    let keep = state.keep.load(Ordering::SeqCst).then(|| Kept {
        recipients: to,
        data: data.to_vec(),
    });
    if delay.is_zero() {
        state.update(|c| {
            record(c, id, good);
            c.kept.extend(keep);
        });
        return true;
    }
    state.update(|c| {
        c.in_flight += 1;
        c.started += 1;
    });
    let abandoned = closed_within(stream, delay);
    state.update(|c| {
        c.in_flight -= 1;
        if abandoned {
            c.abandoned.push(id.unwrap_or_default());
        } else {
            record(c, id, good);
            c.kept.extend(keep);
        }
    });
    !abandoned
}

fn record(c: &mut Counts, id: Option<String>, good: bool) {
    match id {
        Some(id) => {
            if !good {
                c.corrupt.push(id.clone());
            }
            *c.arrivals.entry(id).or_default() += 1;
        }
        None => c.without_id += 1,
    }
}

/// Wait `delay`, watching for the peer closing the connection meanwhile.
fn closed_within(stream: &TcpStream, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    let mut byte = [0u8; 1];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.peek(&mut byte) {
            Ok(0) => break true,
            // The client sent more before our reply (it should not): just wait.
            Ok(_) => {
                std::thread::sleep(left);
                break false;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break true,
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    closed
}

/// The X-Test-Id of a message, and whether its body matches its X-Test-Sum.
fn inspect(data: &[u8]) -> (Option<String>, bool) {
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let id = header("X-Test-Id");
    let good = match header("X-Test-Sum") {
        Some(sum) => sum == format!("{:016x}", crate::fnv1a(&data[split..])),
        None => id.is_none(),
    };
    (id, good)
}
