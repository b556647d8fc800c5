use std::time::SystemTime;

use super::decider::Decider;
use super::kind::{DsnKind, ReturnContent};

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
