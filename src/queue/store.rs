//! The spool: per shard, a write-ahead log of segment files (the messages, written
//! once) and a sled tree as the queue index (per-recipient status, schedule, where
//! each body lives). One sled Db holds every shard's index; it is written on the
//! shard's thread and flushed by the committer thread, which only delivery and the
//! operator wait for. Arriving mail waits for the shard's own log alone (`wal`).
//! This module, `wal`, `index`, `recover` and `migrate` are the only ones that
//! know the formats.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::commit::{CommitWaiter, Committer};
use super::index::{self, Location};
use super::record::QueuedMessage;
use super::stats::{StoreStats, StoreStatsSummary};
use super::wal::{frame, segment, slots::Slots, Durable, Wal};
use super::StoreError;

/// How the log is laid out; from `[queue]`.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Size of one log segment file.
    pub segment_size: u64,
    /// A sealed segment less than a quarter full is copied forward after this long.
    pub compact_after: Duration,
}

impl StoreOptions {
    /// The layout `[queue]` asks for.
    pub fn from_config(queue: &crate::config::QueueConfig) -> StoreOptions {
        StoreOptions {
            segment_size: queue.segment_size.0,
            compact_after: queue.compact_after.0,
        }
    }
}

/// `[queue]`'s defaults, so the two can't drift.
impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions::from_config(&crate::config::QueueConfig::default())
    }
}

pub struct Spool {
    shared: Arc<Shared>,
    committer: Committer,
    stats: Arc<StoreStats>,
    options: StoreOptions,
}

/// The open sled Db, behind a lock so it can be replaced. sled 0.34 stops for good
/// after one failed write (ENOSPC included): every later operation returns that
/// error until the Db is dropped and opened again. So a failed write marks the
/// store `wedged`, and the commit thread reopens it once there is room again
/// (`Committer`); meanwhile operations fail with `NoSpace`.
pub(super) struct Shared {
    dir: PathBuf,
    db: RwLock<Option<sled::Db>>,
    wedged: AtomicBool,
}

impl Shared {
    /// The Db now (a handle: cheap, and it must not be kept, or a reopen waits).
    pub(super) fn db(&self) -> Result<sled::Db, StoreError> {
        self.db
            .read()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::NoSpace)
    }

    /// Run `op` on the Db; an I/O error from sled means it is wedged.
    pub(super) fn run<T>(
        &self,
        op: impl FnOnce(&sled::Db) -> sled::Result<T>,
    ) -> Result<T, StoreError> {
        let db = self.db()?;
        op(&db).map_err(|e| self.failed(e))
    }

    pub(super) fn failed(&self, e: sled::Error) -> StoreError {
        if matches!(e, sled::Error::Io(_)) && !self.wedged.swap(true, Ordering::SeqCst) {
            tracing::error!(error = %e, "spool write failed; the store is reopened once there is room again");
        }
        StoreError::from(e)
    }

    pub(super) fn is_wedged(&self) -> bool {
        self.wedged.load(Ordering::SeqCst)
    }

    /// Drop the wedged Db and open it again. Returns whether the store is usable.
    pub(super) fn reopen(&self) -> bool {
        let Ok(mut slot) = self.db.write() else {
            return false;
        };
        // The old Db goes first: it holds the file lock the new one needs.
        drop(slot.take());
        match open_db(&self.dir) {
            Ok(db) => {
                *slot = Some(db);
                self.wedged.store(false, Ordering::SeqCst);
                tracing::info!(spool = %self.dir.display(), "queue index reopened after a write failure; taking mail again");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "queue index not reopened yet");
                false
            }
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// sled's own periodic flusher is off: flushes are driven by the committer only.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        // Fixed when a spool is created (format-1 spools were made with it).
        .segment_size(SEGMENT_SIZE)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(128 << 20)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked(dir.display().to_string())
            }
            other => StoreError::from(other),
        })
}

impl Spool {
    /// Open (or create) the spool with the default layout.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        Spool::open_with(dir, StoreOptions::default())
    }

    /// Open (or create) the spool: check its format (migrating a format-1 spool),
    /// then replay every shard's log past its index checkpoint.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Spool, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::from)?;
        let db = open_db(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            db: RwLock::new(Some(db)),
            wedged: AtomicBool::new(false),
        });
        super::migrate::ensure_current(&shared, options)?;
        for shard in shard_numbers(&shared) {
            super::recover::replay(&shared, shard)?;
        }
        let stats = Arc::new(StoreStats::default());
        let committer =
            Committer::start(shared.clone(), stats.clone()).map_err(StoreError::from)?;
        Ok(Spool {
            shared,
            committer,
            stats,
            options,
        })
    }

    /// A shard's slice, for any thread (the admin API reads it).
    pub fn shard(&self, shard: usize) -> Result<QueueView, StoreError> {
        Ok(QueueView {
            shared: self.shared.clone(),
            shard,
            tree: index_tree_name(shard),
            wal_dir: segment::shard_dir(&self.shared.dir, shard),
            commit: self.committer.sender(),
            stats: self.stats.clone(),
            options: self.options,
        })
    }

    /// Every shard slice present on disk (a restart with fewer shards still sees all).
    pub fn shard_numbers(&self) -> Vec<usize> {
        shard_numbers(&self.shared)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.run(|db| db.flush())?;
        Ok(())
    }
}

pub(super) fn index_tree_name(shard: usize) -> String {
    format!("shard{shard}/index")
}

/// Shards with an index tree or a log directory.
fn shard_numbers(shared: &Shared) -> Vec<usize> {
    let mut v: Vec<usize> = Vec::new();
    if let Ok(db) = shared.db() {
        v.extend(db.tree_names().iter().filter_map(|n| {
            std::str::from_utf8(n)
                .ok()?
                .strip_prefix("shard")?
                .strip_suffix("/index")?
                .parse::<usize>()
                .ok()
        }));
    }
    if let Ok(entries) = std::fs::read_dir(shared.dir.join("wal")) {
        v.extend(entries.flatten().filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("shard")?
                .parse::<usize>()
                .ok()
        }));
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// One shard's slice of the spool as any thread sees it: read the index and the
/// bodies, change and remove index entries, wait for an index flush. Appending new
/// messages needs the shard's own [`ShardQueue`].
#[derive(Clone)]
pub struct QueueView {
    shared: Arc<Shared>,
    shard: usize,
    tree: String,
    wal_dir: PathBuf,
    commit: Sender<CommitWaiter>,
    stats: Arc<StoreStats>,
    options: StoreOptions,
}

impl QueueView {
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// "shard{N}": the prefix of this slice's trees, and of its aux trees (aux.rs).
    pub(super) fn slice_name(&self) -> (String, &Arc<Shared>) {
        (format!("shard{}", self.shard), &self.shared)
    }

    pub(super) fn index_tree(&self) -> Result<sled::Tree, StoreError> {
        self.shared.run(|db| db.open_tree(&self.tree))
    }

    pub(super) fn io<T>(&self, r: sled::Result<T>) -> Result<T, StoreError> {
        r.map_err(|e| self.shared.failed(e))
    }

    pub(super) fn stats_handle(&self) -> &StoreStats {
        &self.stats
    }

    pub(super) fn view_options(&self) -> StoreOptions {
        self.options
    }

    pub(super) fn wal_dir(&self) -> &Path {
        &self.wal_dir
    }

    /// The spool's write and commit timings (the whole spool, every shard).
    pub fn stats(&self) -> StoreStatsSummary {
        self.stats.summary()
    }

    /// The raw timings, for the Prometheus histograms.
    pub fn timings(&self) -> &StoreStats {
        &self.stats
    }

    /// Where the inbound driver reports the DATA→250 time it observed.
    pub fn record_data_to_reply(&self, d: std::time::Duration) {
        self.stats.data_to_reply.record(d);
    }

    pub(super) fn entry_raw(&self, id: u64) -> Result<Option<sled::IVec>, StoreError> {
        let tree = self.index_tree()?;
        self.io(tree.get(index::message_key(id)))
    }

    pub fn get(&self, id: u64) -> Result<Option<QueuedMessage>, StoreError> {
        match self.entry_raw(id)? {
            Some(v) => Ok(Some(index::decode_entry(&v)?.1)),
            None => Ok(None),
        }
    }

    /// The message's body, read from its log segment and checked against its CRC.
    pub fn body(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(v) = self.entry_raw(id)? else {
            return Ok(None);
        };
        let loc = index::entry_location(&v)?;
        read_body(&self.wal_dir, id, loc).map(Some)
    }

    /// Replace a message's record (its body stays where it is). Returns where the
    /// body lives, or None when the message is not queued.
    pub(super) fn update_entry(
        &self,
        id: u64,
        record: &QueuedMessage,
    ) -> Result<Option<Location>, StoreError> {
        let tree = self.index_tree()?;
        let key = index::message_key(id);
        let Some(old) = self.io(tree.get(key))? else {
            return Ok(None);
        };
        let loc = index::entry_location(&old)?;
        self.io(tree.insert(key, index::encode_entry(loc, record)?))?;
        Ok(Some(loc))
    }

    pub fn update(&self, id: u64, record: &QueuedMessage) -> Result<(), StoreError> {
        self.update_entry(id, record).map(|_| ())
    }

    /// Take a message out of the index. Returns where its body was.
    pub(super) fn remove_entry(&self, id: u64) -> Result<Option<Location>, StoreError> {
        let tree = self.index_tree()?;
        match self.io(tree.remove(index::message_key(id)))? {
            Some(old) => Ok(Some(index::entry_location(&old)?)),
            None => Ok(None),
        }
    }

    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.remove_entry(id).map(|_| ())
    }

    /// Wait for an index flush covering every index write made before this call.
    pub async fn flush_index(&self) -> Result<(), StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let waiter = CommitWaiter { reply };
        self.commit.send(waiter).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Every message record of this slice, in id (arrival) order. Entries that
    /// cannot be decoded are reported and skipped, never deleted.
    pub fn scan(&self) -> impl Iterator<Item = (u64, QueuedMessage)> + '_ {
        self.scan_entries().filter_map(|(id, v)| match index::decode_entry(&v) {
            Ok((_, rec)) => Some((id, rec)),
            Err(e) => {
                tracing::error!(id = %crate::queue::format_id(id), error = %e, "unreadable queue index entry");
                None
            }
        })
    }

    pub(super) fn scan_entries(&self) -> impl Iterator<Item = (u64, sled::IVec)> + '_ {
        let tree = self.index_tree().ok();
        tree.into_iter()
            .flat_map(|t| t.scan_prefix([index::MESSAGE_PREFIX]))
            .filter_map(|kv| {
                let (k, v) = kv.ok()?;
                Some((index::id_of(&k)?, v))
            })
    }

    pub fn len(&self) -> usize {
        self.scan_entries().count()
    }

    pub fn is_empty(&self) -> bool {
        self.scan_entries().next().is_none()
    }

    /// The highest id in this slice, so new ids never collide after a clock step back.
    pub fn max_id(&self) -> u64 {
        let Ok(tree) = self.index_tree() else {
            return 0;
        };
        tree.scan_prefix([index::MESSAGE_PREFIX])
            .next_back()
            .and_then(|kv| kv.ok())
            .and_then(|(k, _)| index::id_of(&k))
            .unwrap_or(0)
    }

    /// Once a slice adopted by another shard is empty: its log goes.
    pub fn discard_log(&self) -> Result<(), StoreError> {
        match std::fs::remove_dir_all(&self.wal_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Read and check one record, and give back its body.
pub(super) fn read_body(dir: &Path, id: u64, loc: Location) -> Result<Vec<u8>, StoreError> {
    let mut buf = segment::read_at(dir, loc.slot, loc.offset, loc.len).map_err(|e| {
        StoreError::Corrupt(format!(
            "the log record of {} (segment {}, offset {}) cannot be read: {e}",
            crate::queue::format_id(id),
            loc.slot,
            loc.offset
        ))
    })?;
    let (start, end) = match frame::record(&buf, loc.seq) {
        Ok(r) if r.header.id == id => {
            let start = frame::HEADER_LEN + r.header.meta_len as usize;
            (start, start + r.body.len())
        }
        Ok(_) => {
            return Err(StoreError::Corrupt(format!(
                "the log record at segment {} offset {} belongs to another message than {}",
                loc.slot,
                loc.offset,
                crate::queue::format_id(id)
            )))
        }
        Err(bad) => {
            crate::metrics::global().store_damaged_records.inc();
            return Err(StoreError::Corrupt(format!(
                "the log record of {} (segment {}, offset {}) is damaged ({})",
                crate::queue::format_id(id),
                loc.slot,
                loc.offset,
                super::recover::describe(bad)
            )));
        }
    };
    buf.truncate(end);
    buf.drain(..start);
    Ok(buf)
}

/// A shard's own handle on its slice: everything a [`QueueView`] does, plus
/// appending new messages to the shard's log. Lives on the shard's thread.
#[derive(Clone)]
pub struct ShardQueue {
    view: QueueView,
    wal: Rc<Wal>,
    /// Messages appended with `write_new` whose durability `commit` waits for.
    unsynced: Rc<RefCell<Vec<Durable>>>,
}

impl std::ops::Deref for ShardQueue {
    type Target = QueueView;
    fn deref(&self) -> &QueueView {
        &self.view
    }
}

impl ShardQueue {
    /// Open the shard's log on this thread's back end and start its committer.
    pub async fn start(view: QueueView) -> Result<ShardQueue, StoreError> {
        let tree = view.index_tree()?;
        let checkpoint = view
            .io(tree.get(index::CHECKPOINT_KEY))?
            .and_then(|v| index::Checkpoint::decode(&v))
            .unwrap_or_default();
        let mut slots = Slots::load(&view.wal_dir, view.options.segment_size, checkpoint.seq)?;
        let now = Instant::now();
        for (id, v) in view.scan_entries() {
            if let Ok(loc) = index::entry_location(&v) {
                slots.add_loaded(loc, id, now);
            }
        }
        let wal = Wal::new(view.clone(), slots);
        tokio::task::spawn_local(wal.clone().run());
        let q = ShardQueue {
            view,
            wal,
            unsynced: Rc::new(RefCell::new(Vec::new())),
        };
        tokio::task::spawn_local(super::compact::run(q.clone()));
        Ok(q)
    }

    pub(super) fn wal(&self) -> &Rc<Wal> {
        &self.wal
    }

    /// Append a new message to the log; it is durable (and queued) once the
    /// returned [`Durable`] resolves.
    pub fn append(
        &self,
        id: u64,
        record: &QueuedMessage,
        head: Option<&mut dyn std::io::Read>,
        tail: &[u8],
    ) -> Result<Durable, StoreError> {
        let started = Instant::now();
        let meta = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let d = self
            .wal
            .append(frame::Kind::Message, id, &meta, head, tail)?;
        self.view.stats.write.record(started.elapsed());
        Ok(d)
    }

    /// Write a new message; it is durable only after `commit`.
    pub fn write_new(
        &self,
        id: u64,
        record: &QueuedMessage,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let d = self.append(id, record, None, body)?;
        self.unsynced.borrow_mut().push(d);
        Ok(())
    }

    /// Wait until everything written through this handle is durable: new messages
    /// in the log, record changes and removals in the index.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let appended: Vec<Durable> = std::mem::take(&mut *self.unsynced.borrow_mut());
        let mut result = Ok(());
        for d in appended {
            if let Err(e) = d.wait().await {
                result = Err(e);
            }
        }
        result?;
        self.flush_index_writes().await
    }

    /// Flush the index if it changed since the last flush; then release the
    /// segments that emptied before it.
    pub(super) async fn flush_index_writes(&self) -> Result<(), StoreError> {
        let target = self.wal.index_writes.get();
        if self.wal.index_flushed.get() >= target {
            return Ok(());
        }
        self.view.flush_index().await?;
        if self.wal.index_flushed.get() < target {
            self.wal.index_flushed.set(target);
        }
        self.wal.slots.borrow_mut().flushed(target);
        Ok(())
    }

    fn index_written(&self) -> u64 {
        let gen = self.wal.index_writes.get() + 1;
        self.wal.index_writes.set(gen);
        gen
    }

    pub fn update(&self, id: u64, record: &QueuedMessage) -> Result<(), StoreError> {
        self.index_written();
        self.view.update_entry(id, record).map(|_| ())
    }

    /// Remove a message from the index; its log space is reused once the index
    /// flush that covers the removal is done.
    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        let gen = self.index_written();
        if let Some(loc) = self.view.remove_entry(id)? {
            self.wal.slots.borrow_mut().remove(loc, id, gen);
        }
        Ok(())
    }
}

/// sled log segment size of the index (fixed when a spool is created).
pub(super) const SEGMENT_SIZE: usize = 8 << 20;
