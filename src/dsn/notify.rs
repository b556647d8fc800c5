//! Who gets a report (RFC 3461 NOTIFY, parsed in `proto::notify`).

pub use crate::proto::notify::{NotifyFlags, NotifyParseError};

use super::kind::DsnKind;

/// Whether a report of `kind` goes to the sender. A null sender never gets
/// one: reports are themselves sent from the null sender, and answering them
/// would loop.
pub fn should_notify(notify: &NotifyFlags, kind: DsnKind, sender_is_null: bool) -> bool {
    if sender_is_null || notify.never {
        return false;
    }
    match kind {
        DsnKind::Failed => notify.failure,
        DsnKind::Delayed => notify.delay,
        DsnKind::Relayed => notify.success,
    }
}
