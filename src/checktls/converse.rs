//! check-tls's conversation with one host: delivery's own connection code at level
//! `may` (STARTTLS when offered, any certificate accepted so that it can be shown
//! and judged afterwards), then MAIL/RCPT when asked, and QUIT.

use std::net::SocketAddr;

use super::CheckOptions;
use crate::config::{TlsLevel, TlsVersion};
use crate::delivery::observe::Observer;
use crate::delivery::outbound::{open_observed, TlsPlan};
use crate::proto::client::{OutboundRcpt, OutboundTx};
use crate::proto::envelope::BodyType;
use crate::queue::status::Failure;

/// Talk to `host` at `addr` with `observer` watching; how delivery would have
/// ended the session, when it ended early.
pub(super) async fn converse(
    o: &CheckOptions,
    host: &str,
    addr: SocketAddr,
    observer: Observer,
) -> Option<Failure> {
    let mut conn = match open_observed(addr, host, &plan(host), &o.helo, observer).await {
        Ok(conn) => conn,
        Err(failure) => return Some(failure),
    };
    if let Some(from) = &o.mail_from {
        if let Err(failure) = conn.probe(&envelope(from, o.rcpt_to.as_deref())).await {
            return Some(failure);
        }
    }
    conn.quit().await;
    None
}

/// Level `may`: TLS when offered, 1.2 or later, no verification in the handshake
/// (check-tls verifies the chain, the name and DANE itself, to report each).
fn plan(host: &str) -> TlsPlan {
    TlsPlan {
        level: TlsLevel::May,
        min_version: TlsVersion::Tls12,
        peer_name: host.to_string(),
        ca_file: None,
        client_certificate: None,
        dane: None,
        mta_sts: false,
    }
}

/// The envelope of `--mail-from` and `--rcpt-to`; no message is ever sent.
fn envelope(from: &str, rcpt: Option<&str>) -> OutboundTx {
    OutboundTx {
        sender: from.to_string(),
        rcpts: rcpt
            .map(|address| OutboundRcpt {
                address: address.to_string(),
                notify: None,
                orcpt: None,
            })
            .into_iter()
            .collect(),
        size: 0,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        requiretls: false,
    }
}
