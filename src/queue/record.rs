//! What the queue keeps per message: the envelope, and per recipient its delivery
//! state. The DSN builder and `queue list` read these directly.

use serde::{Deserialize, Serialize};

use crate::dsn::Decider;
use crate::proto::{Envelope, TlsFacts};

/// Where one recipient stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptState {
    /// Not yet delivered; the next attempt is the message's `next_attempt_ms`.
    Pending,
    /// The last attempt failed temporarily; retried on the schedule.
    TemporaryFailure,
    /// Accepted by the next hop.
    Delivered,
    /// Failed for good; a failure DSN was (or will be) sent.
    Failed,
}

impl RcptState {
    /// The word `mxring queue` and the admin API show.
    pub fn name(&self) -> &'static str {
        match self {
            RcptState::Pending => "pending",
            RcptState::TemporaryFailure => "deferred",
            RcptState::Delivered => "delivered",
            RcptState::Failed => "failed",
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, RcptState::Delivered | RcptState::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcptStatus {
    pub state: RcptState,
    pub attempts: u32,
    /// The last reply or error, e.g. "451 4.3.0 try later" or "connection refused".
    pub last_reply: Option<String>,
    /// Enhanced status for DSNs, e.g. "4.4.1".
    pub status: Option<String>,
    /// The host that answered, e.g. "mx.example.com [192.0.2.1]".
    pub remote_mta: Option<String>,
    pub tls: Option<TlsFacts>,
    pub last_attempt_ms: Option<u64>,
    /// Who decided the last result (records written before this field read as
    /// the remote host).
    #[serde(default)]
    pub decided_by: Decider,
    /// Set when the message expired: the `give_up_after` it reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_after: Option<String>,
}

impl RcptStatus {
    pub fn new() -> Self {
        RcptStatus {
            state: RcptState::Pending,
            attempts: 0,
            last_reply: None,
            status: None,
            remote_mta: None,
            tls: None,
            last_attempt_ms: None,
            decided_by: Decider::RemoteHost,
            expired_after: None,
        }
    }
}

impl Default for RcptStatus {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub envelope: Envelope,
    /// One per `envelope.recipients`, same order.
    pub rcpts: Vec<RcptStatus>,
    /// Delivery attempts of the message so far.
    pub attempts: u32,
    /// When the next attempt is due, ms since the epoch.
    pub next_attempt_ms: u64,
    /// Whether the delay DSN has gone out.
    pub delay_warned: bool,
    /// Size of the stored body, octets.
    pub size: u64,
    /// The SMTP AUTH login of the session that submitted the message; None when
    /// it came without AUTH. Outbound `accounts` rules match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
}

impl QueuedMessage {
    pub fn new(envelope: Envelope, size: u64) -> Self {
        let rcpts = envelope
            .recipients
            .iter()
            .map(|_| RcptStatus::new())
            .collect();
        let now = envelope.arrival_ms;
        QueuedMessage {
            envelope,
            rcpts,
            attempts: 0,
            next_attempt_ms: now,
            delay_warned: false,
            size,
            login: None,
        }
    }

    pub fn all_done(&self) -> bool {
        self.rcpts.iter().all(|r| r.state.is_done())
    }

    /// The shard that owns the message: the top byte of its id.
    pub fn shard_of(id: u64) -> usize {
        (id >> 56) as usize
    }
}
