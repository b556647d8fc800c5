//! RFC 3464 delivery status notifications: who gets one, and the bytes of it.
//!
//! Everything here is a pure function of its inputs (time included), so the
//! queue decides when a report is due and this module only writes it. The
//! report is sent from the null sender; queueing it is the caller's job.

mod boundary;
mod build;
mod date;
mod decider;
mod human;
mod kind;
mod notify;
mod original;
mod parse;
mod report;
mod status;
mod text;

#[cfg(test)]
mod tests;

pub use build::build_dsn;
pub use decider::Decider;
pub use kind::{DsnKind, ReturnContent};
pub use notify::{should_notify, NotifyFlags, NotifyParseError};
pub use parse::{parse_delivery_status, DsnFields, DsnParseError, ParsedDsn};
pub use report::{DsnRecipient, DsnReport};
