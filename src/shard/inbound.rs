//! The inbound connection driver: reads from the socket, feeds the sans-IO session,
//! writes its replies (one write per pipelined group), runs STARTTLS, and stores
//! messages with a group commit before the 250 goes out.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ctx::ShardCtx;
use super::spill::{Spill, SPILL_AT};
use crate::config::ListenerTls;
use crate::metrics;
use crate::net::{Stream, Transport, WriteOutcome};
use crate::proto::auth::AuthOutcome;
use crate::proto::{Event, ServerSession, SessionConfig, Waiting};
use crate::queue::QueuedMessage;

pub async fn serve(
    ctx: Rc<ShardCtx>,
    session_cfg: Arc<SessionConfig>,
    listener: Arc<crate::config::ListenerConfig>,
    stream: Stream,
    mut peer: SocketAddr,
) {
    let mut transport = Transport::new(stream);
    let mut out = Vec::with_capacity(512);
    let mut counted = ConnectionCount::new(&listener.name);
    // The settings as they were when the connection came: a SIGHUP applies to new ones.
    let config = ctx.settings().config.clone();
    let server = &config.server;
    if listener.proxy_protocol {
        let wait = server.proxy_header_timeout.0;
        match read_proxy_header(&mut transport, &listener, peer, wait).await {
            Some(real) => peer = real,
            None => {
                transport.close().await;
                return;
            }
        }
    }
    if session_cfg.listener_tls == ListenerTls::Implicit {
        let conn = match rustls::ServerConnection::new(ctx.tls_server()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot create TLS session");
                return;
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
            return;
        }
    }
    let mut session = ServerSession::new(session_cfg, peer.ip(), ctx.ids.clone());
    if let Some((version, facts)) = transport.tls().and_then(|c| crate::tls::facts(c)) {
        counted.tls = facts.version.clone();
        session.tls_established(version, facts);
    }
    session.greeting(&mut out);
    let mut pending: Vec<u8> = Vec::new();
    let mut shutdown = ctx.shutdown.clone();
    let mut command_deadline: Option<tokio::time::Instant> = None;
    let mut body_deadline: Option<tokio::time::Instant> = None;
    // The part of the message being received that is on disk already.
    let mut spill = Spilled::None;
    let data_total = server.data_total_timeout();
    // When the last stored message's final dot was seen, until its reply is written.
    let mut message_seen: Option<std::time::Instant> = None;
    loop {
        loop {
            let fed = session.feed(&pending, SystemTime::now(), &mut out);
            pending.drain(..fed.consumed);
            if session.body_buffered() >= SPILL_AT {
                spill_body(&ctx, &mut session, &mut spill).await;
            }
            if fed.consumed > 0 && !session.mid_line() {
                command_deadline = None;
            }
            match fed.event {
                None => {
                    if !session.receiving_body() {
                        // Refused, reset or done: its spilled part goes.
                        spill = Spilled::None;
                    }
                    break;
                }
                Some(Event::Close) => {
                    metrics::global().count_inbound_replies(&out);
                    let limit = server.command_timeout.0;
                    if let WriteOutcome::Written(_) = transport
                        .write_within(std::mem::take(&mut out), limit)
                        .await
                    {
                        transport.close().await;
                    }
                    return;
                }
                Some(Event::StartTls) => {
                    let limit = server.command_timeout.0;
                    match transport
                        .write_within(std::mem::take(&mut out), limit)
                        .await
                    {
                        WriteOutcome::Written(buf) => out = buf,
                        _ => return,
                    }
                    out.clear();
                    pending.clear();
                    let conn = match rustls::ServerConnection::new(ctx.tls_server()) {
                        Ok(c) => c,
                        Err(_) => return,
                    };
                    if let Err(e) = transport
                        .handshake(conn.into(), server.tls_handshake_timeout.0)
                        .await
                    {
                        tracing::debug!(%peer, error = %e, "STARTTLS handshake failed");
                        counted.handshake_failed();
                        transport.close().await;
                        return;
                    }
                    let Some((version, facts)) = transport.tls().and_then(|c| crate::tls::facts(c))
                    else {
                        return;
                    };
                    tracing::debug!(%peer, tls = %facts.version, cipher = %facts.cipher, "STARTTLS done");
                    counted.tls = facts.version.clone();
                    session.tls_established(version, facts);
                }
                Some(Event::Authenticate) => {
                    // The check runs on the auth workers; this shard serves others meanwhile.
                    let Some(c) = session.take_credentials() else {
                        continue;
                    };
                    let answer = ctx.settings().auth.check(peer.ip(), c.login, c.password);
                    let outcome = tokio::time::timeout(crate::auth::ANSWER_TIMEOUT, answer).await;
                    let outcome = outcome.ok().and_then(Result::ok);
                    session.auth_checked(outcome.unwrap_or(AuthOutcome::Unavailable), &mut out);
                }
                Some(Event::Message) => {
                    let Some((id, envelope, body)) = session.take_message() else {
                        continue;
                    };
                    message_seen = Some(std::time::Instant::now());
                    let login = session.login().map(str::to_owned);
                    let result = match std::mem::replace(&mut spill, Spilled::None) {
                        Spilled::None => store(&ctx, id, envelope, login, None, &body).await,
                        Spilled::File(f) => store(&ctx, id, envelope, login, Some(&f), &body).await,
                        Spilled::Failed(e) => Err(e),
                    };
                    session
                        .message_stored(result.map(|_| id).map_err(|e| e.to_failure()), &mut out);
                }
            }
        }
        if !out.is_empty() {
            metrics::global().count_inbound_replies(&out);
            // A client that never reads its replies must not hold the session forever.
            let write_limit = server.command_timeout.0;
            match transport
                .write_within(std::mem::take(&mut out), write_limit)
                .await
            {
                WriteOutcome::Written(buf) => out = buf,
                WriteOutcome::Failed => return,
                WriteOutcome::Stalled => {
                    tracing::info!(%peer, "client does not read its replies; connection dropped");
                    return;
                }
            }
            out.clear();
            if let Some(seen) = message_seen.take() {
                ctx.queue.record_data_to_reply(seen.elapsed());
            }
        }
        if session.is_closed() {
            transport.close().await;
            return;
        }
        if pending.is_empty() && pending.capacity() > 64 * 1024 {
            pending = Vec::new();
        }
        let now = tokio::time::Instant::now();
        // A body as a whole has a deadline too, so a steady trickle that never
        // trips the idle timeout still ends (Postfix: smtpd_timeout plus a rate).
        if session.receiving_body() {
            body_deadline.get_or_insert(now + data_total);
        } else {
            body_deadline = None;
        }
        let idle_deadline = match session.waiting() {
            // A command must be complete within the timeout however it trickles in
            // (slowloris): the clock starts with its first byte, not each read, and
            // that includes the rest of an over-long line being skipped.
            Waiting::Command if !pending.is_empty() || session.mid_line() => {
                *command_deadline.get_or_insert(now + server.command_timeout.0)
            }
            Waiting::Command => {
                command_deadline = None;
                now + server.command_timeout.0
            }
            Waiting::Data => {
                command_deadline = None;
                now + server.data_timeout.0
            }
        };
        let deadline = body_deadline.map_or(idle_deadline, |b| b.min(idle_deadline));
        let idle_between_commands = session.waiting() == Waiting::Command && pending.is_empty();
        tokio::select! {
            read = tokio::time::timeout_at(deadline, transport.read(&mut pending)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) => {
                    if body_deadline.is_some_and(|b| b <= idle_deadline) {
                        tracing::info!(%peer, limit_secs = data_total.as_secs(), "message not received within data_total_timeout (our limit); connection closed");
                        session.body_too_slow(&mut out);
                    } else {
                        session.timed_out(&mut out);
                    }
                    if let WriteOutcome::Written(_) =
                        transport.write_within(out, server.command_timeout.0).await
                    {
                        transport.close().await;
                    }
                    return;
                }
            },
            // A shutdown interrupts only a session idle between commands; one in
            // the middle of DATA may finish (bounded by the drain deadline).
            _ = shutdown.wait_for(|stop| *stop), if idle_between_commands => {
                session.shutting_down(&mut out);
                if let WriteOutcome::Written(_) =
                    transport.write_within(out, server.command_timeout.0).await
                {
                    transport.close().await;
                }
                return;
            }
        }
    }
}

/// Read the PROXY header: only from `proxy_networks`, well-formed, within `wait`.
/// Returns the real client address; None closes the connection.
async fn read_proxy_header(
    transport: &mut Transport,
    listener: &crate::config::ListenerConfig,
    peer: SocketAddr,
    wait: Duration,
) -> Option<SocketAddr> {
    use crate::proto::proxy::{parse_proxy_header, ProxyHeader};
    if !listener
        .proxy_networks
        .iter()
        .any(|n| n.contains(peer.ip()))
    {
        tracing::warn!(%peer, listener = %listener.name, "PROXY listener: connection from outside proxy_networks refused");
        return None;
    }
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match parse_proxy_header(&buf) {
            Ok(Some((header, used))) => {
                transport.unread(&buf[used..]);
                return Some(match header {
                    ProxyHeader::Proxied { source, .. } => source,
                    ProxyHeader::Local => peer,
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad PROXY header; connection closed");
                return None;
            }
        }
        match tokio::time::timeout_at(deadline, transport.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// The body received so far that is on disk, for the message in progress.
enum Spilled {
    None,
    File(Spill),
    /// Writing it out failed: the message will be refused with this, and what
    /// more arrives of it is dropped.
    Failed(crate::queue::StoreError),
}

/// Move the session's body buffer to the spill file.
async fn spill_body(ctx: &ShardCtx, session: &mut ServerSession, spill: &mut Spilled) {
    let chunk = session.take_body_so_far();
    if let Spilled::None = spill {
        match Spill::create(&ctx.config.server.spool, ctx.index).await {
            Ok(f) => *spill = Spilled::File(f),
            Err(e) => *spill = Spilled::Failed(e.into()),
        }
    }
    if let Spilled::File(f) = spill {
        match f.append(chunk).await {
            Ok(buf) => session.reuse_body_buffer(buf),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write an arriving message to the spool; it will be refused");
                *spill = Spilled::Failed(e.into());
            }
        }
    }
}

async fn store(
    ctx: &ShardCtx,
    id: u64,
    envelope: crate::proto::Envelope,
    login: Option<String>,
    spilled: Option<&Spill>,
    tail: &[u8],
) -> Result<(), crate::queue::StoreError> {
    let size = spilled.map_or(0, |s| s.len()) + tail.len() as u64;
    let mut record = QueuedMessage::new(envelope, size);
    record.login = login;
    let reserve = ctx.settings().config.queue.min_free_space.0;
    // The whole size, spilled part included: the log holds it all before the
    // spill file goes.
    if let Ok(false) = ctx.space.has_room(&ctx.config.server.spool, reserve, size) {
        tracing::warn!(
            reserve,
            size,
            "spool file system nearly full; message refused with 452 4.3.1"
        );
        return Err(crate::queue::StoreError::NoSpace);
    }
    let durable = match spilled {
        None => ctx.queue.append(id, &record, None, tail)?,
        Some(s) => {
            let mut head = std::io::BufReader::new(s.reader()?);
            ctx.queue.append(id, &record, Some(&mut head), tail)?
        }
    };
    // The 250 waits for the shard's log sync (and the index entry made after it);
    // a failure is never indexed, so nothing of it is queued.
    durable.wait().await?;
    tracing::info!(
        id = %crate::proto::received::format_id(id),
        shard = ctx.index,
        from = %record.envelope.sender,
        rcpts = record.rcpts.len(),
        size,
        client = %record.envelope.client_ip,
        tls = record.envelope.tls.as_ref().map(|t| t.version.as_str()).unwrap_or("none"),
        cipher = record.envelope.tls.as_ref().map(|t| t.cipher.as_str()).unwrap_or("none"),
        "queued"
    );
    ctx.scheduler.enqueued(id, &record);
    metrics::global()
        .messages_received
        .get_or_create(&metrics::ListenerLabels {
            listener: record.envelope.listener.clone(),
        })
        .inc();
    Ok(())
}

/// Counts the connection once, when it ends, with the TLS it had by then.
struct ConnectionCount {
    listener: String,
    tls: String,
}

impl ConnectionCount {
    fn new(listener: &str) -> Self {
        ConnectionCount {
            listener: listener.to_string(),
            tls: "none".into(),
        }
    }

    fn handshake_failed(&self) {
        metrics::global()
            .handshake_failures
            .get_or_create(&metrics::ListenerLabels {
                listener: self.listener.clone(),
            })
            .inc();
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        metrics::global()
            .connections
            .get_or_create(&metrics::ConnectionLabels {
                listener: std::mem::take(&mut self.listener),
                tls: std::mem::take(&mut self.tls),
            })
            .inc();
    }
}
