use std::time::SystemTime;

use super::decider::Decider;
use super::kind::{DsnKind, ReturnContent};
use crate::proto::Recipient;
use crate::queue::status::Status;

/// One recipient's entry in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address delivery was attempted to; written `rfc822; addr`.
    pub final_recipient: String,
    /// The ESMTP `ORCPT=` value (`type;addr`), written as given; a bare
    /// address is written as `rfc822; addr`.
    pub original_recipient: Option<String>,
    pub action: DsnKind,
    /// Enhanced status code such as `5.1.1` (RFC 3463).
    pub status: String,
    /// The host that answered; written `dns; host`. Free text after the host
    /// (a TLS comment, say) is kept.
    pub remote_mta: Option<String>,
    /// The SMTP reply; written `smtp; 550 5.1.1 ...`. Multi-line replies are
    /// joined into one line.
    pub diagnostic: Option<String>,
    pub last_attempt: Option<SystemTime>,
    /// Written only when `action` is `Delayed`.
    pub will_retry_until: Option<SystemTime>,
    /// Who decided: the first part's sentence names them.
    pub decided_by: Decider,
    /// Set when this server gave up on the recipient (`give_up_after`, written
    /// as the config does, e.g. "24h"); the diagnostic is then the last error.
    pub expired_after: Option<String>,
}

impl DsnRecipient {
    /// A recipient's entry read from its typed status, as the queue keeps it: the
    /// code, the diagnostic, the remote MTA, who decided and whether this server
    /// gave up all come from there.
    pub fn from_status(
        rcpt: &Recipient,
        status: &Status,
        action: DsnKind,
        last_attempt: Option<SystemTime>,
        will_retry_until: Option<SystemTime>,
    ) -> DsnRecipient {
        let remote_mta = status.remote().map(|m| match &m.tls {
            Some(t) => match &t.dane {
                Some(dane) => format!("{} (TLS {} {}, {dane})", m.name, t.version, t.cipher),
                None => format!("{} (TLS {} {})", m.name, t.version, t.cipher),
            },
            None => m.name.clone(),
        });
        DsnRecipient {
            final_recipient: rcpt.address.clone(),
            original_recipient: rcpt.orcpt.clone(),
            action,
            status: status
                .code()
                .map_or_else(|| action.fallback_status().to_string(), |c| c.to_string()),
            remote_mta,
            diagnostic: status.last_reply(),
            last_attempt,
            will_retry_until: will_retry_until.filter(|_| action == DsnKind::Delayed),
            decided_by: status.decided_by(),
            expired_after: status
                .failure()
                .and_then(|f| f.expired_after())
                .map(str::to_string),
        }
    }
}

/// Everything a report says. Borrowed, because the caller already holds it.
#[derive(Debug, Clone)]
pub struct DsnReport<'a> {
    /// Our host name.
    pub reporting_mta: &'a str,
    /// Who gets the report: its envelope and `To:` recipient.
    pub original_sender: &'a str,
    /// The ESMTP `ENVID=` value, if the sender gave one.
    pub original_envid: Option<&'a str>,
    pub arrival: SystemTime,
    pub recipients: &'a [DsnRecipient],
    pub ret: ReturnContent,
    /// The whole original message, CRLF line endings.
    pub original_message: &'a [u8],
    /// Report time: the `Date:` header, and the boundary and Message-ID seed.
    pub now: SystemTime,
    /// Makes the Message-ID and boundary unique, and deterministic in tests.
    pub message_id_seed: u64,
}

impl DsnReport<'_> {
    /// The kind that names the whole report: any failure makes it a failure
    /// report, else any delay a delay warning, else a success report.
    pub fn kind(&self) -> DsnKind {
        let has = |kind| self.recipients.iter().any(|r| r.action == kind);
        if has(DsnKind::Failed) {
            DsnKind::Failed
        } else if has(DsnKind::Delayed) {
            DsnKind::Delayed
        } else {
            DsnKind::Relayed
        }
    }
}
