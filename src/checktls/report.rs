//! The check-tls transcript and verdict, printable as text or JSON.

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::TlsLevel;
use crate::dane::DaneState;
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
    /// An SMTP session was possible (levels none and may).
    pub may: bool,
    pub encrypt: bool,
    pub verify: bool,
    /// The chain matched a usable TLSA record.
    pub dane_matched: bool,
    /// What DNS said about DANE for this host (None: no SMTP session).
    #[serde(skip)]
    pub dane_state: Option<DaneState>,
}

impl Verdict {
    /// Whether delivery at `level` would go through this host.
    pub fn satisfies(&self, level: TlsLevel) -> bool {
        match level {
            TlsLevel::None | TlsLevel::May => self.may,
            TlsLevel::Encrypt => self.encrypt,
            TlsLevel::Verify => self.verify,
            TlsLevel::Dane => match &self.dane_state {
                Some(DaneState::Usable(_)) => self.encrypt && self.dane_matched,
                Some(DaneState::Unusable { .. }) => self.encrypt,
                Some(DaneState::NotApplicable(_)) => self.may,
                Some(DaneState::Failed(_)) | None => false,
            },
            TlsLevel::DaneOnly => {
                matches!(self.dane_state, Some(DaneState::Usable(_)))
                    && self.encrypt
                    && self.dane_matched
            }
        }
    }

    /// DANE applied to this host (secure TLSA records, usable or not).
    pub fn dane_applies(&self) -> bool {
        matches!(
            self.dane_state,
            Some(DaneState::Usable(_) | DaneState::Unusable { .. })
        )
    }

    /// The levels satisfied, in the config's spelling; `dane` and `dane-only` only
    /// where DANE applied (elsewhere `dane` is what it falls back to).
    pub fn levels(&self) -> Vec<&'static str> {
        [
            TlsLevel::None,
            TlsLevel::May,
            TlsLevel::Encrypt,
            TlsLevel::Verify,
            TlsLevel::Dane,
            TlsLevel::DaneOnly,
        ]
        .into_iter()
        .filter(|l| self.satisfies(*l))
        .filter(|l| !matches!(l, TlsLevel::Dane | TlsLevel::DaneOnly) || self.dane_applies())
        .map(|l| l.name())
        .collect()
    }
}

/// The verdict for one host tried.
#[derive(Clone, Debug, Serialize)]
pub struct HostVerdict {
    pub host: String,
    pub address: Option<SocketAddr>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub host: String,
    pub address: Option<SocketAddr>,
    pub tls: Option<TlsFacts>,
    pub lines: Vec<Line>,
    /// The first host that passed the level asked, else the first host tried.
    pub verdict: Verdict,
    /// Every host tried, in order.
    pub hosts: Vec<HostVerdict>,
    /// Some host satisfied the level asked.
    pub passed: bool,
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
