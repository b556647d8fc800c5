//! The spool: one sled Db, and per shard two trees (its slice): message records
//! and bodies, keyed by queue id. This module (with the committer) is the only one
//! that knows sled.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crossbeam_channel::Sender;

use super::commit::{CommitWaiter, Committer};
use super::record::QueuedMessage;
use super::stats::{StoreStats, StoreStatsSummary};
use super::StoreError;

pub struct Spool {
    shared: Arc<Shared>,
    committer: Committer,
    stats: Arc<StoreStats>,
}

/// The open sled Db, behind a lock so it can be replaced. sled 0.34 stops for good
/// after one failed write (ENOSPC included): every later operation returns that
/// error until the Db is dropped and opened again. So a failed write marks the
/// store `wedged`, and the commit thread reopens it once there is room again
/// (`Committer`); meanwhile operations fail with `NoSpace`. Nothing acknowledged
/// is lost: a 250 follows a completed commit, and sled recovers what was committed.
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
            .expect("store lock")
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
        let mut slot = self.db.write().expect("store lock");
        // The old Db goes first: it holds the file lock the new one needs.
        drop(slot.take());
        match open_db(&self.dir) {
            Ok(db) => {
                *slot = Some(db);
                self.wedged.store(false, Ordering::SeqCst);
                tracing::info!(spool = %self.dir.display(), "spool reopened after a write failure; taking mail again");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "spool not reopened yet");
                false
            }
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// sled's own periodic flusher is off: commits are driven by the group committer only.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        // Large segments keep leaves of body chunks inside the log: sled writes
        // anything over a quarter segment to a blob file of its own.
        .segment_size(SEGMENT_SIZE)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(256 << 20)
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
    /// Open (or create) the spool.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::from)?;
        let db = open_db(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            db: RwLock::new(Some(db)),
            wedged: AtomicBool::new(false),
        });
        let stats = Arc::new(StoreStats::default());
        let committer =
            Committer::start(shared.clone(), stats.clone()).map_err(StoreError::from)?;
        Ok(Spool {
            shared,
            committer,
            stats,
        })
    }

    pub fn shard(&self, shard: usize) -> Result<ShardQueue, StoreError> {
        Ok(ShardQueue {
            shared: self.shared.clone(),
            records: format!("shard{shard}/records"),
            bodies: format!("shard{shard}/bodies"),
            commit: self.committer.sender(),
            stats: self.stats.clone(),
        })
    }

    /// Every shard slice present on disk (a restart with fewer shards still sees all).
    pub fn shard_numbers(&self) -> Vec<usize> {
        let Ok(db) = self.shared.db() else {
            return Vec::new();
        };
        let mut v: Vec<usize> = db
            .tree_names()
            .iter()
            .filter_map(|n| {
                std::str::from_utf8(n)
                    .ok()?
                    .strip_prefix("shard")?
                    .strip_suffix("/records")?
                    .parse()
                    .ok()
            })
            .collect();
        v.sort_unstable();
        v
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.run(|db| db.flush())?;
        Ok(())
    }
}

/// One shard's slice of the spool. Cloned freely; sled trees are handles.
#[derive(Clone)]
pub struct ShardQueue {
    shared: Arc<Shared>,
    /// The names of this slice's two trees, looked up in the Db of the moment.
    records: String,
    bodies: String,
    commit: Sender<CommitWaiter>,
    stats: Arc<StoreStats>,
}

impl ShardQueue {
    /// "shard{N}": the prefix of this slice's trees, and of its aux trees (aux.rs).
    pub(super) fn slice_name(&self) -> (&str, &Arc<Shared>) {
        let name = self
            .records
            .strip_suffix("/records")
            .unwrap_or(&self.records);
        (name, &self.shared)
    }

    /// This slice's trees in the current Db (handles, dropped after the operation).
    fn trees(&self) -> Result<(sled::Tree, sled::Tree), StoreError> {
        self.shared
            .run(|db| Ok((db.open_tree(&self.records)?, db.open_tree(&self.bodies)?)))
    }

    fn io<T>(&self, r: sled::Result<T>) -> Result<T, StoreError> {
        r.map_err(|e| self.shared.failed(e))
    }

    /// Write a new message; it is durable only after `commit`.
    pub fn write_new(
        &self,
        id: u64,
        record: &QueuedMessage,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.write_new_parts(id, record, None, body)
    }

    /// Write a new message whose body is what `head` reads (a spill file) followed
    /// by `tail`; it is durable only after `commit`.
    pub fn write_new_parts(
        &self,
        id: u64,
        record: &QueuedMessage,
        head: Option<&mut dyn std::io::Read>,
        tail: &[u8],
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let (records, bodies) = self.trees()?;
        // Bodies go in chunks small enough to stay inside sled's log: a value too
        // big for a log segment becomes a separate blob file, written with an extra
        // file and directory sync each, on the shard's thread.
        let mut n = 0u32;
        if let Some(head) = head {
            let mut buf = vec![0u8; BODY_CHUNK];
            loop {
                let got = read_full(head, &mut buf)?;
                if got == 0 {
                    break;
                }
                self.io(bodies.insert(chunk_key(id, n), &buf[..got]))?;
                n += 1;
            }
        }
        for chunk in tail.chunks(BODY_CHUNK) {
            self.io(bodies.insert(chunk_key(id, n), chunk))?;
            n += 1;
        }
        if n == 0 {
            self.io(bodies.insert(chunk_key(id, 0), &[][..]))?;
        }
        self.io(records.insert(id.to_be_bytes(), encode(record)?))?;
        self.stats.write.record(started.elapsed());
        Ok(())
    }

    /// The spool's write and commit timings (the whole spool, not only this slice:
    /// commits are shared).
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

    /// Wait for a group commit covering every write made before this call.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let waiter = CommitWaiter {
            reply,
            asked: Instant::now(),
        };
        self.commit.send(waiter).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub fn update(&self, id: u64, record: &QueuedMessage) -> Result<(), StoreError> {
        let (records, _) = self.trees()?;
        self.io(records.insert(id.to_be_bytes(), encode(record)?))?;
        Ok(())
    }

    /// Remove a message (record first, so a crash in between leaves no record
    /// pointing at a missing body).
    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        let (records, bodies) = self.trees()?;
        self.io(records.remove(id.to_be_bytes()))?;
        for kv in bodies.scan_prefix(id.to_be_bytes()) {
            let (k, _) = self.io(kv)?;
            self.io(bodies.remove(k))?;
        }
        Ok(())
    }

    pub fn get(&self, id: u64) -> Result<Option<QueuedMessage>, StoreError> {
        let (records, _) = self.trees()?;
        match self.io(records.get(id.to_be_bytes()))? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn body(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let (_, bodies) = self.trees()?;
        let mut body: Option<Vec<u8>> = None;
        for kv in bodies.scan_prefix(id.to_be_bytes()) {
            let (_, chunk) = self.io(kv)?;
            body.get_or_insert_with(Vec::new).extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Every message record of this slice, in id (arrival) order. Records that
    /// cannot be decoded are reported and skipped, never deleted.
    pub fn scan(&self) -> impl Iterator<Item = (u64, QueuedMessage)> + '_ {
        let records = self.trees().ok().map(|(r, _)| r);
        records.into_iter().flat_map(|r| r.iter()).filter_map(|kv| {
            let (k, v) = kv.ok()?;
            let id = u64::from_be_bytes(k.as_ref().try_into().ok()?);
            match decode(&v) {
                Ok(rec) => Some((id, rec)),
                Err(e) => {
                    tracing::error!(id = %crate::proto::received::format_id(id), error = %e, "unreadable queue record");
                    None
                }
            }
        })
    }

    pub fn len(&self) -> usize {
        self.trees().map_or(0, |(r, _)| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.trees().map_or(true, |(r, _)| r.is_empty())
    }

    /// The highest id in this slice, so new ids never collide after a clock step back.
    pub fn max_id(&self) -> u64 {
        let Ok((records, _)) = self.trees() else {
            return 0;
        };
        records
            .last()
            .ok()
            .flatten()
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
    }
}

/// sled log segment size (fixed when a spool is created).
pub(super) const SEGMENT_SIZE: usize = 8 << 20;

/// Body chunk size: a sled leaf holds up to 16 entries, so 16 chunks must stay under
/// the blob threshold of a quarter segment (2 MiB).
const BODY_CHUNK: usize = 64 * 1024;

/// Fill `buf` unless the reader ends first; the octets read.
fn read_full(r: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn chunk_key(id: u64, n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn encode(record: &QueuedMessage) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<QueuedMessage, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
