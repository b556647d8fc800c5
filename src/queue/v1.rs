//! The message record of the first store (spool format 1), frozen as it was
//! written, so a format-1 spool can be read and migrated whatever the live record
//! types become. Never change these types; change the conversion below instead.

use serde::Deserialize;

use crate::proto::{Envelope, TlsFacts};

/// Who decided a recipient's last result, as format 1 wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Decider {
    #[default]
    RemoteHost,
    TlsPolicy {
        rule: String,
        domain: String,
    },
    Dns,
    Network,
    Operator,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum RcptState {
    Pending,
    TemporaryFailure,
    Delivered,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RcptStatus {
    pub state: RcptState,
    pub attempts: u32,
    pub last_reply: Option<String>,
    pub status: Option<String>,
    pub remote_mta: Option<String>,
    pub tls: Option<TlsFacts>,
    pub last_attempt_ms: Option<u64>,
    #[serde(default)]
    pub decided_by: Decider,
    #[serde(default)]
    pub expired_after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct QueuedMessage {
    pub envelope: Envelope,
    pub rcpts: Vec<RcptStatus>,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub delay_warned: bool,
    pub size: u64,
    #[serde(default)]
    pub login: Option<String>,
}

impl QueuedMessage {
    /// Read a format-1 record (JSON).
    pub fn decode(bytes: &[u8]) -> Result<QueuedMessage, super::StoreError> {
        serde_json::from_slice(bytes).map_err(|e| super::StoreError::Corrupt(e.to_string()))
    }
}

/// A format-1 record as today's record.
impl From<QueuedMessage> for super::QueuedMessage {
    fn from(old: QueuedMessage) -> Self {
        super::QueuedMessage {
            envelope: old.envelope,
            rcpts: old.rcpts.into_iter().map(Into::into).collect(),
            attempts: old.attempts,
            next_attempt_ms: old.next_attempt_ms,
            delay_warned: old.delay_warned,
            size: old.size,
            login: old.login,
        }
    }
}

impl From<RcptStatus> for super::RcptStatus {
    fn from(old: RcptStatus) -> Self {
        let state = match old.state {
            RcptState::Pending => super::RcptState::Pending,
            RcptState::TemporaryFailure => super::RcptState::TemporaryFailure,
            RcptState::Delivered => super::RcptState::Delivered,
            RcptState::Failed => super::RcptState::Failed,
        };
        super::RcptStatus {
            state,
            attempts: old.attempts,
            last_reply: old.last_reply,
            status: old.status,
            remote_mta: old.remote_mta,
            tls: old.tls,
            last_attempt_ms: old.last_attempt_ms,
            decided_by: match old.decided_by {
                Decider::RemoteHost => crate::dsn::Decider::RemoteHost,
                Decider::TlsPolicy { rule, domain } => {
                    crate::dsn::Decider::TlsPolicy { rule, domain }
                }
                Decider::Dns => crate::dsn::Decider::Dns,
                Decider::Network => crate::dsn::Decider::Network,
                Decider::Operator => crate::dsn::Decider::Operator,
            },
            expired_after: old.expired_after,
        }
    }
}
