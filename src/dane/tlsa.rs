//! One TLSA record (RFC 6698 section 2.1) and whether SMTP may use it (RFC 7672 3.1).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tlsa {
    /// 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// 0 the full certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    pub fn new(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    /// SMTP uses only DANE-TA(2) and DANE-EE(3) (RFC 7672 3.1.3: PKIX usages are
    /// unusable), with known selectors and matching types and a digest of the
    /// right length.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3)
            && matches!(self.selector, 0 | 1)
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// The usage's name, as RFC 7218 spells it.
    pub fn usage_name(&self) -> &'static str {
        match self.usage {
            0 => "PKIX-TA",
            1 => "PKIX-EE",
            2 => "DANE-TA",
            3 => "DANE-EE",
            _ => "unknown usage",
        }
    }

    /// Why the record is unusable, for a person; None when it is usable.
    pub fn unusable_reason(&self) -> Option<&'static str> {
        if self.usable() {
            None
        } else if matches!(self.usage, 0 | 1) {
            Some("PKIX usages are not used for SMTP (RFC 7672 3.1.3)")
        } else if !matches!(self.usage, 2 | 3) {
            Some("unknown certificate usage")
        } else if !matches!(self.selector, 0 | 1) {
            Some("unknown selector")
        } else if !matches!(self.matching, 0..=2) {
            Some("unknown matching type")
        } else {
            Some("the digest has the wrong length")
        }
    }
}

/// Presentation format, with long data shortened: `3 1 1 8c2a...04f1`.
impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        let shown = if hex.len() > 24 {
            format!("{}...{}", &hex[..12], &hex[hex.len() - 8..])
        } else {
            hex
        };
        write!(
            f,
            "{} {} {} {shown}",
            self.usage, self.selector, self.matching
        )
    }
}
