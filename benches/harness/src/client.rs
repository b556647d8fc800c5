//! One SMTP client connection, driven over tokio by mxring's own sans-IO client session
//! (`mxring::proto::client::ClientSession`, the one delivery uses): this file owns the
//! socket, the TLS handshake and the clock; the session decides what to say.
//!
//! Replies are handed to the session one at a time, so the time each one arrived is
//! known and the report can split a session into its phases.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mxring::proto::client::{ClientAction, ClientSession, OutboundTx, SessionFailure, Stage};
use mxring::proto::client::{TlsWant, TxOutcome};
use mxring::proto::reply::parse_reply;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::cli::ClientTls;
use crate::conn::Conn;
use crate::failure::Failure;

/// A reply longer than this is handed to the session as is, for its parser to refuse.
const MAX_REPLY_BYTES: usize = 1 << 20;
/// How long a polite QUIT may take before the connection is just dropped.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// Connection settings shared by every connection of a run.
pub struct ClientOpts {
    pub addrs: Vec<SocketAddr>,
    pub tls: ClientTls,
    pub connector: Option<TlsConnector>,
    pub server_name: ServerName<'static>,
    pub helo: String,
    pub timeout: Duration,
    /// Use PIPELINING when the server offers it.
    pub pipelining: bool,
    /// Use BDAT when the server offers CHUNKING.
    pub bdat: bool,
}

/// How long each step of opening a session took.
#[derive(Default, Debug)]
pub struct SetupTimes {
    pub connect: Option<Duration>,
    pub banner: Option<Duration>,
    /// EHLO (or HELO) round trips: one, or two with STARTTLS.
    pub ehlo: Vec<Duration>,
    /// From writing STARTTLS to the end of the handshake (implicit TLS: the handshake).
    pub starttls: Option<Duration>,
    pub resumed: bool,
}

/// How long the steps of one transaction took.
#[derive(Default, Debug)]
pub struct TxTimes {
    /// From writing MAIL FROM to the reply to the last RCPT TO.
    pub mail_rcpt: Option<Duration>,
    /// From writing the end of the message to the server's reply.
    pub data_end: Option<Duration>,
}

/// A message as written: `head` is the header block, and for small messages the body
/// and the ".\r\n" terminator too; a large body is written from the shared pool
/// (`body`, terminator added) rather than copied per connection.
pub struct Message<'a> {
    pub head: &'a [u8],
    pub body: &'a [u8],
}

impl Message<'_> {
    /// The message content: what BDAT carries, DATA without its terminator.
    pub fn size(&self) -> u64 {
        if self.body.is_empty() {
            self.head.len() as u64 - 3
        } else {
            (self.head.len() + self.body.len()) as u64
        }
    }
}

/// Which reply the setup is waiting for (to say which phase its round trip was).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Banner,
    Hello,
    StartTls,
}

pub struct Client {
    conn: Conn,
    session: ClientSession,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    /// The connection cannot carry another transaction (421, or a broken connection).
    pub dead: bool,
}

impl Client {
    /// Connects and runs greeting, EHLO and (when asked) STARTTLS and EHLO again.
    /// `gate` bounds how many TCP connects are in progress at once across the run, so
    /// ten thousand connections starting together do not overflow the server's listen
    /// queue (whose SYN retries would add whole seconds that are nobody's latency).
    pub async fn open(
        opts: &ClientOpts,
        gate: &Semaphore,
        times: &mut SetupTimes,
    ) -> Result<Client, Failure> {
        let tcp = {
            let _permit = gate.acquire().await.map_err(|_| Failure::Closed)?;
            let t0 = Instant::now();
            let tcp = connect(&opts.addrs, opts.timeout).await?;
            times.connect = Some(t0.elapsed());
            tcp
        };
        // Commands are written whole; Nagle would only hold them back.
        tcp.set_nodelay(true).map_err(Failure::Io)?;
        let want = match opts.tls {
            ClientTls::Starttls => TlsWant::Required,
            // Implicit TLS is on before the greeting; the session must not ask for more.
            ClientTls::None | ClientTls::Implicit => TlsWant::Never,
        };
        let mut c = Client {
            conn: Conn::Plain(tcp),
            session: ClientSession::new(&opts.helo, want),
            buf: vec![0; 4096],
            start: 0,
            end: 0,
            out: Vec::with_capacity(512),
            dead: false,
        };
        if opts.tls == ClientTls::Implicit {
            let t = Instant::now();
            c.handshake(opts).await?;
            times.starttls = Some(t.elapsed());
            times.resumed = c.conn.resumed();
        }
        let mut step = Step::Banner;
        let mut mark = Instant::now();
        loop {
            let n = c.next_reply(opts, "the greeting or EHLO").await?;
            let took = mark.elapsed();
            match step {
                Step::Banner => times.banner = Some(took),
                Step::Hello => times.ehlo.push(took),
                Step::StartTls => {}
            }
            let reply = c.start..c.start + n;
            c.start += n;
            c.out.clear();
            let action = if step == Step::Hello {
                let masked = mask_ehlo(&c.buf[reply], opts);
                c.session.feed(&masked, &mut c.out).1
            } else {
                c.session.feed(&c.buf[reply], &mut c.out).1
            };
            match action {
                ClientAction::NeedMore => {
                    step = if c.out.starts_with(b"STARTTLS") {
                        Step::StartTls
                    } else {
                        Step::Hello
                    };
                    c.write_out(opts).await?;
                    mark = Instant::now();
                }
                ClientAction::StartTls => {
                    // Bytes that came with the 220 were not protected by the handshake;
                    // a server that sends them is broken (or the path is tampered with).
                    if c.start != c.end {
                        return Err(Failure::Protocol(
                            "data arrived after the reply to STARTTLS".into(),
                        ));
                    }
                    c.handshake(opts).await?;
                    times.starttls = Some(mark.elapsed());
                    times.resumed = c.conn.resumed();
                    c.out.clear();
                    c.session.tls_established(&mut c.out);
                    c.write_out(opts).await?;
                    step = Step::Hello;
                    mark = Instant::now();
                }
                ClientAction::Ready => return Ok(c),
                ClientAction::Failed(f) => return Err(session_failure(f)),
                other => {
                    return Err(Failure::Protocol(format!(
                        "the session asked for {} while opening",
                        action_name(&other)
                    )))
                }
            }
        }
    }

    async fn handshake(&mut self, opts: &ClientOpts) -> Result<(), Failure> {
        let connector = opts
            .connector
            .as_ref()
            .expect("a TLS connector is built whenever TLS is on");
        self.start = 0;
        self.end = 0;
        match timeout(
            opts.timeout,
            self.conn
                .upgrade_client(connector, opts.server_name.clone()),
        )
        .await
        {
            Err(_) => Err(Failure::Timeout("the TLS handshake")),
            Ok(Err(e)) => Err(Failure::Tls(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Runs one transaction and returns the server's replies to it.
    pub async fn send(
        &mut self,
        opts: &ClientOpts,
        tx: &OutboundTx,
        msg: &Message<'_>,
        times: &mut TxTimes,
    ) -> Result<TxOutcome, Failure> {
        let r = self.transaction(opts, tx, msg, times).await;
        match &r {
            Ok(o) if involves_421(o) => self.dead = true,
            Err(Failure::Reply(421)) => self.dead = true,
            Err(f) if !f.is_reply() => self.dead = true,
            _ => {}
        }
        r
    }

    async fn transaction(
        &mut self,
        opts: &ClientOpts,
        tx: &OutboundTx,
        msg: &Message<'_>,
        times: &mut TxTimes,
    ) -> Result<TxOutcome, Failure> {
        self.out.clear();
        let first = self
            .session
            .start_transaction(tx, &mut self.out)
            .map_err(session_failure)?;
        let t_mail = Instant::now();
        self.write_out(opts).await?;
        let mut t_end = None;
        if first == ClientAction::SendChunk {
            self.write_content(opts, msg, false).await?;
            t_end = Some(Instant::now());
        }
        // Replies to MAIL and every RCPT, then the rest.
        let envelope_replies = 1 + tx.rcpts.len();
        let mut replies = 0;
        loop {
            let n = self.next_reply(opts, "a transaction command").await?;
            replies += 1;
            if replies == envelope_replies {
                times.mail_rcpt = Some(t_mail.elapsed());
            }
            let reply = self.start..self.start + n;
            self.start += n;
            self.out.clear();
            let (_, action) = self.session.feed(&self.buf[reply], &mut self.out);
            match action {
                ClientAction::NeedMore => self.write_out(opts).await?,
                ClientAction::SendData => {
                    self.write_out(opts).await?;
                    self.write_content(opts, msg, true).await?;
                    t_end = Some(Instant::now());
                }
                ClientAction::SendChunk => {
                    self.write_out(opts).await?;
                    self.write_content(opts, msg, false).await?;
                    t_end = Some(Instant::now());
                }
                ClientAction::Done(outcome) => {
                    if let (Some(t), Some(_)) = (t_end, &outcome.data) {
                        times.data_end = Some(t.elapsed());
                    }
                    return Ok(outcome);
                }
                ClientAction::Failed(f) => return Err(session_failure(f)),
                other => {
                    return Err(Failure::Protocol(format!(
                        "the session asked for {} within a transaction",
                        action_name(&other)
                    )))
                }
            }
        }
    }

    /// Writes the message: with its ".\r\n" terminator for DATA, without for BDAT.
    async fn write_content(
        &mut self,
        opts: &ClientOpts,
        msg: &Message<'_>,
        data: bool,
    ) -> Result<(), Failure> {
        if msg.body.is_empty() {
            let head = if data {
                msg.head
            } else {
                &msg.head[..msg.head.len() - 3]
            };
            return self.write(opts, head).await;
        }
        self.write(opts, msg.head).await?;
        self.write(opts, msg.body).await?;
        if data {
            self.write(opts, b".\r\n").await?;
        }
        Ok(())
    }

    /// QUIT, its reply and the server's close, each briefly waited for; errors ignored
    /// (the work is done). Waiting for the server to close first leaves the TIME_WAIT
    /// state on its side, so a run opening thousands of connections does not use up
    /// this machine's ephemeral ports.
    pub async fn quit(mut self) {
        self.out.clear();
        self.session.quit(&mut self.out);
        let out = std::mem::take(&mut self.out);
        if let Ok(Ok(())) = timeout(QUIT_WAIT, self.conn.write_all(&out)).await {
            let mut scratch = [0u8; 512];
            let _ = timeout(QUIT_WAIT, async {
                while let Ok(n) = self.conn.read(&mut scratch).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        if self.conn.is_tls() {
            let _ = timeout(QUIT_WAIT, self.conn.shutdown()).await;
        }
    }

    async fn write_out(&mut self, opts: &ClientOpts) -> Result<(), Failure> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let r = self.write(opts, &out).await;
        self.out = out;
        r
    }

    async fn write(&mut self, opts: &ClientOpts, bytes: &[u8]) -> Result<(), Failure> {
        let tls = self.conn.is_tls();
        match timeout(opts.timeout, self.conn.write_all(bytes)).await {
            Err(_) => Err(Failure::Timeout("(took no more data)")),
            Ok(Err(e)) => Err(Failure::io(e, tls)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads until one whole reply is buffered at `start`; returns its length.
    async fn next_reply(
        &mut self,
        opts: &ClientOpts,
        what: &'static str,
    ) -> Result<usize, Failure> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(n) = reply_len(pending) {
                return Ok(n);
            }
            if pending.len() > MAX_REPLY_BYTES {
                return Ok(pending.len());
            }
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
                if self.end == self.buf.len() {
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let tls = self.conn.is_tls();
            let n = match timeout(opts.timeout, self.conn.read(&mut self.buf[self.end..])).await {
                Err(_) => return Err(Failure::Timeout(what)),
                Ok(Err(e)) => return Err(Failure::io(e, tls)),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return Err(Failure::Closed);
            }
            self.end += n;
        }
    }
}

/// The length of the first complete reply in `buf`, as mxring's own reply parser
/// (the one delivery uses) delimits it. Bytes it refuses are handed over whole, for
/// the session (which parses with the same code) to refuse with its own words.
fn reply_len(buf: &[u8]) -> Option<usize> {
    match parse_reply(buf) {
        Ok(Some((_, n))) => Some(n),
        Ok(None) => None,
        Err(_) => Some(buf.len()),
    }
}

/// The EHLO reply as the session should see it: PIPELINING and CHUNKING hidden when
/// the run does not use them (the session uses whatever the server offers).
fn mask_ehlo(reply: &[u8], opts: &ClientOpts) -> Vec<u8> {
    if opts.pipelining && opts.bdat {
        return reply.to_vec();
    }
    let hidden = |line: &[u8]| {
        let kw = line.get(4..).unwrap_or_default();
        let kw = kw.split(|&b| b == b' ').next().unwrap_or_default();
        (!opts.pipelining && kw.eq_ignore_ascii_case(b"PIPELINING"))
            || (!opts.bdat && kw.eq_ignore_ascii_case(b"CHUNKING"))
    };
    let lines: Vec<&[u8]> = reply
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .filter(|(i, l)| *i == 0 || !hidden(l.trim_ascii_end()))
        .map(|(_, l)| l)
        .collect();
    let mut out = Vec::with_capacity(reply.len());
    for (i, line) in lines.iter().enumerate() {
        out.extend_from_slice(line);
        if matches!(line.get(3), Some(b'-' | b' ')) {
            // The last kept line ends the reply; every other one continues it.
            let at = out.len() - line.len() + 3;
            out[at] = if i + 1 == lines.len() { b' ' } else { b'-' };
        }
    }
    out
}

fn involves_421(o: &TxOutcome) -> bool {
    o.mail.code == 421
        || o.rcpts.iter().flatten().any(|r| r.code == 421)
        || o.data.as_ref().is_some_and(|d| d.code == 421)
}

fn session_failure(f: SessionFailure) -> Failure {
    match (f.stage, f.reply) {
        (_, Some(reply)) => Failure::Reply(reply.code),
        (Stage::StartTls, None) => Failure::Tls(std::io::Error::other(f.reason)),
        (_, None) => Failure::Protocol(f.reason),
    }
}

fn action_name(a: &ClientAction) -> &'static str {
    match a {
        ClientAction::NeedMore => "more input",
        ClientAction::StartTls => "a TLS handshake",
        ClientAction::Ready => "a new transaction",
        ClientAction::SendData => "the message data",
        ClientAction::SendChunk => "a BDAT chunk",
        ClientAction::Done(_) => "the end of a transaction",
        ClientAction::Failed(_) => "giving up",
        ClientAction::Closed => "the end of the session",
    }
}

async fn connect(addrs: &[SocketAddr], limit: Duration) -> Result<TcpStream, Failure> {
    let mut last = Failure::Connect(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "no address to connect to",
    ));
    for addr in addrs {
        match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Failure::Connect(e),
            Err(_) => last = Failure::ConnectTimeout,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pipelining: bool, bdat: bool) -> ClientOpts {
        ClientOpts {
            addrs: vec![],
            tls: ClientTls::None,
            connector: None,
            server_name: ServerName::try_from("localhost").unwrap(),
            helo: "t".into(),
            timeout: Duration::from_secs(1),
            pipelining,
            bdat,
        }
    }

    #[test]
    fn reply_boundaries() {
        assert_eq!(reply_len(b"250-a\r\n250 b\r\n354 go\r\n"), Some(14));
        assert_eq!(reply_len(b"250-a\r\n250"), None);
        assert_eq!(reply_len(b"220\r\n"), Some(5));
    }

    #[test]
    fn hidden_extensions_keep_the_reply_well_formed() {
        let ehlo = b"250-sink.test\r\n250-PIPELINING\r\n250-SIZE 10\r\n250 CHUNKING\r\n";
        assert_eq!(mask_ehlo(ehlo, &opts(true, true)), ehlo.to_vec());
        assert_eq!(
            mask_ehlo(ehlo, &opts(false, false)),
            b"250-sink.test\r\n250 SIZE 10\r\n".to_vec()
        );
        assert_eq!(
            mask_ehlo(b"250-x\r\n250 PIPELINING\r\n", &opts(false, true)),
            b"250 x\r\n".to_vec()
        );
    }
}
