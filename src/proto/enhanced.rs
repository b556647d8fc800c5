//! RFC 3463 enhanced status codes, as replies carry them and the queue keeps them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Enhanced {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Enhanced {
            class,
            subject,
            detail,
        }
    }

    /// `2.x.x`, `4.x.x` or `5.x.x`; None for anything else.
    pub fn parse(s: &str) -> Option<Enhanced> {
        let mut parts = s.split('.');
        let num = |p: Option<&str>, max: usize| -> Option<u16> {
            p.filter(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
        };
        let class = num(parts.next(), 1)? as u8;
        let subject = num(parts.next(), 3)?;
        let detail = num(parts.next(), 3)?;
        (matches!(class, 2 | 4 | 5) && parts.next().is_none())
            .then_some(Enhanced::new(class, subject, detail))
    }

    /// The same condition as a temporary (4) or permanent (5) failure.
    pub const fn as_class(self, class: u8) -> Self {
        Enhanced::new(class, self.subject, self.detail)
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// `status == "4.7.4"`, for tests and checks that name a code as written.
impl PartialEq<&str> for Enhanced {
    fn eq(&self, other: &&str) -> bool {
        Enhanced::parse(other) == Some(*self)
    }
}

impl From<Enhanced> for String {
    fn from(e: Enhanced) -> String {
        e.to_string()
    }
}

impl TryFrom<String> for Enhanced {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Enhanced::parse(&s).ok_or_else(|| format!("not an enhanced status code: {s}"))
    }
}
