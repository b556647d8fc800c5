//! What a session knows: about the client (for all of the session) and about the
//! transaction (inside the phase that reads it, so a phase can't lack one).

use std::net::IpAddr;

use super::super::content::ContentCheck;
use super::super::data::DataDecoder;
use super::super::envelope::{Recipient, TlsFacts};
use super::super::params::MailParams;
use super::replies::Reply;
use crate::config::{ListenerTls, TlsVersion};
use crate::policy::{AddressMatcher, InboundDecision};

/// Where the session is, and the transaction each phase works on.
pub(super) enum Phase {
    /// Reading commands.
    Command(Open),
    /// Reading a DATA body up to its final dot.
    Data {
        decoder: DataDecoder,
        msg: Receiving,
    },
    /// Reading the octets of a BDAT chunk.
    Bdat {
        remaining: u64,
        /// The size the command gave, for the reply.
        size: u64,
        chunk: Chunk,
    },
    /// `Event::Message` is out: waiting for `message_stored`.
    AwaitingStore,
    /// `Event::Authenticate` is out: waiting for `auth_checked`.
    AwaitingAuth,
    Closed,
}

/// The transaction open between commands.
pub(super) enum Open {
    None,
    /// After MAIL: the envelope is being built.
    Envelope(Transaction),
    /// Between BDAT chunks: RCPT and DATA are out of sequence now.
    Chunking(Receiving),
}

/// What becomes of the chunk being read.
pub(super) enum Chunk {
    /// It is part of the message.
    Kept { msg: Receiving, last: bool },
    /// It is read and dropped, then refused with `reply`; the transaction that
    /// was open (if any) stays open.
    Refused { open: Open, reply: Reply },
}

/// MAIL and the RCPTs accepted so far.
pub(super) struct Transaction {
    pub sender: String,
    pub params: MailParams,
    /// The policy's decision at MAIL, when its rules decided there; otherwise
    /// each RCPT asks.
    pub mail_decision: Option<InboundDecision>,
    pub recipients: Vec<Recipient>,
}

/// A transaction whose body has begun (DATA or the first BDAT): it has its id
/// and its Received header, and has at least one recipient.
pub(super) struct Receiving {
    pub tx: Transaction,
    pub body: Body,
}

pub(super) struct Body {
    pub id: u64,
    pub arrival_ms: u64,
    /// What is held here of the body: our Received header and what followed, or
    /// what arrived since the driver last took the body so far.
    pub buf: Vec<u8>,
    /// The BDAT content rules (the same as DATA's), over the chunks so far.
    pub bdat: ContentCheck,
    /// `TLS-Required: No` seen in the header section, once the body's start was
    /// looked at (before it is moved to a spill file, or at its end).
    pub tls_required_no: Option<bool>,
}

impl Body {
    /// Move what is held out; its start is looked at first (for `TLS-Required:`)
    /// when it is the start of the body.
    pub fn take_so_far(&mut self) -> Vec<u8> {
        if self.tls_required_no.is_none() && !self.buf.is_empty() {
            self.tls_required_no = Some(super::super::requiretls::tls_required_no(&self.buf));
        }
        std::mem::take(&mut self.buf)
    }
}

impl Phase {
    /// The body being received, wherever the phase holds it.
    pub fn body(&self) -> Option<&Body> {
        match self {
            Phase::Data { msg, .. }
            | Phase::Bdat {
                chunk: Chunk::Kept { msg, .. },
                ..
            }
            | Phase::Bdat {
                chunk:
                    Chunk::Refused {
                        open: Open::Chunking(msg),
                        ..
                    },
                ..
            }
            | Phase::Command(Open::Chunking(msg)) => Some(&msg.body),
            _ => None,
        }
    }

    pub fn body_mut(&mut self) -> Option<&mut Body> {
        match self {
            Phase::Data { msg, .. }
            | Phase::Bdat {
                chunk: Chunk::Kept { msg, .. },
                ..
            }
            | Phase::Bdat {
                chunk:
                    Chunk::Refused {
                        open: Open::Chunking(msg),
                        ..
                    },
                ..
            }
            | Phase::Command(Open::Chunking(msg)) => Some(&mut msg.body),
            _ => None,
        }
    }

    /// No transaction is open (MAIL would start one).
    pub fn idle(&self) -> bool {
        matches!(self, Phase::Command(Open::None))
    }
}

/// What the session learned about the client.
pub(super) struct Peer {
    pub ip: IpAddr,
    pub helo: Option<String>,
    pub esmtp: bool,
    pub tls: Option<(TlsVersion, TlsFacts)>,
    /// Set by a successful AUTH; kept for the rest of the session.
    pub identity: Option<Identity>,
}

impl Peer {
    pub fn tls_version(&self) -> Option<TlsVersion> {
        self.tls.as_ref().map(|t| t.0)
    }

    /// A `required` listener refuses mail until STARTTLS.
    pub fn lacks_required_tls(&self, listener: ListenerTls) -> bool {
        listener == ListenerTls::Required && self.tls.is_none()
    }
}

/// Who the client proved to be with AUTH.
pub(super) struct Identity {
    pub login: String,
    pub addresses: Vec<AddressMatcher>,
}

impl Identity {
    pub fn owns(&self, sender: &str) -> bool {
        sender.is_empty()
            || sender.eq_ignore_ascii_case(&self.login)
            || self.addresses.iter().any(|m| m.matches(sender))
    }
}
