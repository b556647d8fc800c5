//! The shard's delivery loop: sleeps on the timer wheel, starts attempts for due
//! messages (bounded per shard), records outcomes, queues DSNs, reschedules.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use super::attempt::{attempt, Delivery};
use super::dns::Dns;
use super::notify::queue_dsn;
use super::outcome::{apply, Followup, RcptResult, ResultKind};
use super::pool::Pool;
use super::scheduler::ms;
use super::unsaved::{Pending, Unsaved};
use crate::admin::{AdminAction, AdminRequest};
use crate::dsn::{Decider, DsnKind};
use crate::proto::received::format_id;
use crate::queue::{QueuedMessage, RcptState, ShardQueue};
use crate::shard::ShardCtx;

/// At start, every queued message of the shard gets its next attempt back.
pub fn recover(ctx: &Rc<ShardCtx>, orphan_slices: &[ShardQueue]) {
    let mut n = 0;
    for (id, rec) in ctx.queue.scan() {
        ctx.scheduler.enqueued(id, &rec);
        n += 1;
    }
    for slice in orphan_slices {
        for (id, rec) in slice.scan() {
            // Adopt a slice left by a run with more shards: move it into ours.
            if let Ok(Some(body)) = slice.body(id) {
                if ctx.queue.write_new(id, &rec, &body).is_ok() && slice.remove(id).is_ok() {
                    ctx.scheduler.enqueued(id, &rec);
                    n += 1;
                }
            }
        }
    }
    if n > 0 {
        tracing::info!(shard = ctx.index, messages = n, "recovered queue");
    }
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
            let (ctx, d, unsaved) = (ctx.clone(), d.clone(), unsaved.clone());
            ctx.scheduler.begin();
            tokio::task::spawn_local(async move {
                process(&ctx, &d, &unsaved, id).await;
                ctx.scheduler.end();
                drop(permit);
            });
        }
        let idle_open = d.pool.sweep(config.outbound.idle_timeout.0);
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
    count_results(&results, &f);
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
    let settled = results.iter().any(|(_, r)| r.kind != ResultKind::Temporary);
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

/// Per-recipient outcomes into the Prometheus counters.
fn count_results(results: &[(usize, RcptResult)], f: &Followup) {
    use crate::metrics::{DeliveryLabels, DeliveryOutcome, FailureClass};
    for (i, r) in results {
        let expired = r.kind == ResultKind::Temporary && f.failed.contains(i);
        let outcome = match r.kind {
            ResultKind::Delivered => DeliveryOutcome::delivered,
            ResultKind::Temporary if !expired => DeliveryOutcome::deferred,
            _ => DeliveryOutcome::bounced,
        };
        let reason = match (&r.kind, &r.decided_by) {
            (ResultKind::Delivered, _) => FailureClass::none,
            _ if expired => FailureClass::expired,
            (_, Decider::RemoteHost) => FailureClass::remote_reply,
            (_, Decider::TlsPolicy { .. }) => FailureClass::tls_policy,
            (_, Decider::Dns) => FailureClass::dns,
            (_, Decider::Network) => FailureClass::connection,
            (_, Decider::Operator) => FailureClass::operator,
        };
        crate::metrics::global()
            .recipients
            .get_or_create(&DeliveryLabels { outcome, reason })
            .inc();
    }
}

pub fn admin_request(ctx: &Rc<ShardCtx>, req: AdminRequest) {
    let id = req.id;
    let exists = matches!(ctx.queue.get(id), Ok(Some(_)));
    if !exists {
        let _ = req.reply.send(Err(format!("no message {}", format_id(id))));
        return;
    }
    match req.action {
        AdminAction::Retry => {
            // "Now" means really try: no address is skipped for an earlier failure.
            ctx.unreachable.forget_all();
            ctx.scheduler.schedule(id, ms(SystemTime::now()));
            let _ = req
                .reply
                .send(Ok(format!("{}: scheduled for delivery now", format_id(id))));
        }
        AdminAction::Delete => {
            ctx.scheduler.cancel(id);
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = match ctx.queue.remove(id) {
                    Ok(()) => ctx
                        .queue
                        .commit()
                        .await
                        .map(|_| format!("{}: deleted", format_id(id))),
                    Err(e) => Err(e),
                };
                tracing::info!(id = %format_id(id), "deleted by the operator");
                let _ = req.reply.send(r.map_err(|e| e.to_string()));
            });
        }
        AdminAction::Bounce => {
            ctx.scheduler.cancel(id);
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let r = bounce(&ctx, id).await;
                let _ = req.reply.send(r.map_err(|e| e.to_string()));
            });
        }
    }
}

async fn bounce(ctx: &Rc<ShardCtx>, id: u64) -> Result<String, crate::queue::StoreError> {
    let Some(mut rec) = ctx.queue.get(id)? else {
        return Ok(format!("no message {}", format_id(id)));
    };
    let body = ctx.queue.body(id)?.unwrap_or_default();
    let now = SystemTime::now();
    let pending: Vec<usize> = (0..rec.rcpts.len())
        .filter(|&i| !rec.rcpts[i].state.is_done())
        .collect();
    for &i in &pending {
        let st = &mut rec.rcpts[i];
        st.state = RcptState::Failed;
        st.status = Some("5.0.0".into());
        st.last_reply = Some("bounced with mxring queue bounce".into());
        st.decided_by = crate::dsn::Decider::Operator;
        st.last_attempt_ms = Some(ms(now));
    }
    let dsn: Option<(u64, QueuedMessage)> =
        queue_dsn(ctx, &rec, &body, DsnKind::Failed, &pending, now)?;
    crate::metrics::global()
        .recipients
        .get_or_create(&crate::metrics::DeliveryLabels {
            outcome: crate::metrics::DeliveryOutcome::bounced,
            reason: crate::metrics::FailureClass::operator,
        })
        .inc_by(pending.len() as u64);
    ctx.queue.remove(id)?;
    ctx.queue.commit().await?;
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
