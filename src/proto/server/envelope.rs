//! The envelope commands: HELO/EHLO, MAIL and RCPT, with the policy's say on
//! relaying and on the TLS a sender or recipient needs.

use super::super::address::{parse_path, split_path, AddressError};
use super::super::envelope::Recipient;
use super::super::params::{parse_mail_params, parse_rcpt_params};
use super::replies::{self, Reply};
use super::state::{Open, Peer, Phase, Transaction};
use super::{Event, ServerSession, SessionConfig};
use crate::config::{ListenerAuth, ListenerTls};

impl ServerSession {
    /// HELO or EHLO: the client starts over, and says what it is called.
    pub(super) fn hello(&mut self, name: &str, esmtp: bool, out: &mut Vec<u8>) -> Option<Event> {
        self.phase = Phase::Command(Open::None);
        self.peer.helo = Some(name.to_string());
        self.peer.esmtp = esmtp;
        if !esmtp {
            replies::helo(&self.cfg.hostname).write(out);
            return None;
        }
        let tls = self.peer.tls.is_some();
        let mut extensions = Vec::new();
        if !tls
            && matches!(
                self.cfg.listener_tls,
                ListenerTls::Starttls | ListenerTls::Required
            )
        {
            extensions.push("STARTTLS");
        }
        // RFC 4954 4: mechanisms that send passwords are offered only under TLS.
        if tls && self.cfg.auth.mode.enabled() {
            extensions.push("AUTH PLAIN LOGIN");
        }
        // RFC 8689 2: only over TLS.
        if tls {
            extensions.push("REQUIRETLS");
        }
        replies::ehlo(
            out,
            &self.cfg.hostname,
            self.cfg.max_message_size,
            &extensions,
        );
        None
    }

    /// MAIL: open a transaction.
    pub(super) fn mail(&mut self, arg: &str) -> Result<Reply, Reply> {
        let tx = self.new_transaction(arg)?;
        self.phase = Phase::Command(Open::Envelope(tx));
        Ok(replies::SENDER_OK)
    }

    fn new_transaction(&self, arg: &str) -> Result<Transaction, Reply> {
        let (cfg, peer) = (&*self.cfg, &self.peer);
        if peer.helo.is_none() {
            return Err(replies::HELO_FIRST);
        }
        // A `required` listener is a floor: rules may add to it (a minimum version)
        // but never exempt a plaintext session (the "securemx" promise).
        if peer.lacks_required_tls(cfg.listener_tls) {
            return Err(replies::STARTTLS_FIRST);
        }
        if cfg.auth.mode == ListenerAuth::Required && peer.identity.is_none() {
            return Err(replies::AUTH_REQUIRED);
        }
        if !self.phase.idle() {
            return Err(replies::NESTED_MAIL);
        }
        let (path, params) = split_path(arg).map_err(|_| replies::BAD_SENDER)?;
        let params = parse_mail_params(params).map_err(|e| replies::bad_parameters(e.0))?;
        let sender = match parse_path(path, params.smtputf8) {
            Ok(m) => m
                .map(|m| format!("{}@{}", m.local, m.domain))
                .unwrap_or_default(),
            Err(AddressError::NeedsSmtpUtf8) => return Err(replies::NEEDS_SMTPUTF8),
            Err(_) => return Err(replies::BAD_SENDER),
        };
        if let Some(id) = peer.identity.as_ref().filter(|id| !id.owns(&sender)) {
            return Err(replies::sender_not_owned(&sender, &id.login));
        }
        if params.requiretls && peer.tls.is_none() {
            return Err(replies::REQUIRETLS_WITHOUT_TLS);
        }
        if params.size.is_some_and(|s| s > cfg.max_message_size) {
            return Err(replies::TOO_BIG);
        }
        let decision =
            cfg.policy
                .inbound_at_mail(peer.ip, &sender, cfg.listener_tls == ListenerTls::Required);
        if let Some(d) = &decision {
            d.check(peer.tls_version())
                .map_err(|s| replies::tls_shortfall(s, peer.tls_version(), ""))?;
        }
        Ok(Transaction {
            sender,
            params,
            mail_decision: decision,
            recipients: Vec::new(),
        })
    }

    /// RCPT: add a recipient to the open transaction.
    pub(super) fn rcpt(&mut self, arg: &str) -> Result<Reply, Reply> {
        match &mut self.phase {
            Phase::Command(Open::Envelope(tx)) => add_recipient(&self.cfg, &self.peer, tx, arg),
            Phase::Command(Open::Chunking(_)) => Err(replies::RCPT_AFTER_BDAT),
            _ if self.peer.lacks_required_tls(self.cfg.listener_tls) => {
                Err(replies::STARTTLS_FIRST)
            }
            _ => Err(replies::NEED_MAIL),
        }
    }
}

/// The checks of one RCPT, in the order a client meets them. `Ok` replies are
/// not counted as errors (452 too many recipients is the client's to pace).
fn add_recipient(
    cfg: &SessionConfig,
    peer: &Peer,
    tx: &mut Transaction,
    arg: &str,
) -> Result<Reply, Reply> {
    let (path, params) = split_path(arg).map_err(|_| replies::BAD_RECIPIENT)?;
    // RFC 5321 4.5.1: <postmaster> with no domain is accepted from anyone and
    // goes to this server's postmaster (no relay check: it is not relaying).
    let (address, domain) = if path.eq_ignore_ascii_case("postmaster") {
        (cfg.postmaster.clone(), None)
    } else {
        match parse_path(path, tx.params.smtputf8) {
            Ok(Some(m)) => (format!("{}@{}", m.local, m.domain), Some(m.domain)),
            Ok(None) => return Err(replies::BAD_RECIPIENT),
            Err(AddressError::NeedsSmtpUtf8) => return Err(replies::NEEDS_SMTPUTF8),
            Err(_) => return Err(replies::BAD_RECIPIENT),
        }
    };
    if tx.recipients.len() >= cfg.max_recipients {
        return Ok(replies::TOO_MANY_RECIPIENTS);
    }
    // An authenticated session may relay (RFC 6409 submission).
    if peer.identity.is_none() && domain.is_some_and(|d| !cfg.policy.relay_allowed(peer.ip, d)) {
        return Err(replies::relay_denied(&address));
    }
    if tx.mail_decision.is_none() {
        let d = cfg.policy.inbound_at_rcpt(
            peer.ip,
            Some(&tx.sender),
            &address,
            cfg.listener_tls == ListenerTls::Required,
        );
        d.check(peer.tls_version()).map_err(|s| {
            replies::tls_shortfall(s, peer.tls_version(), &format!("<{address}>: "))
        })?;
    }
    let params = parse_rcpt_params(params).map_err(|e| replies::bad_parameters(e.0))?;
    tx.recipients.push(Recipient {
        address,
        notify: params.notify,
        orcpt: params.orcpt,
    });
    Ok(replies::RECIPIENT_OK)
}
