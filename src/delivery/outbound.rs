//! The outbound connection driver: connects over io_uring, feeds the sans-IO client
//! session, runs STARTTLS under the TLS plan, and sends messages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use super::observe::{Observer, Seen};
use crate::config::{Dur, OutboundConfig, TlsLevel, TlsVersion};
use crate::dane::DaneSet;
use crate::net::{Stream, Transport};
use crate::proto::client::{
    ClientAction, ClientSession, OutboundTx, PeerLimit, ReplyTimeouts, SessionFailure, Stage,
    TlsWant, TxOutcome,
};
use crate::proto::data::dot_stuff;
use crate::proto::TlsFacts;
use crate::queue::status::{Failure, ProtocolProblem, TlsProblem};
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

fn lost(text: String) -> Failure {
    Failure::Protocol {
        problem: ProtocolProblem::LostConnection,
        text,
    }
}

fn tls(problem: TlsProblem, text: String) -> Failure {
    // The rule that required TLS is named by the caller, which knows the decision.
    Failure::Tls {
        problem,
        text,
        required_by: None,
    }
}

fn unexpected(remote: &str, what: &ClientAction) -> Failure {
    let what = match what {
        ClientAction::NeedMore => "a need for more input",
        ClientAction::StartTls => "a STARTTLS go-ahead",
        ClientAction::Ready => "a ready session",
        ClientAction::SendData => "a request for the message data",
        ClientAction::SendChunk => "a request for a BDAT chunk",
        ClientAction::Done(_) => "the end of a transaction",
        ClientAction::Failed(_) => "a failure",
        ClientAction::Closed => "the end of the session",
    };
    Failure::Protocol {
        problem: ProtocolProblem::Unexpected,
        text: format!("protocol error with {remote}: unexpected {what}"),
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
    /// check-tls's: what this connection sent, received and negotiated.
    observer: Option<Observer>,
}

impl OutboundConn {
    /// "mx.example.com[192.0.2.1]:25", as Postfix names a relay.
    pub fn remote(&self) -> String {
        format!("{}[{}]:{}", self.mx_name, self.peer.ip(), self.peer.port())
    }

    /// Write what the session wrote, telling the observer first.
    async fn write_commands(&mut self, out: &[u8]) -> std::io::Result<()> {
        if let Some(o) = &self.observer {
            o.sent(out, self.session.tls_active());
        }
        self.transport.write(out).await
    }

    async fn next_action(&mut self) -> Result<ClientAction, Failure> {
        loop {
            let mut out = Vec::new();
            let tls = self.session.tls_active();
            let (n, action) = self.session.feed(&self.pending, &mut out);
            if let Some(o) = &self.observer {
                o.received(&self.pending[..n], tls);
            }
            self.pending.drain(..n);
            if !out.is_empty() {
                self.write_commands(&out)
                    .await
                    .map_err(|e| lost(format!("lost connection with {}: {e}", self.remote())))?;
            }
            if action != ClientAction::NeedMore {
                return Ok(action);
            }
            let limit = self
                .observer
                .as_ref()
                .map_or_else(|| self.session.timeout(), |o| o.timeout);
            match tokio::time::timeout(limit, self.transport.read(&mut self.pending)).await {
                Ok(Ok(0)) => {
                    return Err(lost(format!(
                        "lost connection with {} (closed by peer)",
                        self.remote()
                    )))
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(lost(format!("lost connection with {}: {e}", self.remote())))
                }
                Err(_) => {
                    return Err(lost(format!(
                        "conversation with {} timed out after {}s",
                        self.remote(),
                        limit.as_secs()
                    )))
                }
            }
        }
    }

    /// Send one message on this connection.
    pub async fn send(&mut self, tx: &OutboundTx, body: &[u8]) -> Result<TxOutcome, Failure> {
        let mut out = Vec::new();
        let first = self
            .session
            .start_transaction(tx, &mut out)
            .map_err(|f| session_error(&f, &self.remote()))?;
        let lost = |e: std::io::Error, r: String| lost(format!("lost connection with {r}: {e}"));
        self.write_commands(&out)
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
                other => return Err(unexpected(&self.remote(), &other)),
            }
        }
    }

    /// MAIL FROM and RCPT TO, never DATA (check-tls's `--mail-from`): the
    /// replies, one command at a time; the session is ready again afterwards.
    pub async fn probe(&mut self, tx: &OutboundTx) -> Result<TxOutcome, Failure> {
        let mut out = Vec::new();
        self.session
            .start_probe(tx, &mut out)
            .map_err(|f| session_error(&f, &self.remote()))?;
        self.write_commands(&out)
            .await
            .map_err(|e| lost(format!("lost connection with {}: {e}", self.remote())))?;
        match self.next_action().await? {
            ClientAction::Done(outcome) => Ok(outcome),
            ClientAction::Failed(f) => Err(session_error(&f, &self.remote())),
            other => Err(unexpected(&self.remote(), &other)),
        }
    }

    /// Say QUIT and close; errors no longer matter.
    pub async fn quit(mut self) {
        let mut out = Vec::new();
        self.session.quit(&mut out);
        if self.write_commands(&out).await.is_ok() {
            // In all, however the reply trickles: `[outbound] quit_timeout`.
            let _ = tokio::time::timeout(self.session.timeout(), self.next_action()).await;
        }
        self.transport.close().await;
    }
}

fn session_error(f: &SessionFailure, remote: &str) -> Failure {
    let reply = f.reply.as_ref().map(|r| r.one_line());
    let refused = |text| Failure::Protocol {
        problem: ProtocolProblem::SessionRefused,
        text,
    };
    match f.stage {
        Stage::StartTls => match reply {
            None => tls(
                TlsProblem::NotOffered,
                format!("TLS is required, but was not offered by host {remote}"),
            ),
            Some(r) => tls(
                TlsProblem::Refused,
                format!("TLS is required, but host {remote} refused to start TLS: {r}"),
            ),
        },
        Stage::Greeting => refused(format!(
            "host {remote} refused to talk to me: {}",
            reply.unwrap_or_else(|| f.reason.clone())
        )),
        Stage::Hello => refused(format!(
            "host {remote} refused EHLO/HELO: {}",
            reply.unwrap_or_else(|| f.reason.clone())
        )),
        Stage::Protocol => Failure::Protocol {
            problem: ProtocolProblem::Unexpected,
            text: format!("protocol error with {remote}: {}", f.reason),
        },
        Stage::PeerLimit(limit) => Failure::Protocol {
            problem: match limit {
                PeerLimit::MessageTooBig => ProtocolProblem::MessageTooBig,
                PeerLimit::NoSmtpUtf8 => ProtocolProblem::NoSmtpUtf8,
                PeerLimit::NoRequireTls => ProtocolProblem::NoRequireTls,
            },
            text: f.reason.clone(),
        },
    }
}

/// Connect, greet and (per the plan) start TLS.
pub async fn open(
    peer: SocketAddr,
    mx_name: &str,
    plan: &TlsPlan,
    helo: &str,
    timeouts: &OutboundConfig,
    plaintext_retry: bool,
) -> Result<OutboundConn, Failure> {
    open_with(peer, mx_name, plan, helo, timeouts, plaintext_retry, None).await
}

/// `open` with an observer (check-tls), whose timeout bounds the connect, every
/// reply and the handshake.
pub async fn open_observed(
    peer: SocketAddr,
    mx_name: &str,
    plan: &TlsPlan,
    helo: &str,
    observer: Observer,
) -> Result<OutboundConn, Failure> {
    // The observer's limit also bounds each reply (see `next_action`).
    let timeouts = OutboundConfig {
        connect_timeout: Dur(observer.timeout),
        tls_handshake_timeout: Dur(observer.timeout),
        ..OutboundConfig::default()
    };
    open_with(peer, mx_name, plan, helo, &timeouts, false, Some(observer)).await
}

async fn open_with(
    peer: SocketAddr,
    mx_name: &str,
    plan: &TlsPlan,
    helo: &str,
    timeouts: &OutboundConfig,
    plaintext_retry: bool,
    observer: Option<Observer>,
) -> Result<OutboundConn, Failure> {
    let remote = format!("{mx_name}[{}]:{}", peer.ip(), peer.port());
    let connect = tokio::time::timeout(timeouts.connect_timeout.0, Stream::connect(peer));
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Failure::Connect {
                text: format!("connect to {remote}: {e}"),
            })
        }
        Err(_) => {
            return Err(Failure::Connect {
                text: format!("connect to {remote}: Connection timed out"),
            })
        }
    };
    let _ = stream.set_nodelay(true);
    if let Some(o) = &observer {
        o.record(Seen::Connected);
    }
    let want = if plaintext_retry {
        TlsWant::Never
    } else {
        plan.want()
    };
    let mut conn = OutboundConn {
        transport: Transport::new(stream),
        session: ClientSession::with_timeouts(helo, want, ReplyTimeouts::from_config(timeouts)),
        pending: Vec::new(),
        tls: None,
        peer,
        mx_name: mx_name.to_string(),
        peer_dsn: false,
        observer,
    };
    loop {
        match conn.next_action().await? {
            ClientAction::Ready => {
                conn.peer_dsn = conn.session.capabilities().dsn;
                return Ok(conn);
            }
            ClientAction::StartTls => {
                conn.pending.clear();
                start_tls(&mut conn, plan, &remote, timeouts.tls_handshake_timeout.0).await?;
                let mut out = Vec::new();
                conn.session.tls_established(&mut out);
                conn.write_commands(&out)
                    .await
                    .map_err(|e| lost(format!("lost connection with {remote}: {e}")))?;
            }
            ClientAction::Failed(f) => return Err(session_error(&f, &remote)),
            other => return Err(unexpected(&remote, &other)),
        }
    }
}

async fn start_tls(
    conn: &mut OutboundConn,
    plan: &TlsPlan,
    remote: &str,
    handshake_timeout: Duration,
) -> Result<(), Failure> {
    let (config, dane_outcome) = client_config(plan)
        .map_err(|e| tls(TlsProblem::Setup, format!("TLS setup for {remote}: {e}")))?;
    let name = match plan.peer_name.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(plan.peer_name.clone()).map_err(|_| {
            tls(
                TlsProblem::Setup,
                format!("bad TLS peer name {}", plan.peer_name),
            )
        })?,
    };
    let client = rustls::ClientConnection::new(config, name)
        .map_err(|e| tls(TlsProblem::Setup, format!("TLS setup for {remote}: {e}")))?;
    if let Err(e) = conn
        .transport
        .handshake(client.into(), handshake_timeout)
        .await
    {
        if let Some(o) = &conn.observer {
            let reason = crate::tls::words::io_error(&e);
            o.record(Seen::TlsFailed { reason });
        }
        let dane_failure = dane_outcome
            .as_ref()
            .and_then(|o| o.lock().ok().and_then(|g| g.clone()))
            .and_then(|r| r.err());
        if let (Some(why), Some(set)) = (dane_failure, &plan.dane) {
            return Err(tls(
                TlsProblem::DaneMismatch,
                format!(
                    "TLSA records of {} (_{}._tcp.{}) did not match the certificate of {remote}: {why}",
                    conn.mx_name,
                    conn.peer.port(),
                    set.base
                ),
            ));
        }
        let reason = crate::tls::words::io_error(&e);
        // Classified on the rustls error itself, not on its words.
        let rustls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        let not_verified = matches!(
            rustls_error,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        );
        return Err(if not_verified && plan.level == TlsLevel::Verify {
            tls(
                TlsProblem::CertificateNotVerified,
                format!("Server certificate not verified: {remote}: {reason}"),
            )
        } else {
            tls(
                TlsProblem::Handshake,
                format!("Cannot start TLS with {remote}: handshake failure: {reason}"),
            )
        });
    }
    let Some((version, facts)) = conn.transport.tls().and_then(|c| crate::tls::facts(c)) else {
        return Err(tls(
            TlsProblem::Handshake,
            format!("Cannot start TLS with {remote}: no session"),
        ));
    };
    if let Some(o) = &conn.observer {
        let chain = conn.transport.tls().and_then(|c| c.peer_certificates());
        let chain = chain.unwrap_or(&[]).iter().map(|c| c.to_vec()).collect();
        let facts = facts.clone();
        o.record(Seen::TlsUp { facts, chain });
    }
    if version < plan.min_version && plan.mandatory() {
        return Err(tls(
            TlsProblem::VersionTooOld,
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
                return Err(tls(
                    TlsProblem::DaneMismatch,
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

/// Forget the cached client configs of this thread, so the next connection reads
/// its CA bundle and client certificate files again. A shard calls it when it
/// takes reloaded settings: a SIGHUP after a CA file was replaced in place
/// applies it.
pub fn forget_client_configs() {
    CLIENT_CONFIGS.with(|m| m.borrow_mut().clear());
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
