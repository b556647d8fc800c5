//! The receiving SMTP server tests deliver to (the next hop): std threads on a
//! loopback listener, one per connection, commands parsed by mxring's own
//! `proto::command` parser.
//!
//! What it can do, all from its [`Script`]: offer STARTTLS (TLS 1.2 only, a client
//! certificate required), REQUIRETLS, script RCPT and end-of-data replies, hold the
//! reply to the first message until the test releases it, delay every reply to the
//! final dot (noticing a client that gives up meanwhile), and keep every message
//! with its recipients. A lenient mode ([`crate::lenient`]) splits lines the way a
//! careless server does, for smuggling tests.
//!
//! Tests wait on signals, never on sleeps: each message answered 2xx is sent on the
//! `arrivals` channel and counted in [`Counts`], whose changes wake
//! [`SinkState::wait_until`].

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mxring::proto::address::split_path;
use mxring::proto::command::{parse_command, Command};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a connection may sit idle before the sink drops it.
const IDLE: Duration = Duration::from_secs(120);

/// One message answered 2xx.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The reverse path, without brackets.
    pub from: String,
    /// The recipients, without brackets.
    pub rcpts: Vec<String>,
    /// The content, dot-unstuffed, without the final dot.
    pub data: Vec<u8>,
    /// The TLS version, when STARTTLS was used ("TLSv1_3").
    pub tls: Option<String>,
    /// The client certificate the sender presented, DER.
    pub client_cert: Option<Vec<u8>>,
    /// The MAIL command as received (its parameters: REQUIRETLS, ...).
    pub mail_line: String,
}

#[derive(Default)]
pub struct Script {
    /// Replies to the end of data, used in order; when empty, `250 2.0.0 Ok: queued`.
    pub data_replies: VecDeque<String>,
    /// A reply to every RCPT instead of 250 (e.g. "550 5.1.1 no such user").
    pub rcpt_reply: Option<String>,
    /// Offer STARTTLS with this certificate.
    pub tls: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Only TLS 1.2 on offer.
    pub tls12_only: bool,
    /// Require a client certificate issued by this CA (partners that demand one).
    pub client_ca: Option<CertificateDer<'static>>,
    /// Hold the reply to the first end of data until the test releases it (a next
    /// hop that is slow to say 250), from `hold()`.
    pub hold: Option<HoldGate>,
    /// Offer REQUIRETLS (RFC 8689) once TLS is up.
    pub requiretls: bool,
    /// Be the lenient next hop of [`crate::lenient`] instead.
    pub lenient: bool,
    /// Answer EHLO with this (e.g. "502 5.5.1 EHLO not implemented"), as an old
    /// server that speaks only HELO does.
    pub ehlo_reply: Option<String>,
}

/// The sink's side of a held reply.
pub struct HoldGate {
    reached: Sender<()>,
    release: Receiver<()>,
}

/// The test's side: learn that the sink has the message and holds its reply,
/// then let the reply go.
pub struct Hold {
    reached: Receiver<()>,
    release: Sender<()>,
}

/// A gate for `Script::hold`. The sink waits at most a minute for the release.
pub fn hold() -> (HoldGate, Hold) {
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel();
    (
        HoldGate {
            reached: reached_tx,
            release: release_rx,
        },
        Hold {
            reached: reached_rx,
            release: release_tx,
        },
    )
}

impl Hold {
    /// Wait until the sink has read the whole message and holds its reply (fails
    /// the test after `secs`): a delivery attempt is then in flight.
    pub fn wait_reached(&self, secs: u64) {
        self.reached
            .recv_timeout(Duration::from_secs(secs))
            .expect("the sink never got the message to hold");
    }

    /// Send the held reply now.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

/// What the sink has seen so far.
#[derive(Default, Debug)]
pub struct Counts {
    /// `X-Test-Id` header value -> how many times it was answered 250.
    pub arrivals: HashMap<String, u32>,
    /// Messages between their final dot and the (delayed) reply right now.
    pub in_flight: usize,
    /// In flight at some point (a delivery was seen in progress).
    pub started: usize,
    /// Test ids whose transaction the client abandoned before the reply.
    pub abandoned: Vec<String>,
    /// Messages without an `X-Test-Id` (DSNs, for example).
    pub without_id: usize,
    /// Test ids whose body did not match its `X-Test-Sum`.
    pub corrupt: Vec<String>,
    /// With `keep` set: every message answered 250, with its recipients.
    pub kept: Vec<Kept>,
    /// In lenient mode: every message as the lenient reader split it.
    pub seen: Vec<crate::lenient::Seen>,
}

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

/// What every connection of one sink shares.
pub struct SinkState {
    counts: Mutex<Counts>,
    changed: Condvar,
    /// Delay before the reply to the final dot, in ms (0: answer at once).
    pub delay_ms: AtomicU64,
    /// Keep every message in `Counts::kept`.
    pub keep: AtomicBool,
    /// Connections accepted and not yet closed.
    pub open: AtomicUsize,
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

    pub(crate) fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap());
        self.changed.notify_all();
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub arrivals: Receiver<Arrival>,
    pub script: Arc<Mutex<Script>>,
    pub state: Arc<SinkState>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(script: Script) -> Sink {
        Self::start_at("127.0.0.1:0", script)
    }

    /// Listen on a given address (another loopback address such as 127.0.0.2:0, or
    /// a port the server under test was told about before).
    pub fn start_at(bind: &str, script: Script) -> Sink {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = channel();
        let script = Arc::new(Mutex::new(script));
        let state = Arc::new(SinkState {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            delay_ms: AtomicU64::new(0),
            keep: AtomicBool::new(false),
            open: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sc, st, stp) = (script.clone(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                st.open.fetch_add(1, Ordering::SeqCst);
                let (sc, st, tx) = (sc.clone(), st.clone(), tx.clone());
                std::thread::spawn(move || {
                    let lenient = sc.lock().unwrap().lenient;
                    let _ = if lenient {
                        crate::lenient::serve(stream, &st)
                    } else {
                        serve(stream, &sc, &st, &tx)
                    };
                    st.update(|_| {});
                    st.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Sink {
            addr,
            arrivals: rx,
            script,
            state,
            stop,
        }
    }

    /// A sink offering STARTTLS with a self-signed certificate.
    pub fn with_tls() -> Sink {
        Sink::start(Script {
            tls: Some(mxring::tls::self_signed("sink.test").unwrap()),
            ..Default::default()
        })
    }

    /// A plaintext sink that waits `delay` before each reply to the final dot.
    pub fn delayed(delay: Duration) -> Sink {
        Self::delayed_at("127.0.0.1:0", delay)
    }

    /// As `delayed`, on a given address.
    pub fn delayed_at(bind: &str, delay: Duration) -> Sink {
        let sink = Sink::start_at(bind, Script::default());
        sink.set_delay(delay);
        sink
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Keep every message from now on (see `Counts::kept`).
    pub fn keep(&self) {
        self.state.keep.store(true, Ordering::SeqCst);
    }

    /// Wait for the next message (fails the test after `secs`).
    pub fn next(&self, secs: u64) -> Arrival {
        self.arrivals
            .recv_timeout(Duration::from_secs(secs))
            .expect("no message arrived in time")
    }

    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// One connection's transaction and TLS state.
#[derive(Default)]
struct Session {
    from: String,
    rcpts: Vec<String>,
    mail_line: String,
    tls: Option<String>,
    client_cert: Option<Vec<u8>>,
}

fn serve(
    stream: TcpStream,
    script: &Mutex<Script>,
    state: &SinkState,
    tx: &Sender<Arrival>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_nodelay(true)?;
    // The raw socket, to notice a client closing during a delayed reply.
    let raw = stream.try_clone()?;
    let mut tcp = Some(stream.try_clone()?);
    let mut r: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    let send = |r: &mut BufReader<Box<dyn Io>>, s: &str| -> std::io::Result<()> {
        r.get_mut().write_all(s.as_bytes())?;
        r.get_mut().flush()
    };
    send(&mut r, "220 sink.test ESMTP\r\n")?;
    let mut s = Session::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let command = line.strip_suffix(b"\n").unwrap_or(&line);
        let command = command.strip_suffix(b"\r").unwrap_or(command);
        match parse_command(command) {
            Ok(Command::Ehlo(_)) => {
                let sc = script.lock().unwrap();
                if let Some(refusal) = sc.ehlo_reply.clone() {
                    drop(sc);
                    send(&mut r, &format!("{refusal}\r\n"))?;
                    continue;
                }
                let mut out = String::from(
                    "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n",
                );
                if sc.tls.is_some() && s.tls.is_none() {
                    out.push_str("250-STARTTLS\r\n");
                }
                if s.tls.is_some() && sc.requiretls {
                    out.push_str("250-REQUIRETLS\r\n");
                }
                out.push_str("250 ENHANCEDSTATUSCODES\r\n");
                drop(sc);
                send(&mut r, &out)?;
            }
            Ok(Command::Helo(_) | Command::Rset) => {
                s.from.clear();
                s.rcpts.clear();
                send(&mut r, "250 2.0.0 Ok\r\n")?;
            }
            Ok(Command::Noop) => send(&mut r, "250 2.0.0 Ok\r\n")?,
            Ok(Command::StartTls) => {
                let Some(config) = tls_config(script) else {
                    send(&mut r, "502 5.5.1 no TLS\r\n")?;
                    continue;
                };
                send(&mut r, "220 2.0.0 Go ahead\r\n")?;
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut t = rustls::StreamOwned::new(conn, tcp.take().unwrap());
                while t.conn.is_handshaking() {
                    t.conn.complete_io(&mut t.sock)?;
                }
                s.tls = Some(format!("{:?}", t.conn.protocol_version().unwrap()));
                s.client_cert = t
                    .conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                r = BufReader::new(Box::new(t));
            }
            Ok(Command::Mail(arg)) => {
                s.from = path(arg);
                s.mail_line = text;
                s.rcpts.clear();
                send(&mut r, "250 2.1.0 Ok\r\n")?;
            }
            Ok(Command::Rcpt(arg)) => {
                let reply = script.lock().unwrap().rcpt_reply.clone();
                match reply {
                    Some(rep) => send(&mut r, &format!("{rep}\r\n"))?,
                    None => {
                        s.rcpts.push(path(arg));
                        send(&mut r, "250 2.1.5 Ok\r\n")?;
                    }
                }
            }
            Ok(Command::Data) => {
                if s.rcpts.is_empty() {
                    send(&mut r, "554 5.5.1 no valid recipients\r\n")?;
                    continue;
                }
                send(&mut r, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let Some(data) = read_data(&mut r)? else {
                    return Ok(());
                };
                let Some(reply) = finish(&mut s, data, script, state, tx, &raw) else {
                    // Abandoned by the client before the reply: nothing to answer.
                    let _ = raw.shutdown(Shutdown::Both);
                    return Ok(());
                };
                send(&mut r, &format!("{reply}\r\n"))?;
            }
            Ok(Command::Quit) => {
                send(&mut r, "221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => send(&mut r, "500 5.5.2 Error: command not recognized\r\n")?,
        }
    }
}

/// The path of a MAIL or RCPT argument, without brackets or parameters.
fn path(arg: &str) -> String {
    split_path(arg)
        .map(|(p, _)| p.to_string())
        .unwrap_or_else(|_| arg.trim().to_string())
}

/// The TLS server configuration the script asks for, if it offers TLS.
fn tls_config(script: &Mutex<Script>) -> Option<Arc<rustls::ServerConfig>> {
    let s = script.lock().unwrap();
    let (certs, key) = s.tls.as_ref()?;
    let versions: &[&rustls::SupportedProtocolVersion] = if s.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ServerConfig::builder_with_provider(mxring::tls::provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match &s.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                mxring::tls::provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs.clone(), key.clone_key())
        .unwrap();
    Some(Arc::new(config))
}

/// The message up to the final dot, dot-unstuffed; None if the connection ended first.
fn read_data(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
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
        data.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
    }
}

/// Decide the reply to a message, record it, and return the reply; None if the
/// client abandoned the transaction while the reply was delayed.
fn finish(
    s: &mut Session,
    data: Vec<u8>,
    script: &Mutex<Script>,
    state: &SinkState,
    tx: &Sender<Arrival>,
    raw: &TcpStream,
) -> Option<String> {
    let rcpts = std::mem::take(&mut s.rcpts);
    let (reply, gate) = {
        let mut sc = script.lock().unwrap();
        let reply = sc
            .data_replies
            .pop_front()
            .unwrap_or_else(|| "250 2.0.0 Ok: queued".into());
        (reply, sc.hold.take())
    };
    if let Some(gate) = gate {
        let _ = gate.reached.send(());
        let _ = gate.release.recv_timeout(Duration::from_secs(60));
    }
    let (id, good) = inspect(&data);
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    if !delay.is_zero() {
        state.update(|c| {
            c.in_flight += 1;
            c.started += 1;
        });
        let abandoned = closed_within(raw, delay);
        state.update(|c| {
            c.in_flight -= 1;
            if abandoned {
                c.abandoned.push(id.clone().unwrap_or_default());
            }
        });
        if abandoned {
            return None;
        }
    }
    if reply.starts_with('2') {
        let keep = state.keep.load(Ordering::SeqCst).then(|| Kept {
            recipients: rcpts.clone(),
            data: data.clone(),
        });
        state.update(|c| {
            record(c, id, good);
            c.kept.extend(keep);
        });
        let _ = tx.send(Arrival {
            from: s.from.clone(),
            rcpts,
            data,
            tls: s.tls.clone(),
            client_cert: s.client_cert.clone(),
            mail_line: s.mail_line.clone(),
        });
    }
    Some(reply)
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
    let _ = stream.set_read_timeout(Some(IDLE));
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
        Some(sum) => sum == format!("{:016x}", crate::client::fnv1a(&data[split..])),
        None => id.is_none(),
    };
    (id, good)
}
