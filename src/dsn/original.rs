//! The third part: the original message or its header section.

use super::kind::ReturnContent;
use super::text::MAX_LINE;

/// The returned part, ready to write.
pub(super) struct Returned {
    pub content_type: &'static str,
    pub description: &'static str,
    pub body: Vec<u8>,
}

pub(super) fn returned(original: &[u8], ret: ReturnContent) -> Returned {
    // A body that is not clean CRLF text within line limits cannot go in a
    // message/rfc822 part unchanged (RFC 2046 section 5.2.1 forbids
    // re-encoding it), so such a message is returned by its headers.
    if ret == ReturnContent::Full && is_clean_text(original) {
        return Returned {
            content_type: "message/rfc822",
            description: "Returned message",
            body: original.to_vec(),
        };
    }
    Returned {
        content_type: "text/rfc822-headers",
        description: "Returned message headers",
        body: header_section(original),
    }
}

/// Every line ends in CRLF (the last may end without), is at most 998 octets,
/// and holds no bare CR, bare LF or NUL.
fn is_clean_text(message: &[u8]) -> bool {
    let mut line_len = 0;
    let mut prev = 0u8;
    for &b in message {
        match b {
            b'\n' if prev == b'\r' => line_len = 0,
            b'\n' | 0 => return false,
            _ if prev == b'\r' => return false,
            b'\r' => {}
            _ => {
                line_len += 1;
                if line_len > MAX_LINE {
                    return false;
                }
            }
        }
        prev = b;
    }
    prev != b'\r'
}

/// The header section up to (not including) the first empty line, rewritten
/// as clean CRLF lines: it is text in a text part, so unlike a whole message
/// it may be repaired.
fn header_section(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let mut end = line.len().min(MAX_LINE);
        // Do not cut a UTF-8 sequence in half.
        while end < line.len() && end > 0 && (line[end] & 0xC0) == 0x80 {
            end -= 1;
        }
        out.extend(
            line[..end]
                .iter()
                .map(|&b| if b == b'\r' || b == 0 { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
    }
    out
}
