//! The sink's lenient mode (`Sink::lenient()`), as lenient as they come, to be the
//! next hop in smuggling tests: it drops NULs, ends a line at CRLF, a bare CR or a bare LF, does not offer
//! CHUNKING (so mxring relays with DATA and dot-stuffing), and counts every message
//! it believes it received. A count above what mxring accepted is a smuggled message.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::sink::SinkState;

#[derive(Clone, Debug)]
pub struct Seen {
    pub from: String,
    /// Content lines as the lenient reader split them, unstuffed.
    pub lines: Vec<Vec<u8>>,
}

impl crate::sink::Sink {
    /// A lenient next hop (see the module comment).
    pub fn lenient() -> crate::sink::Sink {
        crate::sink::Sink::start(crate::sink::Script {
            lenient: true,
            ..Default::default()
        })
    }

    /// What the lenient reader believes it received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.counts().seen.clone()
    }
}

/// Splits a byte stream into lines the lenient way.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    /// The last line ended at a CR: an LF right after it belongs to that ending.
    after_cr: bool,
}

impl Lines {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        for &b in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                0 => {}
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    out.push(std::mem::take(&mut self.line));
                }
                _ => self.line.push(b),
            }
        }
    }
}

pub(crate) fn serve(mut stream: TcpStream, state: &SinkState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"220 lenient.test ESMTP\r\n")?;
    let mut splitter = Lines::default();
    let mut in_data = false;
    let mut from = String::new();
    let mut content = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut lines = Vec::new();
        splitter.push(&buf[..n], &mut lines);
        let mut replies = String::new();
        for line in lines {
            if in_data {
                if line == b"." {
                    in_data = false;
                    let seen = Seen {
                        from: from.clone(),
                        lines: std::mem::take(&mut content),
                    };
                    state.update(|c| c.seen.push(seen));
                    replies.push_str("250 2.0.0 Ok: queued\r\n");
                } else {
                    let l = line.strip_prefix(b".").unwrap_or(&line).to_vec();
                    content.push(l);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).to_ascii_uppercase();
            if text.starts_with("EHLO") {
                replies.push_str("250-lenient.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
            } else if text.starts_with("MAIL FROM:") {
                let l = String::from_utf8_lossy(&line);
                from = l
                    .split('<')
                    .nth(1)
                    .and_then(|r| r.split('>').next())
                    .unwrap_or("")
                    .to_string();
                replies.push_str("250 2.1.0 Ok\r\n");
            } else if text.starts_with("RCPT TO:") {
                replies.push_str("250 2.1.5 Ok\r\n");
            } else if text.starts_with("DATA") {
                in_data = true;
                replies.push_str("354 go ahead\r\n");
            } else if text.starts_with("QUIT") {
                replies.push_str("221 2.0.0 Bye\r\n");
                stream.write_all(replies.as_bytes())?;
                return Ok(());
            } else {
                replies.push_str("250 2.0.0 Ok\r\n");
            }
        }
        if !replies.is_empty() {
            stream.write_all(replies.as_bytes())?;
        }
    }
}
