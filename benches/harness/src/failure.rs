//! Why a connection or a message failed, and the key the report counts it under.
//!
//! Reply codes are the server's answer and are "expected" in a benchmark (e.g. 452 under
//! pressure); everything else is a fault of the connection or of the protocol.

use std::io;

#[derive(Debug)]
pub enum Failure {
    Connect(io::Error),
    ConnectTimeout,
    Io(io::Error),
    Tls(io::Error),
    /// No reply (or no progress of a write) within --timeout.
    Timeout(&'static str),
    Closed,
    Protocol(String),
    Reply(u16),
}

impl Failure {
    pub fn key(&self) -> String {
        match self {
            Failure::Reply(code) => code.to_string(),
            Failure::ConnectTimeout => "connect-timeout".into(),
            Failure::Connect(_) => "connect".into(),
            Failure::Timeout(_) => "timeout".into(),
            Failure::Io(_) => "io".into(),
            Failure::Tls(_) => "tls".into(),
            Failure::Closed => "closed".into(),
            Failure::Protocol(_) => "protocol".into(),
        }
    }

    /// A description for a person, kept as the example of its key.
    pub fn detail(&self) -> String {
        match self {
            Failure::Connect(e) => format!("could not connect: {e}"),
            Failure::ConnectTimeout => "the server did not accept the connection in time".into(),
            Failure::Io(e) => format!("connection error: {e}"),
            Failure::Tls(e) => format!("TLS handshake or record failed: {e}"),
            Failure::Timeout(what) => format!("the server did not answer {what} in time"),
            Failure::Closed => "the server closed the connection".into(),
            Failure::Protocol(m) => format!("the server broke the protocol: {m}"),
            Failure::Reply(code) => format!("the server replied {code}"),
        }
    }

    pub fn is_reply(&self) -> bool {
        matches!(self, Failure::Reply(_))
    }

    /// An I/O error on a TLS stream that rustls raised itself is a TLS failure.
    pub fn io(e: io::Error, tls: bool) -> Failure {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // rustls reports a peer that closed without close_notify this way.
            return Failure::Closed;
        }
        if tls && e.kind() == io::ErrorKind::InvalidData {
            Failure::Tls(e)
        } else {
            Failure::Io(e)
        }
    }
}
