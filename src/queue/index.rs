//! The queue index, one sled tree per shard: per message its record (envelope and
//! per-recipient status) and where its body lives in the log; plus the checkpoint,
//! the log position up to which the index has seen every record. The log is the
//! truth for what got a 250; the index may lag it, and recovery replays the rest.
//!
//! Keys: `0x01` + id (big-endian, so ids sort by arrival) for messages,
//! `0x00` + a name for the index's own values.

use super::record::QueuedMessage;
use super::StoreError;

/// The entry format this build writes and the newest it reads (format 1 was the
/// sled-only store, which kept no index entries).
pub const ENTRY_VERSION: u8 = 2;
const LOCATION_LEN: usize = 1 + 4 + 8 + 8 + 8;

pub const MESSAGE_PREFIX: u8 = 1;
pub const CHECKPOINT_KEY: &[u8] = b"\0checkpoint";

pub fn message_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = MESSAGE_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub fn id_of(key: &[u8]) -> Option<u64> {
    match key {
        [MESSAGE_PREFIX, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Where a message's record sits in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub slot: u32,
    pub seq: u64,
    pub offset: u64,
    /// The whole record's length, padding included.
    pub len: u64,
}

pub fn encode_entry(loc: Location, record: &QueuedMessage) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(encode_entry_json(loc, &json))
}

pub fn encode_entry_json(loc: Location, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(LOCATION_LEN + json.len());
    v.push(ENTRY_VERSION);
    v.extend_from_slice(&loc.slot.to_le_bytes());
    v.extend_from_slice(&loc.seq.to_le_bytes());
    v.extend_from_slice(&loc.offset.to_le_bytes());
    v.extend_from_slice(&loc.len.to_le_bytes());
    v.extend_from_slice(json);
    v
}

/// The location alone (the record is not decoded).
pub fn entry_location(v: &[u8]) -> Result<Location, StoreError> {
    let Some(&version) = v.first() else {
        return Err(StoreError::Corrupt("an empty index entry".into()));
    };
    if version > ENTRY_VERSION {
        return Err(StoreError::Format(format!(
            "an index entry of format {version}, newer than this mxring reads ({ENTRY_VERSION})"
        )));
    }
    if version != ENTRY_VERSION || v.len() < LOCATION_LEN {
        return Err(StoreError::Corrupt(format!(
            "an index entry of format {version} and {} octets",
            v.len()
        )));
    }
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&v[at..at + 8]);
        u64::from_le_bytes(a)
    };
    Ok(Location {
        slot: u32::from_le_bytes([v[1], v[2], v[3], v[4]]),
        seq: u64_at(5),
        offset: u64_at(13),
        len: u64_at(21),
    })
}

pub fn decode_entry(v: &[u8]) -> Result<(Location, QueuedMessage), StoreError> {
    let loc = entry_location(v)?;
    let rec = serde_json::from_slice(&v[LOCATION_LEN..])
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((loc, rec))
}

/// The same entry, moved to another place in the log.
pub fn relocate_entry(v: &[u8], loc: Location) -> Result<Vec<u8>, StoreError> {
    entry_location(v)?;
    Ok(encode_entry_json(loc, &v[LOCATION_LEN..]))
}

/// The log position the index has seen up to: a generation and an offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub seq: u64,
    pub offset: u64,
}

impl Checkpoint {
    pub fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..].copy_from_slice(&self.offset.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        let seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let offset = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
        Some(Checkpoint { seq, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_id_and_stay_apart_from_the_index_values() {
        assert!(message_key(1) < message_key(2));
        assert!(message_key(0x0100_0000_0000_0000) > message_key(0x00ff_ffff_ffff_ffff));
        assert!(CHECKPOINT_KEY < &message_key(0)[..]);
        assert_eq!(id_of(&message_key(77)), Some(77));
        assert_eq!(id_of(CHECKPOINT_KEY), None);
    }

    #[test]
    fn a_location_survives_encoding_and_relocation() {
        let loc = Location {
            slot: 2,
            seq: 9,
            offset: 4096,
            len: 1234,
        };
        let v = encode_entry_json(loc, b"{\"x\":1}");
        assert_eq!(entry_location(&v).unwrap(), loc);
        let moved = Location { slot: 3, ..loc };
        let w = relocate_entry(&v, moved).unwrap();
        assert_eq!(entry_location(&w).unwrap(), moved);
        assert_eq!(&w[LOCATION_LEN..], b"{\"x\":1}");
    }

    #[test]
    fn a_newer_entry_is_refused_by_name() {
        let mut v = encode_entry_json(
            Location {
                slot: 0,
                seq: 0,
                offset: 0,
                len: 0,
            },
            b"{}",
        );
        v[0] = ENTRY_VERSION + 1;
        assert!(matches!(entry_location(&v), Err(StoreError::Format(_))));
    }
}
