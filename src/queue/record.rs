//! What the queue keeps per message: the envelope, and per recipient its address,
//! its NOTIFY and ORCPT, and where it stands (`Status`). The DSN builder and
//! `queue list` read these directly.

use serde::{Deserialize, Serialize};

use super::status::Status;
use crate::proto::{Envelope, Recipient};

/// One recipient and its delivery status, side by side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRcpt {
    /// The address, NOTIFY and ORCPT as the session accepted them.
    pub rcpt: Recipient,
    pub status: Status,
    /// Attempts made for this recipient.
    pub attempts: u32,
    /// When its last attempt ended, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_ms: Option<u64>,
}

impl QueuedRcpt {
    pub fn new(rcpt: Recipient) -> Self {
        QueuedRcpt {
            rcpt,
            status: Status::Pending,
            attempts: 0,
            last_attempt_ms: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.status.is_done()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Sender, client, arrival and the rest; its `recipients` is empty here: each
    /// recipient lives in `rcpts`, with its status.
    pub envelope: Envelope,
    pub rcpts: Vec<QueuedRcpt>,
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
    pub fn new(mut envelope: Envelope, size: u64) -> Self {
        let rcpts = std::mem::take(&mut envelope.recipients)
            .into_iter()
            .map(QueuedRcpt::new)
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
        self.rcpts.iter().all(QueuedRcpt::is_done)
    }

    /// The shard that owns the message: the top byte of its id.
    pub fn shard_of(id: u64) -> usize {
        (id >> 56) as usize
    }
}
