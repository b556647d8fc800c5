//! Index flushes. Shards change index entries without waiting, then ask this thread
//! for a flush when it matters (a recipient settled, a DSN queued, an operator
//! action); it takes every request that arrived meanwhile, flushes sled once,
//! fdatasyncs the index's files once, and releases all of them together. It also
//! brings a wedged store back (see `store::Shared`): while wedged it looks twice a
//! second whether the spool has room again, and reopens the Db when it has.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::stats::StoreStats;
use super::store::Shared;
use super::StoreError;

pub struct CommitWaiter {
    pub reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

pub struct Committer {
    tx: Option<Sender<CommitWaiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    pub fn start(shared: Arc<Shared>, stats: Arc<StoreStats>) -> std::io::Result<Committer> {
        let (tx, rx) = crossbeam_channel::bounded::<CommitWaiter>(65_536);
        let syncer = FileSyncer::new(shared.dir())?;
        let thread = std::thread::Builder::new()
            .name("mxring-commit".into())
            .spawn(move || run(shared, syncer, rx, stats))?;
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> Sender<CommitWaiter> {
        self.tx.clone().expect("committer running")
    }
}

impl Drop for Committer {
    /// Waits for the thread once every sender is gone, so the store's lock is
    /// released when the spool is dropped (a restart in the same process works).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often a wedged store looks for room, and how much it wants: two log
/// segments, so the reopened store does not wedge again at its first write.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
const REOPEN_ROOM: u64 = 2 * super::store::SEGMENT_SIZE as u64;

fn run(
    shared: Arc<Shared>,
    mut syncer: FileSyncer,
    rx: Receiver<CommitWaiter>,
    stats: Arc<StoreStats>,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let first = if shared.is_wedged() {
            match rx.recv_timeout(REOPEN_EVERY) {
                Ok(w) => Some(w),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(w) => Some(w),
                Err(_) => return,
            }
        };
        if shared.is_wedged() {
            let room = super::space::available_bytes(shared.dir()).unwrap_or(0);
            if room >= REOPEN_ROOM && shared.reopen() {
                if let Ok(s) = FileSyncer::new(shared.dir()) {
                    syncer = s;
                }
            }
        }
        let Some(first) = first else { continue };
        batch.push(first);
        batch.extend(rx.try_iter());
        let started = Instant::now();
        let result = shared
            .run(|db| db.flush())
            .and_then(|_| syncer.sync().map_err(StoreError::from));
        stats.index_flush.record(started.elapsed());
        if let Err(e) = &result {
            tracing::error!(error = %e, waiting = batch.len(), "index flush failed; the changes waiting for it are written again");
        }
        for waiter in batch.drain(..) {
            let _ = waiter.reply.send(result.clone());
        }
    }
}

/// sled 0.34's flush ends in sync_file_range, which neither flushes the device
/// cache nor file metadata, and it writes large items to blob files without any
/// sync: fdatasync the log and every new blob file here.
struct FileSyncer {
    dir: PathBuf,
    log: File,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl FileSyncer {
    fn new(dir: &Path) -> std::io::Result<Self> {
        Ok(FileSyncer {
            dir: dir.to_path_buf(),
            log: File::open(dir.join("db"))?,
            synced_blobs: HashSet::new(),
        })
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.log.sync_data()?;
        let blob_dir = self.dir.join("blobs");
        let mut seen = HashSet::new();
        let mut new_files = false;
        if let Ok(entries) = std::fs::read_dir(&blob_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !self.synced_blobs.contains(&name) {
                    match File::open(entry.path()) {
                        Ok(f) => f.sync_data()?,
                        // sled removed the blob after we listed it: nothing to sync.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                    new_files = true;
                }
                seen.insert(name);
            }
        }
        if new_files {
            File::open(&blob_dir)?.sync_all()?;
        }
        self.synced_blobs = seen;
        Ok(())
    }
}
