//! The sink's DATA reader: finds the CRLF.CRLF terminator and undoes dot-stuffing
//! (RFC 5321 §4.5.2), across arbitrary read boundaries.

pub struct DataReader {
    /// True when the next byte begins a line (the DATA content itself starts on one).
    at_line_start: bool,
    /// Message bytes after unstuffing, without the terminator.
    pub bytes: u64,
    /// The message, kept only when it will be written out.
    pub kept: Option<Vec<u8>>,
}

impl DataReader {
    pub fn new(keep: bool) -> DataReader {
        DataReader {
            at_line_start: true,
            bytes: 0,
            kept: keep.then(Vec::new),
        }
    }

    /// Consumes message bytes from `input`. Returns how many were consumed and whether
    /// the terminator was among them. Stops short only when the input ends inside a
    /// possible terminator ("." or ".\r" at a line start), which needs more bytes to decide.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            if self.at_line_start {
                if rest.starts_with(b".\r\n") {
                    return (pos + 3, true);
                }
                if b".\r\n".starts_with(rest) {
                    // Empty, "." or ".\r": cannot tell yet.
                    return (pos, false);
                }
                if rest[0] == b'.' {
                    // A stuffed dot: drop it; the rest of the line is content even if it
                    // starts with another '.'.
                    pos += 1;
                    self.at_line_start = false;
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take(&rest[..=i]);
                    pos += i + 1;
                    self.at_line_start = true;
                }
                None => {
                    self.take(rest);
                    self.at_line_start = false;
                    return (input.len(), false);
                }
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, bool, Vec<u8>) {
        let mut r = DataReader::new(true);
        let mut pending = Vec::new();
        let mut done = false;
        let mut leftover = Vec::new();
        for c in chunks {
            pending.extend_from_slice(c);
            if done {
                continue;
            }
            let (n, d) = r.feed(&pending);
            pending.drain(..n);
            done = d;
            if done {
                leftover = pending.clone();
            }
        }
        if done {
            leftover = pending;
        }
        (r.kept.unwrap(), done, leftover)
    }

    #[test]
    fn plain_message() {
        let (m, done, rest) = run(&[b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n"]);
        assert!(done);
        assert_eq!(m, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn unstuffs_and_splits_anywhere() {
        let msg: &[u8] = b"a\r\n..b\r\n...\r\n.\r\n";
        for split in 0..msg.len() {
            let (m, done, rest) = run(&[&msg[..split], &msg[split..]]);
            assert!(done, "split {split}");
            assert_eq!(m, b"a\r\n.b\r\n..\r\n", "split {split}");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn empty_message() {
        let (m, done, _) = run(&[b".\r\n"]);
        assert!(done);
        assert!(m.is_empty());
    }

    #[test]
    fn dot_inside_line_is_content() {
        let (m, done, _) = run(&[b"x.\r\ny\r\n.", b"\r\n"]);
        assert!(done);
        assert_eq!(m, b"x.\r\ny\r\n");
    }
}
