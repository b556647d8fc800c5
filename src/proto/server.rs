//! The SMTP server session: a state machine fed bytes, returning replies (written to
//! the caller's buffer) and events. It owns no socket, no clock and no TLS: the
//! driver performs the STARTTLS handshake and stores messages, then reports back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::address::{parse_path, split_path, AddressError};
use super::auth::{AuthOutcome, Credentials, Next, Pending, MAX_AUTH_LINE};
use super::command::{parse_command, Command, CommandError, MAX_COMMAND_LINE};
use super::content::ContentCheck;
use super::data::{DataDecoder, DataError};
use super::envelope::{Envelope, Recipient, TlsFacts};
use super::params::{parse_mail_params, parse_rcpt_params, MailParams};
use super::received::{write_received, ReceivedFacts};
use super::reply::{reply, reply_lines};
use crate::config::{ListenerAuth, ListenerTls, TlsVersion};
use crate::policy::{AddressMatcher, InboundDecision, Policy, TlsShortfall};

/// What a session needs to know about the listener and server it belongs to.
#[derive(Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: usize,
    pub listener: String,
    pub listener_tls: ListenerTls,
    pub policy: Arc<Policy>,
    /// The address `RCPT TO:<postmaster>` (no domain) is delivered to.
    pub postmaster: String,
    /// SMTP AUTH on this listener, and whether Received names the login.
    pub auth: SubmissionConfig,
}

/// What a listener does about SMTP AUTH.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubmissionConfig {
    pub mode: ListenerAuth,
    /// `[auth] show_login_in_received`.
    pub show_login_in_received: bool,
}

/// Something the driver must act on before feeding more input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The 220 for STARTTLS is in the output: flush it, discard any buffered
    /// plaintext, run the handshake, then call `tls_established`.
    StartTls,
    /// A message is complete: store it durably, then call `message_stored`.
    Message(Box<Message>),
    /// AUTH credentials are complete: `take_credentials`, check them (off the event
    /// loop: it is slow on purpose), then `auth_checked`.
    Authenticate,
    /// Flush the output and close the connection.
    Close,
}

/// A message the session accepted, for the driver to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The queue id, taken when the body started (it is in the Received header).
    pub id: u64,
    pub envelope: Envelope,
    /// The body still held here: all of it, or what came after the driver last
    /// took the body so far (`take_body_so_far`).
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fed {
    pub consumed: usize,
    pub event: Option<Event>,
}

/// Which RFC 5321 timeout applies to the current wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    Command,
    Data,
}

/// Why storing a message failed, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// The disk is full: 452 4.3.1.
    NoSpace,
    /// Any other storage error: 451 4.3.0.
    Io,
}

/// Where a session takes each message's queue id from. The queue owns ids and
/// how they are written; the session only writes them (Received, the 250 reply).
pub trait MessageIds {
    /// A fresh id, for a message whose body starts now.
    fn next(&self) -> u64;
    /// The id as people and the Received header see it.
    fn format(&self, id: u64) -> String;
}

enum Phase {
    Command,
    Data(DataDecoder),
    Bdat {
        remaining: u64,
        last: bool,
        size: u64,
    },
    AwaitingStore,
    AwaitingAuth,
    Closed,
}

/// Who the client proved to be with AUTH.
struct Identity {
    login: String,
    addresses: Vec<AddressMatcher>,
}

impl Identity {
    fn owns(&self, sender: &str) -> bool {
        sender.is_empty()
            || sender.eq_ignore_ascii_case(&self.login)
            || self.addresses.iter().any(|m| m.matches(sender))
    }
}

struct Transaction {
    id: u64,
    sender: String,
    params: MailParams,
    mail_decision: Option<InboundDecision>,
    recipients: Vec<Recipient>,
    body: Vec<u8>,
    /// Set once a BDAT chunk was taken: DATA is then out of sequence.
    chunking: bool,
    /// The id is taken and the Received header written (the body buffer may be
    /// empty again after the driver moved it to disk).
    body_started: bool,
    /// The BDAT content rules (the same as DATA's), over the chunks so far.
    bdat: ContentCheck,
    arrival_ms: u64,
    /// `TLS-Required: No` seen in the header section, once the body's start was
    /// looked at (before it is moved to a spill file, or at its end).
    tls_required_no: Option<bool>,
}

pub struct ServerSession {
    cfg: Arc<SessionConfig>,
    client_ip: IpAddr,
    ids: Box<dyn MessageIds>,
    phase: Phase,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<(TlsVersion, TlsFacts)>,
    tx: Option<Transaction>,
    errors: usize,
    skipping_long_line: bool,
    /// A refused BDAT's reply, sent once its chunk has been read and dropped.
    pending_bdat_refusal: Option<(u16, &'static str, &'static str)>,
    /// Set by a successful AUTH; kept for the rest of the session.
    identity: Option<Identity>,
    /// An AUTH exchange waiting for the client's next line (after a 334).
    auth_pending: Option<Pending>,
    /// Credentials of the last `Event::Authenticate`.
    credentials: Option<Credentials>,
}

impl ServerSession {
    pub fn new(cfg: Arc<SessionConfig>, client_ip: IpAddr, ids: impl MessageIds + 'static) -> Self {
        ServerSession {
            cfg,
            client_ip,
            ids: Box::new(ids),
            phase: Phase::Command,
            helo: None,
            esmtp: false,
            tls: None,
            tx: None,
            errors: 0,
            skipping_long_line: false,
            pending_bdat_refusal: None,
            identity: None,
            auth_pending: None,
            credentials: None,
        }
    }

    pub fn greeting(&self, out: &mut Vec<u8>) {
        reply(out, 220, "", &format!("{} ESMTP mxring", self.cfg.hostname));
    }

    pub fn waiting(&self) -> Waiting {
        match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } => Waiting::Data,
            _ => Waiting::Command,
        }
    }

    /// Inside a command line whose start was already consumed (the rest of an
    /// over-long line being skipped): its deadline runs from its first byte.
    pub fn mid_line(&self) -> bool {
        self.skipping_long_line && matches!(self.phase, Phase::Command)
    }

    /// A message body is being received: from DATA or the first BDAT to the end
    /// of the message (BDAT chunks and the commands between them).
    pub fn receiving_body(&self) -> bool {
        match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } => true,
            Phase::Command => self.tx.as_ref().is_some_and(|t| t.chunking),
            // AUTH is only allowed outside a transaction.
            Phase::AwaitingStore | Phase::AwaitingAuth | Phase::Closed => false,
        }
    }

    /// Octets of the message being received held here (our Received header
    /// included), so the driver can move them to disk before they add up.
    pub fn body_buffered(&self) -> usize {
        match self.phase {
            Phase::Data(_) | Phase::Bdat { .. } | Phase::Command => {
                self.tx.as_ref().map_or(0, |t| t.body.len())
            }
            Phase::AwaitingStore | Phase::AwaitingAuth | Phase::Closed => 0,
        }
    }

    /// Move the body received so far out (to the driver's spill file); what comes
    /// next is appended to an empty buffer, and `take_message` hands over only that.
    pub fn take_body_so_far(&mut self) -> Vec<u8> {
        match self.tx.as_mut() {
            Some(t) => {
                if t.tls_required_no.is_none() && !t.body.is_empty() {
                    t.tls_required_no = Some(super::requiretls::tls_required_no(&t.body));
                }
                std::mem::take(&mut t.body)
            }
            _ => Vec::new(),
        }
    }

    /// Give back the buffer `take_body_so_far` handed out, emptied, so the next
    /// part of the body reuses its memory.
    pub fn reuse_body_buffer(&mut self, mut buf: Vec<u8>) {
        if let Some(t) = self.tx.as_mut().filter(|t| t.body.is_empty()) {
            buf.clear();
            t.body = buf;
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    pub fn tls_active(&self) -> bool {
        self.tls.is_some()
    }

    /// The client was idle too long: say so and close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        reply(
            out,
            421,
            "4.4.2",
            &format!("{} Error: timeout exceeded", self.cfg.hostname),
        );
        self.phase = Phase::Closed;
    }

    /// The message took longer than the total time allowed for a body
    /// (`data_total_timeout`), however steadily it trickled: say so and close.
    pub fn body_too_slow(&mut self, out: &mut Vec<u8>) {
        reply(
            out,
            421,
            "4.4.2",
            &format!(
                "{} Error: message not received within the time allowed, closing",
                self.cfg.hostname
            ),
        );
        self.phase = Phase::Closed;
    }

    /// The server is shutting down: say so and close.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        reply(
            out,
            421,
            "4.3.2",
            &format!(
                "{} Service shutting down, try again later",
                self.cfg.hostname
            ),
        );
        self.phase = Phase::Closed;
    }

    /// TLS is up. RFC 3207: forget everything learned before, the client starts over with EHLO.
    pub fn tls_established(&mut self, version: TlsVersion, facts: TlsFacts) {
        self.tls = Some((version, facts));
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.identity = None;
        self.auth_pending = None;
        self.phase = Phase::Command;
    }

    /// The authenticated login, once AUTH succeeded; stored with each message.
    pub fn login(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.login.as_str())
    }

    /// The credentials of the last `Event::Authenticate`.
    pub fn take_credentials(&mut self) -> Option<Credentials> {
        self.credentials.take()
    }

    /// The driver checked the credentials taken last.
    /// Too many failures close the session (`is_closed`), as any other error does.
    pub fn auth_checked(&mut self, outcome: AuthOutcome, out: &mut Vec<u8>) {
        if matches!(self.phase, Phase::AwaitingAuth) {
            self.phase = Phase::Command;
        }
        match outcome {
            AuthOutcome::Accepted { login, addresses } => {
                self.identity = Some(Identity { login, addresses });
                reply(out, 235, "2.7.0", "Authentication successful");
            }
            AuthOutcome::Rejected => {
                self.error(out, 535, "5.7.8", "Authentication credentials invalid");
            }
            AuthOutcome::LockedOut | AuthOutcome::Unavailable => {
                self.error(out, 454, "4.7.0", "Temporary authentication failure");
            }
        }
    }

    /// The driver stored (or failed to store) the message taken last.
    pub fn message_stored(&mut self, result: Result<u64, StoreFailure>, out: &mut Vec<u8>) {
        match result {
            Ok(id) => reply(
                out,
                250,
                "2.0.0",
                &format!("Ok: queued as {}", self.ids.format(id)),
            ),
            Err(StoreFailure::NoSpace) => reply(out, 452, "4.3.1", "Insufficient system storage"),
            Err(StoreFailure::Io) => reply(out, 451, "4.3.0", "Error: queue file write error"),
        }
        self.tx = None;
        if matches!(self.phase, Phase::AwaitingStore) {
            self.phase = Phase::Command;
        }
    }

    /// Feed bytes from the client. Replies are appended to `out`; the caller writes
    /// `out` once per feed, so a pipelined group of commands gets one write.
    pub fn feed(&mut self, input: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Fed {
        let mut pos = 0;
        loop {
            match &mut self.phase {
                Phase::Closed => {
                    return Fed {
                        consumed: input.len(),
                        event: None,
                    }
                }
                Phase::AwaitingStore | Phase::AwaitingAuth => {
                    return Fed {
                        consumed: pos,
                        event: None,
                    }
                }
                Phase::Data(decoder) => {
                    let tx = self.tx.as_mut().expect("DATA phase has a transaction");
                    let (n, done) = decoder.decode(&input[pos..], &mut tx.body);
                    pos += n;
                    if !done {
                        return Fed {
                            consumed: pos,
                            event: None,
                        };
                    }
                    let error = decoder.error();
                    if let Some(e) = self.finish_body(error, now, out) {
                        return Fed {
                            consumed: pos,
                            event: Some(e),
                        };
                    }
                }
                Phase::Bdat {
                    remaining,
                    last,
                    size,
                } => {
                    let take = (*remaining).min((input.len() - pos) as u64) as usize;
                    *remaining -= take as u64;
                    let (done, last, size) = (*remaining == 0, *last, *size);
                    if let Some(tx) = self
                        .tx
                        .as_mut()
                        .filter(|_| self.pending_bdat_refusal.is_none())
                    {
                        let chunk = &input[pos..pos + take];
                        tx.bdat.check(chunk);
                        // Past the limit (or any error) content is counted, not kept.
                        if tx.bdat.error().is_none() {
                            tx.body.extend_from_slice(chunk);
                        }
                    }
                    pos += take;
                    if !done {
                        return Fed {
                            consumed: pos,
                            event: None,
                        };
                    }
                    if let Some(e) = self.finish_chunk(last, size, now, out) {
                        return Fed {
                            consumed: pos,
                            event: Some(e),
                        };
                    }
                }
                Phase::Command => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        return Fed {
                            consumed: pos,
                            event: None,
                        };
                    }
                    if self.skipping_long_line {
                        match memchr::memchr(b'\n', rest) {
                            Some(nl) => {
                                pos += nl + 1;
                                self.skipping_long_line = false;
                                continue;
                            }
                            None => {
                                return Fed {
                                    consumed: input.len(),
                                    event: None,
                                }
                            }
                        }
                    }
                    let max_line = self.line_limit(rest);
                    let limit = rest.len().min(max_line);
                    let Some(nl) = memchr::memchr(b'\n', &rest[..limit]) else {
                        if rest.len() < max_line {
                            return Fed {
                                consumed: pos,
                                event: None,
                            };
                        }
                        // Too long to be a command: refuse it once, then skip to its end.
                        self.skipping_long_line = true;
                        self.auth_pending = None;
                        pos += limit;
                        if let Some(e) = self.error(out, 500, "5.5.2", "Error: line too long") {
                            return Fed {
                                consumed: input.len(),
                                event: Some(e),
                            };
                        }
                        continue;
                    };
                    pos += nl + 1;
                    let line = &rest[..nl];
                    let Some(line) = line.strip_suffix(b"\r") else {
                        if let Some(e) = self.error(out, 500, "5.5.2", "Error: bare <LF> received")
                        {
                            return Fed {
                                consumed: input.len(),
                                event: Some(e),
                            };
                        }
                        continue;
                    };
                    if memchr::memchr(b'\r', line).is_some() {
                        if let Some(e) = self.error(out, 500, "5.5.2", "Error: bare <CR> received")
                        {
                            return Fed {
                                consumed: input.len(),
                                event: Some(e),
                            };
                        }
                        continue;
                    }
                    let event = match self.auth_pending.take() {
                        Some(pending) => self.auth_response(pending, line, out),
                        None => self.command(line, now, out),
                    };
                    match event {
                        None => {}
                        // Whatever the client sent after STARTTLS in the same flight
                        // is dropped unread (the STARTTLS command-injection class).
                        Some(Event::StartTls) => {
                            return Fed {
                                consumed: input.len(),
                                event: Some(Event::StartTls),
                            }
                        }
                        Some(Event::Close) => {
                            return Fed {
                                consumed: input.len(),
                                event: Some(Event::Close),
                            }
                        }
                        Some(e @ (Event::Message(_) | Event::Authenticate)) => {
                            return Fed {
                                consumed: pos,
                                event: Some(e),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Count an error reply; too many close the session.
    fn error(&mut self, out: &mut Vec<u8>, code: u16, enhanced: &str, text: &str) -> Option<Event> {
        reply(out, code, enhanced, text);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            reply(
                out,
                421,
                "4.7.0",
                &format!("{} Error: too many errors", self.cfg.hostname),
            );
            self.phase = Phase::Closed;
            return Some(Event::Close);
        }
        None
    }

    fn listener_requires_tls(&self) -> bool {
        self.cfg.listener_tls == ListenerTls::Required && self.tls.is_none()
    }

    fn tls_version(&self) -> Option<TlsVersion> {
        self.tls.as_ref().map(|t| t.0)
    }

    fn shortfall_reply(
        &mut self,
        s: TlsShortfall,
        out: &mut Vec<u8>,
        subject: &str,
    ) -> Option<Event> {
        let text = match s {
            TlsShortfall::NoTls => s.reply_text(None),
            TlsShortfall::TooOld { .. } => format!("{subject}{}", s.reply_text(self.tls_version())),
        };
        self.error(out, 530, "5.7.0", &text)
    }

    fn command(&mut self, line: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Option<Event> {
        if memchr::memchr(0, line).is_some() {
            return self.error(out, 500, "5.5.2", "Error: NUL character in command");
        }
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(CommandError::Unknown) => {
                return self.error(out, 500, "5.5.2", "Error: command not recognized")
            }
            Err(CommandError::NotUtf8) => {
                return self.error(out, 500, "5.5.2", "Error: command is not valid UTF-8")
            }
            Err(CommandError::Syntax(usage)) => {
                return self.error(out, 501, "5.5.4", &format!("Syntax: {usage}"))
            }
        };
        match cmd {
            Command::Ehlo(name) | Command::Helo(name) => {
                self.tx = None;
                self.helo = Some(name.to_string());
                self.esmtp = matches!(cmd, Command::Ehlo(_));
                if self.esmtp {
                    self.ehlo_reply(out);
                } else {
                    reply(out, 250, "", &self.cfg.hostname);
                }
                None
            }
            Command::Mail(arg) => self.mail(arg, out),
            Command::Rcpt(arg) => self.rcpt(arg, out),
            Command::Data => self.data(now, out),
            Command::Bdat { size, last } => self.bdat(size, last, now, out),
            Command::Rset => {
                self.tx = None;
                reply(out, 250, "2.0.0", "Ok");
                None
            }
            Command::Noop => {
                reply(out, 250, "2.0.0", "Ok");
                None
            }
            Command::Vrfy => {
                reply(
                    out,
                    252,
                    "2.0.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                );
                None
            }
            Command::Help => {
                reply(out, 214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
                None
            }
            Command::Quit => {
                reply(out, 221, "2.0.0", "Bye");
                self.phase = Phase::Closed;
                Some(Event::Close)
            }
            Command::Auth(args) => self.auth(args, out),
            Command::StartTls => {
                if self.tls.is_some() {
                    return self.error(out, 503, "5.5.1", "Error: TLS already active");
                }
                if !matches!(
                    self.cfg.listener_tls,
                    ListenerTls::Starttls | ListenerTls::Required
                ) {
                    return self.error(out, 502, "5.5.1", "Error: command not implemented");
                }
                reply(out, 220, "2.0.0", "Ready to start TLS");
                Some(Event::StartTls)
            }
        }
    }

    fn ehlo_reply(&self, out: &mut Vec<u8>) {
        let size = format!("SIZE {}", self.cfg.max_message_size);
        let mut lines = vec![
            self.cfg.hostname.as_str(),
            "PIPELINING",
            size.as_str(),
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "CHUNKING",
        ];
        if self.tls.is_none()
            && matches!(
                self.cfg.listener_tls,
                ListenerTls::Starttls | ListenerTls::Required
            )
        {
            lines.push("STARTTLS");
        }
        // RFC 4954 4: mechanisms that send passwords are offered only under TLS.
        if self.tls.is_some() && self.cfg.auth.mode.enabled() {
            lines.push("AUTH PLAIN LOGIN");
        }
        // RFC 8689 2: only over TLS.
        if self.tls.is_some() {
            lines.push("REQUIRETLS");
        }
        reply_lines(out, 250, &lines);
    }

    /// AUTH lines may be longer than commands (RFC 4954 4: 12288 octets).
    fn line_limit(&self, rest: &[u8]) -> usize {
        let auth_line = rest
            .get(..5)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"AUTH "));
        if self.cfg.auth.mode.enabled() && (auth_line || self.auth_pending.is_some()) {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        }
    }

    fn auth(&mut self, args: &str, out: &mut Vec<u8>) -> Option<Event> {
        if !self.cfg.auth.mode.enabled() {
            return self.error(out, 503, "5.5.1", "Error: authentication not enabled");
        }
        if self.tls.is_none() {
            return self.error(
                out,
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        if !self.esmtp {
            return self.error(out, 503, "5.5.1", "Error: send EHLO first");
        }
        if self.identity.is_some() {
            return self.error(out, 503, "5.5.1", "Error: already authenticated");
        }
        if self.tx.is_some() {
            return self.error(out, 503, "5.5.1", "Error: MAIL transaction in progress");
        }
        self.auth_step(super::auth::begin(args), out)
    }

    fn auth_response(&mut self, pending: Pending, line: &[u8], out: &mut Vec<u8>) -> Option<Event> {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.auth_step(Err(super::auth::AuthError::BadBase64), out);
        };
        self.auth_step(super::auth::respond(pending, line), out)
    }

    fn auth_step(
        &mut self,
        step: Result<Next, super::auth::AuthError>,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        match step {
            Ok(Next::Ask(pending, challenge)) => {
                self.auth_pending = Some(pending);
                reply(out, 334, "", challenge);
                None
            }
            Ok(Next::Check(credentials)) => {
                self.credentials = Some(credentials);
                self.phase = Phase::AwaitingAuth;
                Some(Event::Authenticate)
            }
            Err(e) => {
                let (code, enh, text) = e.reply();
                self.error(out, code, enh, text)
            }
        }
    }

    fn mail(&mut self, arg: &str, out: &mut Vec<u8>) -> Option<Event> {
        if self.helo.is_none() {
            return self.error(out, 503, "5.5.1", "Error: send HELO/EHLO first");
        }
        // A `required` listener is a floor: rules may add to it (a minimum version)
        // but never exempt a plaintext session (the "securemx" promise).
        if self.listener_requires_tls() {
            return self.error(out, 530, "5.7.0", "Must issue a STARTTLS command first");
        }
        if self.cfg.auth.mode == ListenerAuth::Required && self.identity.is_none() {
            return self.error(out, 530, "5.7.0", "Authentication required");
        }
        if self.tx.is_some() {
            return self.error(out, 503, "5.5.1", "Error: nested MAIL command");
        }
        let (path, params) = match split_path(arg) {
            Ok(p) => p,
            Err(_) => return self.error(out, 501, "5.1.7", "Bad sender address syntax"),
        };
        let params = match parse_mail_params(params) {
            Ok(p) => p,
            Err(e) => return self.error(out, 555, "5.5.4", &e.0),
        };
        let sender = match parse_path(path, params.smtputf8) {
            Ok(m) => m
                .map(|m| format!("{}@{}", m.local, m.domain))
                .unwrap_or_default(),
            Err(AddressError::NeedsSmtpUtf8) => {
                return self.error(out, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
            }
            Err(_) => return self.error(out, 501, "5.1.7", "Bad sender address syntax"),
        };
        if let Some(id) = self.identity.as_ref().filter(|id| !id.owns(&sender)) {
            let text = format!(
                "<{sender}>: Sender address rejected: not owned by user {}",
                id.login
            );
            return self.error(out, 553, "5.7.1", &text);
        }
        if params.requiretls && self.tls.is_none() {
            return self.error(
                out,
                530,
                "5.7.10",
                "REQUIRETLS needs a TLS session: issue STARTTLS first",
            );
        }
        if params.size.is_some_and(|s| s > self.cfg.max_message_size) {
            return self.error(out, 552, "5.3.4", "Message size exceeds fixed limit");
        }
        let decision = self.cfg.policy.inbound_at_mail(
            self.client_ip,
            &sender,
            self.cfg.listener_tls == ListenerTls::Required,
        );
        if let Some(d) = &decision {
            if let Err(s) = d.check(self.tls_version()) {
                return self.shortfall_reply(s, out, "");
            }
        }
        self.tx = Some(Transaction {
            id: 0,
            sender,
            params,
            mail_decision: decision,
            recipients: Vec::new(),
            body: Vec::new(),
            chunking: false,
            body_started: false,
            bdat: ContentCheck::new(self.cfg.max_message_size),
            arrival_ms: 0,
            tls_required_no: None,
        });
        reply(out, 250, "2.1.0", "Ok");
        None
    }

    fn rcpt(&mut self, arg: &str, out: &mut Vec<u8>) -> Option<Event> {
        if self.tx.is_none() && self.listener_requires_tls() {
            return self.error(out, 530, "5.7.0", "Must issue a STARTTLS command first");
        }
        let Some(tx) = self.tx.as_ref() else {
            return self.error(out, 503, "5.5.1", "Error: need MAIL command");
        };
        if tx.chunking {
            return self.error(out, 503, "5.5.1", "Error: RCPT after BDAT");
        }
        let utf8 = tx.params.smtputf8;
        let (path, params) = match split_path(arg) {
            Ok(p) => p,
            Err(_) => return self.error(out, 501, "5.1.3", "Bad recipient address syntax"),
        };
        // RFC 5321 4.5.1: <postmaster> with no domain is accepted from anyone and
        // goes to this server's postmaster (no relay check: it is not relaying).
        let (address, domain) = if path.eq_ignore_ascii_case("postmaster") {
            (self.cfg.postmaster.clone(), None)
        } else {
            match parse_path(path, utf8) {
                Ok(Some(m)) => (format!("{}@{}", m.local, m.domain), Some(m.domain)),
                Ok(None) => return self.error(out, 501, "5.1.3", "Bad recipient address syntax"),
                Err(AddressError::NeedsSmtpUtf8) => {
                    return self.error(out, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
                }
                Err(_) => return self.error(out, 501, "5.1.3", "Bad recipient address syntax"),
            }
        };
        if tx.recipients.len() >= self.cfg.max_recipients {
            reply(out, 452, "4.5.3", "Error: too many recipients");
            return None;
        }
        // An authenticated session may relay (RFC 6409 submission).
        if self.identity.is_none()
            && domain.is_some_and(|d| !self.cfg.policy.relay_allowed(self.client_ip, d))
        {
            return self.error(
                out,
                554,
                "5.7.1",
                &format!("<{address}>: Relay access denied"),
            );
        }
        if tx.mail_decision.is_none() {
            let d = self.cfg.policy.inbound_at_rcpt(
                self.client_ip,
                Some(&tx.sender),
                &address,
                self.cfg.listener_tls == ListenerTls::Required,
            );
            if let Err(s) = d.check(self.tls_version()) {
                return self.shortfall_reply(s, out, &format!("<{address}>: "));
            }
        }
        let params = match parse_rcpt_params(params) {
            Ok(p) => p,
            Err(e) => return self.error(out, 555, "5.5.4", &e.0),
        };
        let tx = self.tx.as_mut().expect("checked above");
        tx.recipients.push(Recipient {
            address,
            notify: params.notify,
            orcpt: params.orcpt,
        });
        reply(out, 250, "2.1.5", "Ok");
        None
    }

    /// Shared checks of DATA and BDAT; on success the transaction has its id and
    /// its body starts with our Received header.
    fn begin_body(&mut self, now: SystemTime) -> Result<(), (u16, &'static str, &'static str)> {
        if self.tx.is_none() && self.listener_requires_tls() {
            return Err((530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        let Some(tx) = self.tx.as_mut() else {
            return Err((503, "5.5.1", "Error: need MAIL command"));
        };
        if tx.recipients.is_empty() {
            return Err((554, "5.5.1", "Error: no valid recipients"));
        }
        if !tx.body_started {
            tx.body_started = true;
            tx.id = self.ids.next();
            tx.arrival_ms = now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let single = (tx.recipients.len() == 1).then(|| tx.recipients[0].address.as_str());
            write_received(
                &mut tx.body,
                &ReceivedFacts {
                    helo: self.helo.as_deref().unwrap_or("unknown"),
                    client_ip: self.client_ip,
                    hostname: &self.cfg.hostname,
                    esmtp: self.esmtp,
                    tls: self.tls.as_ref().map(|t| &t.1),
                    authenticated: self.identity.is_some(),
                    shown_login: self
                        .identity
                        .as_ref()
                        .filter(|_| self.cfg.auth.show_login_in_received)
                        .map(|i| i.login.as_str()),
                    id: &self.ids.format(tx.id),
                    single_recipient: single,
                    now,
                },
            );
        }
        Ok(())
    }

    fn data(&mut self, now: SystemTime, out: &mut Vec<u8>) -> Option<Event> {
        if self.tx.as_ref().is_some_and(|t| t.chunking) {
            return self.error(out, 503, "5.5.1", "Error: DATA after BDAT");
        }
        if let Err((code, enh, text)) = self.begin_body(now) {
            return self.error(out, code, enh, text);
        }
        self.phase = Phase::Data(DataDecoder::new(self.cfg.max_message_size));
        reply(out, 354, "", "End data with <CR><LF>.<CR><LF>");
        None
    }

    fn bdat(&mut self, size: u64, last: bool, now: SystemTime, out: &mut Vec<u8>) -> Option<Event> {
        // The chunk follows the command whatever we answer, so it is always read
        // (and dropped when refused) before the reply.
        match self.begin_body(now) {
            Ok(()) => {
                let tx = self.tx.as_mut().expect("begin_body checked");
                tx.chunking = true;
            }
            Err((code, enh, text)) => {
                self.phase = Phase::Bdat {
                    remaining: size,
                    last: false,
                    size,
                };
                self.pending_bdat_refusal = Some((code, enh, text));
                if size == 0 {
                    return self.finish_chunk(false, size, now, out);
                }
                return None;
            }
        }
        self.phase = Phase::Bdat {
            remaining: size,
            last,
            size,
        };
        if size == 0 {
            return self.finish_chunk(last, size, now, out);
        }
        None
    }

    fn finish_chunk(
        &mut self,
        last: bool,
        size: u64,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        self.phase = Phase::Command;
        if let Some((code, enh, text)) = self.pending_bdat_refusal.take() {
            return self.error(out, code, enh, text);
        }
        if last {
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat.finish();
            }
        }
        let error = self.tx.as_ref().and_then(|t| t.bdat.error());
        if error.is_some() || last {
            return self.finish_body(error, now, out);
        }
        reply(out, 250, "2.0.0", &format!("{size} octets received"));
        None
    }

    /// The end of DATA or of the last BDAT chunk: refuse the message, or hand it
    /// to the driver to store.
    fn finish_body(
        &mut self,
        error: Option<DataError>,
        _now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        self.phase = Phase::Command;
        let tx = self.tx.take()?;
        match error {
            Some(DataError::TooBig) => {
                return self.error(out, 552, "5.3.4", "Message size exceeds fixed limit")
            }
            Some(DataError::LineTooLong) => {
                return self.error(out, 500, "5.5.6", "Error: message line too long")
            }
            Some(DataError::BareLineEnding) => {
                return self.error(
                    out,
                    550,
                    "5.6.0",
                    "Error: bare <CR> or <LF> in message content",
                )
            }
            Some(DataError::Nul) => {
                return self.error(out, 550, "5.6.0", "Error: NUL character in message content")
            }
            None => {}
        }
        let tls_required_no = !tx.params.requiretls
            && tx
                .tls_required_no
                .unwrap_or_else(|| super::requiretls::tls_required_no(&tx.body));
        let envelope = Envelope {
            requiretls: tx.params.requiretls,
            tls_required_no,
            sender: tx.sender,
            recipients: tx.recipients,
            ret: tx.params.ret,
            envid: tx.params.envid,
            body_type: tx.params.body,
            smtputf8: tx.params.smtputf8,
            client_ip: self.client_ip,
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls.as_ref().map(|t| t.1.clone()),
            arrival_ms: tx.arrival_ms,
            listener: self.cfg.listener.clone(),
        };
        self.phase = Phase::AwaitingStore;
        Some(Event::Message(Box::new(Message {
            id: tx.id,
            envelope,
            body: tx.body,
        })))
    }
}
