//! The spool: one sled Db, and per shard two trees (its slice): message records
//! and bodies, keyed by queue id. This module is the only one that knows sled.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::commit::{CommitWaiter, Committer};
use super::record::QueuedMessage;
use super::stats::{StoreStats, StoreStatsSummary};
use super::StoreError;

pub struct Spool {
    db: sled::Db,
    committer: Committer,
    stats: Arc<StoreStats>,
}

impl Spool {
    /// Open (or create) the spool. sled's own periodic flusher is off: commits are
    /// driven by the group committer only.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::from)?;
        let db = sled::Config::new()
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
            })?;
        let stats = Arc::new(StoreStats::default());
        let committer = Committer::start(db.clone(), dir.to_path_buf(), stats.clone())
            .map_err(StoreError::from)?;
        Ok(Spool {
            db,
            committer,
            stats,
        })
    }

    pub fn shard(&self, shard: usize) -> Result<ShardQueue, StoreError> {
        Ok(ShardQueue {
            records: self.db.open_tree(format!("shard{shard}/records"))?,
            bodies: self.db.open_tree(format!("shard{shard}/bodies"))?,
            commit: self.committer.sender(),
            stats: self.stats.clone(),
        })
    }

    /// Every shard slice present on disk (a restart with fewer shards still sees all).
    pub fn shard_numbers(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .db
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
        self.db.flush()?;
        Ok(())
    }
}

/// One shard's slice of the spool. Cloned freely; sled trees are handles.
#[derive(Clone)]
pub struct ShardQueue {
    records: sled::Tree,
    bodies: sled::Tree,
    commit: Sender<CommitWaiter>,
    stats: Arc<StoreStats>,
}

impl ShardQueue {
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
                self.bodies.insert(chunk_key(id, n), &buf[..got])?;
                n += 1;
            }
        }
        for chunk in tail.chunks(BODY_CHUNK) {
            self.bodies.insert(chunk_key(id, n), chunk)?;
            n += 1;
        }
        if n == 0 {
            self.bodies.insert(chunk_key(id, 0), &[][..])?;
        }
        self.records.insert(id.to_be_bytes(), encode(record)?)?;
        self.stats.write.record(started.elapsed());
        Ok(())
    }

    /// The spool's write and commit timings (the whole spool, not only this slice:
    /// commits are shared).
    pub fn stats(&self) -> StoreStatsSummary {
        self.stats.summary()
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
        self.records.insert(id.to_be_bytes(), encode(record)?)?;
        Ok(())
    }

    /// Remove a message (record first, so a crash in between leaves no record
    /// pointing at a missing body).
    pub fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.records.remove(id.to_be_bytes())?;
        for kv in self.bodies.scan_prefix(id.to_be_bytes()) {
            let (k, _) = kv?;
            self.bodies.remove(k)?;
        }
        Ok(())
    }

    pub fn get(&self, id: u64) -> Result<Option<QueuedMessage>, StoreError> {
        match self.records.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    pub fn body(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut body: Option<Vec<u8>> = None;
        for kv in self.bodies.scan_prefix(id.to_be_bytes()) {
            let (_, chunk) = kv?;
            body.get_or_insert_with(Vec::new).extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Every message record of this slice, in id (arrival) order. Records that
    /// cannot be decoded are reported and skipped, never deleted.
    pub fn scan(&self) -> impl Iterator<Item = (u64, QueuedMessage)> + '_ {
        self.records.iter().filter_map(|kv| {
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
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The highest id in this slice, so new ids never collide after a clock step back.
    pub fn max_id(&self) -> u64 {
        self.records
            .last()
            .ok()
            .flatten()
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
    }
}

/// sled log segment size (fixed when a spool is created).
const SEGMENT_SIZE: usize = 8 << 20;

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
