//! Turning outcomes into DSN messages and queueing them like any other mail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::DeliveryCtx;
use crate::config::Config;
use crate::dsn::{
    build_dsn, should_notify, DsnKind, DsnRecipient, DsnReport, NotifyFlags, ReturnContent,
};
use crate::proto::envelope::{BodyType, Ret};
use crate::proto::{Envelope, Recipient};
use crate::queue::clock::ms;
use crate::queue::{QueuedMessage, StoreError};

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// A DSN made for some recipients of a queued message, ready to be queued.
pub struct DsnMessage {
    pub record: QueuedMessage,
    pub body: Vec<u8>,
    /// How many recipients it tells of (those whose NOTIFY asks for it).
    pub told: usize,
}

/// The DSN of `kind` for `rcpts` of `rec`, numbered `id`; None when nobody is
/// to be told (NOTIFY=NEVER, or not this kind, or a null sender's failure).
pub fn dsn_message(
    config: &Config,
    rec: &QueuedMessage,
    body: &[u8],
    kind: DsnKind,
    rcpts: &[usize],
    now: SystemTime,
    id: u64,
) -> Option<DsnMessage> {
    let sender_is_null = rec.envelope.sender.is_empty();
    let told: Vec<usize> = rcpts
        .iter()
        .copied()
        .filter(|&i| {
            let flags = rec.rcpts[i]
                .rcpt
                .notify
                .unwrap_or_else(NotifyFlags::default_when_absent);
            should_notify(&flags, kind, sender_is_null)
        })
        .collect();
    if told.is_empty() {
        return None;
    }
    let give_up = rec.envelope.arrival_ms + config.queue.give_up_after.0.as_millis() as u64;
    let recipients: Vec<DsnRecipient> = told
        .iter()
        .map(|&i| {
            let r = &rec.rcpts[i];
            r.status
                .dsn_recipient(&r.rcpt, kind, r.last_attempt_ms.map(at), Some(at(give_up)))
        })
        .collect();
    let report = DsnReport {
        reporting_mta: &config.server.hostname,
        original_sender: &rec.envelope.sender,
        original_envid: rec.envelope.envid.as_deref(),
        arrival: at(rec.envelope.arrival_ms),
        recipients: &recipients,
        ret: match rec.envelope.ret {
            // RFC 8689 5: a REQUIRETLS message's DSN carries its headers only.
            Some(Ret::Full) if kind == DsnKind::Failed && !rec.envelope.requiretls => {
                ReturnContent::Full
            }
            _ => ReturnContent::Headers,
        },
        original_message: body,
        now,
        message_id_seed: id,
    };
    let dsn = build_dsn(&report);
    let envelope = Envelope {
        sender: String::new(),
        recipients: vec![Recipient {
            address: rec.envelope.sender.clone(),
            notify: Some(NotifyFlags {
                never: true,
                success: false,
                failure: false,
                delay: false,
            }),
            orcpt: None,
        }],
        ret: None,
        envid: None,
        body_type: if dsn.is_ascii() {
            BodyType::default()
        } else {
            BodyType::EightBitMime
        },
        smtputf8: false,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        helo: config.server.hostname.clone(),
        tls: None,
        arrival_ms: ms(now),
        listener: "dsn".into(),
        requiretls: false,
        tls_required_no: false,
    };
    Some(DsnMessage {
        record: QueuedMessage::new(envelope, dsn.len() as u64),
        body: dsn,
        told: told.len(),
    })
}

/// Queue a DSN of `kind` for `rcpts` of `rec` (written, not yet committed). Returns
/// the new message's id and record, or None when nobody is to be told.
pub fn queue_dsn(
    ctx: &DeliveryCtx,
    config: &Config,
    rec: &QueuedMessage,
    body: &[u8],
    kind: DsnKind,
    rcpts: &[usize],
    now: SystemTime,
) -> Result<Option<(u64, QueuedMessage)>, StoreError> {
    let id = ctx.ids.next();
    let Some(dsn) = dsn_message(config, rec, body, kind, rcpts, now, id) else {
        return Ok(None);
    };
    ctx.queue.write_new(id, &dsn.record, &dsn.body)?;
    let counted = match kind {
        DsnKind::Failed => crate::metrics::DsnKind::failure,
        DsnKind::Delayed => crate::metrics::DsnKind::delay,
        DsnKind::Relayed => crate::metrics::DsnKind::success,
    };
    crate::metrics::global()
        .dsns
        .get_or_create(&crate::metrics::DsnLabels { kind: counted })
        .inc();
    tracing::info!(
        id = %crate::queue::format_id(id),
        kind = kind.action(),
        to = %rec.envelope.sender,
        rcpts = dsn.told,
        "DSN queued"
    );
    Ok(Some((id, dsn.record)))
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
