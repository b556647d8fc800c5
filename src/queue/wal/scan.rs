//! Reading a segment back after a crash: the records after the index's checkpoint,
//! in order. A torn tail (the last batch cut short by the crash, or bytes that are
//! no record at all with nothing sound after them) was never acknowledged and is
//! dropped. Damage with sound records after it is something else: those octets
//! are handed back to be quarantined, and the scan goes on after them.

use super::frame::{self, Bad, Header};

/// A sound record found by the scan.
#[derive(Debug, Clone)]
pub struct Found {
    pub offset: u64,
    pub header: Header,
    pub meta: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Scanned {
    pub records: Vec<Found>,
    /// Where the log of this generation ends (after the last sound record).
    pub end: u64,
    /// Octets after `end` that are neither zeros nor an older generation.
    pub torn: u64,
    /// Damaged stretches (offset, length) with sound records after them.
    pub damaged: Vec<(u64, u64)>,
}

/// Scan `buf` (a whole segment) for generation `seq`, from `from`. Fails only for
/// a record written by a newer format.
pub fn scan(buf: &[u8], seq: u64, from: u64) -> Result<Scanned, u8> {
    let mut out = Scanned {
        end: from,
        ..Default::default()
    };
    let mut pos = from as usize;
    while pos < buf.len() {
        match frame::record(&buf[pos..], seq) {
            Ok(r) => {
                out.records.push(Found {
                    offset: pos as u64,
                    header: r.header,
                    meta: r.meta.to_vec(),
                });
                pos += r.header.record_len() as usize;
                out.end = pos as u64;
            }
            Err(Bad::NewerVersion(v)) => return Err(v),
            Err(Bad::Unwritten) | Err(Bad::OtherGeneration) => break,
            Err(Bad::Truncated) | Err(Bad::Header) | Err(Bad::Payload) => {
                match next_sound(buf, pos + frame::ALIGN, seq) {
                    Some(next) => {
                        out.damaged.push((pos as u64, (next - pos) as u64));
                        pos = next;
                    }
                    None => {
                        out.torn = torn_len(&buf[pos..], seq);
                        break;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The next offset (8-aligned) holding a sound record of generation `seq`.
fn next_sound(buf: &[u8], from: usize, seq: u64) -> Option<usize> {
    let mut at = from.next_multiple_of(frame::ALIGN);
    while at + frame::HEADER_LEN <= buf.len() {
        if frame::record(&buf[at..], seq).is_ok() {
            return Some(at);
        }
        at += frame::ALIGN;
    }
    None
}

/// How much of a torn tail is really written: up to where zeros begin.
fn torn_len(tail: &[u8], _seq: u64) -> u64 {
    let mut end = tail.len();
    while end > 0 && tail[end - 1] == 0 {
        end -= 1;
    }
    end as u64
}

#[cfg(test)]
mod tests {
    use super::super::frame::{append, Kind};
    use super::*;

    /// A segment body of `n` records of generation 5, with room after it.
    fn log(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut v = Vec::new();
        let mut starts = Vec::new();
        for id in 0..n {
            let body = vec![b'a' + id as u8; 100 + id as usize * 37];
            starts.push(append(&mut v, Kind::Message, 5, id, b"{}", &[&body]));
        }
        v.resize(v.len() + 4096, 0);
        (v, starts)
    }

    #[test]
    fn a_clean_log_reads_whole() {
        let (v, starts) = log(4);
        let s = scan(&v, 5, 0).unwrap();
        assert_eq!(s.records.len(), 4);
        assert_eq!(s.torn, 0);
        assert!(s.damaged.is_empty());
        assert_eq!(s.records[3].offset as usize, starts[3]);
    }

    #[test]
    fn a_torn_batch_is_dropped_at_every_cut() {
        let (full, starts) = log(3);
        let last = starts[2];
        let end = scan(&full, 5, 0).unwrap().end as usize;
        for cut in last + 1..end {
            let mut v = full.clone();
            v[cut..].fill(0);
            let s = scan(&v, 5, 0).unwrap();
            assert_eq!(s.records.len(), 2, "cut at {cut}");
            assert_eq!(s.end as usize, last);
            assert!(
                s.damaged.is_empty(),
                "cut at {cut}: a torn tail is not damage"
            );
        }
    }

    #[test]
    fn damage_in_the_middle_is_set_aside_and_the_rest_read() {
        let (mut v, starts) = log(4);
        v[starts[1] + 70] ^= 0x40;
        let s = scan(&v, 5, 0).unwrap();
        let ids: Vec<u64> = s.records.iter().map(|r| r.header.id).collect();
        assert_eq!(ids, vec![0, 2, 3]);
        assert_eq!(
            s.damaged,
            vec![(starts[1] as u64, (starts[2] - starts[1]) as u64)]
        );
    }

    #[test]
    fn a_damaged_last_record_is_a_torn_tail() {
        let (mut v, starts) = log(3);
        v[starts[2] + 60] ^= 1;
        let s = scan(&v, 5, 0).unwrap();
        assert_eq!(s.records.len(), 2);
        assert!(s.torn > 0);
        assert!(s.damaged.is_empty());
    }

    #[test]
    fn an_older_generation_after_the_end_is_not_read() {
        let (mut v, starts) = log(3);
        // The slot's previous use left records after where this use ends.
        let mut old = Vec::new();
        append(&mut old, Kind::Message, 4, 99, b"{}", &[b"old"]);
        let at = starts[2];
        v[at..at + old.len()].copy_from_slice(&old);
        let s = scan(&v, 5, 0).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.torn, 0);
    }

    #[test]
    fn the_scan_starts_at_the_checkpoint() {
        let (v, starts) = log(4);
        let s = scan(&v, 5, starts[2] as u64).unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[0].header.id, 2);
    }
}
