//! A recipient's status as its entry in a DSN: the queue knows its types, the
//! DSN builder only the report.

use std::time::SystemTime;

use super::status::Status;
use crate::dsn::{DsnKind, DsnRecipient};
use crate::proto::Recipient;

impl Status {
    /// A recipient's entry read from its typed status, as the queue keeps it: the
    /// code, the diagnostic, the remote MTA, who decided and whether this server
    /// gave up all come from there.
    pub fn dsn_recipient(
        &self,
        rcpt: &Recipient,
        action: DsnKind,
        last_attempt: Option<SystemTime>,
        will_retry_until: Option<SystemTime>,
    ) -> DsnRecipient {
        let remote_mta = self.remote().map(|m| match &m.tls {
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
            status: self
                .code()
                .map_or_else(|| action.fallback_status().to_string(), |c| c.to_string()),
            remote_mta,
            diagnostic: self.last_reply(),
            last_attempt,
            will_retry_until: will_retry_until.filter(|_| action == DsnKind::Delayed),
            decided_by: self.decided_by(),
            expired_after: self
                .failure()
                .and_then(|f| f.expired_after())
                .map(str::to_string),
        }
    }
}
