//! The message body: DATA up to its final dot, or BDAT chunks up to the LAST;
//! our Received header first; the message handed to the driver at its end.

use std::time::{SystemTime, UNIX_EPOCH};

use super::super::content::ContentCheck;
use super::super::data::{DataDecoder, DataError};
use super::super::envelope::Envelope;
use super::super::received::{write_received, ReceivedFacts};
use super::super::requiretls::tls_required_no;
use super::dispatch::Step;
use super::replies::{self, Reply};
use super::state::{Body, Chunk, Open, Phase, Receiving, Transaction};
use super::{Event, Message, ServerSession};

/// What DATA or BDAT found.
enum Begun {
    /// The body has begun.
    Body(Receiving),
    /// Refused; the transaction that was open is handed back as it was.
    Refused { open: Open, reply: Reply },
}

impl ServerSession {
    pub(super) fn data(&mut self, now: SystemTime, out: &mut Vec<u8>) -> Option<Event> {
        let open = self.take_open();
        if let Open::Chunking(_) = open {
            self.phase = Phase::Command(open);
            return self.error(out, replies::DATA_AFTER_BDAT);
        }
        match self.begin_body(open, now) {
            Begun::Body(msg) => {
                let decoder = DataDecoder::new(self.cfg.max_message_size);
                self.phase = Phase::Data { decoder, msg };
                replies::DATA_GO_AHEAD.write(out);
                None
            }
            Begun::Refused { open, reply } => {
                self.phase = Phase::Command(open);
                self.error(out, reply)
            }
        }
    }

    pub(super) fn bdat(
        &mut self,
        size: u64,
        last: bool,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        // The chunk follows the command whatever we answer, so it is always read
        // (and dropped when refused) before the reply.
        let open = self.take_open();
        let chunk = match self.begin_body(open, now) {
            Begun::Body(msg) => Chunk::Kept { msg, last },
            Begun::Refused { open, reply } => Chunk::Refused { open, reply },
        };
        if size == 0 {
            return self.finish_chunk(chunk, size, out);
        }
        self.phase = Phase::Bdat {
            remaining: size,
            size,
            chunk,
        };
        None
    }

    /// The transaction open between commands, taken out of the phase (commands
    /// are read only in the command phase, which is left without one).
    fn take_open(&mut self) -> Open {
        match std::mem::replace(&mut self.phase, Phase::Command(Open::None)) {
            Phase::Command(open) => open,
            other => {
                self.phase = other;
                Open::None
            }
        }
    }

    /// Shared checks of DATA and BDAT; on success the body has begun: the
    /// message has its id, and its body starts with our Received header.
    fn begin_body(&self, open: Open, now: SystemTime) -> Begun {
        let refuse = |open, reply| Begun::Refused { open, reply };
        match open {
            Open::Chunking(msg) => Begun::Body(msg),
            Open::Envelope(tx) if tx.recipients.is_empty() => {
                refuse(Open::Envelope(tx), replies::NO_RECIPIENTS)
            }
            Open::Envelope(tx) => Begun::Body(Receiving {
                body: self.start_body(&tx, now),
                tx,
            }),
            Open::None if self.peer.lacks_required_tls(self.cfg.listener_tls) => {
                refuse(Open::None, replies::STARTTLS_FIRST)
            }
            Open::None => refuse(Open::None, replies::NEED_MAIL),
        }
    }

    fn start_body(&self, tx: &Transaction, now: SystemTime) -> Body {
        let id = self.ids.next();
        let arrival_ms = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let single_recipient = match tx.recipients.as_slice() {
            [only] => Some(only.address.as_str()),
            _ => None,
        };
        let peer = &self.peer;
        let mut buf = Vec::new();
        write_received(
            &mut buf,
            &ReceivedFacts {
                helo: peer.helo.as_deref().unwrap_or("unknown"),
                client_ip: peer.ip,
                hostname: &self.cfg.hostname,
                esmtp: peer.esmtp,
                tls: peer.tls.as_ref().map(|t| &t.1),
                authenticated: peer.identity.is_some(),
                shown_login: peer
                    .identity
                    .as_ref()
                    .filter(|_| self.cfg.auth.show_login_in_received)
                    .map(|i| i.login.as_str()),
                id: &self.ids.format(id),
                single_recipient,
                now,
            },
        );
        Body {
            id,
            arrival_ms,
            buf,
            bdat: ContentCheck::new(self.cfg.max_message_size),
            tls_required_no: None,
        }
    }

    /// Body octets from the start of `rest`, in the DATA or BDAT phase.
    pub(super) fn read_body(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Step {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Data {
                mut decoder,
                mut msg,
            } => {
                let (n, done) = decoder.decode(rest, &mut msg.body.buf);
                if !done {
                    self.phase = Phase::Data { decoder, msg };
                    return Step::Stop(n, None);
                }
                Step::after(n, self.finish_body(msg, decoder.error(), out))
            }
            Phase::Bdat {
                remaining,
                size,
                mut chunk,
            } => {
                let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                let data = rest.get(..take).unwrap_or(rest);
                if let Chunk::Kept { msg, .. } = &mut chunk {
                    msg.body.bdat.check(data);
                    // Past the limit (or any error) content is counted, not kept.
                    if msg.body.bdat.error().is_none() {
                        msg.body.buf.extend_from_slice(data);
                    }
                }
                let remaining = remaining.saturating_sub(data.len() as u64);
                if remaining > 0 {
                    self.phase = Phase::Bdat {
                        remaining,
                        size,
                        chunk,
                    };
                    return Step::Stop(data.len(), None);
                }
                Step::after(data.len(), self.finish_chunk(chunk, size, out))
            }
            other => {
                self.phase = other;
                Step::Stop(0, None)
            }
        }
    }

    /// A chunk is read: refuse it, acknowledge it, or end the message with it.
    fn finish_chunk(&mut self, chunk: Chunk, size: u64, out: &mut Vec<u8>) -> Option<Event> {
        match chunk {
            Chunk::Refused { open, reply } => {
                self.phase = Phase::Command(open);
                self.error(out, reply)
            }
            Chunk::Kept { mut msg, last } => {
                if last {
                    msg.body.bdat.finish();
                }
                let error = msg.body.bdat.error();
                if error.is_some() || last {
                    return self.finish_body(msg, error, out);
                }
                self.phase = Phase::Command(Open::Chunking(msg));
                replies::chunk_received(size).write(out);
                None
            }
        }
    }

    /// The end of DATA or of the last BDAT chunk: refuse the message, or hand it
    /// to the driver to store.
    fn finish_body(
        &mut self,
        msg: Receiving,
        error: Option<DataError>,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        self.phase = Phase::Command(Open::None);
        if let Some(e) = error {
            return self.error(out, replies::content_refused(e));
        }
        let Receiving { tx, body } = msg;
        let tls_required_no = !tx.params.requiretls
            && body
                .tls_required_no
                .unwrap_or_else(|| tls_required_no(&body.buf));
        let envelope = Envelope {
            requiretls: tx.params.requiretls,
            tls_required_no,
            sender: tx.sender,
            recipients: tx.recipients,
            ret: tx.params.ret,
            envid: tx.params.envid,
            body_type: tx.params.body,
            smtputf8: tx.params.smtputf8,
            client_ip: self.peer.ip,
            helo: self.peer.helo.clone().unwrap_or_default(),
            tls: self.peer.tls.as_ref().map(|t| t.1.clone()),
            arrival_ms: body.arrival_ms,
            listener: self.cfg.listener.clone(),
        };
        self.phase = Phase::AwaitingStore;
        Some(Event::Message(Box::new(Message {
            id: body.id,
            envelope,
            body: body.buf,
        })))
    }
}
