//! One SMTP client connection: connect, greeting, EHLO, optional TLS, transactions, QUIT.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::cli::ClientTls;
use crate::message::Envelope;
use crate::reply::{ReadError, Reply, ReplyReader};
use crate::stream::Stream;

/// Connection settings shared by all workers.
pub struct ClientOpts {
    pub addrs: Vec<SocketAddr>,
    pub tls: ClientTls,
    pub tls_config: Option<Arc<ClientConfig>>,
    pub server_name: ServerName<'static>,
    pub helo: String,
    pub timeout: Duration,
    pub allow_pipelining: bool,
}

/// Why a connection or transaction failed. Reply codes are the server's answer and are
/// "expected" in a benchmark (e.g. 452 under pressure); everything else is a fault.
#[derive(Debug)]
pub enum Failure {
    Connect(io::Error),
    Io(io::Error),
    Tls(io::Error),
    Closed,
    Protocol(String),
    Reply(u16),
}

impl Failure {
    /// The key under which the report counts this failure.
    pub fn key(&self) -> String {
        let timed_out = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        };
        match self {
            Failure::Reply(code) => code.to_string(),
            Failure::Connect(e) if timed_out(e) => "connect-timeout".into(),
            Failure::Connect(_) => "connect".into(),
            Failure::Io(e) | Failure::Tls(e) if timed_out(e) => "timeout".into(),
            Failure::Io(_) => "io".into(),
            Failure::Tls(_) => "tls".into(),
            Failure::Closed => "closed".into(),
            Failure::Protocol(_) => "protocol".into(),
        }
    }

    /// A human-readable description, kept as an example of each error kind.
    pub fn detail(&self) -> String {
        let timed_out = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        };
        match self {
            Failure::Io(e) | Failure::Tls(e) if timed_out(e) => "no answer within --timeout".into(),
            Failure::Connect(e) => format!("connect: {e}"),
            Failure::Io(e) => format!("i/o: {e}"),
            Failure::Tls(e) => format!("tls: {e}"),
            Failure::Closed => "server closed the connection".into(),
            Failure::Protocol(m) => format!("protocol: {m}"),
            Failure::Reply(code) => format!("reply {code}"),
        }
    }

    pub fn is_reply(&self) -> bool {
        matches!(self, Failure::Reply(_))
    }
}

/// An established session, ready for MAIL.
pub struct Session {
    stream: Stream,
    reader: ReplyReader,
    pipelining: bool,
    /// Set once the session cannot carry another transaction (I/O error, 421, ...).
    pub dead: bool,
    pub connect_time: Duration,
    pub handshake_time: Option<Duration>,
    cmd: Vec<u8>,
}

/// A transaction the server accepted.
pub struct Sent {
    /// From writing the final ".\r\n" to reading the reply.
    pub data_latency: Duration,
    /// Codes of recipients refused while others were accepted.
    pub rejected_rcpts: Vec<u16>,
}

impl Session {
    pub fn open(opts: &ClientOpts) -> Result<Session, Failure> {
        let start = Instant::now();
        let tcp = connect(&opts.addrs, opts.timeout).map_err(Failure::Connect)?;
        let connect_time = start.elapsed();
        // Commands are written whole; Nagle would only add delay between our write and
        // the server's reply.
        let setup = tcp
            .set_nodelay(true)
            .and_then(|_| tcp.set_read_timeout(Some(opts.timeout)))
            .and_then(|_| tcp.set_write_timeout(Some(opts.timeout)));
        setup.map_err(Failure::Io)?;

        let mut s = Session {
            stream: Stream::Plain(tcp),
            reader: ReplyReader::new(),
            pipelining: false,
            dead: false,
            connect_time,
            handshake_time: None,
            cmd: Vec::with_capacity(512),
        };
        if opts.tls == ClientTls::Implicit {
            s.start_tls(opts)?;
        }
        let greeting = s.read()?;
        if greeting.code != 220 {
            return Err(Failure::Reply(greeting.code));
        }
        s.hello(opts)?;
        if opts.tls == ClientTls::Starttls {
            let start = Instant::now();
            let r = s.command(b"STARTTLS\r\n")?;
            if r.code != 220 {
                return Err(Failure::Reply(r.code));
            }
            // Bytes that arrived before the handshake were not protected by it; a server
            // sending them is broken (or the path is being tampered with).
            if s.reader.has_buffered() {
                return Err(Failure::Protocol("data after STARTTLS reply".into()));
            }
            s.start_tls(opts)?;
            s.handshake_time = Some(start.elapsed());
            s.hello(opts)?;
        }
        Ok(s)
    }

    fn start_tls(&mut self, opts: &ClientOpts) -> Result<(), Failure> {
        let config = opts
            .tls_config
            .as_ref()
            .expect("TLS config built when TLS is on");
        let took = self
            .stream
            .upgrade_client(config, opts.server_name.clone())
            .map_err(Failure::Tls)?;
        self.reader.clear();
        self.handshake_time = Some(took);
        Ok(())
    }

    /// EHLO, falling back to HELO for servers that reject it; records PIPELINING.
    fn hello(&mut self, opts: &ClientOpts) -> Result<(), Failure> {
        let ehlo = self.command(format!("EHLO {}\r\n", opts.helo).as_bytes())?;
        if ehlo.code == 250 {
            let pipelining = ehlo
                .lines
                .iter()
                .skip(1)
                .any(|l| l.eq_ignore_ascii_case("PIPELINING"));
            self.pipelining = pipelining && opts.allow_pipelining;
            return Ok(());
        }
        let helo = self.command(format!("HELO {}\r\n", opts.helo).as_bytes())?;
        if helo.code != 250 {
            return Err(Failure::Reply(helo.code));
        }
        self.pipelining = false;
        Ok(())
    }

    /// Runs one transaction. `data` is the message with its terminating ".\r\n", already
    /// dot-stuffed.
    pub fn send(&mut self, env: &Envelope, data: &[u8]) -> Result<Sent, Failure> {
        let r = self.transaction(env, data);
        match &r {
            Err(Failure::Reply(421)) => self.dead = true,
            Err(f) if !f.is_reply() => self.dead = true,
            _ => {}
        }
        r
    }

    fn transaction(&mut self, env: &Envelope, data: &[u8]) -> Result<Sent, Failure> {
        let mut rejected = Vec::new();
        let mut first_reject = None;
        let data_reply;
        if self.pipelining {
            // RFC 2920: MAIL, RCPTs and DATA may go in one write; DATA is the last command
            // of the group because its reply decides whether the body follows.
            self.cmd.clear();
            push_mail_rcpts(&mut self.cmd, env);
            self.cmd.extend_from_slice(b"DATA\r\n");
            self.write_cmd()?;
            let mail = self.read()?;
            for _ in &env.recipients {
                let r = self.read()?;
                if !r.is_positive() {
                    rejected.push(r.code);
                }
            }
            data_reply = self.read()?;
            if !mail.is_positive() {
                first_reject = Some(mail.code);
            }
        } else {
            let mail = self.command(format!("MAIL FROM:<{}>\r\n", env.from).as_bytes())?;
            if !mail.is_positive() {
                self.rset()?;
                return Err(Failure::Reply(mail.code));
            }
            for rcpt in &env.recipients {
                let r = self.command(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
                if !r.is_positive() {
                    rejected.push(r.code);
                }
            }
            if rejected.len() == env.recipients.len() {
                self.rset()?;
                return Err(Failure::Reply(rejected[0]));
            }
            data_reply = self.command(b"DATA\r\n")?;
        }
        if first_reject.is_none() && rejected.len() == env.recipients.len() {
            first_reject = rejected.first().copied();
        }
        if data_reply.code != 354 {
            self.rset()?;
            return Err(Failure::Reply(first_reject.unwrap_or(data_reply.code)));
        }
        if let Some(code) = first_reject {
            // A server that says 354 with no valid recipient: end the empty message and
            // count the transaction as refused with the original reason.
            self.write(b".\r\n")?;
            self.read()?;
            return Err(Failure::Reply(code));
        }
        self.write(data)?;
        let start = Instant::now();
        let end = self.read()?;
        let data_latency = start.elapsed();
        if end.code != 250 {
            return Err(Failure::Reply(end.code));
        }
        Ok(Sent {
            data_latency,
            rejected_rcpts: rejected,
        })
    }

    fn rset(&mut self) -> Result<(), Failure> {
        let r = self.command(b"RSET\r\n")?;
        if r.code == 421 {
            self.dead = true;
        }
        Ok(())
    }

    /// Polite close: QUIT and a short wait for 221, errors ignored (the work is done).
    pub fn quit(mut self) {
        let _ = self
            .stream
            .tcp()
            .set_read_timeout(Some(Duration::from_secs(2)));
        if self.write(b"QUIT\r\n").is_ok() {
            let _ = self.read();
        }
        if let Stream::Client(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }

    fn command(&mut self, line: &[u8]) -> Result<Reply, Failure> {
        self.write(line)?;
        self.read()
    }

    fn write_cmd(&mut self) -> Result<(), Failure> {
        let cmd = std::mem::take(&mut self.cmd);
        let r = self.write(&cmd);
        self.cmd = cmd;
        r
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let tls = self.stream.is_tls();
        self.stream
            .write_all(bytes)
            .and_then(|_| self.stream.flush())
            .map_err(|e| io_failure(e, tls))
    }

    fn read(&mut self) -> Result<Reply, Failure> {
        let tls = self.stream.is_tls();
        self.reader
            .read_reply(&mut self.stream)
            .map_err(|e| match e {
                ReadError::Io(e) => io_failure(e, tls),
                ReadError::Closed => Failure::Closed,
                ReadError::Malformed(m) => Failure::Protocol(m),
            })
    }
}

fn push_mail_rcpts(out: &mut Vec<u8>, env: &Envelope) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(env.from.as_bytes());
    out.extend_from_slice(b">\r\n");
    for r in &env.recipients {
        out.extend_from_slice(b"RCPT TO:<");
        out.extend_from_slice(r.as_bytes());
        out.extend_from_slice(b">\r\n");
    }
}

/// rustls surfaces its own errors as InvalidData; on a TLS stream those are TLS failures.
fn io_failure(e: io::Error, tls: bool) -> Failure {
    if tls && e.kind() == io::ErrorKind::InvalidData {
        Failure::Tls(e)
    } else {
        Failure::Io(e)
    }
}

fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}
