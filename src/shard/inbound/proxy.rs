//! The PROXY protocol header (v1 or v2) in front of a session, from a trusted
//! load balancer only.

use std::net::SocketAddr;
use std::time::Duration;

use crate::net::Transport;

/// Read the PROXY header: only from `proxy_networks`, well-formed, within `wait`.
/// Returns the real client address; None closes the connection.
pub(super) async fn read_proxy_header(
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
