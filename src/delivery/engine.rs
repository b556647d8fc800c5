//! The shard's delivery loop.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::admin::{AdminAction, AdminRequest};
use crate::queue::ShardQueue;
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
            // Adopt: move into our slice, keeping the id.
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
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let (due, sleep) = ctx.scheduler.due(SystemTime::now());
        for id in due {
            let _ = id;
        }
        let sleep = sleep.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = ctx.scheduler.woken() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

pub fn admin_request(ctx: &Rc<ShardCtx>, req: AdminRequest) {
    let _ = ctx;
    let _ = req.reply.send(Err(format!(
        "{:?} is not available yet",
        req.action as AdminAction
    )));
}
