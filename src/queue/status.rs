//! Where a recipient stands, typed: the one model the delivery engine writes and
//! the DSN builder, `mxring queue list/show` and the admin API read. Its status
//! code, diagnostic, and who decided are derived here, in one place, from what
//! happened; nothing downstream parses or rewrites status strings.

use serde::{Deserialize, Serialize};

use crate::dsn::Decider;
use crate::proto::reply::ParsedReply;
use crate::proto::Enhanced;
use crate::proto::TlsFacts;

/// A reply from the remote host, as it said it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    /// The enhanced code at the start of its text, when it gave one.
    pub enhanced: Option<Enhanced>,
    /// The whole reply on one line, e.g. "550 5.1.1 no such user".
    pub text: String,
}

impl Reply {
    pub fn from_parsed(r: &ParsedReply) -> Reply {
        Reply {
            code: r.code,
            enhanced: r.enhanced().and_then(Enhanced::parse),
            text: r.one_line(),
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Its enhanced code, or the basic one of its class (RFC 3463: `X.0.0`).
    pub fn status(&self) -> Enhanced {
        self.enhanced.unwrap_or(match self.code {
            200..=399 => Enhanced::new(2, 0, 0),
            400..=499 => Enhanced::new(4, 0, 0),
            _ => Enhanced::new(5, 0, 0),
        })
    }
}

/// The host a recipient's last attempt talked to, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMta {
    /// As Postfix names a relay: "mx.example.com[192.0.2.1]:25".
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
}

/// The outbound TLS rule that required TLS, as the config file names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsRule {
    /// `[[outbound_tls]] #2`, `[outbound] default_tls`, or the DANE/MTA-STS policy.
    pub rule: String,
    /// The recipient domain it was decided for.
    pub domain: String,
    /// `on_failure = "bounce"`: fail at once instead of retrying.
    #[serde(default)]
    pub bounce: bool,
}

/// What went wrong with TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsProblem {
    /// The host did not offer STARTTLS (4.7.4).
    NotOffered,
    /// The host answered STARTTLS with an error (4.7.4).
    Refused,
    /// The handshake failed (4.7.5).
    Handshake,
    /// The certificate did not verify under level `verify` (4.7.5).
    CertificateNotVerified,
    /// The certificate matched none of the DANE TLSA records (4.7.5).
    DaneMismatch,
    /// DANE is required, but no usable TLSA records were found (4.7.5).
    DaneUnavailable,
    /// The negotiated version is below the required minimum (4.7.5).
    VersionTooOld,
    /// Our side could not set TLS up (a bad peer name, a client certificate) (4.7.5).
    Setup,
    /// The MX host is not one the domain's MTA-STS policy allows (4.7.5).
    StsMxNotAllowed,
}

impl TlsProblem {
    fn code(self) -> Enhanced {
        match self {
            TlsProblem::NotOffered | TlsProblem::Refused => Enhanced::new(4, 7, 4),
            _ => Enhanced::new(4, 7, 5),
        }
    }
}

/// What went wrong in the SMTP conversation, when the remote host's reply was not
/// the answer to a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolProblem {
    /// The connection broke, or stalled past its timeout (4.4.2).
    LostConnection,
    /// The host refused the session at its greeting or at EHLO (4.4.0).
    SessionRefused,
    /// The host sent something that is not SMTP, or out of turn (4.5.0).
    Unexpected,
    /// The message is larger than the host's SIZE (5.3.4).
    MessageTooBig,
    /// The message needs SMTPUTF8 and the host lacks it (5.6.7).
    NoSmtpUtf8,
    /// The message asks for REQUIRETLS (RFC 8689) and the host lacks it (5.7.10).
    NoRequireTls,
}

impl ProtocolProblem {
    fn code(self) -> Enhanced {
        match self {
            ProtocolProblem::LostConnection => Enhanced::new(4, 4, 2),
            ProtocolProblem::SessionRefused => Enhanced::new(4, 4, 0),
            ProtocolProblem::Unexpected => Enhanced::new(4, 5, 0),
            ProtocolProblem::MessageTooBig => Enhanced::new(5, 3, 4),
            ProtocolProblem::NoSmtpUtf8 => Enhanced::new(5, 6, 7),
            ProtocolProblem::NoRequireTls => Enhanced::new(5, 7, 10),
        }
    }

    /// The remote host's limits decide these; the network the others.
    fn decided_by_remote(self) -> bool {
        matches!(
            self,
            ProtocolProblem::SessionRefused
                | ProtocolProblem::MessageTooBig
                | ProtocolProblem::NoSmtpUtf8
                | ProtocolProblem::NoRequireTls
        )
    }
}

/// Why a delivery to a recipient did not happen (this time, or for good).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A DNS lookup: no such domain or a null MX (permanent, 5.1.x), or no answer
    /// (4.4.3).
    Dns { status: Enhanced, text: String },
    /// No TCP connection: refused, timed out, unreachable, or not tried again
    /// within the hold after such a failure (4.4.1).
    Connect { text: String },
    /// TLS could not be used as required. `required_by` is the rule that required
    /// it; None when no rule did (an opportunistic handshake, a DANE lookup that
    /// failed): that is retried, never bounced.
    Tls {
        problem: TlsProblem,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        required_by: Option<TlsRule>,
    },
    /// The remote host's reply to this recipient (MAIL, RCPT or the data).
    Remote { reply: Reply },
    /// The SMTP conversation failed as a whole.
    Protocol {
        problem: ProtocolProblem,
        text: String,
    },
    /// `give_up_after` passed with the recipient still pending; `last` is what its
    /// last attempt met.
    Expired {
        after: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<Box<Failure>>,
    },
    /// The operator bounced it (`mxring queue bounce`).
    Operator,
}

impl Failure {
    /// Whether this fails the recipient for good (else it is retried).
    pub fn is_permanent(&self) -> bool {
        match self {
            Failure::Dns { status, .. } => status.class == 5,
            Failure::Connect { .. } => false,
            Failure::Tls { required_by, .. } => required_by.as_ref().is_some_and(|r| r.bounce),
            Failure::Remote { reply } => reply.is_permanent(),
            Failure::Protocol { problem, .. } => problem.code().class == 5,
            Failure::Expired { .. } | Failure::Operator => true,
        }
    }

    /// The RFC 3463 code a DSN and the log say for it. A condition of ours is
    /// temporary (4) unless it failed the recipient (5); the remote host's code is
    /// its own; an expiry keeps its last attempt's code (as Postfix does).
    pub fn status(&self) -> Enhanced {
        let class = if self.is_permanent() { 5 } else { 4 };
        match self {
            Failure::Dns { status, .. } => *status,
            Failure::Connect { .. } => Enhanced::new(class, 4, 1),
            Failure::Tls { problem, .. } => problem.code().as_class(class),
            Failure::Remote { reply } => reply.status(),
            Failure::Protocol { problem, .. } => problem.code(),
            Failure::Expired { last, .. } => {
                last.as_ref().map_or(Enhanced::new(4, 4, 7), |l| l.status())
            }
            Failure::Operator => Enhanced::new(5, 0, 0),
        }
    }

    /// The words for the last reply and the DSN's diagnostic: the remote host's
    /// reply as it said it; our own findings led by their status code.
    pub fn text(&self) -> String {
        match self {
            Failure::Dns { text, .. } => text.clone(),
            Failure::Remote { reply } => reply.text.clone(),
            Failure::Connect { text }
            | Failure::Tls { text, .. }
            | Failure::Protocol { text, .. } => format!("{} {text}", self.status()),
            Failure::Expired { last, .. } => last
                .as_ref()
                .map_or("no attempt succeeded".into(), |l| l.text()),
            Failure::Operator => "bounced with mxring queue bounce".into(),
        }
    }

    /// Who decided: DSNs and log lines say so, and never blame the remote host
    /// for what this server (its policy, its operator) decided.
    pub fn decided_by(&self) -> Decider {
        match self {
            Failure::Dns { .. } => Decider::Dns,
            Failure::Connect { .. } => Decider::Network,
            Failure::Tls {
                required_by: Some(r),
                ..
            } => Decider::TlsPolicy {
                rule: r.rule.clone(),
                domain: r.domain.clone(),
            },
            Failure::Tls { .. } => Decider::Network,
            Failure::Remote { .. } => Decider::RemoteHost,
            Failure::Protocol { problem, .. } if problem.decided_by_remote() => Decider::RemoteHost,
            Failure::Protocol { .. } => Decider::Network,
            Failure::Expired { last, .. } => {
                last.as_ref().map_or(Decider::Network, |l| l.decided_by())
            }
            Failure::Operator => Decider::Operator,
        }
    }

    /// The `give_up_after` reached, when this is an expiry.
    pub fn expired_after(&self) -> Option<&str> {
        match self {
            Failure::Expired { after, .. } => Some(after),
            _ => None,
        }
    }

    /// A connection could not be made (the address is then held as unreachable).
    pub fn is_connect(&self) -> bool {
        matches!(self, Failure::Connect { .. })
    }
}

/// Where one recipient stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Not tried yet.
    Pending,
    /// The last attempt failed temporarily; retried on the schedule.
    Deferred {
        failure: Failure,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<RemoteMta>,
    },
    /// Accepted by the next hop.
    Delivered {
        reply: Reply,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<RemoteMta>,
    },
    /// Failed for good; a failure DSN was (or will be) sent.
    Failed {
        failure: Failure,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<RemoteMta>,
    },
}

impl Status {
    /// The word `mxring queue`, the admin API and log lines show.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Deferred { .. } => "deferred",
            Status::Delivered { .. } => "delivered",
            Status::Failed { .. } => "failed",
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Status::Delivered { .. } | Status::Failed { .. })
    }

    /// A failure as the status it leads to: failed when permanent, else deferred.
    pub fn from_failure(failure: Failure, remote: Option<RemoteMta>) -> Status {
        if failure.is_permanent() {
            Status::Failed { failure, remote }
        } else {
            Status::Deferred { failure, remote }
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Status::Deferred { failure, .. } | Status::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    pub fn remote(&self) -> Option<&RemoteMta> {
        match self {
            Status::Pending => None,
            Status::Deferred { remote, .. }
            | Status::Delivered { remote, .. }
            | Status::Failed { remote, .. } => remote.as_ref(),
        }
    }

    fn remote_mut(&mut self) -> Option<&mut Option<RemoteMta>> {
        match self {
            Status::Pending => None,
            Status::Deferred { remote, .. }
            | Status::Delivered { remote, .. }
            | Status::Failed { remote, .. } => Some(remote),
        }
    }

    /// Keep the host of an earlier attempt when this one reached none (a DNS
    /// failure after a deferral still names the host that deferred).
    pub fn keep_remote_of(&mut self, earlier: &Status) {
        if let (Some(slot @ None), Some(r)) = (self.remote_mut(), earlier.remote()) {
            *slot = Some(r.clone());
        }
    }

    /// The enhanced status code; None while pending.
    pub fn code(&self) -> Option<Enhanced> {
        match self {
            Status::Pending => None,
            Status::Delivered { reply, .. } => Some(reply.status()),
            Status::Deferred { failure, .. } | Status::Failed { failure, .. } => {
                Some(failure.status())
            }
        }
    }

    /// The last reply or error, in words; None while pending.
    pub fn last_reply(&self) -> Option<String> {
        match self {
            Status::Pending => None,
            Status::Delivered { reply, .. } => Some(reply.text.clone()),
            Status::Deferred { failure, .. } | Status::Failed { failure, .. } => {
                Some(failure.text())
            }
        }
    }

    /// Who decided the last result (the remote host for a delivery).
    pub fn decided_by(&self) -> Decider {
        self.failure()
            .map_or(Decider::RemoteHost, Failure::decided_by)
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
