//! What one outbound connection saw: every command sent, every reply received and
//! the TLS handshake's result, each with the moment it happened. Delivery runs
//! without an observer; check-tls gives one to the very `open` delivery uses and
//! prints what it saw, so the check and delivery cannot drift apart.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::proto::reply::ParsedReply;
use crate::proto::TlsFacts;

/// One thing the connection saw.
#[derive(Clone, Debug)]
pub enum Seen {
    /// The TCP connection is up.
    Connected,
    /// A command line we sent (without its CRLF); `tls` when over TLS.
    Sent { line: String, tls: bool },
    /// A whole reply from the server.
    Received { reply: ParsedReply, tls: bool },
    /// The handshake completed: what was negotiated and the chain the server sent
    /// (DER, leaf first).
    TlsUp {
        facts: TlsFacts,
        chain: Vec<Vec<u8>>,
    },
    /// The handshake failed, in words for a person.
    TlsFailed { reason: String },
}

#[derive(Clone, Debug)]
pub struct Observed {
    pub at: Instant,
    pub seen: Seen,
}

/// Shared with the connection, read by whoever made it once the connection is
/// done (also when `open` failed and the connection is gone).
#[derive(Clone)]
pub struct Observer {
    log: Arc<Mutex<Vec<Observed>>>,
    /// Wait this long for each reply, the connection and the handshake instead of
    /// delivery's limits (check-tls's `--timeout`).
    pub timeout: Duration,
}

impl Observer {
    pub fn new(timeout: Duration) -> Self {
        Observer {
            log: Arc::default(),
            timeout,
        }
    }

    fn log(&self) -> MutexGuard<'_, Vec<Observed>> {
        // A panic elsewhere while holding the lock leaves a log still worth reading.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, seen: Seen) {
        self.log().push(Observed {
            at: Instant::now(),
            seen,
        });
    }

    /// Commands as the session wrote them (one or more CRLF-ended lines).
    pub(super) fn sent(&self, wire: &[u8], tls: bool) {
        for line in String::from_utf8_lossy(wire).split("\r\n") {
            if !line.is_empty() {
                self.record(Seen::Sent {
                    line: line.to_string(),
                    tls,
                });
            }
        }
    }

    /// The replies in `consumed`, the bytes the session just took.
    pub(super) fn received(&self, mut consumed: &[u8], tls: bool) {
        while let Ok(Some((reply, n))) = crate::proto::reply::parse_reply(consumed) {
            self.record(Seen::Received { reply, tls });
            consumed = &consumed[n..];
        }
    }

    /// Everything seen so far, in order; the log is left empty.
    pub fn take(&self) -> Vec<Observed> {
        std::mem::take(&mut *self.log())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_commands_and_replies_are_split_into_lines_and_replies() {
        let o = Observer::new(Duration::from_secs(1));
        o.sent(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", true);
        o.received(b"250-x\r\n250 y\r\n550 no\r\n", false);
        let seen: Vec<String> = o
            .take()
            .into_iter()
            .map(|e| match e.seen {
                Seen::Sent { line, tls } => format!("sent {line} {tls}"),
                Seen::Received { reply, tls } => {
                    format!("got {} {} {tls}", reply.code, reply.lines.len())
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                "sent MAIL FROM:<a@b> true",
                "sent RCPT TO:<c@d> true",
                "got 250 2 false",
                "got 550 1 false"
            ]
        );
        assert!(o.take().is_empty(), "take empties the log");
    }
}
