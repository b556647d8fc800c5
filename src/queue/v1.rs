//! The message record of the first store (spool format 1), frozen as it was
//! written, so a format-1 spool can be read and migrated whatever the live record
//! types become. Never change these types; change the conversion below instead.

use serde::Deserialize;

use super::status::{Failure, RemoteMta, Reply, Status, TlsProblem, TlsRule};
use crate::proto::Enhanced;
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

/// A format-1 record as today's record: each recipient of the envelope joined
/// with its status from the parallel vector, the status typed from its strings.
impl From<QueuedMessage> for super::QueuedMessage {
    fn from(old: QueuedMessage) -> Self {
        let mut envelope = old.envelope;
        let mut statuses = old.rcpts.into_iter();
        let rcpts = std::mem::take(&mut envelope.recipients)
            .into_iter()
            .map(|rcpt| {
                let st = statuses.next().unwrap_or(RcptStatus {
                    state: RcptState::Pending,
                    attempts: 0,
                    last_reply: None,
                    status: None,
                    remote_mta: None,
                    tls: None,
                    last_attempt_ms: None,
                    decided_by: Decider::RemoteHost,
                    expired_after: None,
                });
                super::record::QueuedRcpt {
                    rcpt,
                    attempts: st.attempts,
                    last_attempt_ms: st.last_attempt_ms,
                    status: st.into_status(),
                }
            })
            .collect();
        super::QueuedMessage {
            envelope,
            rcpts,
            attempts: old.attempts,
            next_attempt_ms: old.next_attempt_ms,
            delay_warned: old.delay_warned,
            size: old.size,
            login: old.login,
        }
    }
}

impl RcptStatus {
    /// The typed status this one's strings describe. Format 1 kept the last reply
    /// (with our status code in front of our own findings), the enhanced code and
    /// who decided; the kind of failure follows from who decided.
    fn into_status(self) -> Status {
        let remote = self.remote_mta.map(|name| RemoteMta {
            name,
            tls: self.tls,
        });
        let text = self.last_reply.unwrap_or_default();
        let code = self.status.as_deref().and_then(Enhanced::parse);
        // Our own findings were written "4.4.1 connect to ...": the words after the code.
        let words = match (code, text.split_once(' ')) {
            (Some(c), Some((head, rest))) if c == head => rest.to_string(),
            _ => text.clone(),
        };
        let failure = match self.decided_by {
            Decider::Operator => Failure::Operator,
            Decider::Dns => Failure::Dns {
                status: code.unwrap_or(Enhanced::new(4, 4, 3)),
                text,
            },
            Decider::Network => Failure::Connect {
                text: words.clone(),
            },
            Decider::TlsPolicy { rule, domain } => Failure::Tls {
                problem: if code.is_some_and(|c| c.detail == 4) {
                    TlsProblem::NotOffered
                } else {
                    TlsProblem::Handshake
                },
                text: words.clone(),
                required_by: Some(TlsRule {
                    rule,
                    domain,
                    bounce: code.is_some_and(|c| c.class == 5),
                }),
            },
            Decider::RemoteHost => Failure::Remote {
                reply: Reply {
                    code: text
                        .get(..3)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(match self.state {
                            RcptState::Failed => 550,
                            RcptState::Delivered => 250,
                            _ => 451,
                        }),
                    enhanced: code,
                    text,
                },
            },
        };
        let failure = match self.expired_after {
            Some(after) => Failure::Expired {
                after,
                last: Some(Box::new(failure)),
            },
            None => failure,
        };
        match self.state {
            RcptState::Pending => Status::Pending,
            RcptState::Delivered => match failure {
                Failure::Remote { reply } => Status::Delivered { reply, remote },
                _ => Status::Delivered {
                    reply: Reply {
                        code: 250,
                        enhanced: code,
                        text: words,
                    },
                    remote,
                },
            },
            RcptState::TemporaryFailure => Status::Deferred { failure, remote },
            RcptState::Failed => Status::Failed { failure, remote },
        }
    }
}
