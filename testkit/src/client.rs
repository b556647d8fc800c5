//! The SMTP client tests drive mxring with: blocking std sockets and rustls, replies
//! read with mxring's own `proto::reply` parser.
//!
//! Two styles over one connection type. The panicking one (`connect`, `cmd`,
//! `send_mail`, ...) fails the test at the first surprise, for tests where every
//! reply is known. The fallible one (`open`, `try_reply`, `send`, `submit`) returns
//! what happened, for tests where a broken connection is an expected outcome (a
//! server killed with SIGKILL, a full disk).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mxring::config::TlsVersion;
use mxring::proto::reply::parse_reply;
use mxring::tls::{client_config_versions, ClientVerification};

/// A reply: its code and its text as received (every line, CRLFs included).
pub type Reply = (u16, String);

/// How long a connect may take.
const CONNECT: Duration = Duration::from_secs(5);
/// The read timeout of `connect` and `connect_tls`.
const READ: Duration = Duration::from_secs(30);

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Only while a TLS upgrade is under way (or after one failed).
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

pub struct Client {
    stream: Stream,
    /// Received and not yet parsed.
    buf: Vec<u8>,
    pub greeting: Reply,
    /// The server offered PIPELINING in its reply to `open`'s EHLO.
    pub pipelining: bool,
}

/// What became of one message handed to `submit`.
#[derive(Debug)]
pub enum Outcome {
    /// 250 after the final dot, with mxring's queue id.
    Acked(String),
    /// A final reply other than 250 after the body: not taken.
    Rejected(Reply),
    /// Refused before the body was sent (MAIL, RCPT or DATA): never submitted.
    Refused(Reply),
    /// The connection broke (or timed out) after the body started: unknown fate.
    Broken(String),
    /// The connection broke before the body was sent: never submitted.
    BrokenBefore(String),
}

/// A client offering exactly one TLS version.
pub fn tls_config(version: TlsVersion) -> Arc<rustls::ClientConfig> {
    let v: &'static rustls::SupportedProtocolVersion = match version {
        TlsVersion::Tls12 => &rustls::version::TLS12,
        TlsVersion::Tls13 => &rustls::version::TLS13,
    };
    client_config_versions(&ClientVerification::None, &[v]).unwrap()
}

fn tls_wrap(tcp: TcpStream, version: TlsVersion) -> std::io::Result<Stream> {
    let conn = rustls::ClientConnection::new(tls_config(version), "mx.test".try_into().unwrap())
        .map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

fn tcp(addr: SocketAddr, read_timeout: Duration) -> Result<TcpStream, String> {
    let tcp =
        TcpStream::connect_timeout(&addr, CONNECT).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(read_timeout)).map_err(err)?;
    tcp.set_nodelay(true).map_err(err)?;
    Ok(tcp)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Client {
    /// Connect and read the greeting, whatever it is (see `greeting`).
    pub fn connect(addr: SocketAddr) -> Client {
        let tcp = tcp(addr, READ).unwrap();
        Self::greet(Stream::Plain(tcp)).unwrap()
    }

    /// Implicit TLS (port 465 style).
    pub fn connect_tls(addr: SocketAddr) -> Client {
        let tcp = tcp(addr, READ).unwrap();
        Self::greet(tls_wrap(tcp, TlsVersion::Tls12).unwrap()).unwrap()
    }

    /// Connect, expect a 220 greeting and say EHLO (noting PIPELINING), without
    /// panicking: for tests where the server may be gone.
    pub fn open(addr: SocketAddr, read_timeout: Duration) -> Result<Client, String> {
        let mut c = Self::greet(Stream::Plain(tcp(addr, read_timeout)?))?;
        if c.greeting.0 != 220 {
            return Err(format!("greeting {:?}", c.greeting));
        }
        c.send(b"EHLO client.test\r\n")?;
        let ehlo = c.try_reply()?;
        if ehlo.0 != 250 {
            return Err(format!("EHLO {ehlo:?}"));
        }
        c.pipelining = ehlo.1.to_ascii_uppercase().contains("PIPELINING");
        Ok(c)
    }

    fn greet(stream: Stream) -> Result<Client, String> {
        let mut c = Client {
            stream,
            buf: Vec::new(),
            greeting: (0, String::new()),
            pipelining: false,
        };
        c.greeting = c.try_reply()?;
        Ok(c)
    }

    /// Write `bytes` and flush.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(err)?;
        self.stream.flush().map_err(err)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.send(bytes).unwrap();
    }

    /// Read one (possibly multiline) reply: its code and the text of all lines.
    pub fn try_reply(&mut self) -> Result<Reply, String> {
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((_, n))) => {
                    let raw: Vec<u8> = self.buf.drain(..n).collect();
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    if let Some(bad) = text.split_inclusive('\n').find(|l| !l.ends_with("\r\n")) {
                        return Err(format!("reply line without CRLF: {bad:?}"));
                    }
                    let code = text[..3].parse().map_err(err)?;
                    return Ok((code, text));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{e}: {:?}", String::from_utf8_lossy(&self.buf))),
            }
            let mut chunk = [0u8; 4096];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                // The in-process server's signal handling interrupts reads: retry.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(e)),
            };
            if n == 0 {
                return Err(format!(
                    "connection closed while waiting for a reply (so far: {:?})",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// As `try_reply`, failing the test on a broken connection or a malformed reply.
    pub fn reply(&mut self) -> Reply {
        self.try_reply().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    pub fn starttls(&mut self, version: TlsVersion) {
        let (code, text) = self.cmd("STARTTLS");
        assert_eq!(code, 220, "{text}");
        self.upgrade(version);
    }

    /// Run the TLS handshake now (the 220 to STARTTLS was already read). Anything
    /// the server sent after that 220 is dropped, as RFC 3207 asks.
    pub fn upgrade(&mut self, version: TlsVersion) {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            panic!("TLS already on")
        };
        self.buf.clear();
        self.stream = tls_wrap(tcp, version).unwrap();
    }

    /// The negotiated TLS version and suite, when TLS is on.
    pub fn tls(&self) -> Option<(String, String)> {
        match &self.stream {
            Stream::Tls(s) => {
                let v = format!("{:?}", s.conn.protocol_version()?);
                let c = s
                    .conn
                    .negotiated_cipher_suite()?
                    .suite()
                    .as_str()?
                    .to_string();
                Some((v, c))
            }
            Stream::Plain(_) | Stream::Gone => None,
        }
    }

    /// MAIL, RCPT..., DATA, body, end: returns the final reply (asserts the steps before).
    pub fn send_mail(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        let (c, t) = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert_eq!(c, 250, "MAIL: {t}");
        for r in to {
            let (c, t) = self.cmd(&format!("RCPT TO:<{r}>"));
            assert_eq!(c, 250, "RCPT {r}: {t}");
        }
        let (c, t) = self.cmd("DATA");
        assert_eq!(c, 354, "DATA: {t}");
        let mut data = body.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        let stuffed = data.replace("\r\n.", "\r\n..");
        let stuffed = if stuffed.starts_with('.') {
            format!(".{stuffed}")
        } else {
            stuffed
        };
        self.send_raw(format!("{stuffed}.\r\n").as_bytes());
        self.reply()
    }

    /// Submit one message (`data` already dot-stuffed, ending with ".\r\n"),
    /// pipelining the envelope when the server offered it.
    pub fn submit(&mut self, from: &str, to: &str, data: &[u8]) -> Outcome {
        let cmds = [
            format!("MAIL FROM:<{from}>\r\n"),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".to_string(),
        ];
        let expect = [250, 250, 354];
        if self.pipelining {
            if let Err(e) = self.send(cmds.concat().as_bytes()) {
                return Outcome::BrokenBefore(e);
            }
        }
        let mut refused = None;
        for (cmd, want) in cmds.iter().zip(expect) {
            if !self.pipelining {
                if let Err(e) = self.send(cmd.as_bytes()) {
                    return Outcome::BrokenBefore(e);
                }
            }
            match self.try_reply() {
                Ok(r) if r.0 == want => {}
                Ok(r) => {
                    refused.get_or_insert(r);
                    if !self.pipelining {
                        break;
                    }
                }
                Err(e) => return Outcome::BrokenBefore(e),
            }
        }
        if let Some(r) = refused {
            return Outcome::Refused(r);
        }
        if let Err(e) = self.send(data) {
            return Outcome::Broken(e);
        }
        match self.try_reply() {
            Ok((250, text)) => match parse_queued_id(&text) {
                Some(id) => Outcome::Acked(id),
                None => Outcome::Rejected((250, text)),
            },
            Ok(r) => Outcome::Rejected(r),
            Err(e) => Outcome::Broken(e),
        }
    }
}

/// "250 2.0.0 Ok: queued as ABC" -> "ABC".
pub fn parse_queued_id(text: &str) -> Option<String> {
    Some(
        text.split("queued as ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .to_string(),
    )
}

/// The queue id in a "250 2.0.0 Ok: queued as ID" reply (fails the test if none).
pub fn queued_id(reply: &str) -> String {
    parse_queued_id(reply).unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

/// A test message for `id`: X-Test-Id and X-Test-Sum (FNV-1a of the body) headers,
/// which the sink checks, and `lines` body lines (one starting with a dot, to
/// exercise dot-stuffing), already dot-stuffed and terminated by the final dot.
pub fn message(id: &str, lines: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..lines {
        if i == 0 {
            body.push_str(&format!(".{id} leading dot line\r\n"));
        } else {
            body.push_str(&format!(
                "{id} line {i:06} the quick brown fox jumps over the lazy dog 0123456789\r\n"
            ));
        }
    }
    let sum = fnv1a(body.as_bytes());
    let head = format!(
        "From: <sender@client.test>\r\nTo: <rcpt@sink.test>\r\nSubject: crash test {id}\r\n\
         X-Test-Id: {id}\r\nX-Test-Sum: {sum:016x}\r\n\r\n"
    );
    // Lines are CRLF already, so this only doubles leading dots and adds the end.
    let mut m = Vec::new();
    mxring::proto::encode::dot_stuff(format!("{head}{body}").as_bytes(), &mut m);
    m
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
