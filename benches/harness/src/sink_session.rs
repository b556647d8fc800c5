//! One sink connection: a small ESMTP server that accepts everything and keeps nothing,
//! run as a task on one of the sink's event loops. Commands are parsed by mxring's own
//! `proto::command` parser.
//!
//! Input is processed as far as it goes before anything is written, so a pipelined group
//! of commands gets all its replies in one write (RFC 2920 asks servers to batch).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::time::timeout;

use mxring::proto::command::{parse_command, Command, CommandError};

use crate::conn::Conn;
use crate::data::DataReader;
use crate::sink_state::SinkState;

/// Longest command line accepted (RFC 5321 allows 512; extensions add a little).
const MAX_COMMAND: usize = 4096;
/// A client idle this long is dropped, so a forgotten connection cannot outlive the run.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Input buffers start small (ten thousand idle sessions cost little) and grow to this
/// while a client streams a message.
const FIRST_READ: usize = 4096;
const READ_CHUNK: usize = 64 * 1024;

enum Mode {
    Command,
    Data(DataReader),
    /// Reading a BDAT chunk; `accept` is false when the chunk arrived outside a valid
    /// transaction and must be read and thrown away.
    Bdat {
        remaining: u64,
        size: u64,
        last: bool,
        accept: bool,
    },
}

/// What processing the buffered input asks the connection loop to do next.
#[derive(PartialEq, Eq)]
enum Next {
    Read,
    StartTls,
    Close,
}

struct Session<'a> {
    state: &'a SinkState,
    mode: Mode,
    have_mail: bool,
    rcpts: u32,
    tls_active: bool,
    /// BDAT chunks of the current message, summed (and kept when dumping).
    bdat_bytes: u64,
    bdat_kept: Option<Vec<u8>>,
    out: Vec<u8>,
    /// Picks the messages --reject-rate refuses.
    rng: SmallRng,
}

pub async fn serve(tcp: TcpStream, state: Arc<SinkState>) {
    state.connection_opened();
    serve_session(tcp, &state).await;
    state.connection_closed();
}

async fn serve_session(tcp: TcpStream, state: &SinkState) {
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::Plain(tcp);
    if state.implicit_tls {
        let acceptor = state.acceptor.as_ref().expect("implicit TLS has a config");
        if !matches!(
            timeout(IDLE_TIMEOUT, conn.upgrade_server(acceptor)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
    let mut s = Session {
        state,
        mode: Mode::Command,
        have_mail: false,
        rcpts: 0,
        tls_active: state.implicit_tls,
        bdat_bytes: 0,
        bdat_kept: None,
        out: b"220 sink.test ESMTP mxring-bench sink\r\n".to_vec(),
        rng: SmallRng::from_entropy(),
    };
    // Unprocessed input lives in buf[start..end].
    let mut buf = vec![0u8; FIRST_READ];
    let (mut start, mut end) = (0, 0);
    loop {
        let (consumed, next) = s.process(&buf[start..end]);
        start += consumed;
        if !s.out.is_empty() {
            if let Some(d) = state.reply_delay {
                tokio::time::sleep(d).await;
            }
            if !matches!(
                timeout(IDLE_TIMEOUT, conn.write_all(&s.out)).await,
                Ok(Ok(()))
            ) {
                return;
            }
            s.out.clear();
        }
        match next {
            Next::Close => break,
            Next::StartTls => {
                // Anything pipelined after STARTTLS arrived unprotected: RFC 3207 says
                // discard it.
                (start, end) = (0, 0);
                let Some(acceptor) = &state.acceptor else {
                    return;
                };
                if !matches!(
                    timeout(IDLE_TIMEOUT, conn.upgrade_server(acceptor)).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
                s.tls_active = true;
                s.reset();
                continue;
            }
            Next::Read => {}
        }
        if matches!(s.mode, Mode::Command) && end - start > MAX_COMMAND {
            let _ = conn.write_all(b"500 5.5.2 Line too long\r\n").await;
            break;
        }
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
            if end == buf.len() {
                // Only a partial terminator or command line can remain, both short.
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match timeout(IDLE_TIMEOUT, conn.read(&mut buf[end..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => n,
        };
        // A read that filled the buffer: the client is streaming; read more at a time.
        if end + n == buf.len() && buf.len() < READ_CHUNK {
            buf.resize((buf.len() * 2).min(READ_CHUNK), 0);
        }
        end += n;
    }
    if conn.is_tls() {
        let _ = timeout(Duration::from_secs(2), conn.shutdown()).await;
    }
}

impl Session<'_> {
    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn reset(&mut self) {
        self.have_mail = false;
        self.rcpts = 0;
        self.bdat_bytes = 0;
        self.bdat_kept = None;
    }

    /// Handles as much of `input` as is complete. Returns bytes consumed and what next.
    fn process(&mut self, input: &[u8]) -> (usize, Next) {
        let mut pos = 0;
        loop {
            match &mut self.mode {
                Mode::Data(reader) => {
                    let (n, done) = reader.feed(&input[pos..]);
                    pos += n;
                    if !done {
                        return (pos, Next::Read);
                    }
                    let Mode::Data(reader) = std::mem::replace(&mut self.mode, Mode::Command)
                    else {
                        unreachable!("matched Data above")
                    };
                    self.finish_message(reader.bytes, reader.kept);
                }
                Mode::Bdat {
                    remaining,
                    size,
                    last,
                    accept,
                } => {
                    let n = (*remaining).min((input.len() - pos) as u64) as usize;
                    if *accept {
                        self.bdat_bytes += n as u64;
                        if let Some(k) = &mut self.bdat_kept {
                            k.extend_from_slice(&input[pos..pos + n]);
                        }
                    }
                    pos += n;
                    *remaining -= n as u64;
                    if *remaining > 0 {
                        return (pos, Next::Read);
                    }
                    let (size, last, accept) = (*size, *last, *accept);
                    self.mode = Mode::Command;
                    if !accept {
                        self.reply("503 5.5.1 BDAT without a valid transaction");
                    } else if last {
                        let kept = self.bdat_kept.take();
                        self.state
                            .bdat_messages
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.finish_message(self.bdat_bytes, kept);
                    } else {
                        self.reply(&format!("250 2.0.0 {size} octets received"));
                    }
                }
                Mode::Command => {
                    let Some(nl) = input[pos..].iter().position(|&b| b == b'\n') else {
                        return (pos, Next::Read);
                    };
                    let line = &input[pos..pos + nl];
                    pos += nl + 1;
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let next = self.command(line);
                    if next != Next::Read {
                        return (pos, next);
                    }
                }
            }
        }
    }

    /// One command line (without its line ending), parsed by mxring's own parser.
    fn command(&mut self, line: &[u8]) -> Next {
        match parse_command(line) {
            Ok(Command::Ehlo(_)) => {
                self.reset();
                let mut lines = vec![
                    "sink.test greets you".to_string(),
                    "PIPELINING".into(),
                    "SIZE 104857600".into(),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "ENHANCEDSTATUSCODES".into(),
                    "CHUNKING".into(),
                ];
                if self.state.acceptor.is_some() && !self.tls_active {
                    lines.push("STARTTLS".into());
                }
                let n = lines.len();
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i + 1 == n { ' ' } else { '-' };
                    self.reply(&format!("250{sep}{l}"));
                }
            }
            Ok(Command::Helo(_)) => {
                self.reset();
                self.reply("250 sink.test");
            }
            Ok(Command::Mail(_)) => {
                if self.have_mail {
                    self.reply("503 5.5.1 Nested MAIL command");
                } else {
                    self.have_mail = true;
                    self.state.mail_started();
                    self.reply("250 2.1.0 Ok");
                }
            }
            Ok(Command::Rcpt(_)) => {
                if !self.have_mail {
                    self.reply("503 5.5.1 Need MAIL first");
                } else {
                    self.rcpts += 1;
                    self.reply("250 2.1.5 Ok");
                }
            }
            Ok(Command::Data) => {
                if !self.have_mail || self.rcpts == 0 {
                    self.reply("503 5.5.1 Need MAIL and RCPT first");
                } else {
                    self.mode = Mode::Data(DataReader::new(self.state.dump_dir.is_some()));
                    self.reply("354 End data with <CR><LF>.<CR><LF>");
                }
            }
            Ok(Command::Bdat { size, last }) => self.bdat(size, last),
            Ok(Command::Rset) => {
                self.reset();
                self.reply("250 2.0.0 Ok");
            }
            Ok(Command::Noop) => self.reply("250 2.0.0 Ok"),
            Ok(Command::Quit) => {
                self.reply("221 2.0.0 Bye");
                return Next::Close;
            }
            Ok(Command::StartTls) => {
                if self.state.acceptor.is_none() || self.tls_active {
                    self.reply("502 5.5.1 STARTTLS not available");
                } else {
                    self.reply("220 2.0.0 Ready to start TLS");
                    return Next::StartTls;
                }
            }
            // A BDAT without a valid size leaves the chunk boundary unknown; like any
            // syntax error it is refused and nothing is read as its chunk.
            Err(CommandError::Syntax(usage)) => self.reply(&format!("501 5.5.4 Syntax: {usage}")),
            Ok(_) | Err(_) => self.reply("500 5.5.2 Command not recognized"),
        }
        Next::Read
    }

    fn bdat(&mut self, size: u64, last: bool) {
        let accept = self.have_mail && self.rcpts > 0;
        if accept && self.bdat_bytes == 0 && self.bdat_kept.is_none() {
            self.bdat_kept = self.state.dump_dir.is_some().then(Vec::new);
        }
        self.mode = Mode::Bdat {
            remaining: size,
            size,
            last,
            accept,
        };
    }

    fn finish_message(&mut self, bytes: u64, kept: Option<Vec<u8>>) {
        let rate = self.state.reject_rate;
        let rejected = rate > 0.0 && self.rng.gen_bool(rate);
        let code = if rejected {
            self.state.reject_code
        } else {
            self.state.reply_code
        };
        self.state.record_message(bytes, code, kept.as_deref());
        let text = match code {
            250 => "250 2.0.0 Ok: queued".to_string(),
            c if rejected => format!("{c} {}.0.0 Refused at random by --reject-rate", c / 100),
            c => format!("{c} {}.0.0 Reply configured by --reply-code", c / 100),
        };
        self.reply(&text);
        self.reset();
    }
}
