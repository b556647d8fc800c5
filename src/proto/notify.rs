//! RFC 3461 NOTIFY, parsed once (at RCPT) into flags that the envelope, the
//! queue record, the outbound session and the DSN decision all use as they are.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The ESMTP `NOTIFY=` parameter of one recipient (RFC 3461 section 4.1). Stored
/// in its ESMTP form ("SUCCESS,DELAY"), as the queue always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct NotifyFlags {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// Why a `NOTIFY=` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyParseError {
    /// The value, or one of its comma-separated items, is empty.
    Empty,
    /// An item other than NEVER, SUCCESS, FAILURE or DELAY.
    Unknown(String),
    /// NEVER was combined with another item.
    NeverNotAlone,
}

impl fmt::Display for NotifyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyParseError::Empty => f.write_str("empty NOTIFY value"),
            NotifyParseError::Unknown(item) => write!(f, "unknown NOTIFY keyword {item:?}"),
            NotifyParseError::NeverNotAlone => {
                f.write_str("NOTIFY=NEVER cannot be combined with other keywords")
            }
        }
    }
}

impl std::error::Error for NotifyParseError {}

impl NotifyFlags {
    /// RFC 3461 section 4.1: without NOTIFY an MTA reports failures and may
    /// report delays, but never success.
    pub fn default_when_absent() -> Self {
        NotifyFlags {
            never: false,
            success: false,
            failure: true,
            delay: true,
        }
    }

    /// Parses a `NOTIFY=` value such as `SUCCESS,DELAY` (any case).
    pub fn parse(value: &str) -> Result<Self, NotifyParseError> {
        let mut flags = NotifyFlags {
            never: false,
            success: false,
            failure: false,
            delay: false,
        };
        let mut items = 0;
        for item in value.split(',') {
            let item = item.trim();
            items += 1;
            match item.to_ascii_uppercase().as_str() {
                "" => return Err(NotifyParseError::Empty),
                "NEVER" => flags.never = true,
                "SUCCESS" => flags.success = true,
                "FAILURE" => flags.failure = true,
                "DELAY" => flags.delay = true,
                _ => return Err(NotifyParseError::Unknown(item.to_string())),
            }
        }
        if flags.never && items > 1 {
            return Err(NotifyParseError::NeverNotAlone);
        }
        Ok(flags)
    }
}

/// Writes the value back in ESMTP form, so it can be relayed to the next hop.
impl fmt::Display for NotifyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            return f.write_str("NEVER");
        }
        let names = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let on: Vec<&str> = names.iter().filter(|n| n.0).map(|n| n.1).collect();
        // No flag at all is not expressible; NEVER is what it means.
        if on.is_empty() {
            return f.write_str("NEVER");
        }
        f.write_str(&on.join(","))
    }
}

impl From<NotifyFlags> for String {
    fn from(n: NotifyFlags) -> String {
        n.to_string()
    }
}

impl TryFrom<String> for NotifyFlags {
    type Error = NotifyParseError;
    fn try_from(s: String) -> Result<Self, NotifyParseError> {
        NotifyFlags::parse(&s)
    }
}
