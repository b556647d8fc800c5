//! A received message's way to the queue: a large body spilled to disk as it
//! arrives, then one record appended to the shard's log and the 250 held until
//! the log is on stable storage.

use super::super::ctx::InboundCtx;
use super::super::spill::Spill;
use crate::metrics;
use crate::proto::ServerSession;
use crate::queue::QueuedMessage;

/// The body received so far that is on disk, for the message in progress.
pub(super) enum Spilled {
    None,
    File(Spill),
    /// Writing it out failed: the message will be refused with this, and what
    /// more arrives of it is dropped.
    Failed(crate::queue::StoreError),
}

/// Move the session's body buffer to the spill file.
pub(super) async fn spill_body(ctx: &InboundCtx, session: &mut ServerSession, spill: &mut Spilled) {
    let chunk = session.take_body_so_far();
    if let Spilled::None = spill {
        match Spill::create(&ctx.spool_dir, ctx.shard).await {
            Ok(f) => *spill = Spilled::File(f),
            Err(e) => *spill = Spilled::Failed(e.into()),
        }
    }
    if let Spilled::File(f) = spill {
        match f.append(chunk).await {
            Ok(buf) => session.reuse_body_buffer(buf),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write an arriving message to the spool; it will be refused");
                *spill = Spilled::Failed(e.into());
            }
        }
    }
}

pub(super) async fn store(
    ctx: &InboundCtx,
    id: u64,
    envelope: crate::proto::Envelope,
    login: Option<String>,
    spilled: Option<&Spill>,
    tail: &[u8],
) -> Result<(), crate::queue::StoreError> {
    let size = spilled.map_or(0, |s| s.len()) + tail.len() as u64;
    let mut record = QueuedMessage::new(envelope, size);
    record.login = login;
    let reserve = ctx.settings().config.queue.min_free_space.0;
    // The whole size, spilled part included: the log holds it all before the
    // spill file goes.
    if let Ok(false) = ctx.space.has_room(&ctx.spool_dir, reserve, size) {
        tracing::warn!(
            reserve,
            size,
            "spool file system nearly full; message refused with 452 4.3.1"
        );
        return Err(crate::queue::StoreError::NoSpace);
    }
    let durable = match spilled {
        None => ctx.queue.append(id, &record, None, tail)?,
        Some(s) => {
            let mut head = std::io::BufReader::new(s.reader()?);
            ctx.queue.append(id, &record, Some(&mut head), tail)?
        }
    };
    // The 250 waits for the shard's log sync (and the index entry made after it);
    // a failure is never indexed, so nothing of it is queued.
    durable.wait().await?;
    tracing::info!(
        id = %crate::queue::format_id(id),
        shard = ctx.shard,
        from = %record.envelope.sender,
        rcpts = record.rcpts.len(),
        size,
        client = %record.envelope.client_ip,
        tls = record.envelope.tls.as_ref().map(|t| t.version.as_str()).unwrap_or("none"),
        cipher = record.envelope.tls.as_ref().map(|t| t.cipher.as_str()).unwrap_or("none"),
        "queued"
    );
    ctx.scheduler.enqueued(id, &record);
    metrics::global()
        .messages_received
        .get_or_create(&metrics::ListenerLabels {
            listener: record.envelope.listener.clone(),
        })
        .inc();
    Ok(())
}
