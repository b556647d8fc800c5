/// What happened to a recipient, as far as a report is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnKind {
    /// Permanently failed, or gave up retrying.
    Failed,
    /// Still being retried; this is a warning.
    Delayed,
    /// Delivered, or handed to a hop that will not report (NOTIFY=SUCCESS).
    Relayed,
}

impl DsnKind {
    /// The RFC 3464 `Action` value.
    pub fn action(self) -> &'static str {
        match self {
            DsnKind::Failed => "failed",
            DsnKind::Delayed => "delayed",
            DsnKind::Relayed => "relayed",
        }
    }

    pub fn subject(self) -> &'static str {
        match self {
            DsnKind::Failed => "Undelivered Mail Returned to Sender",
            DsnKind::Delayed => "Delayed Mail (still being retried)",
            DsnKind::Relayed => "Successful Mail Delivery Report",
        }
    }

    /// The status used when the caller's status code is not well formed.
    pub fn fallback_status(self) -> &'static str {
        match self {
            DsnKind::Failed => "5.0.0",
            DsnKind::Delayed => "4.0.0",
            DsnKind::Relayed => "2.0.0",
        }
    }
}

/// How much of the original message a report carries (ESMTP `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnContent {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`, and the default when the sender did not say (RFC 3461
    /// leaves it to the MTA; headers keep reports small).
    #[default]
    Headers,
}

impl ReturnContent {
    /// Parses an ESMTP `RET=` value (`FULL` or `HDRS`, any case).
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("FULL") {
            Some(ReturnContent::Full)
        } else if value.eq_ignore_ascii_case("HDRS") {
            Some(ReturnContent::Headers)
        } else {
            None
        }
    }
}
