//! Recovery at start: every shard's log past its index checkpoint goes into the
//! index, so each message that got a 250 is queued again, however the process
//! ended. A torn last write never got its 250 and is dropped (logged); damage
//! with sound records after it is moved aside into `quarantine/` (logged and
//! counted), and the records after it are recovered. Never a crash, never a
//! silent skip.

use std::path::Path;

use super::index::{self, Checkpoint, Location};
use super::store::{index_tree_name, Shared};
use super::wal::frame::{Bad, Kind};
use super::wal::{scan, segment};
use super::StoreError;

pub fn describe(bad: Bad) -> &'static str {
    match bad {
        Bad::Unwritten => "nothing written there",
        Bad::OtherGeneration => "a record from an earlier use of the segment",
        Bad::Truncated => "cut short",
        Bad::Header => "its header fails its checksum",
        Bad::Payload => "its content fails its checksum",
        Bad::NewerVersion(_) => "written by a newer mxring",
    }
}

/// What a replay found, for the log line.
#[derive(Default, Debug)]
pub struct Replayed {
    pub recovered: usize,
    pub torn_octets: u64,
    pub quarantined: usize,
}

pub fn replay(shared: &Shared, shard: usize) -> Result<Replayed, StoreError> {
    let dir = segment::shard_dir(shared.dir(), shard);
    segment::remove_unfinished(&dir)?;
    let tree = shared.run(|db| db.open_tree(index_tree_name(shard)))?;
    let cp = shared
        .run(|_| tree.get(index::CHECKPOINT_KEY))?
        .and_then(|v| Checkpoint::decode(&v))
        .unwrap_or_default();
    let mut used: Vec<(u64, u32, std::path::PathBuf)> = Vec::new();
    for (n, path, _) in segment::list(&dir)? {
        match segment::read_header(&path)? {
            Ok(Some(h)) if h.seq >= cp.seq => used.push((h.seq, n, path)),
            Ok(_) => {}
            Err(segment::HeaderError::Newer(v)) => {
                return Err(StoreError::Format(format!(
                    "log segment {} is of format {v}, newer than this mxring reads ({})",
                    path.display(),
                    segment::VERSION
                )))
            }
            // Damaged: a torn first write to a reused slot. Its previous use was
            // already behind the checkpoint, so nothing in it is owed.
            Err(segment::HeaderError::Damaged) => {}
        }
    }
    used.sort_unstable();
    let mut out = Replayed::default();
    let mut last = cp;
    for (seq, slot, path) in used {
        let buf = std::fs::read(&path)?;
        let from = if seq == cp.seq {
            cp.offset.max(segment::HEADER_LEN)
        } else {
            segment::HEADER_LEN
        };
        let found = scan::scan(&buf, seq, from).map_err(|v| {
            StoreError::Format(format!(
                "log segment {} holds a record of format {v}, newer than this mxring reads",
                path.display()
            ))
        })?;
        for &(offset, len) in &found.damaged {
            quarantine(
                shared.dir(),
                shard,
                slot,
                seq,
                offset,
                &buf[offset as usize..(offset + len) as usize],
            );
            out.quarantined += 1;
        }
        if found.torn > 0 {
            tracing::warn!(
                shard,
                segment = %path.display(),
                offset = found.end,
                octets = found.torn,
                "dropped the torn end of the log (a write cut short by a crash; it was never acknowledged)"
            );
            out.torn_octets += found.torn;
        }
        let mut batch = sled::Batch::default();
        for r in &found.records {
            let key = index::message_key(r.header.id);
            let loc = Location {
                slot,
                seq,
                offset: r.offset,
                len: r.header.record_len(),
            };
            let existing = shared.run(|_| tree.get(key))?;
            match (r.header.kind, existing) {
                (Kind::Message, None) => {
                    batch.insert(&key[..], index::encode_entry_json(loc, &r.meta));
                    out.recovered += 1;
                }
                (Kind::Relocated, Some(old)) => {
                    batch.insert(&key[..], index::relocate_entry(&old, loc)?);
                }
                // Indexed already, or moved after it was done.
                _ => {}
            }
            last = Checkpoint {
                seq,
                offset: loc.offset + loc.len,
            };
        }
        batch.insert(index::CHECKPOINT_KEY, &last.encode()[..]);
        shared.run(|_| tree.apply_batch(batch))?;
    }
    shared.run(|db| db.flush())?;
    if out.recovered > 0 || out.quarantined > 0 {
        tracing::info!(
            shard,
            recovered = out.recovered,
            quarantined = out.quarantined,
            "replayed the log past the index checkpoint"
        );
    }
    Ok(out)
}

/// Move damaged octets aside where an operator can look at them.
fn quarantine(spool: &Path, shard: usize, slot: u32, seq: u64, offset: u64, bytes: &[u8]) {
    crate::metrics::global().store_damaged_records.inc();
    let dir = spool.join("quarantine");
    let path = dir.join(format!(
        "shard{shard}-segment{slot}-gen{seq}-at{offset}.bin"
    ));
    let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, bytes));
    match saved {
        Ok(()) => tracing::error!(
            shard,
            segment = slot,
            offset,
            octets = bytes.len(),
            file = %path.display(),
            "damaged log record moved to quarantine; the records after it were recovered"
        ),
        Err(e) => tracing::error!(
            shard,
            segment = slot,
            offset,
            octets = bytes.len(),
            error = %e,
            "damaged log record found, and it could not be copied to quarantine; the records after it were recovered"
        ),
    }
}
