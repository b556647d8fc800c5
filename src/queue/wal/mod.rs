//! The write-ahead log of one shard. Sessions append their message (envelope and
//! body, one framed record) to the shard's pending batch; the shard's committer
//! task writes the batch to the active segment and fdatasyncs it, both on the
//! shard's own ring, then records the messages in the index and releases the
//! 250s. Whatever arrives during a sync goes out in the next batch: group commit
//! inside the shard's event loop, with no thread, lock or file shared between
//! shards on the way.

pub mod file;
pub mod frame;
pub mod scan;
pub mod segment;
pub mod slots;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use tokio::sync::{oneshot, Notify};

use self::file::WalFile;
use self::frame::Kind;
use self::slots::Slots;
use super::index::{self, Checkpoint, Location};
use super::store::QueueView;
use super::StoreError;

/// A message appended but not yet durable: resolves once its batch is synced and
/// indexed (then a 250 may go out), or with the error that kept it from being so.
pub struct Durable(oneshot::Receiver<Result<(), StoreError>>);

impl Durable {
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

struct Entry {
    start: usize,
    len: usize,
    id: u64,
    kind: Kind,
    meta_len: usize,
    asked: Instant,
    done: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    entries: Vec<Entry>,
}

/// The segment taking appends (owned by the committer task alone).
struct Active {
    slot: u32,
    seq: u64,
    file: WalFile,
    pos: u64,
    capacity: u64,
    /// Its header is not written yet (it goes with the first batch).
    fresh: bool,
}

pub struct Wal {
    view: QueueView,
    pub(super) slots: RefCell<Slots>,
    pending: RefCell<Batch>,
    wake: Notify,
    /// A zero-filled slot being made in the background: its number.
    spare: RefCell<
        Option<(
            u32,
            tokio::task::JoinHandle<std::io::Result<std::path::PathBuf>>,
        )>,
    >,
    /// Index writes (updates and removals) so far, and how many a flush covers.
    pub(super) index_writes: Cell<u64>,
    pub(super) index_flushed: Cell<u64>,
}

impl Wal {
    pub fn new(view: QueueView, slots: Slots) -> Rc<Wal> {
        Rc::new(Wal {
            view,
            slots: RefCell::new(slots),
            pending: RefCell::new(Batch::default()),
            wake: Notify::new(),
            spare: RefCell::new(None),
            index_writes: Cell::new(0),
            index_flushed: Cell::new(0),
        })
    }

    /// Encode a record into the pending batch and wake the committer.
    pub fn append(
        &self,
        kind: Kind,
        id: u64,
        meta: &[u8],
        head: Option<&mut dyn std::io::Read>,
        tail: &[u8],
    ) -> Result<Durable, StoreError> {
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.borrow_mut();
        let start = match head {
            None => frame::append(&mut p.buf, kind, 0, id, meta, &[tail]),
            Some(head) => {
                let mut spilled = Vec::new();
                if let Err(e) = head.read_to_end(&mut spilled) {
                    return Err(e.into());
                }
                frame::append(&mut p.buf, kind, 0, id, meta, &[&spilled, tail])
            }
        };
        let len = p.buf.len() - start;
        p.entries.push(Entry {
            start,
            len,
            id,
            kind,
            meta_len: meta.len(),
            asked: Instant::now(),
            done: tx,
        });
        drop(p);
        self.wake.notify_one();
        Ok(Durable(rx))
    }

    /// The committer: runs for the shard's life.
    pub async fn run(self: Rc<Self>) {
        let mut active: Option<Active> = None;
        let mut spare_buf = Vec::new();
        if let Err(e) = self.activate(&mut active, 0).await {
            tracing::error!(shard = self.view.shard(), error = %e, "no log segment ready yet; the first message makes one");
        }
        loop {
            if self.pending.borrow().entries.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let mut batch = {
                let mut p = self.pending.borrow_mut();
                let next = Batch {
                    buf: std::mem::take(&mut spare_buf),
                    entries: Vec::new(),
                };
                std::mem::replace(&mut *p, next)
            };
            let started = Instant::now();
            let stats = self.view.stats_handle();
            let result = match self.write(&mut active, &mut batch).await {
                Ok(locs) => self.index(&batch, &locs),
                Err(e) => {
                    tracing::error!(shard = self.view.shard(), error = %e, messages = batch.entries.len(),
                        "writing the log failed; these messages are not acknowledged");
                    if let Some(a) = active.take() {
                        // Its tail may hold part of this batch: no more appends there.
                        self.slots.borrow_mut().seal(
                            a.slot,
                            self.index_writes.get(),
                            Instant::now(),
                        );
                    }
                    Err(e)
                }
            };
            let released = Instant::now();
            stats.commit.record(released - started);
            stats.batched.fetch_add(
                batch.entries.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            for e in batch.entries.drain(..) {
                stats
                    .commit_wait
                    .record(released.saturating_duration_since(e.asked));
                let _ = e.done.send(result.clone());
            }
            batch.buf.clear();
            spare_buf = batch.buf;
        }
    }

    /// Write the batch into segments (more than one when it fills the active one)
    /// and sync what was written. Returns each record's place.
    async fn write(
        &self,
        active: &mut Option<Active>,
        batch: &mut Batch,
    ) -> Result<Vec<Location>, StoreError> {
        let stats = self.view.stats_handle();
        let mut locs = Vec::with_capacity(batch.entries.len());
        let mut to_sync: Vec<WalFile> = Vec::new();
        let mut buf = std::mem::take(&mut batch.buf);
        let mut i = 0;
        let written = Instant::now();
        let mut failed = None;
        while i < batch.entries.len() {
            let need = batch.entries[i].len as u64;
            let fits = active.as_ref().is_some_and(|a| a.pos + need <= a.capacity);
            if !fits {
                if let Some(old) = active.take() {
                    self.slots
                        .borrow_mut()
                        .seal(old.slot, self.index_writes.get(), Instant::now());
                    if !old.fresh {
                        to_sync.push(old.file);
                    }
                }
                if let Err(e) = self.activate(active, need).await {
                    failed = Some(e);
                    break;
                }
            }
            let Some(a) = active.as_mut() else {
                failed = Some(StoreError::Io("no log segment".into()));
                break;
            };
            let first = i;
            let mut pos = a.pos;
            while i < batch.entries.len() && pos + batch.entries[i].len as u64 <= a.capacity {
                let e = &batch.entries[i];
                frame::set_seq(&mut buf[e.start..e.start + frame::HEADER_LEN], a.seq);
                locs.push(Location {
                    slot: a.slot,
                    seq: a.seq,
                    offset: pos,
                    len: e.len as u64,
                });
                pos += e.len as u64;
                i += 1;
            }
            if a.fresh {
                let header = segment::encode_header(segment::SegmentHeader {
                    shard: self.view.shard() as u32,
                    seq: a.seq,
                });
                let n = header.len();
                let (r, _) = a.file.write_at(header, 0..n, 0).await;
                if let Err(e) = r {
                    failed = Some(e.into());
                    break;
                }
                a.fresh = false;
            }
            let range =
                batch.entries[first].start..batch.entries[i - 1].start + batch.entries[i - 1].len;
            let (r, back) = a.file.write_at(buf, range, a.pos).await;
            buf = back;
            if let Err(e) = r {
                failed = Some(e.into());
                break;
            }
            a.pos = pos;
            if a.pos > a.capacity / 2 {
                self.prepare_spare();
            }
        }
        batch.buf = buf;
        if let Some(e) = failed {
            return Err(e);
        }
        let synced = Instant::now();
        stats.commit_flush.record(synced - written);
        for f in &to_sync {
            f.sync_data().await?;
        }
        if let Some(a) = active.as_ref() {
            a.file.sync_data().await?;
        }
        stats.commit_sync.record(synced.elapsed());
        Ok(locs)
    }

    /// The synced batch into the index, with the checkpoint after it, in one
    /// atomic sled batch.
    fn index(&self, batch: &Batch, locs: &[Location]) -> Result<(), StoreError> {
        let tree = self.view.index_tree()?;
        let mut b = sled::Batch::default();
        let mut moved = Vec::new();
        for (e, loc) in batch.entries.iter().zip(locs) {
            let key = index::message_key(e.id);
            match e.kind {
                Kind::Message => {
                    let meta = &batch.buf[e.start + frame::HEADER_LEN..][..e.meta_len];
                    b.insert(&key[..], index::encode_entry_json(*loc, meta));
                }
                Kind::Relocated => {
                    // Only if the message is still queued: it may have been
                    // delivered while its copy was being written.
                    if let Some(old) = self.view.io(tree.get(key))? {
                        let from = index::entry_location(&old)?;
                        b.insert(&key[..], index::relocate_entry(&old, *loc)?);
                        moved.push((e.id, from, *loc));
                    }
                }
            }
        }
        if let Some(last) = locs.last() {
            let cp = Checkpoint {
                seq: last.seq,
                offset: last.offset + last.len,
            };
            b.insert(index::CHECKPOINT_KEY, &cp.encode()[..]);
        }
        self.view.io(tree.apply_batch(b))?;
        let mut slots = self.slots.borrow_mut();
        for (e, loc) in batch.entries.iter().zip(locs) {
            if e.kind == Kind::Message {
                slots.add(*loc, e.id);
            }
        }
        // A move is an index write: the old slot is reusable once it is flushed.
        let gen = self.index_writes.get() + u64::from(!moved.is_empty());
        self.index_writes.set(gen);
        for (id, from, to) in moved {
            slots.add(to, id);
            slots.remove(from, id, gen);
        }
        Ok(())
    }

    /// Make a segment the active one: a free slot if one is big enough, else the
    /// spare being zero-filled, else a new file. Starts making the next spare.
    async fn activate(&self, active: &mut Option<Active>, need: u64) -> Result<(), StoreError> {
        let segment_size = self.slots.borrow().segment_size;
        let mut taken = self.slots.borrow_mut().take_free(need);
        if taken.is_none() && need + segment::HEADER_LEN <= segment_size {
            let spare = self.spare.borrow_mut().take();
            if let Some((n, job)) = spare {
                let path = job.await.map_err(|e| StoreError::Io(e.to_string()))??;
                let mut slots = self.slots.borrow_mut();
                slots.register(n, path, segment_size, false);
                taken = slots.take(n);
            }
        }
        if taken.is_none() {
            // Nothing ready: make one now. The very first segment of a shard and
            // a one-off for a message larger than a segment are only reserved, not
            // zero-filled, so an idle server writes nothing.
            let oversize = need + segment::HEADER_LEN > segment_size;
            let size = segment_size.max(need + segment::HEADER_LEN);
            let n = self.slots.borrow().next_number(&self.spare_number());
            let dir = self.slots.borrow().dir.clone();
            let path = tokio::task::spawn_blocking(move || segment::create(&dir, n, size, false))
                .await
                .map_err(|e| StoreError::Io(e.to_string()))??;
            let mut slots = self.slots.borrow_mut();
            slots.register(n, path, size, oversize);
            taken = slots.take(n);
        }
        let Some((slot, path, capacity, seq)) = taken else {
            return Err(StoreError::Io("no log segment could be made".into()));
        };
        let file = WalFile::open(&path)?;
        *active = Some(Active {
            slot,
            seq,
            file,
            pos: segment::HEADER_LEN,
            capacity,
            fresh: true,
        });
        tracing::debug!(shard = self.view.shard(), slot, seq, "log segment active");
        Ok(())
    }

    fn spare_number(&self) -> Vec<u32> {
        self.spare
            .borrow()
            .as_ref()
            .map(|(n, _)| *n)
            .into_iter()
            .collect()
    }

    /// Begin zero-filling a spare slot when none is free and none is being made:
    /// called when the active segment is half full, so the next one is ready when
    /// needed and its appends are overwrites.
    pub fn prepare_spare(&self) {
        if self.spare.borrow().is_some() || self.slots.borrow().has_free() {
            return;
        }
        let (dir, size) = {
            let s = self.slots.borrow();
            (s.dir.clone(), s.segment_size)
        };
        let n = self.slots.borrow().next_number(&[]);
        let job = tokio::task::spawn_blocking(move || segment::create(&dir, n, size, true));
        *self.spare.borrow_mut() = Some((n, job));
    }
}
