//! The check-tls transcript and verdict, printable as text or JSON.

use std::net::SocketAddr;

use serde::Serialize;

use crate::proto::TlsFacts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Dir {
    /// A finding.
    Info,
    /// We sent, in plaintext.
    Send,
    /// We received, in plaintext.
    Recv,
    /// We sent, over TLS.
    SendTls,
    /// We received, over TLS.
    RecvTls,
}

#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Seconds since the check started.
    pub elapsed: f64,
    pub dir: Dir,
    pub text: String,
}

/// Which outbound levels the host would satisfy.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub may: bool,
    pub encrypt: bool,
    pub verify: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub host: String,
    pub address: Option<SocketAddr>,
    pub tls: Option<TlsFacts>,
    pub lines: Vec<Line>,
    pub verdict: Verdict,
}

impl Report {
    /// The transcript in CheckTLS's shape: `[000.143] <-- 220 ...`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let arrow = match l.dir {
                Dir::Info => "   ",
                Dir::Send => "-->",
                Dir::Recv => "<--",
                Dir::SendTls => "~~>",
                Dir::RecvTls => "<~~",
            };
            out.push_str(&format!("[{:07.3}] {arrow} {}\n", l.elapsed, l.text));
        }
        out
    }
}
