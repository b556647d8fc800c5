//! The DATA decoder: removes dot-stuffing, finds the end marker and enforces the
//! message limits. The end of data is CRLF "." CRLF and nothing else; a bare CR or
//! LF anywhere is recorded as an error, never normalised (the SMTP smuggling class),
//! and so is a NUL (a receiver that drops NULs would see "CRLF NUL . CRLF" as an end).

/// Longest text line RFC 5321 4.5.3.1.6 allows, CRLF included.
pub const MAX_TEXT_LINE: usize = 1000;

/// What made a message unacceptable. The decoder keeps reading to the end marker
/// so the session stays in sync, then the session refuses the message. When several
/// apply, the reply names the first in this order, whatever the TCP segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    TooBig,
    LineTooLong,
    BareLineEnding,
    Nul,
}

impl DataError {
    /// In the order a reply names them.
    pub const ALL: [DataError; 4] = [
        DataError::TooBig,
        DataError::LineTooLong,
        DataError::BareLineEnding,
        DataError::Nul,
    ];

    pub(crate) fn bit(self) -> u8 {
        match self {
            DataError::TooBig => 1,
            DataError::LineTooLong => 2,
            DataError::BareLineEnding => 4,
            DataError::Nul => 8,
        }
    }

    /// The most important error of a set of `bit`s.
    pub(crate) fn first_of(bits: u8) -> Option<DataError> {
        DataError::ALL.into_iter().find(|e| bits & e.bit() != 0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// Saw "." at the start of a line.
    Dot,
    /// Saw ".\r" at the start of a line.
    DotCr,
    /// Inside a line.
    Text,
    /// Saw "\r" inside a line.
    Cr,
}

#[derive(Clone, Debug)]
pub struct DataDecoder {
    state: State,
    line_len: usize,
    written: u64,
    max_size: u64,
    /// Every kind of error seen (bits of `DataError::bit`).
    errors: u8,
}

impl DataDecoder {
    pub fn new(max_size: u64) -> Self {
        DataDecoder {
            state: State::LineStart,
            line_len: 0,
            written: 0,
            max_size,
            errors: 0,
        }
    }

    /// The most important error seen, if any.
    pub fn error(&self) -> Option<DataError> {
        DataError::first_of(self.errors)
    }

    /// Octets of message content so far (after unstuffing).
    pub fn size(&self) -> u64 {
        self.written
    }

    fn fail(&mut self, e: DataError) {
        self.errors |= e.bit();
    }

    /// Count every content byte (so the size verdict does not depend on other
    /// errors), but stop keeping them once the message is refused anyway.
    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        if self.written > self.max_size {
            self.fail(DataError::TooBig);
        }
        if self.errors == 0 {
            out.extend_from_slice(bytes);
        }
    }

    /// Decode from `input`, appending content to `out`. Returns the bytes consumed
    /// and whether the end marker was reached (bytes after it are not consumed).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while let Some(rest @ [c, ..]) = input.get(i..) {
            let c = *c;
            match self.state {
                State::LineStart => {
                    if c == b'.' {
                        // RFC 5321 4.5.3.1.6: the dot added for transparency does not
                        // count toward the 1000-octet line limit.
                        self.state = State::Dot;
                        self.line_len = 0;
                        i += 1;
                    } else {
                        self.state = State::Text;
                        self.line_len = 0;
                    }
                }
                State::Dot => match c {
                    b'\r' => {
                        self.state = State::DotCr;
                        i += 1;
                    }
                    b'\n' => {
                        // A bare LF never starts a line: "\n.\r\n" must not end DATA.
                        self.fail(DataError::BareLineEnding);
                        self.state = State::Text;
                        i += 1;
                    }
                    // A leading dot followed by text is stuffing: drop the dot.
                    _ => self.state = State::Text,
                },
                State::DotCr => {
                    if c == b'\n' {
                        self.state = State::LineStart;
                        return (i + 1, true);
                    }
                    self.fail(DataError::BareLineEnding);
                    self.state = State::Text;
                }
                State::Text => {
                    let (text, stop) = split_at_stop(rest);
                    self.line_len += text.len();
                    self.check_line();
                    self.emit(out, text);
                    i += text.len();
                    let Some(stop) = stop else {
                        continue;
                    };
                    match stop {
                        b'\n' => self.fail(DataError::BareLineEnding),
                        b'\r' => self.state = State::Cr,
                        _ => {
                            // Counted as content, never kept.
                            self.fail(DataError::Nul);
                            self.line_len += 1;
                            self.check_line();
                            self.emit(out, b"\0");
                        }
                    }
                    i += 1;
                }
                State::Cr => {
                    if c == b'\n' {
                        self.line_len += 2;
                        self.check_line();
                        self.emit(out, b"\r\n");
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        self.fail(DataError::BareLineEnding);
                        self.state = State::Text;
                    }
                }
            }
        }
        (i, false)
    }

    fn check_line(&mut self) {
        if self.line_len > MAX_TEXT_LINE {
            self.fail(DataError::LineTooLong);
        }
    }
}

/// Split `rest` at its first CR, LF or NUL: the text before it, and that octet
/// (none when the text runs to the end).
pub(super) fn split_at_stop(rest: &[u8]) -> (&[u8], Option<u8>) {
    match memchr::memchr3(b'\r', b'\n', 0, rest).and_then(|p| rest.split_at_checked(p)) {
        Some((text, [stop, ..])) => (text, Some(*stop)),
        _ => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<u8>, usize, bool, Option<DataError>) {
        let mut d = DataDecoder::new(1 << 20);
        let mut out = Vec::new();
        let (n, done) = d.decode(input, &mut out);
        (out, n, done, d.error())
    }

    /// Feed the input split at every position, and one byte at a time; the result
    /// must be the same as feeding it whole.
    fn decode_split_everywhere(input: &[u8]) {
        let whole = decode_all(input);
        for cut in 0..=input.len() {
            let mut d = DataDecoder::new(1 << 20);
            let mut out = Vec::new();
            let (a, done_a) = d.decode(&input[..cut], &mut out);
            let (n, done) = if done_a {
                (a, true)
            } else {
                let (b, done_b) = d.decode(&input[cut..], &mut out);
                (a + b, done_b)
            };
            assert_eq!((out.clone(), n, done, d.error()), whole, "cut at {cut}");
        }
        let mut d = DataDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut done = false;
        for b in input {
            let (n, dn) = d.decode(std::slice::from_ref(b), &mut out);
            consumed += n;
            if dn {
                done = true;
                break;
            }
        }
        assert_eq!((out, consumed, done, d.error()), whole, "byte at a time");
    }

    #[test]
    fn unstuffs_and_stops_at_the_end_marker() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n";
        let (out, n, done, err) = decode_all(input);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n");
        assert_eq!(&input[n..], b"QUIT\r\n");
        decode_split_everywhere(input);
    }

    #[test]
    fn empty_message() {
        let (out, n, done, err) = decode_all(b".\r\n");
        assert_eq!((out.len(), n, done, err), (0, 3, true, None));
    }

    #[test]
    fn smuggling_markers_do_not_end_data_and_are_refused() {
        for evil in [
            &b"a\r\n\n.\r\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r\n\r.\r\nX\r\n",
            b"a\n.\nX\r\n",
            b"a\r\n.\nX",
        ] {
            let (_, _, done, err) = decode_all(evil);
            assert!(
                !done,
                "{:?} must not end DATA",
                String::from_utf8_lossy(evil)
            );
            assert_eq!(
                err,
                Some(DataError::BareLineEnding),
                "{:?}",
                String::from_utf8_lossy(evil)
            );
            decode_split_everywhere(evil);
        }
        // The real end marker later still ends it, with the error kept.
        let (_, _, done, err) = decode_all(b"a\n.\nb\r\n.\r\n");
        assert!(done);
        assert_eq!(err, Some(DataError::BareLineEnding));
    }

    #[test]
    fn nul_is_refused_wherever_it_is() {
        for evil in [
            &b"a\r\n\0.\r\nMAIL FROM:<x@y>\r\n.\r\n"[..],
            b"\0\r\n.\r\n",
            b".\0\r\n.\r\n",
            b"ab\0cd\r\n.\r\n",
        ] {
            let (out, _, done, err) = decode_all(evil);
            assert!(done, "{evil:?}");
            assert_eq!(err, Some(DataError::Nul), "{evil:?}");
            assert!(!out.contains(&0), "{evil:?}");
            decode_split_everywhere(evil);
        }
    }

    #[test]
    fn overlong_text_line_is_an_error() {
        let mut input = vec![b'x'; 999];
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode_all(&input).3, Some(DataError::LineTooLong));
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode_all(&ok).3, None);
        decode_split_everywhere(&input);
    }

    #[test]
    fn the_error_reported_does_not_depend_on_segmentation() {
        // Found by fuzzing (fuzz/corpus/data_decoder/regress-*): a long line ended by a
        // bare LF, over the size limit, fed whole and split.
        let mut input = vec![b'x'; 1500];
        input.extend_from_slice(b"\nmore\r\n.\r\n");
        let verdict = |parts: &[&[u8]]| {
            let mut d = DataDecoder::new(1200);
            let mut out = Vec::new();
            for p in parts {
                d.decode(p, &mut out);
            }
            d.error()
        };
        let whole = verdict(&[&input]);
        assert_eq!(whole, Some(DataError::TooBig));
        for cut in [1, 500, 1000, 1499, 1500, 1501] {
            assert_eq!(verdict(&[&input[..cut], &input[cut..]]), whole, "cut {cut}");
        }
    }

    #[test]
    fn a_stuffed_dot_does_not_count_toward_the_line_limit() {
        let mut input = vec![b'.'];
        input.extend_from_slice(&[b'.'; 998]);
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode_all(&input).3, None);
    }

    #[test]
    fn size_limit_discards_and_flags() {
        let mut d = DataDecoder::new(10);
        let mut out = Vec::new();
        let (_, done) = d.decode(b"0123456789abc\r\n.\r\n", &mut out);
        assert!(done);
        assert_eq!(d.error(), Some(DataError::TooBig));
    }
}

pub use super::encode::dot_stuff;

#[cfg(test)]
mod stuff_tests {
    use super::*;

    #[test]
    fn dot_stuffing_round_trips_through_the_decoder() {
        for body in [
            &b""[..],
            b"a\r\n",
            b".\r\n",
            b"..x\r\n.y\r\nz",
            b"line\r\n.\r\nafter\r\n",
        ] {
            let mut wire = Vec::new();
            dot_stuff(body, &mut wire);
            let mut d = DataDecoder::new(1 << 20);
            let mut out = Vec::new();
            let (n, done) = d.decode(&wire, &mut out);
            assert!(done && n == wire.len(), "{body:?}");
            let mut expect = body.to_vec();
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            assert_eq!(out, expect);
        }
    }
}
