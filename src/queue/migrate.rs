//! The spool's format, and moving an older spool to it. Format 1 was the sled-only
//! store (per shard the trees `shardN/records`, JSON records, and `shardN/bodies`,
//! 64 KiB body chunks). Format 2 is the log and index of this build. A spool of a
//! newer format than this build reads is refused, never half-read.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::index::{self, Checkpoint, Location};
use super::record::QueuedMessage;
use super::store::{index_tree_name, Shared, StoreOptions};
use super::wal::frame::{self, Kind};
use super::wal::segment;
use super::StoreError;

const FORMAT_KEY: &[u8] = b"mxring/spool-format";
/// The spool format this build writes.
pub const FORMAT: u32 = 2;

pub fn ensure_current(shared: &Shared, options: StoreOptions) -> Result<(), StoreError> {
    let db = shared.db()?;
    let found = shared.run(|db| db.get(FORMAT_KEY))?;
    let format = match found {
        Some(v) => u32::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("the spool's format marker is damaged".into()))?,
        ),
        None => 1,
    };
    if format > FORMAT {
        return Err(StoreError::Format(format!(
            "the spool {} is of format {format}, written by a newer mxring; this one reads formats 1 and {FORMAT}. \
             Run the newer mxring on it, or point [server] spool at another directory",
            shared.dir().display()
        )));
    }
    if format == FORMAT {
        return Ok(());
    }
    let old: Vec<usize> = db
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
    if !old.is_empty() {
        let mut moved = 0;
        for &shard in &old {
            moved += migrate_shard(shared, shard, options)?;
        }
        shared.run(|db| db.flush())?;
        for &shard in &old {
            shared.run(|db| db.drop_tree(format!("shard{shard}/records")))?;
            shared.run(|db| db.drop_tree(format!("shard{shard}/bodies")))?;
        }
        tracing::info!(
            spool = %shared.dir().display(),
            messages = moved,
            shards = old.len(),
            "spool migrated from format 1 (sled only) to format {FORMAT} (a log per shard, sled as index)"
        );
    }
    shared.run(|db| db.insert(FORMAT_KEY, &FORMAT.to_be_bytes()[..]))?;
    shared.run(|db| db.flush())?;
    Ok(())
}

/// Segment files written synchronously, for the migration.
struct Writer {
    dir: std::path::PathBuf,
    shard: usize,
    size: u64,
    slot: u32,
    seq: u64,
    file: Option<File>,
    pos: u64,
    capacity: u64,
}

impl Writer {
    fn put(&mut self, id: u64, meta: &[u8], body: &[u8]) -> Result<Location, StoreError> {
        let need = frame::padded((frame::HEADER_LEN + meta.len() + body.len()) as u64);
        if self.file.is_none() || self.pos + need > self.capacity {
            self.next(need)?;
        }
        let mut rec = Vec::with_capacity(need as usize);
        frame::append(&mut rec, Kind::Message, self.seq, id, meta, &[body]);
        let f = self.file.as_ref().ok_or(StoreError::Closed)?;
        f.write_all_at(&rec, self.pos)?;
        let loc = Location {
            slot: self.slot,
            seq: self.seq,
            offset: self.pos,
            len: rec.len() as u64,
        };
        self.pos += rec.len() as u64;
        Ok(loc)
    }

    fn next(&mut self, need: u64) -> Result<(), StoreError> {
        if let Some(f) = self.file.take() {
            f.sync_data()?;
            self.slot += 1;
        }
        self.seq += 1;
        let capacity = self.size.max(need + segment::HEADER_LEN);
        let path = segment::create(&self.dir, self.slot, capacity, false)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let header = segment::encode_header(segment::SegmentHeader {
            shard: self.shard as u32,
            seq: self.seq,
        });
        f.write_all_at(&header, 0)?;
        self.file = Some(f);
        self.pos = segment::HEADER_LEN;
        self.capacity = capacity;
        Ok(())
    }

    fn finish(mut self) -> Result<Option<Checkpoint>, StoreError> {
        match self.file.take() {
            Some(f) => {
                f.sync_data()?;
                Ok(Some(Checkpoint {
                    seq: self.seq,
                    offset: self.pos,
                }))
            }
            None => Ok(None),
        }
    }
}

fn migrate_shard(
    shared: &Shared,
    shard: usize,
    options: StoreOptions,
) -> Result<usize, StoreError> {
    let dir = segment::shard_dir(shared.dir(), shard);
    // Left by a migration that was cut short: made again from the old trees.
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let records = shared.run(|db| db.open_tree(format!("shard{shard}/records")))?;
    let bodies = shared.run(|db| db.open_tree(format!("shard{shard}/bodies")))?;
    let tree = shared.run(|db| db.open_tree(index_tree_name(shard)))?;
    shared.run(|_| tree.clear())?;
    let mut w = Writer {
        dir,
        shard,
        size: options.segment_size,
        slot: 0,
        seq: 0,
        file: None,
        pos: 0,
        capacity: 0,
    };
    let mut batch = sled::Batch::default();
    let mut moved = 0;
    for kv in records.iter() {
        let (k, v) = shared.run(|_| kv)?;
        let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) else {
            continue;
        };
        let id = u64::from_be_bytes(key);
        let record: QueuedMessage = match super::v1::QueuedMessage::decode(&v) {
            Ok(old) => old.into(),
            Err(e) => {
                set_aside(shared, shard, id, &v, &e.to_string());
                continue;
            }
        };
        let mut body: Option<Vec<u8>> = None;
        for chunk in bodies.scan_prefix(key) {
            let (_, c) = shared.run(|_| chunk)?;
            body.get_or_insert_with(Vec::new).extend_from_slice(&c);
        }
        let Some(body) = body else {
            set_aside(shared, shard, id, &v, "its body is missing");
            continue;
        };
        let meta = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let loc = w.put(id, &meta, &body)?;
        batch.insert(
            &index::message_key(id)[..],
            index::encode_entry_json(loc, &meta),
        );
        moved += 1;
    }
    if let Some(cp) = w.finish()? {
        batch.insert(index::CHECKPOINT_KEY, &cp.encode()[..]);
    }
    shared.run(|_| tree.apply_batch(batch))?;
    Ok(moved)
}

/// A format-1 record that cannot be migrated: kept in quarantine, and said so.
fn set_aside(shared: &Shared, shard: usize, id: u64, record: &[u8], why: &str) {
    crate::metrics::global().store_damaged_records.inc();
    let dir = shared.dir().join("quarantine");
    let path = dir.join(format!(
        "format1-shard{shard}-{}.json",
        crate::queue::format_id(id)
    ));
    let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, record));
    tracing::error!(
        id = %crate::queue::format_id(id),
        reason = why,
        file = %path.display(),
        saved = saved.is_ok(),
        "a format-1 queue record could not be migrated; it is kept in quarantine"
    );
}
