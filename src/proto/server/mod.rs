//! The SMTP server session: a state machine fed bytes, returning replies (written to
//! the caller's buffer) and events. It owns no socket, no clock and no TLS: the
//! driver performs the STARTTLS handshake and stores messages, then reports back.
//!
//! Its parts: this file is what the driver calls; `dispatch` reads command lines
//! and hands each to its handler; `envelope` answers HELO/EHLO, MAIL and RCPT
//! (with the policy's say); `login` answers AUTH; `body` reads DATA and BDAT;
//! `replies` holds every reply text; `state` what the session knows.

mod body;
mod dispatch;
mod envelope;
mod login;
mod replies;
mod state;

use std::net::IpAddr;
use std::sync::Arc;

use super::auth::{AuthOutcome, Credentials, Pending};
use super::envelope::{Envelope, TlsFacts};
use crate::config::{ListenerAuth, ListenerTls, TlsVersion};
use crate::policy::Policy;
use replies::Reply;
use state::{Identity, Open, Peer, Phase};

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

pub struct ServerSession {
    cfg: Arc<SessionConfig>,
    ids: Box<dyn MessageIds>,
    peer: Peer,
    phase: Phase,
    errors: usize,
    skipping_long_line: bool,
    /// An AUTH exchange waiting for the client's next line (after a 334).
    auth_pending: Option<Pending>,
    /// Credentials of the last `Event::Authenticate`.
    credentials: Option<Credentials>,
}

impl ServerSession {
    pub fn new(cfg: Arc<SessionConfig>, client_ip: IpAddr, ids: impl MessageIds + 'static) -> Self {
        ServerSession {
            cfg,
            ids: Box::new(ids),
            peer: Peer {
                ip: client_ip,
                helo: None,
                esmtp: false,
                tls: None,
                identity: None,
            },
            phase: Phase::Command(Open::None),
            errors: 0,
            skipping_long_line: false,
            auth_pending: None,
            credentials: None,
        }
    }

    pub fn greeting(&self, out: &mut Vec<u8>) {
        replies::greeting(&self.cfg.hostname).write(out);
    }

    pub fn waiting(&self) -> Waiting {
        match self.phase {
            Phase::Data { .. } | Phase::Bdat { .. } => Waiting::Data,
            _ => Waiting::Command,
        }
    }

    /// Inside a command line whose start was already consumed (the rest of an
    /// over-long line being skipped): its deadline runs from its first byte.
    pub fn mid_line(&self) -> bool {
        self.skipping_long_line && matches!(self.phase, Phase::Command(_))
    }

    /// A message body is being received: from DATA or the first BDAT to the end
    /// of the message (BDAT chunks and the commands between them).
    pub fn receiving_body(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data { .. } | Phase::Bdat { .. } | Phase::Command(Open::Chunking(_))
        )
    }

    /// Octets of the message being received held here (our Received header
    /// included), so the driver can move them to disk before they add up.
    pub fn body_buffered(&self) -> usize {
        self.phase.body().map_or(0, |b| b.buf.len())
    }

    /// Move the body received so far out (to the driver's spill file); what comes
    /// next is appended to an empty buffer, and `Event::Message` hands over only that.
    pub fn take_body_so_far(&mut self) -> Vec<u8> {
        self.phase
            .body_mut()
            .map(|b| b.take_so_far())
            .unwrap_or_default()
    }

    /// Give back the buffer `take_body_so_far` handed out, emptied, so the next
    /// part of the body reuses its memory.
    pub fn reuse_body_buffer(&mut self, mut buf: Vec<u8>) {
        if let Some(b) = self.phase.body_mut().filter(|b| b.buf.is_empty()) {
            buf.clear();
            b.buf = buf;
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    pub fn tls_active(&self) -> bool {
        self.peer.tls.is_some()
    }

    /// The client was idle too long: say so and close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        self.close_with(replies::timed_out(&self.cfg.hostname), out);
    }

    /// The message took longer than the total time allowed for a body
    /// (`data_total_timeout`), however steadily it trickled: say so and close.
    pub fn body_too_slow(&mut self, out: &mut Vec<u8>) {
        self.close_with(replies::body_too_slow(&self.cfg.hostname), out);
    }

    /// The server is shutting down: say so and close.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        self.close_with(replies::shutting_down(&self.cfg.hostname), out);
    }

    /// TLS is up. RFC 3207: forget everything learned before, the client starts over with EHLO.
    pub fn tls_established(&mut self, version: TlsVersion, facts: TlsFacts) {
        self.peer.tls = Some((version, facts));
        self.peer.helo = None;
        self.peer.esmtp = false;
        self.peer.identity = None;
        self.auth_pending = None;
        self.phase = Phase::Command(Open::None);
    }

    /// The authenticated login, once AUTH succeeded; stored with each message.
    pub fn login(&self) -> Option<&str> {
        self.peer.identity.as_ref().map(|i| i.login.as_str())
    }

    /// The credentials of the last `Event::Authenticate`.
    pub fn take_credentials(&mut self) -> Option<Credentials> {
        self.credentials.take()
    }

    /// The driver checked the credentials taken last.
    /// Too many failures close the session (`is_closed`), as any other error does.
    pub fn auth_checked(&mut self, outcome: AuthOutcome, out: &mut Vec<u8>) {
        if matches!(self.phase, Phase::AwaitingAuth) {
            self.phase = Phase::Command(Open::None);
        }
        match outcome {
            AuthOutcome::Accepted { login, addresses } => {
                self.peer.identity = Some(Identity { login, addresses });
                replies::AUTH_ACCEPTED.write(out);
            }
            AuthOutcome::Rejected => {
                self.error(out, replies::AUTH_REJECTED);
            }
            AuthOutcome::LockedOut | AuthOutcome::Unavailable => {
                self.error(out, replies::AUTH_UNAVAILABLE);
            }
        }
    }

    /// The driver stored (or failed to store) the message of the last
    /// `Event::Message`; either way its transaction is over.
    pub fn message_stored(&mut self, result: Result<u64, StoreFailure>, out: &mut Vec<u8>) {
        match result {
            Ok(id) => replies::queued_as(&self.ids.format(id)).write(out),
            Err(StoreFailure::NoSpace) => replies::NO_SPACE.write(out),
            Err(StoreFailure::Io) => replies::WRITE_ERROR.write(out),
        }
        if matches!(self.phase, Phase::AwaitingStore | Phase::Command(_)) {
            self.phase = Phase::Command(Open::None);
        }
    }

    /// Send an error reply and count it; too many close the session.
    fn error(&mut self, out: &mut Vec<u8>, r: Reply) -> Option<Event> {
        r.write(out);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            self.close_with(replies::too_many_errors(&self.cfg.hostname), out);
            return Some(Event::Close);
        }
        None
    }

    /// A command's answer: `Ok` replies (success or not) are sent, `Err` ones
    /// counted as errors too.
    fn answer(&mut self, answer: Result<Reply, Reply>, out: &mut Vec<u8>) -> Option<Event> {
        match answer {
            Ok(r) => {
                r.write(out);
                None
            }
            Err(r) => self.error(out, r),
        }
    }

    fn close_with(&mut self, r: Reply, out: &mut Vec<u8>) {
        r.write(out);
        self.phase = Phase::Closed;
    }
}
