//! `DataDecoder` and `dot_stuff`.
//!
//! Input layout: `limit, n, len_1 .. len_n, bytes...`
//! - limit: the decoder's max size is `limit * 16` octets (0 to 4080)
//! - n % 8 chunk lengths, each one byte; the rest of the input is the last chunk.
//!
//! Properties:
//! 1. Split invariance: feeding the bytes in chunks (and one at a time) gives the
//!    same consumed count, end-of-data flag and error as feeding them whole, and the
//!    same content when there is no error; content never exceeds the size limit.
//! 2. Round trip: when the bytes are a body with no NUL, no bare CR or LF, no line over
//!    998 octets, `dot_stuff` then decoding gives the body back (plus a CRLF when it
//!    did not end with one), ends exactly at the end of the stuffed text, with no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxring::proto::data::{dot_stuff, DataDecoder, DataError};

type Outcome = (Vec<u8>, usize, bool, Option<DataError>);

fn decode_chunks(max: u64, chunks: &[&[u8]]) -> Outcome {
    let mut d = DataDecoder::new(max);
    let mut out = Vec::new();
    let mut consumed = 0;
    for chunk in chunks {
        let (n, done) = d.decode(chunk, &mut out);
        assert!(n <= chunk.len(), "consumed {n} of {}", chunk.len());
        consumed += n;
        if done {
            return (out, consumed, true, d.error());
        }
        assert_eq!(n, chunk.len(), "not done, yet input left unconsumed");
    }
    (out, consumed, false, d.error())
}

/// Two decodings agree. After an error the content is only a partial copy that the
/// session throws away, and how much of it was kept depends on the chunking (text is
/// appended a run at a time until the size limit trips): compare it only when clean.
fn assert_same(a: &Outcome, b: &Outcome, what: &str) {
    if a.3.is_none() && b.3.is_none() {
        assert_eq!(a, b, "{what}");
    } else {
        assert_eq!((a.1, a.2, a.3), (b.1, b.2, b.3), "{what}");
    }
}

/// No NUL, every CR is followed by LF and every LF follows a CR; lines (without CRLF) are
/// at most 998 octets. RFC 5321 4.5.3.1.6 does not count the dot added for
/// transparency, so a 998-octet line starting with "." is fine.
fn is_clean_body(body: &[u8]) -> bool {
    let mut line = 0usize;
    for (i, &c) in body.iter().enumerate() {
        match c {
            // A NUL is refused inbound and dropped by the encoder.
            0 => return false,
            b'\r' if body.get(i + 1) != Some(&b'\n') => return false,
            b'\n' if i == 0 || body[i - 1] != b'\r' => return false,
            b'\r' => {}
            b'\n' => line = 0,
            _ => {
                line += 1;
                if line > 998 {
                    return false;
                }
            }
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((limit, whole_input, chunks)) = mxring_fuzz::chunked_input(data) else {
        return;
    };
    let max = u64::from(limit) * 16;

    // 1. Split invariance.
    let whole = decode_chunks(max, &[whole_input]);
    let split = decode_chunks(max, &chunks);
    assert_same(&split, &whole, "decoding depends on the split");
    let (out, consumed, done, error) = &whole;
    assert!(*consumed <= whole_input.len());
    if !done {
        assert_eq!(*consumed, whole_input.len());
    } else {
        let taken = &whole_input[..*consumed];
        assert!(
            taken.ends_with(b"\r\n.\r\n") || taken == b".\r\n",
            "DATA ended early"
        );
    }
    assert!(out.len() as u64 <= max, "content over the size limit kept");
    if *error == Some(DataError::TooBig) {
        assert!(whole_input.len() as u64 > max);
    }
    // One byte at a time (bounded, to keep executions fast).
    if whole_input.len() <= 512 {
        let bytes: Vec<&[u8]> = whole_input.chunks(1).collect();
        assert_same(
            &decode_chunks(max, &bytes),
            &whole,
            "byte-at-a-time differs",
        );
    }

    // 2. Round trip through dot_stuff.
    let body = whole_input;
    if is_clean_body(body) {
        let mut wire = Vec::new();
        dot_stuff(body, &mut wire);
        let mut d = DataDecoder::new(1 << 20);
        let mut decoded = Vec::new();
        let (n, done) = d.decode(&wire, &mut decoded);
        let mut expect = body.to_vec();
        if !expect.is_empty() && !expect.ends_with(b"\r\n") {
            expect.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            (n, done, d.error()),
            (wire.len(), true, None),
            "stuffed body does not decode cleanly"
        );
        assert_eq!(decoded, expect, "dot_stuff round trip changed the body");
    }
});
