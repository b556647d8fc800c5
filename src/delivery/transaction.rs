//! One SMTP transaction for one group of recipients: on a pooled connection when
//! one is open to the address with the same TLS, else on a new one; then each
//! recipient's result read from the replies.

use std::net::SocketAddr;

use super::attempt::Message;
use super::outbound::{open, OutboundConn, TlsPlan};
use super::outcome::RcptResult;
use crate::proto::client::{OutboundRcpt, OutboundTx, TxOutcome};
use crate::proto::reply::ParsedReply;
use crate::proto::TlsFacts;
use crate::queue::status::{Failure, ProtocolProblem, RemoteMta, Reply, Status, TlsProblem};

/// A transaction the peer answered (each reply may still refuse).
pub(super) struct Sent {
    /// The peer as the log and the DSN name it: `host[ip]:port`.
    pub remote: String,
    pub tls: Option<TlsFacts>,
    /// Whether the peer offered DSN (so its own DSNs take over ours).
    pub peer_dsn: bool,
    pub outcome: TxOutcome,
}

impl Message<'_> {
    /// Send the message to `group` at `addr` with `plan`.
    pub(super) async fn transmit(
        &self,
        addr: SocketAddr,
        host: &str,
        plan: &TlsPlan,
        group: &[usize],
    ) -> Result<Sent, Failure> {
        let (d, config, rec) = (self.d, self.config, self.rec);
        let _slot = d.pool.slot(addr).await;
        // Only canonical lines leave (BDAT too, whose size must then be the new one).
        let body = &*crate::proto::encode::canonical(self.body);
        let tx = OutboundTx {
            sender: rec.envelope.sender.clone(),
            rcpts: group
                .iter()
                .map(|&i| {
                    let r = &rec.rcpts[i].rcpt;
                    OutboundRcpt {
                        address: r.address.clone(),
                        notify: r.notify,
                        orcpt: r.orcpt.clone(),
                    }
                })
                .collect(),
            size: body.len() as u64,
            body_type: rec.envelope.body_type,
            smtputf8: rec.envelope.smtputf8,
            ret: rec.envelope.ret,
            envid: rec.envelope.envid.clone(),
            requiretls: rec.envelope.requiretls,
        };
        let idle = config.outbound.idle_timeout.0;
        if let Some(mut conn) = d.pool.checkout(addr, plan, idle) {
            if let Ok(outcome) = conn.send(&tx, body).await {
                return Ok(self.finish(plan, conn, outcome));
            }
            // A reused connection may have been closed by the peer: use a fresh one.
        }
        let helo = &config.server.hostname;
        let timeouts = &config.outbound;
        let mut conn = match open(addr, host, plan, helo, timeouts, false).await {
            Ok(c) => c,
            // Postfix at level `may`: a failed handshake is retried in plaintext.
            Err(
                e @ Failure::Tls {
                    problem: TlsProblem::Handshake | TlsProblem::CertificateNotVerified,
                    ..
                },
            ) if !plan.mandatory() => {
                tracing::info!(relay = %host, mx_ip = %addr, error = %e.text(), "TLS handshake failed; retrying in plaintext");
                open(addr, host, plan, helo, timeouts, true).await?
            }
            Err(e) => return Err(e),
        };
        let outcome = conn.send(&tx, body).await?;
        Ok(self.finish(plan, conn, outcome))
    }

    /// The connection goes back to the pool for the next message to the address.
    fn finish(&self, plan: &TlsPlan, conn: OutboundConn, outcome: TxOutcome) -> Sent {
        let sent = Sent {
            remote: conn.remote(),
            tls: conn.tls.clone(),
            peer_dsn: conn.peer_dsn,
            outcome,
        };
        self.d.pool.checkin(plan.clone(), conn);
        sent
    }
}

/// The result for the `k`th recipient of a transaction.
pub(super) fn classify(o: &TxOutcome, k: usize, remote: &RemoteMta) -> RcptResult {
    let remote = Some(remote.clone());
    let from = |reply: &ParsedReply| {
        let reply = Reply::from_parsed(reply);
        if reply.is_positive() {
            RcptResult {
                status: Status::Delivered {
                    reply,
                    remote: remote.clone(),
                },
                peer_dsn: false,
            }
        } else {
            RcptResult::failed(Failure::Remote { reply }, remote.clone())
        }
    };
    let no_reply = |text: &str| {
        RcptResult::failed(
            Failure::Protocol {
                problem: ProtocolProblem::LostConnection,
                text: text.into(),
            },
            remote.clone(),
        )
    };
    if !o.mail.is_positive() {
        return from(&o.mail);
    }
    match o.rcpts.get(k) {
        Some(Some(r)) if !r.is_positive() => from(r),
        Some(Some(_)) => match &o.data {
            Some(d) => from(d),
            None => no_reply("no reply to the end of data"),
        },
        _ => no_reply("no reply to RCPT"),
    }
}
