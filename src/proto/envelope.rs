//! The envelope a session hands over with each accepted message; the queue stores it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// TLS facts of a session, recorded in Received headers, logs and DSNs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFacts {
    /// "TLSv1.2" or "TLSv1.3".
    pub version: String,
    /// The IANA-style suite name rustls reports, e.g. "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
    /// Outbound only: the DANE record that authenticated the peer, e.g.
    /// "DANE-EE TLSA 3 1 1 8c2a...04f1 matched the server certificate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dane: Option<String>,
}

/// DSN RET: what a failure DSN carries of the original message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    Full,
    Hdrs,
}

/// MAIL BODY= (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The mailbox as given, without angle brackets.
    pub address: String,
    /// RFC 3461 NOTIFY; None when absent (RFC 3461's default then applies).
    pub notify: Option<super::notify::NotifyFlags>,
    /// RFC 3461 ORCPT, xtext-decoded, e.g. "rfc822;user@example.com".
    pub orcpt: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse path without brackets; empty for the null sender `<>`.
    pub sender: String,
    /// The recipients as the session accepted them. A queue record moves them
    /// next to their delivery status (`QueuedMessage::rcpts`), leaving this empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, xtext-decoded.
    pub envid: Option<String>,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub client_ip: IpAddr,
    pub helo: String,
    pub tls: Option<TlsFacts>,
    /// Arrival time, milliseconds since the Unix epoch.
    pub arrival_ms: u64,
    /// Name of the listener that accepted the message.
    pub listener: String,
    /// RFC 8689 REQUIRETLS was on MAIL FROM: relay only over authenticated TLS to
    /// hops that offer REQUIRETLS, and pass it on.
    #[serde(default)]
    pub requiretls: bool,
    /// The message has `TLS-Required: No` (and no REQUIRETLS): recipient-side
    /// policies (MTA-STS, DANE from `default_tls`) are ignored for it (§4.1).
    #[serde(default)]
    pub tls_required_no: bool,
}

/// Decode RFC 3461 xtext (`+XX` hex escapes). None when malformed.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if (33..=126).contains(&c) && c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encode RFC 3461 xtext, for passing ENVID and ORCPT on to the next hop.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (33..=126).contains(&c) && c != b'+' && c != b'=' {
            out.push(c as char);
        } else {
            out.push_str(&format!("+{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips() {
        assert_eq!(xtext_decode("rfc822;a+2Bb@c").unwrap(), "rfc822;a+b@c");
        assert_eq!(xtext_encode("rfc822;a+b@c"), "rfc822;a+2Bb@c");
        assert_eq!(xtext_decode("a+2"), None);
        assert_eq!(xtext_decode("a=b"), None);
    }
}
