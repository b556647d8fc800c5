//! The rules for message content that arrives without dot-stuffing (BDAT chunks):
//! the same as DATA's (`data::DataDecoder`), so no byte sequence is accepted by one
//! command and refused by the other. Every line ends in CRLF, a bare CR or LF is an
//! error (never normalised), a NUL is an error, lines are at most 998 octets plus
//! CRLF, and the whole is at most the size limit. Content past the limit is counted,
//! never kept: the caller stops storing once `error` is set.

use super::data::{DataError, MAX_TEXT_LINE};

/// Checks content fed in pieces of any size; the verdict does not depend on where
/// the pieces were cut.
#[derive(Clone, Debug)]
pub struct ContentCheck {
    max_size: u64,
    size: u64,
    /// Octets of the current line so far, CRLF excluded.
    line_len: usize,
    /// The last piece ended in a CR whose LF may come with the next one.
    after_cr: bool,
    errors: u8,
}

impl ContentCheck {
    pub fn new(max_size: u64) -> Self {
        ContentCheck {
            max_size,
            size: 0,
            line_len: 0,
            after_cr: false,
            errors: 0,
        }
    }

    /// Octets of content so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The most important error seen, if any (in `DataError::ALL` order).
    pub fn error(&self) -> Option<DataError> {
        DataError::first_of(self.errors)
    }

    fn fail(&mut self, e: DataError) {
        self.errors |= e.bit();
    }

    fn grow_line(&mut self, n: usize) {
        self.line_len += n;
        if self.line_len + 2 > MAX_TEXT_LINE {
            self.fail(DataError::LineTooLong);
        }
    }

    /// Check the next piece of content.
    pub fn check(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        self.size += piece.len() as u64;
        if self.size > self.max_size {
            self.fail(DataError::TooBig);
        }
        let mut rest = piece;
        if self.after_cr {
            self.after_cr = false;
            if let Some(after) = rest.strip_prefix(b"\n") {
                self.line_len = 0;
                rest = after;
            } else {
                self.fail(DataError::BareLineEnding);
            }
        }
        while !rest.is_empty() {
            let Some(p) = memchr::memchr3(b'\r', b'\n', 0, rest) else {
                self.grow_line(rest.len());
                return;
            };
            self.grow_line(p);
            // `p` is where memchr3 stopped: `stop` is the octet found, then what follows.
            let Some((&stop, after)) = rest.get(p..).and_then(<[u8]>::split_first) else {
                return;
            };
            rest = after;
            match stop {
                b'\r' => match rest.split_first() {
                    Some((b'\n', after_crlf)) => {
                        self.line_len = 0;
                        rest = after_crlf;
                    }
                    Some(_) => self.fail(DataError::BareLineEnding),
                    None => self.after_cr = true,
                },
                b'\n' => self.fail(DataError::BareLineEnding),
                _ => {
                    self.fail(DataError::Nul);
                    self.grow_line(1);
                }
            }
        }
    }

    /// The last piece was checked: a CR at the very end was a bare one.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.after_cr) {
            self.fail(DataError::BareLineEnding);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(pieces: &[&[u8]], max: u64) -> Option<DataError> {
        let mut c = ContentCheck::new(max);
        for p in pieces {
            c.check(p);
        }
        c.finish();
        c.error()
    }

    /// The verdict for `input` whole, cut at every position, and byte by byte.
    fn same_everywhere(input: &[u8], max: u64) -> Option<DataError> {
        let whole = verdict(&[input], max);
        for cut in 0..=input.len() {
            assert_eq!(
                verdict(&[&input[..cut], &input[cut..]], max),
                whole,
                "cut at {cut} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(verdict(&bytes, max), whole, "byte at a time");
        whole
    }

    #[test]
    fn canonical_content_passes() {
        for ok in [
            &b""[..],
            b"Subject: x\r\n\r\nbody\r\n",
            b"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
            b"no final line ending",
        ] {
            assert_eq!(same_everywhere(ok, 1 << 20), None, "{ok:?}");
        }
    }

    #[test]
    fn the_smuggling_markers_of_the_audit_are_refused() {
        for evil in [
            &b"Subject: x\r\n\r\nT\r.\r\nMAIL FROM:<smuggled@evil.test>\r\n"[..],
            b"T\r.\nX\r\n",
            b"T\r.\rX\r\n",
            b"T\n.\nX\r\n",
            b"T\r\n.\nX\r\n",
            b"ends in a bare CR\r",
        ] {
            assert_eq!(
                same_everywhere(evil, 1 << 20),
                Some(DataError::BareLineEnding),
                "{:?}",
                String::from_utf8_lossy(evil)
            );
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(
            same_everywhere(b"a\r\n\0.\r\nb\r\n", 1 << 20),
            Some(DataError::Nul)
        );
    }

    #[test]
    fn line_limit_is_998_octets_plus_crlf() {
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n");
        assert_eq!(same_everywhere(&ok, 1 << 20), None);
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            same_everywhere(&long, 1 << 20),
            Some(DataError::LineTooLong)
        );
    }

    #[test]
    fn size_wins_over_the_other_errors() {
        assert_eq!(
            same_everywhere(b"0123456789\nabc\r\n", 12),
            Some(DataError::TooBig)
        );
    }
}
