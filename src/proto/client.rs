//! The SMTP client session: a state machine fed the server's bytes, writing our
//! commands into the caller's buffer. The driver owns the socket, the TLS
//! handshake and the clock; it asks `timeout()` which limit of `ReplyTimeouts` applies.

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::Duration;

use super::envelope::{xtext_encode, BodyType, Ret};
use super::reply::{parse_reply, ParsedReply, ReplyError};

/// How long to wait for each reply, by the command it answers (`[outbound]
/// banner_timeout` and the others; the defaults are RFC 5321 4.5.3.2's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTimeouts {
    pub banner: Duration,
    /// EHLO and HELO.
    pub ehlo: Duration,
    pub starttls: Duration,
    pub mail_from: Duration,
    pub rcpt_to: Duration,
    /// The 354 to DATA.
    pub data: Duration,
    /// After the final dot, and after each BDAT chunk.
    pub data_dot: Duration,
    pub rset: Duration,
    pub quit: Duration,
}

impl ReplyTimeouts {
    pub fn from_config(o: &crate::config::OutboundConfig) -> ReplyTimeouts {
        ReplyTimeouts {
            banner: o.banner_timeout.0,
            ehlo: o.ehlo_timeout.0,
            starttls: o.starttls_timeout.0,
            mail_from: o.mail_from_timeout.0,
            rcpt_to: o.rcpt_to_timeout.0,
            data: o.data_timeout.0,
            data_dot: o.data_dot_timeout.0,
            rset: o.rset_timeout.0,
            quit: o.quit_timeout.0,
        }
    }
}

/// The config's defaults, so the two can't drift.
impl Default for ReplyTimeouts {
    fn default() -> Self {
        ReplyTimeouts::from_config(&crate::config::OutboundConfig::default())
    }
}

/// What the peer announced in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub chunking: bool,
    pub starttls: bool,
    pub enhanced_status: bool,
    /// RFC 8689: the hop relays REQUIRETLS messages under the same rule.
    pub requiretls: bool,
}

impl Capabilities {
    pub fn parse(ehlo: &ParsedReply) -> Capabilities {
        let mut c = Capabilities::default();
        for line in ehlo.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "8BITMIME" => c.eightbitmime = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "DSN" => c.dsn = true,
                "CHUNKING" => c.chunking = true,
                "STARTTLS" => c.starttls = true,
                "REQUIRETLS" => c.requiretls = true,
                "ENHANCEDSTATUSCODES" => c.enhanced_status = true,
                _ => {}
            }
        }
        c
    }
}

/// How the session treats STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsWant {
    /// Never start TLS (level `none`, or the plaintext retry after a failed handshake).
    Never,
    /// Start TLS when offered; carry on in plaintext when not (level `may`).
    Opportunistic,
    /// TLS or nothing (levels `encrypt` and `verify`).
    Required,
}

/// One recipient of an outbound transaction.
#[derive(Clone, Debug)]
pub struct OutboundRcpt {
    pub address: String,
    pub notify: Option<super::notify::NotifyFlags>,
    pub orcpt: Option<String>,
}

/// The envelope of an outbound transaction.
#[derive(Clone, Debug)]
pub struct OutboundTx {
    pub sender: String,
    pub rcpts: Vec<OutboundRcpt>,
    pub size: u64,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// RFC 8689 REQUIRETLS: sent only to a hop that offers it.
    pub requiretls: bool,
}

/// The step at which a session failed as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Hello,
    StartTls,
    Protocol,
    /// The peer cannot take this message (checked before MAIL, nothing sent).
    PeerLimit(PeerLimit),
}

/// What the peer's EHLO says it cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerLimit {
    /// The message is larger than its SIZE.
    MessageTooBig,
    /// The message needs SMTPUTF8, which it does not offer.
    NoSmtpUtf8,
    /// The message asks for REQUIRETLS, which it does not offer.
    NoRequireTls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFailure {
    pub stage: Stage,
    pub reply: Option<ParsedReply>,
    pub reason: String,
}

/// Replies to one transaction, per recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    pub mail: ParsedReply,
    pub rcpts: Vec<Option<ParsedReply>>,
    /// The reply to the end of data (or to DATA/BDAT when refused); None when the
    /// transaction ended before data (MAIL refused or no recipient accepted).
    pub data: Option<ParsedReply>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Read more from the server.
    NeedMore,
    /// The 220 to STARTTLS arrived: run the handshake, then `tls_established`.
    StartTls,
    /// Greeting and hello are done: `start_transaction` may be called.
    Ready,
    /// 354: write the message with `dot_stuff`, then read on.
    SendData,
    /// BDAT was written: write the body octets now, then read on.
    SendChunk,
    Done(TxOutcome),
    Failed(SessionFailure),
    /// The reply to QUIT arrived.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Bdat,
    Rset,
    Quit,
}

struct TxState {
    mail: Option<ParsedReply>,
    rcpts: Vec<Option<ParsedReply>>,
    data: Option<ParsedReply>,
    use_bdat: bool,
    size: u64,
    /// Commands not yet sent (when the peer does not pipeline).
    queued: VecDeque<(Vec<u8>, Expect)>,
    /// MAIL and RCPT only: the transaction ends after the last RCPT, no data.
    probe: bool,
}

pub struct ClientSession {
    helo: String,
    tls: TlsWant,
    tls_active: bool,
    caps: Capabilities,
    expect: VecDeque<Expect>,
    tx: Option<TxState>,
    failed: bool,
    timeouts: ReplyTimeouts,
}

impl ClientSession {
    /// A session with the default reply timeouts.
    pub fn new(helo: &str, tls: TlsWant) -> Self {
        Self::with_timeouts(helo, tls, ReplyTimeouts::default())
    }

    pub fn with_timeouts(helo: &str, tls: TlsWant, timeouts: ReplyTimeouts) -> Self {
        ClientSession {
            helo: helo.to_string(),
            tls,
            tls_active: false,
            caps: Capabilities::default(),
            expect: VecDeque::from([Expect::Greeting]),
            tx: None,
            failed: false,
            timeouts,
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The limit for the reply awaited now.
    pub fn timeout(&self) -> Duration {
        let t = &self.timeouts;
        match self.expect.front() {
            Some(Expect::Greeting) => t.banner,
            Some(Expect::Ehlo | Expect::Helo) => t.ehlo,
            Some(Expect::StartTls) => t.starttls,
            Some(Expect::Mail) => t.mail_from,
            Some(Expect::Rcpt(_)) => t.rcpt_to,
            Some(Expect::Data) => t.data,
            Some(Expect::DataEnd | Expect::Bdat) => t.data_dot,
            Some(Expect::Rset) => t.rset,
            Some(Expect::Quit) => t.quit,
            // Nothing awaited: the caller reads only to notice the peer closing.
            None => t.rset,
        }
    }

    /// The handshake succeeded: RFC 3207 says to forget what the server said before
    /// and say hello again.
    pub fn tls_established(&mut self, out: &mut Vec<u8>) {
        self.tls_active = true;
        self.caps = Capabilities::default();
        self.send(
            out,
            format!("EHLO {}\r\n", self.helo).into_bytes(),
            Expect::Ehlo,
        );
    }

    fn send(&mut self, out: &mut Vec<u8>, cmd: Vec<u8>, expect: Expect) {
        out.extend_from_slice(&cmd);
        self.expect.push_back(expect);
    }

    /// Write MAIL, RCPT and DATA/BDAT (all at once when the peer pipelines).
    /// Returns `SendChunk` when the body must follow at once (pipelined BDAT),
    /// else `NeedMore`. Fails without writing when the peer cannot take the message.
    pub fn start_transaction(
        &mut self,
        tx: &OutboundTx,
        out: &mut Vec<u8>,
    ) -> Result<ClientAction, SessionFailure> {
        self.begin(tx, out, false)
    }

    /// MAIL and RCPT as `start_transaction` writes them, one at a time and no
    /// RCPT after a refused MAIL, then `Done` with no data sent (check-tls asks
    /// whether the peer would take the envelope). The session stays usable.
    pub fn start_probe(
        &mut self,
        tx: &OutboundTx,
        out: &mut Vec<u8>,
    ) -> Result<ClientAction, SessionFailure> {
        self.begin(tx, out, true)
    }

    fn begin(
        &mut self,
        tx: &OutboundTx,
        out: &mut Vec<u8>,
        probe: bool,
    ) -> Result<ClientAction, SessionFailure> {
        if let Some(limit) = self.caps.size.filter(|&l| tx.size > l) {
            return Err(SessionFailure {
                stage: Stage::PeerLimit(PeerLimit::MessageTooBig),
                reply: None,
                reason: format!("message size {} exceeds the peer's limit {limit}", tx.size),
            });
        }
        if tx.smtputf8 && !self.caps.smtputf8 {
            return Err(SessionFailure {
                stage: Stage::PeerLimit(PeerLimit::NoSmtpUtf8),
                reply: None,
                reason: "the peer does not support SMTPUTF8".into(),
            });
        }
        if tx.requiretls && !self.caps.requiretls {
            return Err(SessionFailure {
                stage: Stage::PeerLimit(PeerLimit::NoRequireTls),
                reply: None,
                reason: "REQUIRETLS was asked for this message, but the next hop does not offer REQUIRETLS".into(),
            });
        }
        let mut mail = format!("MAIL FROM:<{}>", tx.sender);
        if self.caps.size.is_some() {
            let _ = write!(mail, " SIZE={}", tx.size);
        }
        if tx.body_type == BodyType::EightBitMime && self.caps.eightbitmime {
            mail.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if tx.requiretls {
            mail.push_str(" REQUIRETLS");
        }
        if self.caps.dsn {
            match tx.ret {
                Some(Ret::Full) => mail.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = &tx.envid {
                let _ = write!(mail, " ENVID={}", xtext_encode(envid));
            }
        }
        mail.push_str("\r\n");
        let mail = (mail.into_bytes(), Expect::Mail);
        let mut rcpts = Vec::with_capacity(tx.rcpts.len());
        for (i, r) in tx.rcpts.iter().enumerate() {
            let mut rcpt = format!("RCPT TO:<{}>", r.address);
            if self.caps.dsn {
                if let Some(n) = &r.notify {
                    let _ = write!(rcpt, " NOTIFY={n}");
                }
                if let Some(o) = &r.orcpt {
                    let _ = write!(rcpt, " ORCPT={}", xtext_encode(o));
                }
            }
            rcpt.push_str("\r\n");
            rcpts.push((rcpt.into_bytes(), Expect::Rcpt(i)));
        }
        let use_bdat = self.caps.chunking;
        let mut state = TxState {
            mail: None,
            rcpts: vec![None; tx.rcpts.len()],
            data: None,
            use_bdat,
            size: tx.size,
            queued: VecDeque::new(),
            probe,
        };
        if self.caps.pipelining && !probe {
            for (cmd, e) in std::iter::once(mail).chain(rcpts) {
                self.send(out, cmd, e);
            }
            if use_bdat {
                self.send(
                    out,
                    format!("BDAT {} LAST\r\n", tx.size).into_bytes(),
                    Expect::Bdat,
                );
                self.tx = Some(state);
                return Ok(ClientAction::SendChunk);
            }
            self.send(out, b"DATA\r\n".to_vec(), Expect::Data);
        } else {
            self.send(out, mail.0, mail.1);
            state.queued.extend(rcpts);
        }
        self.tx = Some(state);
        Ok(ClientAction::NeedMore)
    }

    /// Write QUIT; `Closed` follows its reply.
    pub fn quit(&mut self, out: &mut Vec<u8>) {
        self.send(out, b"QUIT\r\n".to_vec(), Expect::Quit);
    }

    /// Feed server bytes. Returns the bytes consumed and what to do next; commands
    /// to send are appended to `out` (write them before reading again).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, ClientAction) {
        let mut pos = 0;
        loop {
            if self.failed {
                return (
                    input.len(),
                    ClientAction::Failed(self.protocol_failure("session already failed")),
                );
            }
            let reply = match parse_reply(input.get(pos..).unwrap_or_default()) {
                Ok(None) => return (pos, ClientAction::NeedMore),
                Ok(Some((r, n))) => {
                    pos += n;
                    r
                }
                Err(e) => {
                    return (
                        input.len(),
                        ClientAction::Failed(self.protocol_failure(&reply_error_text(e))),
                    )
                }
            };
            let Some(expect) = self.expect.pop_front() else {
                return (
                    input.len(),
                    ClientAction::Failed(self.protocol_failure("unexpected reply")),
                );
            };
            match self.on_reply(expect, reply, out) {
                ClientAction::NeedMore => continue,
                // Nothing may follow the 220 to STARTTLS in plaintext.
                ClientAction::StartTls => return (input.len(), ClientAction::StartTls),
                other => return (pos, other),
            }
        }
    }

    fn protocol_failure(&mut self, reason: &str) -> SessionFailure {
        self.failed = true;
        SessionFailure {
            stage: Stage::Protocol,
            reply: None,
            reason: reason.to_string(),
        }
    }

    fn fail(&mut self, stage: Stage, reply: Option<ParsedReply>, reason: &str) -> ClientAction {
        self.failed = true;
        ClientAction::Failed(SessionFailure {
            stage,
            reply,
            reason: reason.to_string(),
        })
    }

    fn after_hello(&mut self, out: &mut Vec<u8>) -> ClientAction {
        if !self.tls_active && self.tls != TlsWant::Never && self.caps.starttls {
            self.send(out, b"STARTTLS\r\n".to_vec(), Expect::StartTls);
            return ClientAction::NeedMore;
        }
        if !self.tls_active && self.tls == TlsWant::Required {
            return self.fail(
                Stage::StartTls,
                None,
                "TLS is required, but was not offered",
            );
        }
        ClientAction::Ready
    }

    fn on_reply(&mut self, expect: Expect, reply: ParsedReply, out: &mut Vec<u8>) -> ClientAction {
        match expect {
            Expect::Greeting => {
                if reply.code != 220 {
                    return self.fail(Stage::Greeting, Some(reply), "greeting refused");
                }
                self.send(
                    out,
                    format!("EHLO {}\r\n", self.helo).into_bytes(),
                    Expect::Ehlo,
                );
                ClientAction::NeedMore
            }
            Expect::Ehlo => {
                if reply.code == 250 {
                    self.caps = Capabilities::parse(&reply);
                    return self.after_hello(out);
                }
                if reply.is_permanent() {
                    self.send(
                        out,
                        format!("HELO {}\r\n", self.helo).into_bytes(),
                        Expect::Helo,
                    );
                    return ClientAction::NeedMore;
                }
                self.fail(Stage::Hello, Some(reply), "EHLO refused")
            }
            Expect::Helo => {
                if reply.code != 250 {
                    return self.fail(Stage::Hello, Some(reply), "HELO refused");
                }
                self.caps = Capabilities::default();
                self.after_hello(out)
            }
            Expect::StartTls => {
                if reply.code == 220 {
                    return ClientAction::StartTls;
                }
                if self.tls == TlsWant::Required {
                    return self.fail(Stage::StartTls, Some(reply), "STARTTLS refused");
                }
                // Opportunistic: the peer changed its mind; carry on in plaintext.
                ClientAction::Ready
            }
            Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::DataEnd | Expect::Bdat => {
                self.on_tx_reply(expect, reply, out)
            }
            Expect::Rset => {
                if self.expect.is_empty() {
                    return self.finish_tx();
                }
                ClientAction::NeedMore
            }
            Expect::Quit => ClientAction::Closed,
        }
    }

    fn on_tx_reply(
        &mut self,
        expect: Expect,
        reply: ParsedReply,
        out: &mut Vec<u8>,
    ) -> ClientAction {
        let Some(tx) = self.tx.as_mut() else {
            return self.fail(Stage::Protocol, Some(reply), "reply outside a transaction");
        };
        match expect {
            Expect::Mail => {
                let ok = reply.is_positive();
                tx.mail = Some(reply);
                if !ok && !tx.queued.is_empty() {
                    // Not pipelining: nothing more to send for this transaction.
                    tx.queued.clear();
                    return self.finish_tx();
                }
            }
            Expect::Rcpt(i) => {
                let Some(slot) = tx.rcpts.get_mut(i) else {
                    return self.fail(Stage::Protocol, Some(reply), "reply to an unknown RCPT");
                };
                *slot = Some(reply);
            }
            Expect::Data => {
                if reply.code == 354 {
                    let any = tx.mail.as_ref().is_some_and(|m| m.is_positive())
                        && tx
                            .rcpts
                            .iter()
                            .any(|r| r.as_ref().is_some_and(|r| r.is_positive()));
                    if !any {
                        // RFC 2920: DATA was pipelined but nobody will take the mail:
                        // end the (empty) data at once and report the refusals.
                        self.send(out, b".\r\n".to_vec(), Expect::DataEnd);
                        if let Some(tx) = self.tx.as_mut() {
                            tx.data = None;
                        }
                        return ClientAction::NeedMore;
                    }
                    self.expect.push_back(Expect::DataEnd);
                    return ClientAction::SendData;
                }
                tx.data = Some(reply);
            }
            Expect::DataEnd | Expect::Bdat => {
                let accepted = tx
                    .rcpts
                    .iter()
                    .any(|r| r.as_ref().is_some_and(|r| r.is_positive()));
                if accepted {
                    tx.data = Some(reply);
                }
            }
            _ => return self.fail(Stage::Protocol, Some(reply), "not a transaction reply"),
        }
        if let Some((cmd, e)) = tx.queued.pop_front() {
            out.extend_from_slice(&cmd);
            self.expect.push_back(e);
            return ClientAction::NeedMore;
        }
        if matches!(expect, Expect::Rcpt(_)) && self.expect.is_empty() {
            // Not pipelining and every RCPT answered: data, or give up politely.
            if tx.probe {
                return self.finish_tx();
            }
            let any = tx
                .rcpts
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.is_positive()));
            if !any {
                self.send(out, b"RSET\r\n".to_vec(), Expect::Rset);
                return ClientAction::NeedMore;
            }
            if tx.use_bdat {
                let size = tx.size;
                self.send(
                    out,
                    format!("BDAT {size} LAST\r\n").into_bytes(),
                    Expect::Bdat,
                );
                return ClientAction::SendChunk;
            }
            self.send(out, b"DATA\r\n".to_vec(), Expect::Data);
            return ClientAction::NeedMore;
        }
        if self.expect.is_empty() {
            return self.finish_tx();
        }
        ClientAction::NeedMore
    }

    fn finish_tx(&mut self) -> ClientAction {
        let Some(tx) = self.tx.take() else {
            return ClientAction::Ready;
        };
        let mail = tx.mail.unwrap_or(ParsedReply {
            code: 451,
            lines: vec!["no reply to MAIL".into()],
        });
        // A reply to DATA/BDAT only means something when someone took the mail.
        let taken = mail.is_positive()
            && tx
                .rcpts
                .iter()
                .any(|r| r.as_ref().is_some_and(|r| r.is_positive()));
        let data = if taken { tx.data } else { None };
        ClientAction::Done(TxOutcome {
            mail,
            rcpts: tx.rcpts,
            data,
        })
    }
}

fn reply_error_text(e: ReplyError) -> String {
    format!("protocol error: {e}")
}
