//! Segment files. Each shard logs into a handful of fixed-size files ("slots")
//! taken in turn. A slot is zero-filled once, when it is created, and reused
//! after every message in it is done, so an append is an overwrite inside an
//! allocated file and its fdatasync carries data only, never file metadata. A slot
//! starts each use with a header naming the generation (`seq`) of that use.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// `MXRSEG` and two zeros.
pub const MAGIC: [u8; 8] = *b"MXRSEG\0\0";
/// The segment format this build writes and the newest it reads.
pub const VERSION: u32 = 1;
/// Octets before the first record.
pub const HEADER_LEN: u64 = 64;

/// What a slot's header says about its current use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub shard: u32,
    pub seq: u64,
}

/// A header that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Written by a newer mxring: refuse to touch it.
    Newer(u32),
    /// Not a header (damaged, or not our file).
    Damaged,
}

pub fn encode_header(h: SegmentHeader) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN as usize];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&h.shard.to_le_bytes());
    b[16..24].copy_from_slice(&h.seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Ok(None) for a slot that was never used (zeros).
pub fn decode_header(b: &[u8]) -> Result<Option<SegmentHeader>, HeaderError> {
    let b = b.get(..HEADER_LEN as usize).ok_or(HeaderError::Damaged)?;
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if b[0..8] != MAGIC {
        return Err(HeaderError::Damaged);
    }
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if crc32c::crc32c(&b[0..32]) != word(32) {
        return Err(HeaderError::Damaged);
    }
    let version = word(8);
    if version > VERSION {
        return Err(HeaderError::Newer(version));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&b[16..24]);
    Ok(Some(SegmentHeader {
        shard: word(12),
        seq: u64::from_le_bytes(seq),
    }))
}

/// The directory of one shard's segments inside the spool.
pub fn shard_dir(spool: &Path, shard: usize) -> PathBuf {
    spool.join("wal").join(format!("shard{shard}"))
}

pub fn slot_path(dir: &Path, slot: u32) -> PathBuf {
    dir.join(format!("{slot:06}.seg"))
}

/// The slots present in `dir`: number, path, size.
pub fn list(dir: &Path) -> io::Result<Vec<(u32, PathBuf, u64)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        out.push((n, entry.path(), entry.metadata()?.len()));
    }
    out.sort_unstable_by_key(|(n, _, _)| *n);
    Ok(out)
}

/// Read a slot's header.
pub fn read_header(path: &Path) -> io::Result<Result<Option<SegmentHeader>, HeaderError>> {
    let f = File::open(path)?;
    let mut b = vec![0u8; HEADER_LEN as usize];
    let got = f.read_at(&mut b, 0)?;
    if got < b.len() {
        return Ok(Err(HeaderError::Damaged));
    }
    Ok(decode_header(&b))
}

/// A new slot of `size` octets. `zeroed` writes every octet (so later appends are
/// pure overwrites); otherwise the space is only reserved (for a one-off slot
/// holding a message larger than a segment). Synced, with its directory entry.
pub fn create(dir: &Path, slot: u32, size: u64, zeroed: bool) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = slot_path(dir, slot);
    let tmp = dir.join(format!("{slot:06}.new"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    if zeroed {
        let chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
    } else {
        reserve(&f, size)?;
    }
    f.sync_all()?;
    drop(f);
    // Under its real name only once whole: a crash mid-way leaves a `.new` file,
    // which the next start removes.
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

fn reserve(f: &File, size: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain fallocate on a file descriptor we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, size as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // A file system without fallocate: a sparse file of the right size.
        return f.set_len(size);
    }
    Err(e)
}

/// Remove `.new` files a crash left half-made.
pub fn remove_unfinished(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|x| x == "new") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Read `len` octets at `offset` of a slot (a record, for delivery or the admin API).
pub fn read_at(dir: &Path, slot: u32, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let f = File::open(slot_path(dir, slot))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back() {
        let h = SegmentHeader { shard: 3, seq: 77 };
        assert_eq!(decode_header(&encode_header(h)), Ok(Some(h)));
        assert_eq!(decode_header(&[0u8; 64]), Ok(None));
    }

    #[test]
    fn a_damaged_or_newer_header_is_refused() {
        let mut b = encode_header(SegmentHeader { shard: 0, seq: 1 });
        b[17] ^= 1;
        assert_eq!(decode_header(&b), Err(HeaderError::Damaged));
        let mut b = encode_header(SegmentHeader { shard: 0, seq: 1 });
        b[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&b[0..32]);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&b), Err(HeaderError::Newer(VERSION + 1)));
    }
}
