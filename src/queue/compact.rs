//! The shard's log upkeep, a few times a second: segments whose messages are all
//! done are released once an index flush covers their removal (delivery usually
//! flushes anyway; an idle shard does it here), and a sealed segment kept alive by
//! a few long-lived messages is compacted: they are copied forward into the active
//! segment, so the old one empties and is reused. Disk use stays bounded by what
//! is really queued.

use std::time::{Duration, Instant};

use super::store::{read_body, ShardQueue};
use super::wal::frame::Kind;

const EVERY: Duration = Duration::from_millis(250);

pub async fn run(q: ShardQueue) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        upkeep(&q).await;
    }
}

/// Free segments kept for reuse beyond the active one.
const KEEP_FREE: usize = 4;

async fn upkeep(q: &ShardQueue) {
    if q.wal().slots.borrow().draining() {
        if let Err(e) = q.flush_index_writes().await {
            tracing::debug!(error = %e, "index flush for segment reuse failed; tried again");
        }
    }
    q.wal().slots.borrow_mut().trim_free(KEEP_FREE);
    let after = q.view_options().compact_after;
    let candidates = q.wal().slots.borrow().to_compact(Instant::now(), after);
    for (slot, ids) in candidates {
        let mut moved = 0usize;
        let mut waits = Vec::new();
        for id in ids {
            let Ok(Some(entry)) = q.entry_raw(id) else {
                continue;
            };
            let Ok(loc) = super::index::entry_location(&entry) else {
                continue;
            };
            if loc.slot != slot {
                continue;
            }
            let body = match read_body(q.wal_dir(), id, loc) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "a queued message cannot be copied forward; its segment is kept");
                    continue;
                }
            };
            match q.wal().append(Kind::Relocated, id, &[], None, &body) {
                Ok(d) => {
                    waits.push(d);
                    moved += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "compaction stopped: the log is not writable");
                    break;
                }
            }
        }
        let mut ok = true;
        for d in waits {
            ok &= d.wait().await.is_ok();
        }
        if moved > 0 && ok {
            tracing::info!(
                shard = q.shard(),
                segment = slot,
                messages = moved,
                "log segment compacted: its last messages were copied forward"
            );
        }
        if let Err(e) = q.flush_index_writes().await {
            tracing::debug!(error = %e, "index flush after compaction failed; tried again");
        }
    }
}
