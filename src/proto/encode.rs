//! The outbound body encoder. Whatever bytes a stored body holds (a spool written by
//! an older version, a DSN quoting a hostile message), what goes to a next hop is
//! canonical: no NUL, every line ended by CRLF, and for DATA every leading dot
//! stuffed. So no receiver, however lenient (one that ends lines at a bare CR or LF,
//! or drops NULs), can find an end of data before ours.

use std::borrow::Cow;

/// True when `body` has no NUL and every CR is followed by LF and every LF
/// preceded by CR (the final CRLF may be missing).
pub fn is_canonical(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some(p) = memchr::memchr3(b'\r', b'\n', 0, rest) {
        match rest.get(p..) {
            Some([b'\r', b'\n', after @ ..]) => rest = after,
            _ => return false,
        }
    }
    true
}

/// `body` with NULs removed and every bare CR or LF made a CRLF (NULs go first, so
/// "CR NUL LF" is one line ending). Borrowed when it was canonical already, which
/// is every body mxring accepted since it refuses the others.
pub fn canonical(body: &[u8]) -> Cow<'_, [u8]> {
    if is_canonical(body) {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + body.len() / 32 + 2);
    let mut bytes = body.iter().copied().filter(|&b| b != 0).peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// Encode `body` for DATA: canonical lines, every leading dot doubled, a CRLF added
/// when the body does not end with one, then the end marker.
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    let body = canonical(body);
    out.reserve(body.len() + body.len() / 64 + 5);
    // Canonical: every LF ends a line, so a line starts after each LF.
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// What a receiver that is as lenient as receivers get makes of `wire` after DATA:
/// it drops NULs, ends a line at CRLF, a bare CR or a bare LF, and stops at a line
/// holding only ".". Returns the offset just past the end marker it saw first, if
/// any. Tests and fuzz targets hold the encoder to it; pure, so it lives here.
pub fn lenient_end_of_data(wire: &[u8]) -> Option<usize> {
    let mut line_start = true;
    let mut dot = false;
    let mut i = 0;
    while let Some(&b) = wire.get(i) {
        i += 1;
        match b {
            0 => continue,
            b'\r' | b'\n' => {
                if b == b'\r' && wire.get(i) == Some(&b'\n') {
                    i += 1;
                }
                if line_start && dot {
                    return Some(i);
                }
                line_start = true;
                dot = false;
            }
            b'.' if line_start && !dot => dot = true,
            _ => {
                line_start = false;
                dot = false;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::DataDecoder;

    /// The promise: strict decoding gives `canonical(body)` (plus a final CRLF),
    /// and neither the strict decoder nor the lenient one ends before the end.
    fn holds(body: &[u8]) {
        let mut wire = Vec::new();
        dot_stuff(body, &mut wire);
        let shown = String::from_utf8_lossy(body);
        assert_eq!(
            lenient_end_of_data(&wire),
            Some(wire.len()),
            "a lenient receiver ends {shown:?} early: {:?}",
            String::from_utf8_lossy(&wire)
        );
        let mut d = DataDecoder::new(u64::MAX);
        let mut out = Vec::new();
        assert_eq!(d.decode(&wire, &mut out), (wire.len(), true), "{shown:?}");
        assert_eq!(d.error(), None, "{shown:?}");
        let mut expect = canonical(body).into_owned();
        if !expect.is_empty() && !expect.ends_with(b"\r\n") {
            expect.extend_from_slice(b"\r\n");
        }
        assert_eq!(out, expect, "{shown:?}");
    }

    #[test]
    fn the_audit_inputs_cannot_end_a_message_early() {
        for body in [
            &b"Subject: x\r\n\r\nT\r.\r\nMAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<v@lenient.test>\r\nDATA\r\nx\r\n.\r\n"[..],
            b"T\r.\nMAIL FROM:<smuggled@evil.test>\r\n",
            b"T\r.\rMAIL FROM:<smuggled@evil.test>\r\n",
            b"T\n.\nMAIL FROM:<smuggled@evil.test>\r\n",
            b"T\r\n\x00.\r\nMAIL FROM:<smuggled@evil.test>\r\n",
            b"T\r\n.\x00\r\nX",
            b"\x00.\r\n",
            b".",
            b"\r",
            b"\r\x00\n.\r\n",
        ] {
            holds(body);
        }
    }

    #[test]
    fn canonical_bodies_pass_unchanged() {
        for body in [&b""[..], b"a\r\nb\r\n", b"no end", b".\r\n..\r\n"] {
            assert!(matches!(canonical(body), Cow::Borrowed(_)), "{body:?}");
            holds(body);
        }
        assert!(!is_canonical(b"a\r"));
        assert!(!is_canonical(b"a\nb"));
        assert!(!is_canonical(b"a\0b"));
    }

    #[test]
    fn every_short_byte_string_over_the_dangerous_alphabet() {
        // All strings of up to 6 bytes from the bytes that matter.
        let alphabet = [b'\r', b'\n', b'.', 0, b'x'];
        let mut body = Vec::new();
        fn walk(body: &mut Vec<u8>, alphabet: &[u8], depth: usize) {
            holds(body);
            if depth == 0 {
                return;
            }
            for &b in alphabet {
                body.push(b);
                walk(body, alphabet, depth - 1);
                body.pop();
            }
        }
        walk(&mut body, &alphabet, 6);
    }
}
