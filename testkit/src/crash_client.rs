//! A fallible SMTP submission client: under kill -9 a broken connection is an
//! expected outcome, so every step returns a Result instead of panicking.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub type Reply = (u16, String);

pub struct Smtp {
    r: BufReader<TcpStream>,
    pipelining: bool,
}

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// 250 after the final dot, with mxring's queue id.
    Acked(String),
    /// A final reply other than 250 after the body: not taken.
    Rejected(Reply),
    /// Refused before the body was sent (MAIL, RCPT or DATA): never submitted.
    Refused(Reply),
    /// The connection broke (or timed out) after the body started: unknown fate.
    Broken(String),
    /// The connection broke before the body was sent: never submitted.
    BrokenBefore(String),
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Smtp {
    /// Connect, read the greeting and say EHLO.
    pub fn connect(addr: SocketAddr, read_timeout: Duration) -> Result<Smtp, String> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(err)?;
        tcp.set_read_timeout(Some(read_timeout)).map_err(err)?;
        tcp.set_nodelay(true).map_err(err)?;
        let mut s = Smtp {
            r: BufReader::new(tcp),
            pipelining: false,
        };
        let greeting = s.reply()?;
        if greeting.0 != 220 {
            return Err(format!("greeting {greeting:?}"));
        }
        s.send(b"EHLO client.test\r\n")?;
        let ehlo = s.reply()?;
        if ehlo.0 != 250 {
            return Err(format!("EHLO {ehlo:?}"));
        }
        s.pipelining = ehlo.1.to_ascii_uppercase().contains("PIPELINING");
        Ok(s)
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let s = self.r.get_mut();
        s.write_all(bytes).map_err(err)?;
        s.flush().map_err(err)
    }

    /// One (possibly multiline) reply.
    pub fn reply(&mut self) -> Result<Reply, String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).map_err(err)?;
            if n == 0 {
                return Err(format!("connection closed (so far {text:?})"));
            }
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("malformed reply line {line:?}"))?;
            text.push_str(line.trim_end());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    /// Submit one message (`data` already dot-stuffed, ending with ".\r\n").
    pub fn submit(&mut self, from: &str, to: &str, data: &[u8]) -> Outcome {
        let cmds = [
            format!("MAIL FROM:<{from}>\r\n"),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".to_string(),
        ];
        let expect = [250, 250, 354];
        if self.pipelining {
            if let Err(e) = self.send(cmds.concat().as_bytes()) {
                return Outcome::BrokenBefore(e);
            }
        }
        let mut refused = None;
        for (cmd, want) in cmds.iter().zip(expect) {
            if !self.pipelining {
                if let Err(e) = self.send(cmd.as_bytes()) {
                    return Outcome::BrokenBefore(e);
                }
            }
            match self.reply() {
                Ok(r) if r.0 == want => {}
                Ok(r) => {
                    refused.get_or_insert(r);
                    if !self.pipelining {
                        break;
                    }
                }
                Err(e) => return Outcome::BrokenBefore(e),
            }
        }
        if let Some(r) = refused {
            return Outcome::Refused(r);
        }
        if let Err(e) = self.send(data) {
            return Outcome::Broken(e);
        }
        match self.reply() {
            Ok((250, text)) => match queued_id(&text) {
                Some(id) => Outcome::Acked(id),
                None => Outcome::Rejected((250, text)),
            },
            Ok(r) => Outcome::Rejected(r),
            Err(e) => Outcome::Broken(e),
        }
    }
}

/// "250 2.0.0 Ok: queued as ABC" -> "ABC".
fn queued_id(text: &str) -> Option<String> {
    Some(
        text.split("queued as ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .to_string(),
    )
}

/// A test message for `id`: X-Test-Id and X-Test-Sum (FNV-1a of the body) headers,
/// `lines` body lines (one starting with a dot, to exercise dot-stuffing), already
/// dot-stuffed and terminated by the final dot.
pub fn message(id: &str, lines: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..lines {
        if i == 0 {
            body.push_str(&format!(".{id} leading dot line\r\n"));
        } else {
            body.push_str(&format!(
                "{id} line {i:06} the quick brown fox jumps over the lazy dog 0123456789\r\n"
            ));
        }
    }
    let sum = crate::fnv1a(body.as_bytes());
    let mut m = format!(
        "From: <sender@client.test>\r\nTo: <rcpt@sink.test>\r\nSubject: crash test {id}\r\n\
         X-Test-Id: {id}\r\nX-Test-Sum: {sum:016x}\r\n\r\n"
    );
    for l in body.split_inclusive("\r\n") {
        if l.starts_with('.') {
            m.push('.');
        }
        m.push_str(l);
    }
    m.push_str(".\r\n");
    m.into_bytes()
}
