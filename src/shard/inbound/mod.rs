//! The inbound connection driver: reads from the socket, feeds the sans-IO session,
//! writes its replies (one write per pipelined group), runs STARTTLS, and stores
//! messages with a group commit before the 250 goes out. `events` handles what
//! the session asks of the driver, `store` the message's way to the queue.

mod count;
mod events;
mod proxy;
mod store;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::ctx::InboundCtx;
use super::spill::SPILL_AT;
use crate::config::{Config, ListenerConfig, ListenerTls};
use crate::metrics;
use crate::net::{Stream, Transport, WriteOutcome};
use crate::proto::{ServerSession, SessionConfig, Waiting};
use count::ConnectionCount;
use store::Spilled;

/// Whether the connection goes on after a step.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    /// Over: the client left, or a write failed.
    Stop,
    /// Over once the replies gathered are written, if the client takes them in time.
    SayAndClose,
    /// Over: shut the socket down now (a read a timeout left on the ring ends,
    /// and the client sees the close at once).
    Shut,
}

/// One client connection and its session.
struct Connection {
    ctx: Rc<InboundCtx>,
    /// The settings when the session began: a SIGHUP applies to new sessions.
    config: Arc<Config>,
    peer: SocketAddr,
    transport: Transport,
    session: ServerSession,
    /// Replies not yet written.
    out: Vec<u8>,
    /// Bytes read and not yet consumed by the session.
    pending: Vec<u8>,
    counted: ConnectionCount,
    /// The part of the message being received that is on disk already.
    spill: Spilled,
    /// When the last stored message's final dot was seen, until its reply is written.
    message_seen: Option<std::time::Instant>,
    /// When the command being received must be complete (slowloris).
    command_deadline: Option<Instant>,
    /// When the body being received must be complete (`data_total_timeout`).
    body_deadline: Option<Instant>,
}

pub async fn serve(
    ctx: Rc<InboundCtx>,
    session_cfg: Arc<SessionConfig>,
    listener: Arc<ListenerConfig>,
    stream: Stream,
    peer: SocketAddr,
) {
    if let Some(conn) = Connection::open(ctx, session_cfg, &listener, stream, peer).await {
        conn.run().await;
    }
}

impl Connection {
    /// The PROXY header and implicit TLS when the listener has them, then the
    /// greeting. None when the connection ends before the session begins.
    async fn open(
        ctx: Rc<InboundCtx>,
        session_cfg: Arc<SessionConfig>,
        listener: &ListenerConfig,
        stream: Stream,
        mut peer: SocketAddr,
    ) -> Option<Connection> {
        let mut transport = Transport::new(stream);
        let mut counted = ConnectionCount::new(&listener.name);
        // The settings as they were when the connection came: a SIGHUP applies to new ones.
        let config = ctx.settings().config.clone();
        let server = &config.server;
        if listener.proxy_protocol {
            let wait = server.proxy_header_timeout.0;
            match proxy::read_proxy_header(&mut transport, listener, peer, wait).await {
                Some(real) => peer = real,
                None => {
                    transport.close().await;
                    return None;
                }
            }
        }
        if session_cfg.listener_tls == ListenerTls::Implicit {
            let conn = match rustls::ServerConnection::new(ctx.tls_server()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot create TLS session");
                    return None;
                }
            };
            if let Err(e) = transport
                .handshake(conn.into(), server.tls_handshake_timeout.0)
                .await
            {
                tracing::debug!(%peer, error = %e, "implicit TLS handshake failed");
                counted.handshake_failed();
                // Shut down, so a read left on the ring by the timeout ends and the
                // socket closes now, not when the client finally sends or goes.
                transport.close().await;
                return None;
            }
        }
        let mut session = ServerSession::new(session_cfg, peer.ip(), ctx.ids.clone());
        if let Some((version, facts)) = transport.tls().and_then(|c| crate::tls::facts(c)) {
            counted.tls = facts.version.clone();
            session.tls_established(version, facts);
        }
        let mut out = Vec::with_capacity(512);
        session.greeting(&mut out);
        Some(Connection {
            ctx,
            config,
            peer,
            transport,
            session,
            out,
            pending: Vec::new(),
            counted,
            spill: Spilled::None,
            message_seen: None,
            command_deadline: None,
            body_deadline: None,
        })
    }

    async fn run(mut self) {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            let mut flow = self.consume_input().await;
            if flow == Flow::Go {
                flow = self.flush().await;
            }
            if flow == Flow::Go && self.session.is_closed() {
                self.transport.close().await;
                return;
            }
            if self.pending.is_empty() && self.pending.capacity() > 64 * 1024 {
                self.pending = Vec::new();
            }
            if flow == Flow::Go {
                flow = self.wait_for_input(&mut shutdown).await;
            }
            match flow {
                Flow::Go => {}
                Flow::Stop => return,
                Flow::SayAndClose => return self.say_and_close().await,
                Flow::Shut => return self.transport.close().await,
            }
        }
    }

    /// Feed what was read to the session until it needs more, acting on each
    /// event it raises.
    async fn consume_input(&mut self) -> Flow {
        loop {
            let fed = self
                .session
                .feed(&self.pending, SystemTime::now(), &mut self.out);
            self.pending.drain(..fed.consumed);
            if self.session.body_buffered() >= SPILL_AT {
                store::spill_body(&self.ctx, &mut self.session, &mut self.spill).await;
            }
            if fed.consumed > 0 && !self.session.mid_line() {
                self.command_deadline = None;
            }
            match fed.event {
                None => {
                    if !self.session.receiving_body() {
                        // Refused, reset or done: its spilled part goes.
                        self.spill = Spilled::None;
                    }
                    return Flow::Go;
                }
                Some(event) => match self.on_event(event).await {
                    Flow::Go => {}
                    over => return over,
                },
            }
        }
    }

    /// Write the replies gathered so far, in one write.
    async fn flush(&mut self) -> Flow {
        if self.out.is_empty() {
            return Flow::Go;
        }
        metrics::global().count_inbound_replies(&self.out);
        // A client that never reads its replies must not hold the session forever.
        let write_limit = self.config.server.command_timeout.0;
        match self
            .transport
            .write_within(std::mem::take(&mut self.out), write_limit)
            .await
        {
            WriteOutcome::Written(buf) => self.out = buf,
            WriteOutcome::Failed => return Flow::Stop,
            WriteOutcome::Stalled => {
                tracing::info!(peer = %self.peer, "client does not read its replies; connection dropped");
                return Flow::Stop;
            }
        }
        self.out.clear();
        if let Some(seen) = self.message_seen.take() {
            self.ctx.queue.record_data_to_reply(seen.elapsed());
        }
        Flow::Go
    }

    /// When the session must hear from the client next: the command or body
    /// idle timeout, or the whole command's or body's deadline, if sooner.
    /// Returns it, and whether it is the body's deadline.
    fn next_deadline(&mut self) -> (Instant, bool) {
        let server = &self.config.server;
        let now = Instant::now();
        // A body as a whole has a deadline too, so a steady trickle that never
        // trips the idle timeout still ends (Postfix: smtpd_timeout plus a rate).
        if self.session.receiving_body() {
            // Set once per body, not on every read.
            self.body_deadline
                .get_or_insert_with(|| now + server.data_total_timeout());
        } else {
            self.body_deadline = None;
        }
        let idle_deadline = match self.session.waiting() {
            // A command must be complete within the timeout however it trickles in
            // (slowloris): the clock starts with its first byte, not each read, and
            // that includes the rest of an over-long line being skipped.
            Waiting::Command if !self.pending.is_empty() || self.session.mid_line() => *self
                .command_deadline
                .get_or_insert(now + server.command_timeout.0),
            Waiting::Command => {
                self.command_deadline = None;
                now + server.command_timeout.0
            }
            Waiting::Data => {
                self.command_deadline = None;
                now + server.data_timeout.0
            }
        };
        match self.body_deadline {
            Some(b) if b <= idle_deadline => (b, true),
            _ => (idle_deadline, false),
        }
    }

    /// Read more, within the deadline; a shutdown interrupts only a session idle
    /// between commands (one in the middle of DATA may finish, bounded by the
    /// drain deadline).
    async fn wait_for_input(&mut self, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> Flow {
        let (deadline, body_limit) = self.next_deadline();
        let idle_between_commands =
            self.session.waiting() == Waiting::Command && self.pending.is_empty();
        tokio::select! {
            read = tokio::time::timeout_at(deadline, self.transport.read(&mut self.pending)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => Flow::Stop,
                Ok(Ok(_)) => Flow::Go,
                Err(_) => {
                    if body_limit {
                        let limit = self.config.server.data_total_timeout();
                        tracing::info!(peer = %self.peer, limit_secs = limit.as_secs(), "message not received within data_total_timeout (our limit); connection closed");
                        self.session.body_too_slow(&mut self.out);
                    } else {
                        self.session.timed_out(&mut self.out);
                    }
                    Flow::SayAndClose
                }
            },
            _ = shutdown.wait_for(|stop| *stop), if idle_between_commands => {
                self.session.shutting_down(&mut self.out);
                Flow::SayAndClose
            }
        }
    }

    /// Write the last replies and close, if the client takes them in time.
    async fn say_and_close(mut self) {
        let limit = self.config.server.command_timeout.0;
        if let WriteOutcome::Written(_) = self.transport.write_within(self.out, limit).await {
            self.transport.close().await;
        }
    }
}
