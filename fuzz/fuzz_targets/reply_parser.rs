//! `parse_reply` on arbitrary server bytes.
//!
//! Properties: no panic;
//! - `Ok(Some((r, n)))`: `0 < n <= len`; the code is 200-599 and the reply has 1 to
//!   200 lines; `input[..n]` alone parses the same and its proper prefixes ask for
//!   more; `enhanced()`/`one_line()` do not panic; and writing the reply back with
//!   `reply_lines` and parsing it again gives the same reply (when its text has no
//!   control characters, which the writer replaces).
//! - `Ok(None)`: every prefix also asks for more.
//!
//! (Prefixes are sampled for long inputs.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxring::proto::reply::{parse_reply, reply_lines};

/// Proper prefix lengths to try: all of them for short inputs, about 256 otherwise
/// (each parse is linear, so checking every prefix of a long input is quadratic).
fn cuts(n: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by((n / 256).max(1))
}

fuzz_target!(|data: &[u8]| {
    match parse_reply(data) {
        Ok(Some((r, n))) => {
            assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
            assert!((200..600).contains(&r.code), "code {}", r.code);
            assert!(
                !r.lines.is_empty() && r.lines.len() <= 200,
                "{} lines",
                r.lines.len()
            );
            assert_eq!(data[n - 1], b'\n', "reply does not end at a line end");
            assert_eq!(parse_reply(&data[..n]), Ok(Some((r.clone(), n))));
            for cut in cuts(n) {
                assert_eq!(parse_reply(&data[..cut]), Ok(None), "prefix of {cut} bytes");
            }
            if let Some(e) = r.enhanced() {
                assert!(r.lines[0].starts_with(e));
                assert!(e.starts_with(['2', '4', '5']));
            }
            let _ = r.one_line();
            let _ = (r.is_positive(), r.is_transient(), r.is_permanent());
            // The writer replaces control characters, always writes CRLF and a
            // separator, and U+FFFD from lossy decoding is longer than the byte it
            // replaced: round trip only lines that none of this can push past the limit.
            if r.lines
                .iter()
                .all(|l| l.len() <= 4000 && !l.chars().any(char::is_control))
            {
                let lines: Vec<&str> = r.lines.iter().map(String::as_str).collect();
                let mut wire = Vec::new();
                reply_lines(&mut wire, r.code, &lines);
                match parse_reply(&wire) {
                    Ok(Some((again, used))) => {
                        assert_eq!(again, r, "reply_lines round trip");
                        assert_eq!(used, wire.len());
                    }
                    other => panic!("written reply does not parse: {other:?}"),
                }
            }
        }
        Ok(None) => {
            for cut in cuts(data.len()) {
                assert_eq!(parse_reply(&data[..cut]), Ok(None), "prefix of {cut} bytes");
            }
        }
        Err(_) => {}
    }
});
