//! Reading SMTP replies (RFC 5321 §4.2), including multiline ones ("250-...", "250 ...").

use std::io::{self, Read};

/// A complete reply: its code and the text of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// Why a reply could not be read; kept apart from I/O errors so the report can tell a
/// misbehaving server from a slow or vanished one.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Closed,
    Malformed(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Longest reply line accepted; RFC 5321 allows 512, generous servers go a bit beyond.
const MAX_LINE: usize = 4096;
/// Bound on lines in one reply, so a server that never ends a multiline reply cannot
/// make the client buffer forever.
const MAX_LINES: usize = 1000;

/// Buffers bytes from a stream and splits them into replies.
#[derive(Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    start: usize,
}

impl ReplyReader {
    pub fn new() -> Self {
        ReplyReader {
            buf: Vec::with_capacity(4096),
            start: 0,
        }
    }

    /// Whether unread bytes are buffered (e.g. a server answering ahead of a command).
    pub fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Forgets buffered bytes: needed after STARTTLS, where anything read in plaintext
    /// must not be trusted as coming from the TLS session.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    pub fn read_reply<R: Read>(&mut self, r: &mut R) -> Result<Reply, ReadError> {
        let mut lines = Vec::new();
        let mut code = 0u16;
        loop {
            let line = self.read_line(r)?;
            let (c, last, text) = parse_line(&line)?;
            if lines.is_empty() {
                code = c;
            } else if c != code {
                return Err(ReadError::Malformed(format!(
                    "reply code changed within a multiline reply: {code} then {c}"
                )));
            }
            lines.push(text);
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_LINES {
                return Err(ReadError::Malformed("multiline reply too long".into()));
            }
        }
    }

    fn read_line<R: Read>(&mut self, r: &mut R) -> Result<String, ReadError> {
        let mut scanned = self.start;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let mut line = &self.buf[self.start..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let s = String::from_utf8_lossy(line).into_owned();
                self.start = end + 1;
                if self.start == self.buf.len() {
                    self.clear();
                }
                return Ok(s);
            }
            scanned = self.buf.len();
            if scanned - self.start > MAX_LINE {
                return Err(ReadError::Malformed("reply line too long".into()));
            }
            // Compact before growing so a long-lived connection does not accumulate.
            if self.start > 0 {
                self.buf.drain(..self.start);
                scanned -= self.start;
                self.start = 0;
            }
            let old = self.buf.len();
            self.buf.resize(old + 4096, 0);
            let n = match r.read(&mut self.buf[old..]) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(old);
                    // rustls reports a peer that closed without close_notify this way.
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        return Err(ReadError::Closed);
                    }
                    return Err(e.into());
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                return Err(ReadError::Closed);
            }
        }
    }
}

/// Splits "250-text" / "250 text" / "250" into (code, is_last, text).
fn parse_line(line: &str) -> Result<(u16, bool, String), ReadError> {
    let b = line.as_bytes();
    let valid_code = b.len() >= 3
        && (b'2'..=b'5').contains(&b[0])
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit();
    if !valid_code {
        return Err(ReadError::Malformed(format!("bad reply line {line:?}")));
    }
    let code = line[..3].parse().expect("three ASCII digits");
    match b.get(3) {
        None => Ok((code, true, String::new())),
        Some(b' ') => Ok((code, true, line[4..].to_string())),
        Some(b'-') => Ok((code, false, line[4..].to_string())),
        Some(_) => Err(ReadError::Malformed(format!("bad reply line {line:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one byte per read to exercise line reassembly.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn multiline_and_pipelined() {
        let data = b"250-mx.test hi\r\n250-PIPELINING\r\n250 SIZE 100\r\n354 go\r\n221\r\n";
        let mut rr = ReplyReader::new();
        let mut src = Trickle(data);
        let r = rr.read_reply(&mut src).unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.test hi", "PIPELINING", "SIZE 100"]);
        assert_eq!(rr.read_reply(&mut src).unwrap().code, 354);
        assert_eq!(rr.read_reply(&mut src).unwrap().lines, vec![""]);
        assert!(matches!(rr.read_reply(&mut src), Err(ReadError::Closed)));
    }

    #[test]
    fn malformed() {
        let mut rr = ReplyReader::new();
        assert!(matches!(
            rr.read_reply(&mut &b"hello\r\n"[..]),
            Err(ReadError::Malformed(_))
        ));
        let mut rr = ReplyReader::new();
        assert!(matches!(
            rr.read_reply(&mut &b"250-a\r\n251 b\r\n"[..]),
            Err(ReadError::Malformed(_))
        ));
    }
}
