//! How one record sits in a log segment: a fixed header (magic, version, kind, the
//! segment's generation, the message id, lengths and two CRC32Cs) followed by the
//! envelope (JSON) and the body, padded to 8 octets so a reader that lost its
//! place can look for the next header at every 8th octet.
//!
//! The generation (`seq`) ties a record to one use of a segment file: files are
//! reused, and a record left from an earlier use carries an older `seq`, so it
//! reads as the end of the log, never as a message.

/// `MXRW`, little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"MXRW");
/// The record format this build writes and the newest it reads.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 56;
pub const ALIGN: usize = 8;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A message that got its 250: envelope record and body.
    Message = 1,
    /// A message copied forward by compaction: its body lives here now.
    Relocated = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Message),
            2 => Some(Kind::Relocated),
            _ => None,
        }
    }
}

/// A record's fixed header, decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub seq: u64,
    pub id: u64,
    pub meta_len: u32,
    pub body_len: u64,
    payload_crc: u32,
}

impl Header {
    /// Octets the whole record takes, padding included.
    pub fn record_len(&self) -> u64 {
        padded(HEADER_LEN as u64 + self.meta_len as u64 + self.body_len)
    }
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Zeros where a header would be: the unwritten part of a segment.
    Unwritten,
    /// A sound record from an earlier use of the file (another `seq`).
    OtherGeneration,
    /// Fewer octets than the header or the record needs.
    Truncated,
    /// A header that fails its CRC or makes no sense.
    Header,
    /// A sound header whose payload fails its CRC.
    Payload,
    /// A record of a format newer than this build reads.
    NewerVersion(u8),
}

pub fn padded(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// Append one record to `out`; returns where in `out` it starts. The body may come
/// in two parts (a spilled head and the in-memory tail), so it is written by the
/// caller through `body_parts`, each part appended in order.
pub fn append(
    out: &mut Vec<u8>,
    kind: Kind,
    seq: u64,
    id: u64,
    meta: &[u8],
    body_parts: &[&[u8]],
) -> usize {
    let start = out.len();
    let body_len: u64 = body_parts.iter().map(|p| p.len() as u64).sum();
    out.resize(start + HEADER_LEN, 0);
    out.extend_from_slice(meta);
    for part in body_parts {
        out.extend_from_slice(part);
    }
    let payload_crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    let end = start as u64 + padded(HEADER_LEN as u64 + meta.len() as u64 + body_len);
    out.resize(end as usize, 0);
    let header = Header {
        kind,
        seq,
        id,
        meta_len: meta.len() as u32,
        body_len,
        payload_crc,
    };
    write_header(&mut out[start..start + HEADER_LEN], &header);
    start
}

/// Write `h` into the first `HEADER_LEN` octets of `buf`, header CRC included.
fn write_header(buf: &mut [u8], h: &Header) {
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4] = VERSION;
    buf[5] = h.kind as u8;
    buf[6..8].copy_from_slice(&[0, 0]);
    buf[8..16].copy_from_slice(&h.seq.to_le_bytes());
    buf[16..24].copy_from_slice(&h.id.to_le_bytes());
    buf[24..28].copy_from_slice(&h.payload_crc.to_le_bytes());
    buf[28..32].copy_from_slice(&h.meta_len.to_le_bytes());
    buf[32..40].copy_from_slice(&h.body_len.to_le_bytes());
    buf[40..48].copy_from_slice(&[0; 8]);
    let crc = crc32c::crc32c(&buf[0..48]);
    buf[48..52].copy_from_slice(&crc.to_le_bytes());
    buf[52..56].copy_from_slice(&[0; 4]);
}

/// Give an encoded record (at the start of `buf`) another generation: records are
/// encoded before the batch knows which segment they land in.
pub fn set_seq(buf: &mut [u8], seq: u64) {
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&buf[0..48]);
    buf[48..52].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode and check the header at the start of `buf`, for generation `seq`.
pub fn header(buf: &[u8], seq: u64) -> Result<Header, Bad> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Err(if buf.iter().all(|&b| b == 0) {
            Bad::Unwritten
        } else {
            Bad::Truncated
        });
    };
    if h.iter().all(|&b| b == 0) {
        return Err(Bad::Unwritten);
    }
    if u32_at(h, 0) != MAGIC || crc32c::crc32c(&h[0..48]) != u32_at(h, 48) || u32_at(h, 52) != 0 {
        return Err(Bad::Header);
    }
    if h[4] > VERSION {
        return Err(Bad::NewerVersion(h[4]));
    }
    let kind = Kind::from_byte(h[5]).ok_or(Bad::Header)?;
    let header = Header {
        kind,
        seq: u64_at(h, 8),
        id: u64_at(h, 16),
        payload_crc: u32_at(h, 24),
        meta_len: u32_at(h, 28),
        body_len: u64_at(h, 32),
    };
    if header.seq != seq {
        return Err(Bad::OtherGeneration);
    }
    Ok(header)
}

/// A whole record, checked: its header and the payload's two parts.
#[derive(Debug)]
pub struct Record<'a> {
    pub header: Header,
    pub meta: &'a [u8],
    pub body: &'a [u8],
}

/// Decode and check the record at the start of `buf`.
pub fn record(buf: &[u8], seq: u64) -> Result<Record<'_>, Bad> {
    let header = header(buf, seq)?;
    let payload_len = header.meta_len as u64 + header.body_len;
    let end = (HEADER_LEN as u64)
        .checked_add(payload_len)
        .ok_or(Bad::Header)?;
    if end > buf.len() as u64 {
        return Err(Bad::Truncated);
    }
    let payload = &buf[HEADER_LEN..end as usize];
    if crc32c::crc32c(payload) != header.payload_crc {
        return Err(Bad::Payload);
    }
    let (meta, body) = payload.split_at(header.meta_len as usize);
    Ok(Record { header, meta, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, seq: u64, id: u64, meta: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        append(&mut v, kind, seq, id, meta, &[body]);
        v
    }

    #[test]
    fn a_record_reads_back_whole() {
        let v = one(
            Kind::Message,
            7,
            42,
            b"{\"a\":1}",
            b"Subject: x\r\n\r\nhi\r\n",
        );
        assert_eq!(v.len() % ALIGN, 0);
        let r = record(&v, 7).unwrap();
        assert_eq!(r.header.kind, Kind::Message);
        assert_eq!(r.header.id, 42);
        assert_eq!(r.meta, b"{\"a\":1}");
        assert_eq!(r.body, b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(r.header.record_len(), v.len() as u64);
    }

    #[test]
    fn a_body_in_two_parts_is_one_body() {
        let mut v = Vec::new();
        append(&mut v, Kind::Message, 1, 1, b"m", &[b"head ", b"tail"]);
        assert_eq!(record(&v, 1).unwrap().body, b"head tail");
    }

    #[test]
    fn every_truncation_point_is_detected() {
        let v = one(Kind::Message, 3, 9, b"meta", &[b'x'; 300]);
        let used = HEADER_LEN + 4 + 300;
        for cut in 0..used {
            let got = record(&v[..cut], 3);
            assert!(
                got.is_err(),
                "a record cut at {cut} of {used} octets was read as whole"
            );
            if cut > 0 {
                assert_ne!(got.unwrap_err(), Bad::Unwritten, "cut at {cut}");
            }
        }
        assert!(record(&v[..used], 3).is_ok());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let v = one(Kind::Message, 3, 9, b"{}", b"body octets");
        let used = HEADER_LEN + 2 + 11;
        for byte in 0..used {
            for bit in 0..8 {
                let mut w = v.clone();
                w[byte] ^= 1 << bit;
                assert!(
                    record(&w, 3).is_err(),
                    "a flip of bit {bit} in octet {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_record_of_another_generation_is_not_this_one() {
        let v = one(Kind::Message, 3, 9, b"{}", b"b");
        assert_eq!(record(&v, 4).unwrap_err(), Bad::OtherGeneration);
        let mut w = v.clone();
        set_seq(&mut w, 4);
        assert!(record(&w, 4).is_ok());
    }

    #[test]
    fn zeros_are_the_unwritten_end() {
        assert_eq!(record(&[0u8; 100], 1).unwrap_err(), Bad::Unwritten);
        assert_eq!(record(&[0u8; 10], 1).unwrap_err(), Bad::Unwritten);
    }

    #[test]
    fn a_newer_version_is_told_apart() {
        let mut v = one(Kind::Message, 3, 9, b"{}", b"b");
        v[4] = VERSION + 1;
        let crc = crc32c::crc32c(&v[0..48]);
        v[48..52].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(record(&v, 3).unwrap_err(), Bad::NewerVersion(VERSION + 1));
    }
}
