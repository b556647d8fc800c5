//! A listener's accept loop: each connection is admitted (under the shard's and
//! the client address's limits) or refused with a 421, and served on its own task.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::ctx::{ConnectionGuard, InboundCtx};
use super::inbound;
use super::iplimit::Refusal;
use crate::net::{Listener, Stream};

/// Accept on `listener` (the listener named `name`) until `stop` says so.
pub(super) fn spawn_acceptor(
    ctx: Rc<InboundCtx>,
    name: String,
    listener: Listener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::task::spawn_local(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => admit(&ctx, &name, stream, peer),
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    });
}

/// Serve the connection, or refuse it when the shard or the client's address
/// is at its limit (the operator's `max_connections_per_shard`,
/// `max_connections_per_ip`, `connection_rate_per_ip`).
fn admit(ctx: &Rc<InboundCtx>, name: &str, stream: Stream, peer: SocketAddr) {
    let settings = ctx.settings();
    let Some((session_cfg, listener_cfg)) = settings.sessions.get(name).cloned() else {
        return;
    };
    let host = &settings.config.server.hostname;
    if ctx.connections.get() >= settings.config.server.max_connections_per_shard {
        let text = format!("{host} Error: too many connections, try again later");
        tokio::task::spawn_local(refuse(stream, text));
        return;
    }
    if let Err(why) = ctx
        .ip_limits
        .borrow_mut()
        .admit(peer.ip(), std::time::Instant::now())
    {
        tracing::info!(%peer, reason = why.describe(), "connection refused by per-address limit");
        let text = match why {
            Refusal::TooManyOpen => format!("{host} Error: too many connections from your address"),
            Refusal::TooFast => {
                format!("{host} Error: too many connections from your address per minute")
            }
        };
        tokio::task::spawn_local(refuse(stream, text));
        return;
    }
    let guard = ConnectionGuard::new(ctx.clone(), peer.ip());
    tokio::task::spawn_local(async move {
        let ctx = guard.0.clone();
        inbound::serve(ctx, session_cfg, listener_cfg, stream, peer).await;
        drop(guard);
    });
}

async fn refuse(mut stream: Stream, text: String) {
    let msg = format!("421 4.7.0 {text}\r\n").into_bytes();
    let _ = stream.write_all(msg).await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
