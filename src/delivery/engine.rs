//! The shard's delivery loop: sleeps on the timer wheel, starts attempts for due
//! messages (bounded per shard), records outcomes, queues DSNs, reschedules.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use super::attempt::{attempt, Delivery};
use super::dns::Dns;
use super::notify::queue_dsn;
use super::outcome::{apply, RcptResult};
use super::pool::Pool;
use super::scheduler::{ms, AfterAttempt};
use super::unsaved::{Pending, Unsaved};
use crate::admin::{AdminAction, AdminRefusal, AdminReply, AdminRequest};
use crate::dsn::DsnKind;
use crate::proto::received::format_id;
use crate::queue::status::{Failure, Status};
use crate::queue::{QueueView, QueuedMessage};
use crate::shard::ShardCtx;

/// At start, every queued message of the shard gets its next attempt back.
pub async fn recover(ctx: &Rc<ShardCtx>, orphan_slices: &[QueueView]) {
    let mut n = 0;
    for (id, rec) in ctx.queue.scan() {
        ctx.scheduler.enqueued(id, &rec);
        n += 1;
    }
    for slice in orphan_slices {
        n += adopt(ctx, slice).await;
    }
    if n > 0 {
        tracing::info!(shard = ctx.index, messages = n, "recovered queue");
    }
}

/// Adopt a slice left by a run with more shards: its messages move into this
/// shard's log, and only once they are durable here do they leave the old slice.
async fn adopt(ctx: &Rc<ShardCtx>, slice: &QueueView) -> usize {
    let mut moved = Vec::new();
    for (id, rec) in slice.scan() {
        match slice.body(id) {
            Ok(Some(body)) => match ctx.queue.write_new(id, &rec, &body) {
                Ok(()) => moved.push((id, rec)),
                Err(e) => {
                    tracing::error!(id = %format_id(id), error = %e, "cannot adopt a message of a former shard; it stays there")
                }
            },
            Ok(None) => {
                tracing::error!(id = %format_id(id), shard = slice.shard(), "a message of a former shard has no body; it stays there")
            }
            Err(e) => {
                tracing::error!(id = %format_id(id), shard = slice.shard(), error = %e, "a message of a former shard has no readable body; it stays there")
            }
        }
    }
    if let Err(e) = ctx.queue.commit().await {
        tracing::error!(error = %e, shard = slice.shard(), "adopting a former shard's messages failed; they stay there for the next start");
        return 0;
    }
    for (id, rec) in &moved {
        let _ = slice.remove(*id);
        ctx.scheduler.enqueued(*id, rec);
    }
    if slice.flush_index().await.is_ok() && slice.is_empty() {
        let _ = slice.discard_log();
    }
    moved.len()
}

pub async fn run(ctx: Rc<ShardCtx>) {
    let config = ctx.settings().config.clone();
    let dns = match Dns::new(&config.dns) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "no DNS resolver; delivery is stopped on this shard");
            return;
        }
    };
    let sts = if config.outbound.mta_sts {
        let store = match ctx.queue.aux("mta-sts") {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the MTA-STS cache in the spool; policies are cached in memory only");
                None
            }
        };
        match crate::mta_sts::MtaSts::new(&config, store, true) {
            Ok(s) => Some(Rc::new(s)),
            Err(e) => {
                tracing::error!(error = %e, "delivery is stopped on this shard");
                return;
            }
        }
    } else {
        None
    };
    let tlsrpt = if config.tls_report.enabled {
        match ctx.queue.aux(crate::tlsrpt::counters::TREE) {
            Ok(t) => {
                let c = Rc::new(crate::tlsrpt::Counters::new(
                    t,
                    config.tls_report.interval.0,
                ));
                tokio::task::spawn_local(crate::tlsrpt::send::run(ctx.clone(), c.clone()));
                Some(c)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open the TLS report counters in the spool; no TLS reports from this shard");
                None
            }
        }
    } else {
        None
    };
    let d = Rc::new(Delivery {
        dns,
        sts,
        tlsrpt,
        pool: Pool::new(config.outbound.max_connections_per_host),
        unreachable: ctx.unreachable.clone(),
    });
    let limit = Arc::new(Semaphore::new(
        config.outbound.max_deliveries_per_shard.max(1),
    ));
    let mut shutdown = ctx.shutdown.clone();
    let unsaved = Rc::new(Unsaved::default());
    loop {
        if !unsaved.is_empty() {
            unsaved.retry(&ctx.queue).await;
        }
        let (due, sleep) = ctx.scheduler.due(SystemTime::now());
        for id in due {
            let permit = tokio::select! {
                p = limit.clone().acquire_owned() => p.expect("never closed"),
                _ = shutdown.wait_for(|s| *s) => {
                    d.pool.close_all();
                    return;
                }
            };
            if !ctx.scheduler.begin(id) {
                // Already being delivered; that attempt schedules the next one.
                tracing::debug!(id = %format_id(id), "due while an attempt runs; skipped");
                continue;
            }
            let (ctx, d, unsaved) = (ctx.clone(), d.clone(), unsaved.clone());
            tokio::task::spawn_local(async move {
                process(&ctx, &d, &unsaved, id).await;
                if let Some(action) = ctx.scheduler.end(id) {
                    after_attempt(&ctx, &unsaved, id, action).await;
                }
                drop(permit);
            });
        }
        // Reloadable: the current snapshot's, as `attempt` checks a connection out with.
        let idle_open = d.pool.sweep(ctx.settings().config.outbound.idle_timeout.0);
        let mut sleep = sleep.unwrap_or(Duration::from_secs(3600));
        if idle_open > 0 {
            sleep = sleep.min(Duration::from_secs(1));
        }
        if !unsaved.is_empty() {
            sleep = sleep.min(UNSAVED_RETRY);
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = ctx.scheduler.woken() => {}
            _ = shutdown.wait_for(|s| *s) => {
                d.pool.close_all();
                return;
            }
        }
    }
}

/// How soon a queue write that failed is tried again.
const UNSAVED_RETRY: Duration = Duration::from_millis(500);

async fn process(ctx: &Rc<ShardCtx>, d: &Delivery, unsaved: &Unsaved, id: u64) {
    // The record on disk is behind what was delivered: bring it up to date first.
    if unsaved.has(id) && !unsaved.retry(&ctx.queue).await {
        ctx.scheduler
            .schedule(id, ms(SystemTime::now() + Duration::from_secs(1)));
        return;
    }
    let settings = ctx.settings();
    let Ok(Some(mut rec)) = ctx.queue.get(id) else {
        return;
    };
    let body = match ctx.queue.body(id) {
        Ok(Some(b)) => b,
        other => {
            tracing::error!(id = %format_id(id), error = ?other.err(), "message body missing; record kept for the operator");
            return;
        }
    };
    let results = attempt(d, &settings.config, &settings.policy, id, &rec, &body).await;
    let now = SystemTime::now();
    let f = apply(&mut rec, &results, ms(now), &settings.config.queue);
    count_results(&results, &rec);
    if !matches!(ctx.queue.get(id), Ok(Some(_))) {
        // Deleted by the operator while we were delivering.
        return;
    }
    let mut new = Vec::new();
    for (kind, who) in [
        (DsnKind::Failed, &f.failed),
        (DsnKind::Delayed, &f.delayed),
        (DsnKind::Relayed, &f.relayed),
    ] {
        if who.is_empty() {
            continue;
        }
        match queue_dsn(ctx, &rec, &body, kind, who, now) {
            Ok(Some(m)) => new.push(m),
            Ok(None) => {}
            Err(e) => tracing::error!(id = %format_id(id), error = %e, "cannot queue DSN"),
        }
    }
    let write = if f.done {
        ctx.queue.remove(id)
    } else {
        ctx.queue.update(id, &rec)
    };
    let mut saved = true;
    if let Err(e) = write {
        tracing::error!(id = %format_id(id), error = %e, "cannot update queue record; retrying until it is written");
        saved = false;
    }
    // A recipient that reached its end, or a DSN, must survive a crash (or it is
    // delivered or reported twice). A pure deferral need not wait for the disk: it
    // rides on the next group commit, and if lost the message is only tried sooner.
    let settled = results.iter().any(|(_, r)| !r.is_deferral());
    if f.done || settled || !new.is_empty() {
        if let Err(e) = ctx.queue.commit().await {
            tracing::error!(id = %format_id(id), error = %e, "commit after delivery failed; retrying until it is written");
            saved = false;
        }
    }
    if !saved {
        let pending = if f.done {
            Pending::Remove
        } else {
            Pending::Update(Box::new(rec.clone()))
        };
        unsaved.keep(id, pending);
    }
    for (nid, nrec) in new {
        ctx.scheduler.enqueued(nid, &nrec);
    }
    if f.done {
        tracing::info!(id = %format_id(id), "removed: every recipient done");
    } else if let Some(next) = f.next_attempt_ms {
        ctx.scheduler.schedule(id, next);
    }
}

/// Per-recipient outcomes into the Prometheus counters, by each recipient's
/// status after the attempt.
fn count_results(results: &[(usize, RcptResult)], rec: &QueuedMessage) {
    for (i, _) in results {
        crate::metrics::global()
            .recipients
            .get_or_create(&crate::metrics::DeliveryLabels::of(&rec.rcpts[*i].status))
            .inc();
    }
}

pub fn admin_request(ctx: &Rc<ShardCtx>, req: AdminRequest) {
    let id = req.id;
    let exists = matches!(ctx.queue.get(id), Ok(Some(_)));
    if !exists {
        let _ = req.reply.send(Err(AdminRefusal::NoSuchMessage(format!(
            "no message {}",
            format_id(id)
        ))));
        return;
    }
    let held = |action| {
        ctx.scheduler.after_attempt(id, action).then(|| {
            tracing::info!(id = %format_id(id), action = action.name(), "operator action held until the delivery in progress ends");
            AdminReply::AfterAttempt(format!(
                "{}: delivery in progress; the {} will take effect when the delivery in progress ends, for the recipients still pending then",
                format_id(id),
                action.name()
            ))
        })
    };
    match req.action {
        AdminAction::Retry if ctx.scheduler.in_attempt(id) => {
            // A second attempt beside the running one would deliver twice.
            let _ = req.reply.send(Err(AdminRefusal::InProgress(format!(
                "{}: delivery in progress; not retried (the attempt running now schedules the next one)",
                format_id(id)
            ))));
        }
        AdminAction::Retry => {
            // "Now" means really try: no address is skipped for an earlier failure.
            ctx.unreachable.forget_all();
            ctx.scheduler.schedule(id, ms(SystemTime::now()));
            let _ = req.reply.send(Ok(AdminReply::Done(format!(
                "{}: scheduled for delivery now",
                format_id(id)
            ))));
        }
        AdminAction::Delete => {
            if let Some(r) = held(AfterAttempt::Delete) {
                let _ = req.reply.send(Ok(r));
                return;
            }
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = delete(&ctx, id).await;
                let _ = req.reply.send(r.map(AdminReply::Done));
            });
        }
        AdminAction::Bounce => {
            if let Some(r) = held(AfterAttempt::Bounce) {
                let _ = req.reply.send(Ok(r));
                return;
            }
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = bounce(&ctx, id).await;
                let _ = req.reply.send(r.map(AdminReply::Done));
            });
        }
    }
}

/// Apply what the operator asked for while the attempt of `id` ran. The record
/// on disk must say what that attempt did first, or a recipient it delivered
/// would be bounced.
async fn after_attempt(ctx: &Rc<ShardCtx>, unsaved: &Unsaved, id: u64, action: AfterAttempt) {
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
        Err(AdminRefusal::NoSuchMessage(_)) => {
            tracing::info!(id = %format_id(id), action = action.name(), "operator action had nothing left to do: every recipient was done after the attempt")
        }
        Err(e) => {
            tracing::error!(id = %format_id(id), action = action.name(), error = %e, "operator action after the delivery attempt failed")
        }
    }
}

async fn delete(ctx: &Rc<ShardCtx>, id: u64) -> Result<String, AdminRefusal> {
    let failed = |e: crate::queue::StoreError| AdminRefusal::Failed(e.to_string());
    if ctx.queue.get(id).map_err(failed)?.is_none() {
        return Err(AdminRefusal::NoSuchMessage(format!(
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

async fn bounce(ctx: &Rc<ShardCtx>, id: u64) -> Result<String, AdminRefusal> {
    let failed = |e: crate::queue::StoreError| AdminRefusal::Failed(e.to_string());
    let Some(mut rec) = ctx.queue.get(id).map_err(failed)? else {
        return Err(AdminRefusal::NoSuchMessage(format!(
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
    let dsn: Option<(u64, QueuedMessage)> =
        queue_dsn(ctx, &rec, &body, DsnKind::Failed, &pending, now).map_err(failed)?;
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
