//! SMTP replies with RFC 3463 enhanced status codes, written straight into the
//! caller's output buffer so a pipelined group of replies costs one write.

use std::io::Write;

/// Write a one-line reply: `<code> <enhanced> <text>\r\n`.
pub fn reply(out: &mut Vec<u8>, code: u16, enhanced: &str, text: &str) {
    let _ = write!(out, "{code} ");
    if !enhanced.is_empty() {
        out.extend_from_slice(enhanced.as_bytes());
        out.push(b' ');
    }
    push_sanitized(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Write a multiline reply; every line but the last uses `<code>-`.
pub fn reply_lines(out: &mut Vec<u8>, code: u16, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        let _ = write!(out, "{code}{sep}");
        push_sanitized(out, line);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reply text may quote client input (an address); a CR or LF in it would let the
/// client forge extra reply lines, so control characters are replaced.
fn push_sanitized(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        out.push(if b < 0x20 || b == 0x7f { b'?' } else { b });
    }
}

/// A reply as read from a peer (client side, tests and tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReply {
    pub code: u16,
    /// Text of every line, without the code and separator.
    pub lines: Vec<String>,
}

impl ParsedReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The enhanced status code at the start of the first line, if any.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?.split(' ').next()?;
        let mut parts = first.split('.');
        let ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"))
            && parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts.next().is_none();
        ok.then_some(first)
    }
    /// The whole reply on one line, as used in logs and DSN diagnostics.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Why bytes from a peer are not a valid reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line")]
    Malformed,
    #[error("reply line too long")]
    TooLong,
    #[error("reply has too many lines")]
    TooManyLines,
}

/// Longest reply line we accept (RFC 5321 says 512; servers exceed it in the wild).
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 200;

/// Parse one complete (possibly multiline) reply from the front of `input`.
/// Returns `Ok(None)` when more bytes are needed, else the reply and bytes consumed.
pub fn parse_reply(input: &[u8]) -> Result<Option<(ParsedReply, usize)>, ReplyError> {
    let mut rest = input;
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let mut split = rest.splitn(2, |&b| b == b'\n');
        let (Some(line), Some(after)) = (split.next(), split.next()) else {
            if rest.len() > MAX_REPLY_LINE {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        if line.len() > MAX_REPLY_LINE {
            return Err(ReplyError::TooLong);
        }
        rest = after;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', tail @ ..] = line else {
            return Err(ReplyError::Malformed);
        };
        let digit = |d: &u8| u16::from(d - b'0');
        let this_code = digit(a) * 100 + digit(b) * 10 + digit(c);
        if !(200..600).contains(&this_code) || code.is_some_and(|c| c != this_code) {
            return Err(ReplyError::Malformed);
        }
        code = Some(this_code);
        let (last, text) = match tail {
            [] => (true, tail),
            [b' ', text @ ..] => (true, text),
            [b'-', text @ ..] => (false, text),
            _ => return Err(ReplyError::Malformed),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            return Ok(Some((
                ParsedReply {
                    code: this_code,
                    lines,
                },
                input.len() - rest.len(),
            )));
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_cannot_inject_lines() {
        let mut out = Vec::new();
        reply(&mut out, 501, "5.1.3", "bad <a\r\n250 ok>");
        assert_eq!(out, b"501 5.1.3 bad <a??250 ok>\r\n");
    }

    #[test]
    fn multiline_reply_parses_and_needs_whole_input() {
        let raw = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse_reply(&raw[..cut]).unwrap(), None, "cut {cut}");
        }
        let (r, used) = parse_reply(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.example", "PIPELINING", "STARTTLS"]);
    }

    #[test]
    fn enhanced_code_is_found_only_when_well_formed() {
        let (r, _) = parse_reply(b"550 5.1.1 no such user\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced(), Some("5.1.1"));
        let (r, _) = parse_reply(b"550 no such user\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced(), None);
    }

    #[test]
    fn mixed_codes_and_garbage_are_malformed() {
        assert_eq!(
            parse_reply(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::Malformed)
        );
        assert_eq!(parse_reply(b"hello\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse_reply(b"099 x\r\n"), Err(ReplyError::Malformed));
    }
}
