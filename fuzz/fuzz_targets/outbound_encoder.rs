//! The outbound body encoder (`proto::encode`), for any bytes a stored body might hold.
//!
//! Input: the body, whole.
//!
//! Properties (issue 11):
//! 1. No early end of data: a receiver as lenient as they come (ends lines at a bare
//!    CR or LF, drops NULs; `lenient_end_of_data`) finds the end marker exactly at the
//!    end of the encoded text, never before.
//! 2. decode(encode(x)) == x: the strict decoder ends exactly at the end, with no
//!    error (but a line too long, which the encoder does not wrap), and gives back `canonical(x)` (plus a CRLF when it did not end with one);
//!    for a canonical x (every body mxring accepts), that is x itself.
//! 3. `canonical` is idempotent, and canonical output passes `is_canonical`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxring::proto::data::{DataDecoder, DataError};
use mxring::proto::encode::{canonical, dot_stuff, is_canonical, lenient_end_of_data};

fuzz_target!(|body: &[u8]| {
    let mut wire = Vec::new();
    dot_stuff(body, &mut wire);
    assert_eq!(lenient_end_of_data(&wire), Some(wire.len()), "early end");

    let mut d = DataDecoder::new(u64::MAX);
    let mut out = Vec::new();
    assert_eq!(d.decode(&wire, &mut out), (wire.len(), true));
    // The encoder does not wrap lines: a line over 998 octets stays one (mxring
    // never accepts such a line, but a body from elsewhere may hold one).
    let canon = canonical(body);
    let long_line = canon
        .split(|&b| b == b'\n')
        .any(|l| l.strip_suffix(b"\r").unwrap_or(l).len() > 998);
    match d.error() {
        None => {}
        Some(DataError::LineTooLong) if long_line => return,
        Some(e) => panic!("encoded body decodes with {e:?}"),
    }

    assert!(is_canonical(&canon));
    assert_eq!(canonical(&canon), canon, "canonical is idempotent");
    let mut expect = canon.into_owned();
    if !expect.is_empty() && !expect.ends_with(b"\r\n") {
        expect.extend_from_slice(b"\r\n");
    }
    if is_canonical(body) {
        let mut same = body.to_vec();
        if !same.is_empty() && !same.ends_with(b"\r\n") {
            same.extend_from_slice(b"\r\n");
        }
        assert_eq!(expect, same, "a canonical body is left alone");
    }
    assert_eq!(out, expect, "decode(encode(x))");
});
