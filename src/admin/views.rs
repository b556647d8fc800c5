//! JSON shapes of the admin API, shared by the server and the CLI.

use serde::{Deserialize, Serialize};

use crate::queue::format_id;
use crate::queue::status::Status;
use crate::queue::QueuedMessage;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecipientView {
    pub address: String,
    /// pending, deferred, delivered or failed.
    pub state: String,
    pub attempts: u32,
    /// The last reply or error, in words ("451 4.3.0 try later", "4.4.1 connect
    /// to ...").
    pub last_reply: Option<String>,
    pub remote_mta: Option<String>,
    pub tls: Option<String>,
    /// The enhanced status code of the last result, e.g. "4.7.4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Who decided the last failure, in words ("the remote host", "our TLS policy
    /// for example.com ([[outbound_tls]] #1)", "the operator").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The typed status as the queue keeps it (state, failure kind, reply, host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Status>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub shard: usize,
    pub sender: String,
    pub arrival_ms: u64,
    pub size: u64,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub delay_warned: bool,
    pub client_ip: String,
    pub helo: String,
    pub tls: Option<String>,
    /// The SMTP AUTH login that submitted it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    pub recipients: Vec<RecipientView>,
    /// Only in `show`: the header section of the stored message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<String>,
}

impl MessageView {
    pub fn from_record(id: u64, shard: usize, r: &QueuedMessage) -> Self {
        let tls = |t: &Option<crate::proto::TlsFacts>| {
            t.as_ref().map(|t| format!("{} {}", t.version, t.cipher))
        };
        MessageView {
            id: format_id(id),
            shard,
            sender: r.envelope.sender.clone(),
            arrival_ms: r.envelope.arrival_ms,
            size: r.size,
            attempts: r.attempts,
            next_attempt_ms: r.next_attempt_ms,
            delay_warned: r.delay_warned,
            client_ip: r.envelope.client_ip.to_string(),
            helo: r.envelope.helo.clone(),
            tls: tls(&r.envelope.tls),
            login: r.login.clone(),
            recipients: r
                .rcpts
                .iter()
                .map(|rc| {
                    let st = &rc.status;
                    RecipientView {
                        address: rc.rcpt.address.clone(),
                        state: st.name().to_string(),
                        attempts: rc.attempts,
                        last_reply: st.last_reply(),
                        remote_mta: st.remote().map(|m| m.name.clone()),
                        tls: tls(&st.remote().and_then(|m| m.tls.clone())),
                        status: st.code().map(|c| c.to_string()),
                        decided_by: st.failure().map(|f| f.decided_by().describe()),
                        outcome: Some(st.clone()),
                    }
                })
                .collect(),
            headers: None,
        }
    }
}
