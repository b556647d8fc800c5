//! Reading the client's input: the phase decides who reads it; command lines are
//! checked for framing here and handed to their command's handler.

use std::time::SystemTime;

use super::super::auth::MAX_AUTH_LINE;
use super::super::command::{parse_command, Command, CommandError, MAX_COMMAND_LINE};
use super::replies::{self, Reply};
use super::state::{Open, Phase};
use super::{Event, Fed, ServerSession};
use crate::config::ListenerTls;

/// What one reading step did with the input.
pub(super) enum Step {
    /// Consumed this many octets; read on.
    Went(usize),
    /// Consumed this many octets; the driver acts now, or more input is needed.
    Stop(usize, Option<Event>),
    /// Everything fed is consumed (discarded after STARTTLS, a close, the rest of
    /// an over-long line).
    Drain(Option<Event>),
}

impl Step {
    /// After a unit of input that may have produced an event.
    pub fn after(consumed: usize, event: Option<Event>) -> Step {
        match event {
            None => Step::Went(consumed),
            Some(e) => Step::Stop(consumed, Some(e)),
        }
    }
}

impl ServerSession {
    /// Feed bytes from the client. Replies are appended to `out`; the caller writes
    /// `out` once per feed, so a pipelined group of commands gets one write.
    pub fn feed(&mut self, input: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Fed {
        let mut pos = 0;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            let step = match self.phase {
                Phase::Closed => Step::Drain(None),
                Phase::AwaitingStore | Phase::AwaitingAuth => Step::Stop(0, None),
                Phase::Command(_) => self.read_command(rest, now, out),
                Phase::Data { .. } | Phase::Bdat { .. } => self.read_body(rest, out),
            };
            match step {
                Step::Went(n) => pos += n,
                Step::Stop(n, event) => {
                    return Fed {
                        consumed: pos + n,
                        event,
                    }
                }
                Step::Drain(event) => {
                    return Fed {
                        consumed: input.len(),
                        event,
                    }
                }
            }
        }
    }

    /// One command line from the start of `rest`, when it is all there.
    fn read_command(&mut self, rest: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Step {
        if rest.is_empty() {
            return Step::Stop(0, None);
        }
        if self.skipping_long_line {
            return match memchr::memchr(b'\n', rest) {
                Some(nl) => {
                    self.skipping_long_line = false;
                    Step::Went(nl + 1)
                }
                None => Step::Drain(None),
            };
        }
        let max_line = self.line_limit(rest);
        let window = rest.get(..max_line).unwrap_or(rest);
        let Some((line, _)) =
            memchr::memchr(b'\n', window).and_then(|nl| window.split_at_checked(nl))
        else {
            if rest.len() < max_line {
                return Step::Stop(0, None);
            }
            // Too long to be a command: refuse it once, then skip to its end.
            self.skipping_long_line = true;
            self.auth_pending = None;
            return self.refuse_line(replies::LINE_TOO_LONG, window.len(), out);
        };
        let consumed = line.len() + 1;
        let Some(line) = line.strip_suffix(b"\r") else {
            return self.refuse_line(replies::BARE_LF, consumed, out);
        };
        if memchr::memchr(b'\r', line).is_some() {
            return self.refuse_line(replies::BARE_CR, consumed, out);
        }
        let event = match self.auth_pending.take() {
            Some(pending) => self.auth_response(pending, line, out),
            None => self.command(line, now, out),
        };
        match event {
            // Whatever the client sent after STARTTLS in the same flight is
            // dropped unread (the STARTTLS command-injection class).
            Some(e @ (Event::StartTls | Event::Close)) => Step::Drain(Some(e)),
            other => Step::after(consumed, other),
        }
    }

    /// A line that is no command: refuse it and read on, unless that was one
    /// error too many.
    fn refuse_line(&mut self, r: Reply, consumed: usize, out: &mut Vec<u8>) -> Step {
        match self.error(out, r) {
            Some(e) => Step::Drain(Some(e)),
            None => Step::Went(consumed),
        }
    }

    /// AUTH lines may be longer than commands (RFC 4954 4: 12288 octets).
    fn line_limit(&self, rest: &[u8]) -> usize {
        let auth_line = rest
            .get(..5)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"AUTH "));
        if self.cfg.auth.mode.enabled() && (auth_line || self.auth_pending.is_some()) {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        }
    }

    fn command(&mut self, line: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Option<Event> {
        if memchr::memchr(0, line).is_some() {
            return self.error(out, replies::NUL_IN_COMMAND);
        }
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(CommandError::Unknown) => return self.error(out, replies::UNKNOWN_COMMAND),
            Err(CommandError::NotUtf8) => return self.error(out, replies::COMMAND_NOT_UTF8),
            Err(CommandError::Syntax(usage)) => return self.error(out, replies::syntax(usage)),
        };
        match cmd {
            Command::Ehlo(name) => self.hello(name, true, out),
            Command::Helo(name) => self.hello(name, false, out),
            Command::Mail(arg) => {
                let answer = self.mail(arg);
                self.answer(answer, out)
            }
            Command::Rcpt(arg) => {
                let answer = self.rcpt(arg);
                self.answer(answer, out)
            }
            Command::Data => self.data(now, out),
            Command::Bdat { size, last } => self.bdat(size, last, now, out),
            Command::Rset => {
                self.phase = Phase::Command(Open::None);
                self.answer(Ok(replies::OK), out)
            }
            Command::Noop => self.answer(Ok(replies::OK), out),
            Command::Vrfy => self.answer(Ok(replies::VRFY), out),
            Command::Help => self.answer(Ok(replies::HELP), out),
            Command::Quit => {
                self.close_with(replies::BYE, out);
                Some(Event::Close)
            }
            Command::Auth(args) => self.auth(args, out),
            Command::StartTls => self.starttls(out),
        }
    }

    fn starttls(&mut self, out: &mut Vec<u8>) -> Option<Event> {
        if self.peer.tls.is_some() {
            return self.error(out, replies::TLS_ALREADY_ACTIVE);
        }
        if !matches!(
            self.cfg.listener_tls,
            ListenerTls::Starttls | ListenerTls::Required
        ) {
            return self.error(out, replies::NOT_IMPLEMENTED);
        }
        replies::START_TLS.write(out);
        Some(Event::StartTls)
    }
}
