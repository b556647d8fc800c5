//! What an operator asks of a queued message (retry, delete, bounce), done by
//! the shard that holds it. An action never overlaps a delivery attempt: a retry
//! of a message being delivered is refused, a delete or bounce waits for the
//! attempt to end and then applies to what is still pending.

use std::rc::Rc;
use std::time::SystemTime;

use super::notify::queue_dsn;
use super::scheduler::AfterAttempt;
use super::unsaved::Unsaved;
use super::DeliveryCtx;
use crate::dsn::DsnKind;
use crate::queue::clock::ms;
use crate::queue::format_id;
use crate::queue::status::{Failure, Status};
use crate::queue::QueuedMessage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorAction {
    /// Attempt delivery now.
    Retry,
    /// Drop the message without notice.
    Delete,
    /// Fail every pending recipient now, with a failure DSN.
    Bounce,
}

pub struct OperatorRequest {
    pub id: u64,
    pub action: OperatorAction,
    pub reply: std::sync::mpsc::Sender<Result<OperatorReply, OperatorRefusal>>,
}

/// A shard's answer to an operator action (the text is for the operator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorReply {
    /// Done now (HTTP 200).
    Done(String),
    /// Held until the delivery in progress ends, then applied to the recipients
    /// still pending (HTTP 202).
    AfterAttempt(String),
}

/// Why a shard did not do what the operator asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorRefusal {
    /// No such message in the queue (HTTP 404).
    NoSuchMessage(String),
    /// A retry of a message that is being delivered right now: nothing was done
    /// (HTTP 409; `mxring queue retry` exits with 75, EX_TEMPFAIL).
    InProgress(String),
    /// The queue could not be written (HTTP 500).
    Failed(String),
}

impl std::fmt::Display for OperatorRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatorRefusal::NoSuchMessage(m)
            | OperatorRefusal::InProgress(m)
            | OperatorRefusal::Failed(m) => f.write_str(m),
        }
    }
}

pub fn operator_request(ctx: &Rc<DeliveryCtx>, req: OperatorRequest) {
    let id = req.id;
    let exists = matches!(ctx.queue.get(id), Ok(Some(_)));
    if !exists {
        let _ = req.reply.send(Err(OperatorRefusal::NoSuchMessage(format!(
            "no message {}",
            format_id(id)
        ))));
        return;
    }
    let held = |action| {
        ctx.scheduler.after_attempt(id, action).then(|| {
            tracing::info!(id = %format_id(id), action = action.name(), "operator action held until the delivery in progress ends");
            OperatorReply::AfterAttempt(format!(
                "{}: delivery in progress; the {} will take effect when the delivery in progress ends, for the recipients still pending then",
                format_id(id),
                action.name()
            ))
        })
    };
    match req.action {
        OperatorAction::Retry if ctx.scheduler.in_attempt(id) => {
            // A second attempt beside the running one would deliver twice.
            let _ = req.reply.send(Err(OperatorRefusal::InProgress(format!(
                "{}: delivery in progress; not retried (the attempt running now schedules the next one)",
                format_id(id)
            ))));
        }
        OperatorAction::Retry => {
            // "Now" means really try: no address is skipped for an earlier failure.
            ctx.unreachable.forget_all();
            ctx.scheduler.schedule(id, ms(SystemTime::now()));
            let _ = req.reply.send(Ok(OperatorReply::Done(format!(
                "{}: scheduled for delivery now",
                format_id(id)
            ))));
        }
        OperatorAction::Delete => {
            if let Some(r) = held(AfterAttempt::Delete) {
                let _ = req.reply.send(Ok(r));
                return;
            }
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = delete(&ctx, id).await;
                let _ = req.reply.send(r.map(OperatorReply::Done));
            });
        }
        OperatorAction::Bounce => {
            if let Some(r) = held(AfterAttempt::Bounce) {
                let _ = req.reply.send(Ok(r));
                return;
            }
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = bounce(&ctx, id).await;
                let _ = req.reply.send(r.map(OperatorReply::Done));
            });
        }
    }
}

/// Apply what the operator asked for while the attempt of `id` ran. The record
/// on disk must say what that attempt did first, or a recipient it delivered
/// would be bounced.
pub(super) async fn after_attempt(
    ctx: &Rc<DeliveryCtx>,
    unsaved: &Unsaved,
    id: u64,
    action: AfterAttempt,
) {
    if unsaved.has(id) && !unsaved.retry(&ctx.queue).await {
        tracing::error!(id = %format_id(id), action = action.name(), "operator action not applied: the queue record of the attempt could not be written");
        return;
    }
    let r = match action {
        AfterAttempt::Delete => delete(ctx, id).await,
        AfterAttempt::Bounce => bounce(ctx, id).await,
    };
    match r {
        Ok(done) => {
            tracing::info!(id = %format_id(id), result = %done, "operator action applied after the delivery attempt")
        }
        Err(OperatorRefusal::NoSuchMessage(_)) => {
            tracing::info!(id = %format_id(id), action = action.name(), "operator action had nothing left to do: every recipient was done after the attempt")
        }
        Err(e) => {
            tracing::error!(id = %format_id(id), action = action.name(), error = %e, "operator action after the delivery attempt failed")
        }
    }
}

async fn delete(ctx: &Rc<DeliveryCtx>, id: u64) -> Result<String, OperatorRefusal> {
    let failed = |e: crate::queue::StoreError| OperatorRefusal::Failed(e.to_string());
    if ctx.queue.get(id).map_err(failed)?.is_none() {
        return Err(OperatorRefusal::NoSuchMessage(format!(
            "no message {}",
            format_id(id)
        )));
    }
    ctx.scheduler.cancel(id);
    ctx.queue.remove(id).map_err(failed)?;
    ctx.queue.commit().await.map_err(failed)?;
    tracing::info!(id = %format_id(id), "deleted by the operator");
    Ok(format!("{}: deleted", format_id(id)))
}

async fn bounce(ctx: &Rc<DeliveryCtx>, id: u64) -> Result<String, OperatorRefusal> {
    let failed = |e: crate::queue::StoreError| OperatorRefusal::Failed(e.to_string());
    let Some(mut rec) = ctx.queue.get(id).map_err(failed)? else {
        return Err(OperatorRefusal::NoSuchMessage(format!(
            "no message {}",
            format_id(id)
        )));
    };
    ctx.scheduler.cancel(id);
    let body = ctx.queue.body(id).map_err(failed)?.unwrap_or_default();
    let now = SystemTime::now();
    let pending: Vec<usize> = (0..rec.rcpts.len())
        .filter(|&i| !rec.rcpts[i].is_done())
        .collect();
    for &i in &pending {
        let rcpt = &mut rec.rcpts[i];
        let remote = rcpt.status.remote().cloned();
        rcpt.status = Status::Failed {
            failure: Failure::Operator,
            remote,
        };
        rcpt.last_attempt_ms = Some(ms(now));
    }
    let config = ctx.settings().config;
    let dsn: Option<(u64, QueuedMessage)> =
        queue_dsn(ctx, &config, &rec, &body, DsnKind::Failed, &pending, now).map_err(failed)?;
    crate::metrics::global()
        .recipients
        .get_or_create(&crate::metrics::DeliveryLabels {
            outcome: crate::metrics::DeliveryOutcome::bounced,
            reason: crate::metrics::FailureClass::operator,
        })
        .inc_by(pending.len() as u64);
    ctx.queue.remove(id).map_err(failed)?;
    ctx.queue.commit().await.map_err(failed)?;
    if let Some((nid, nrec)) = dsn {
        ctx.scheduler.enqueued(nid, &nrec);
    }
    tracing::info!(id = %format_id(id), "bounced by the operator");
    Ok(format!(
        "{}: bounced ({} recipient(s))",
        format_id(id),
        pending.len()
    ))
}
