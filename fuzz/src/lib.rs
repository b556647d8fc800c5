//! Helpers shared by the fuzz targets: the chunked input layout, and filters for
//! bugs already reported so a long run can get past them.

use std::sync::OnceLock;

/// Split a target's input laid out as `flags, n, len_1 .. len_n, bytes...` into the
/// flags byte, the bytes, and the bytes cut into `n % 8 + 1` chunks (each of the
/// first `n % 8` as long as its length byte says, clamped; the last one the rest).
/// None when the input is too short for its own header.
pub fn chunked_input(data: &[u8]) -> Option<(u8, &[u8], Vec<&[u8]>)> {
    let (&flags, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 8);
    if rest.len() < n {
        return None;
    }
    let (lens, whole) = rest.split_at(n);
    let mut input = whole;
    let mut chunks = Vec::with_capacity(n + 1);
    for &len in lens {
        let (a, b) = input.split_at(usize::from(len).min(input.len()));
        chunks.push(a);
        input = b;
    }
    chunks.push(input);
    Some((flags, whole, chunks))
}

/// Whether `MXRING_FUZZ_SKIP_KNOWN=1` asks the targets to skip inputs that hit bugs
/// already reported (listed below), so a run can look for new ones. Off by default:
/// CI must fail while a known bug is still there.
pub fn skip_known_bugs() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("MXRING_FUZZ_SKIP_KNOWN").is_some_and(|v| v == "1"))
}

/// Known bug 1 (reproducers in `artifacts-keep/command_parser/`): `parse_command`
/// slices `rest[..prefix.len()]` in `prefixed()` without checking for a char
/// boundary, so `MAIL F:<jö` or `RCPT öö` panics. True when the command line `line`
/// (CRLF removed) would reach that slice badly.
pub fn line_hits_prefixed_bug(line: &[u8]) -> bool {
    let Some(verb) = line.get(..5) else {
        return false;
    };
    let plen = if verb.eq_ignore_ascii_case(b"MAIL ") {
        5
    } else if verb.eq_ignore_ascii_case(b"RCPT ") {
        3
    } else {
        return false;
    };
    match std::str::from_utf8(line) {
        Ok(s) => {
            let rest = s[5..].trim_start();
            rest.len() >= plen && !rest.is_char_boundary(plen)
        }
        Err(_) => false,
    }
}

/// Known bug 1 anywhere in a client's byte stream: any `MAIL `/`RCPT `, taken up to
/// the next LF, that would hit it (an over-approximation of what the session parses).
pub fn stream_hits_prefixed_bug(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|p| {
        let tail = &bytes[p..];
        let verb = tail.get(..5).unwrap_or_default();
        if !verb.eq_ignore_ascii_case(b"MAIL ") && !verb.eq_ignore_ascii_case(b"RCPT ") {
            return false;
        }
        let line = match tail.iter().position(|&c| c == b'\n') {
            Some(i) => &tail[..i],
            None => tail,
        };
        line_hits_prefixed_bug(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// Known bug 2 (reproducers in `artifacts-keep/data_decoder/` and
/// `artifacts-keep/server_session/`): when DATA content has more than one problem
/// (over the size limit, a line over 1000 octets, a bare CR or LF), which error
/// `DataDecoder` reports first depends on how the bytes were split: the line length
/// is only checked at a CRLF or at the end of a chunk, and the size a text run at a
/// time. So the server answers `552 5.3.4`, `500 5.5.6` or `550 5.6.0` depending on
/// TCP segmentation.
pub const DATA_ERROR_REPLIES: [&[u8]; 3] = [
    b"552 5.3.4 Message size exceeds fixed limit\r\n",
    b"500 5.5.6 Error: message line too long\r\n",
    b"550 5.6.0 Error: bare <CR> or <LF> in message content\r\n",
];

/// Server output with known bug 2 masked: every DATA error reply becomes one placeholder.
pub fn mask_data_error_replies(out: &[u8]) -> Vec<u8> {
    let mut masked = Vec::with_capacity(out.len());
    let mut rest = out;
    while !rest.is_empty() {
        if let Some(r) = DATA_ERROR_REPLIES.iter().find(|r| rest.starts_with(r)) {
            masked.extend_from_slice(b"5xx data error\r\n");
            rest = &rest[r.len()..];
        } else {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            masked.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
    }
    masked
}
