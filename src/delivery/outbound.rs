//! The outbound connection driver: connects over io_uring, feeds the sans-IO client
//! session, runs STARTTLS under the TLS plan, and sends messages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::config::{TlsLevel, TlsVersion};
use crate::dane::DaneSet;
use crate::dsn::Decider;
use crate::net::{Stream, Transport};
use crate::proto::client::{
    ClientAction, ClientSession, OutboundTx, SessionFailure, Stage, TlsWant, TxOutcome,
};
use crate::proto::data::dot_stuff;
use crate::proto::TlsFacts;
use crate::tls::ClientVerification;

/// How TLS is handled on one connection. Connections are reused only between
/// deliveries with an equal plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsPlan {
    pub level: TlsLevel,
    pub min_version: TlsVersion,
    /// Name checked against the certificate under `verify` (and sent as SNI).
    pub peer_name: String,
    pub ca_file: Option<PathBuf>,
    /// `[[outbound_tls]] client_certificate` and `client_private_key`.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// DANE applies: TLS is required and the peer must match one of these records.
    /// `level` is then `dane` or `dane-only`; when DANE does not apply, `level` is
    /// what the DANE level fell back to (`may` or `encrypt`).
    pub dane: Option<DaneSet>,
    /// `verify` demanded by an MTA-STS `enforce` policy: the chain is checked
    /// against the system roots plus `ca_file` (`[outbound] mta_sts_ca_file`).
    pub mta_sts: bool,
}

impl TlsPlan {
    fn want(&self) -> TlsWant {
        if self.mandatory() {
            return TlsWant::Required;
        }
        match self.level {
            TlsLevel::None => TlsWant::Never,
            _ => TlsWant::Opportunistic,
        }
    }

    /// A delivery without (authenticated, when asked) TLS is not acceptable.
    pub fn mandatory(&self) -> bool {
        self.dane.is_some() || self.level.is_mandatory()
    }

    fn verification(&self) -> ClientVerification {
        match self.level {
            TlsLevel::Verify if self.mta_sts => ClientVerification::SystemAnd {
                ca_file: self.ca_file.clone(),
            },
            TlsLevel::Verify => ClientVerification::Chain {
                ca_file: self.ca_file.clone(),
            },
            _ => ClientVerification::None,
        }
    }
}

/// Why an attempt on one connection failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptError {
    /// Retry later (4xx-like) rather than fail for good.
    pub temporary: bool,
    /// RFC 3463 status, e.g. "4.4.1".
    pub status: String,
    /// Postfix-like diagnostic, e.g. "TLS is required, but was not offered by host X".
    pub text: String,
    /// A mandatory TLS level could not be met (on_failure = bounce applies).
    pub tls_policy: bool,
    /// An opportunistic handshake failed: the host may be retried in plaintext.
    pub handshake_failed: bool,
    /// No TCP connection could be made (refused, timed out, unreachable).
    pub connect_failed: bool,
    /// Who decided: the network unless the remote host replied; a TLS policy
    /// failure is named by the rule when the result is recorded.
    pub decided_by: Decider,
}

impl AttemptError {
    pub fn temp(status: &str, text: String) -> Self {
        AttemptError {
            temporary: true,
            status: status.into(),
            text,
            tls_policy: false,
            handshake_failed: false,
            connect_failed: false,
            decided_by: Decider::Network,
        }
    }
    /// The remote host refused (its reply is in the text).
    pub fn refused(status: &str, text: String) -> Self {
        AttemptError {
            decided_by: Decider::RemoteHost,
            ..AttemptError::temp(status, text)
        }
    }
    pub fn unreachable(text: String) -> Self {
        AttemptError {
            connect_failed: true,
            ..AttemptError::temp("4.4.1", text)
        }
    }
    pub fn tls(status: &str, text: String) -> Self {
        AttemptError {
            temporary: true,
            status: status.into(),
            text,
            tls_policy: true,
            handshake_failed: false,
            connect_failed: false,
            decided_by: Decider::Network,
        }
    }
}

pub struct OutboundConn {
    transport: Transport,
    session: ClientSession,
    pending: Vec<u8>,
    pub tls: Option<TlsFacts>,
    pub peer: SocketAddr,
    pub mx_name: String,
    pub peer_dsn: bool,
}

impl OutboundConn {
    /// "mx.example.com[192.0.2.1]:25", as Postfix names a relay.
    pub fn remote(&self) -> String {
        format!("{}[{}]:{}", self.mx_name, self.peer.ip(), self.peer.port())
    }

    async fn next_action(&mut self) -> Result<ClientAction, AttemptError> {
        loop {
            let mut out = Vec::new();
            let (n, action) = self.session.feed(&self.pending, &mut out);
            self.pending.drain(..n);
            if !out.is_empty() {
                self.transport.write(&out).await.map_err(|e| {
                    AttemptError::temp(
                        "4.4.2",
                        format!("lost connection with {}: {e}", self.remote()),
                    )
                })?;
            }
            if action != ClientAction::NeedMore {
                return Ok(action);
            }
            let limit = self.session.timeout();
            match tokio::time::timeout(limit, self.transport.read(&mut self.pending)).await {
                Ok(Ok(0)) => {
                    return Err(AttemptError::temp(
                        "4.4.2",
                        format!("lost connection with {} (closed by peer)", self.remote()),
                    ))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(AttemptError::temp(
                        "4.4.2",
                        format!("lost connection with {}: {e}", self.remote()),
                    ))
                }
                Err(_) => {
                    return Err(AttemptError::temp(
                        "4.4.2",
                        format!(
                            "conversation with {} timed out after {}s",
                            self.remote(),
                            limit.as_secs()
                        ),
                    ))
                }
            }
        }
    }

    /// Send one message on this connection.
    pub async fn send(&mut self, tx: &OutboundTx, body: &[u8]) -> Result<TxOutcome, AttemptError> {
        let mut out = Vec::new();
        let first = self.session.start_transaction(tx, &mut out).map_err(|f| {
            let status = f.reason.split(' ').next().unwrap_or("5.0.0").to_string();
            AttemptError {
                temporary: false,
                status,
                text: f.reason.clone(),
                tls_policy: false,
                handshake_failed: false,
                connect_failed: false,
                decided_by: Decider::RemoteHost,
            }
        })?;
        let lost = |e: std::io::Error, r: String| {
            AttemptError::temp("4.4.2", format!("lost connection with {r}: {e}"))
        };
        self.transport
            .write(&out)
            .await
            .map_err(|e| lost(e, self.remote()))?;
        if first == ClientAction::SendChunk {
            self.transport
                .write(body)
                .await
                .map_err(|e| lost(e, self.remote()))?;
        }
        loop {
            match self.next_action().await? {
                ClientAction::SendData => {
                    let mut wire = Vec::new();
                    dot_stuff(body, &mut wire);
                    self.transport
                        .write(&wire)
                        .await
                        .map_err(|e| lost(e, self.remote()))?;
                }
                ClientAction::SendChunk => {
                    self.transport
                        .write(body)
                        .await
                        .map_err(|e| lost(e, self.remote()))?;
                }
                ClientAction::Done(outcome) => return Ok(outcome),
                ClientAction::Failed(f) => return Err(session_error(&f, &self.remote())),
                other => {
                    return Err(AttemptError::temp(
                        "4.5.0",
                        format!(
                            "protocol error with {}: unexpected {other:?}",
                            self.remote()
                        ),
                    ))
                }
            }
        }
    }

    /// Say QUIT and close; errors no longer matter.
    pub async fn quit(mut self) {
        let mut out = Vec::new();
        self.session.quit(&mut out);
        if self.transport.write(&out).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.next_action()).await;
        }
        self.transport.close().await;
    }
}

fn session_error(f: &SessionFailure, remote: &str) -> AttemptError {
    let reply = f.reply.as_ref().map(|r| r.one_line());
    match f.stage {
        Stage::StartTls => match reply {
            None => AttemptError::tls(
                "4.7.4",
                format!("TLS is required, but was not offered by host {remote}"),
            ),
            Some(r) => AttemptError::tls(
                "4.7.4",
                format!("TLS is required, but host {remote} refused to start TLS: {r}"),
            ),
        },
        Stage::Greeting => AttemptError::refused(
            "4.4.0",
            format!(
                "host {remote} refused to talk to me: {}",
                reply.unwrap_or_else(|| f.reason.clone())
            ),
        ),
        Stage::Hello => AttemptError::refused(
            "4.4.0",
            format!(
                "host {remote} refused EHLO/HELO: {}",
                reply.unwrap_or_else(|| f.reason.clone())
            ),
        ),
        Stage::Protocol => AttemptError::temp(
            "4.5.0",
            format!("protocol error with {remote}: {}", f.reason),
        ),
    }
}

/// Connect, greet and (per the plan) start TLS.
pub async fn open(
    peer: SocketAddr,
    mx_name: &str,
    plan: &TlsPlan,
    helo: &str,
    connect_timeout: Duration,
    plaintext_retry: bool,
) -> Result<OutboundConn, AttemptError> {
    let remote = format!("{mx_name}[{}]:{}", peer.ip(), peer.port());
    let stream = match tokio::time::timeout(connect_timeout, Stream::connect(peer)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(AttemptError::unreachable(format!(
                "connect to {remote}: {e}"
            )))
        }
        Err(_) => {
            return Err(AttemptError::unreachable(format!(
                "connect to {remote}: Connection timed out"
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    let want = if plaintext_retry {
        TlsWant::Never
    } else {
        plan.want()
    };
    let mut conn = OutboundConn {
        transport: Transport::new(stream),
        session: ClientSession::new(helo, want),
        pending: Vec::new(),
        tls: None,
        peer,
        mx_name: mx_name.to_string(),
        peer_dsn: false,
    };
    loop {
        match conn.next_action().await? {
            ClientAction::Ready => {
                conn.peer_dsn = conn.session.capabilities().dsn;
                return Ok(conn);
            }
            ClientAction::StartTls => {
                conn.pending.clear();
                start_tls(&mut conn, plan, &remote).await?;
                let mut out = Vec::new();
                conn.session.tls_established(&mut out);
                conn.transport.write(&out).await.map_err(|e| {
                    AttemptError::temp("4.4.2", format!("lost connection with {remote}: {e}"))
                })?;
            }
            ClientAction::Failed(f) => return Err(session_error(&f, &remote)),
            other => {
                return Err(AttemptError::temp(
                    "4.5.0",
                    format!("protocol error with {remote}: unexpected {other:?}"),
                ))
            }
        }
    }
}

async fn start_tls(
    conn: &mut OutboundConn,
    plan: &TlsPlan,
    remote: &str,
) -> Result<(), AttemptError> {
    let (config, dane_outcome) = client_config(plan)
        .map_err(|e| AttemptError::tls("4.7.5", format!("TLS setup for {remote}: {e}")))?;
    let name = match plan.peer_name.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(plan.peer_name.clone()).map_err(|_| {
            AttemptError::tls("4.7.5", format!("bad TLS peer name {}", plan.peer_name))
        })?,
    };
    let client = rustls::ClientConnection::new(config, name)
        .map_err(|e| AttemptError::tls("4.7.5", format!("TLS setup for {remote}: {e}")))?;
    if let Err(e) = conn
        .transport
        .handshake(client.into(), Duration::from_secs(60))
        .await
    {
        let dane_failure = dane_outcome
            .as_ref()
            .and_then(|o| o.lock().ok().and_then(|g| g.clone()))
            .and_then(|r| r.err());
        if let (Some(why), Some(set)) = (dane_failure, &plan.dane) {
            return Err(AttemptError::tls(
                "4.7.5",
                format!(
                    "TLSA records of {} (_{}._tcp.{}) did not match the certificate of {remote}: {why}",
                    conn.mx_name,
                    conn.peer.port(),
                    set.base
                ),
            ));
        }
        let reason = crate::tls::words::io_error(&e);
        let verify_failure = reason.contains("certificate") || reason.contains("Certificate");
        let mut err = if verify_failure && plan.level == TlsLevel::Verify {
            AttemptError::tls(
                "4.7.5",
                format!("Server certificate not verified: {remote}: {reason}"),
            )
        } else {
            AttemptError::tls(
                "4.7.5",
                format!("Cannot start TLS with {remote}: handshake failure: {reason}"),
            )
        };
        if !plan.mandatory() {
            err.tls_policy = false;
            err.handshake_failed = true;
        }
        return Err(err);
    }
    let Some((version, facts)) = conn.transport.tls().and_then(|c| crate::tls::facts(c)) else {
        return Err(AttemptError::tls(
            "4.7.5",
            format!("Cannot start TLS with {remote}: no session"),
        ));
    };
    if version < plan.min_version && plan.mandatory() {
        return Err(AttemptError::tls(
            "4.7.5",
            format!(
                "TLS {} or later is required, but host {remote} negotiated {}",
                plan.min_version.name(),
                facts.version
            ),
        ));
    }
    let mut facts = facts;
    if let Some(outcome) = &dane_outcome {
        match outcome.lock().ok().and_then(|g| g.clone()) {
            Some(Ok(m)) => facts.dane = Some(m.to_string()),
            // The verifier accepted nothing else; a handshake without its verdict
            // is not authenticated.
            _ => {
                return Err(AttemptError::tls(
                    "4.7.5",
                    format!("DANE verification of {remote} did not run"),
                ))
            }
        }
    }
    conn.tls = Some(facts);
    Ok(())
}

/// Verification, minimum version, and the client certificate and key files.
type ClientConfigKey = (ClientVerification, TlsVersion, Option<(PathBuf, PathBuf)>);

thread_local! {
    /// Client configs are costly to build (roots are parsed); one per plan per shard.
    static CLIENT_CONFIGS: std::cell::RefCell<std::collections::HashMap<ClientConfigKey, Arc<rustls::ClientConfig>>> =
        Default::default();
}

type Outcome = Option<crate::tls::DaneOutcome>;

fn client_config(
    plan: &TlsPlan,
) -> Result<(Arc<rustls::ClientConfig>, Outcome), crate::tls::TlsSetupError> {
    // Opportunistic sessions accept TLS 1.2 and 1.3; the minimum only binds mandatory levels.
    let min = if plan.mandatory() {
        plan.min_version
    } else {
        TlsVersion::Tls12
    };
    if let Some(set) = &plan.dane {
        // One per connection: the verifier keeps this handshake's outcome.
        let (mut c, outcome) =
            crate::tls::dane_client_config(set.clone(), crate::tls::protocol_versions(min))?;
        if let Some((cert, private_key)) = &plan.client_certificate {
            c = crate::tls::with_client_certificate(&c, cert, private_key)?;
        }
        return Ok((c, Some(outcome)));
    }
    let key = (plan.verification(), min, plan.client_certificate.clone());
    if let Some(c) = CLIENT_CONFIGS.with(|m| m.borrow().get(&key).cloned()) {
        return Ok((c, None));
    }
    let mut c = crate::tls::client_config(&key.0, min)?;
    if let Some((cert, private_key)) = &plan.client_certificate {
        c = crate::tls::with_client_certificate(&c, cert, private_key)?;
    }
    CLIENT_CONFIGS.with(|m| m.borrow_mut().insert(key, c.clone()));
    Ok((c, None))
}
