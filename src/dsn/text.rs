//! Turning caller strings into safe lines.
//!
//! Caller strings come from the network (SMTP replies, addresses), so none
//! may carry a line break into a header, and no output line may exceed the
//! 998-octet limit of RFC 5322 section 2.1.1.

/// RFC 5322's hard line limit, excluding CRLF.
pub(super) const MAX_LINE: usize = 998;
/// Where folding and wrapping aim, for readers on 80-column terminals.
const SOFT_LINE: usize = 78;
/// Longest diagnostic kept. A multi-line reply can be arbitrarily long; a
/// few kilobytes tell the sender everything a human will read.
pub(super) const MAX_DIAGNOSTIC: usize = 4000;

/// Joins lines and replaces control characters with spaces, collapsing runs
/// of white space, so multi-line SMTP replies read as one line.
pub(super) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    const MARK: &str = " [truncated]";
    let mut end = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &s[..end])
}

/// Encodes non-ASCII characters and backslash as `\x{HEX}` (RFC 6533's
/// embedded-unicode form), since delivery-status fields are US-ASCII.
pub(super) fn ascii_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && c != '\\' {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out
}

/// Splits `word` into pieces of at most `max` bytes on character boundaries.
fn chunks(word: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces.push(rest);
    pieces
}

/// Breaks `text` into lines at spaces, aiming at `width`. The first line
/// starts with `first`, the others with `indent`. A word too long for even a
/// line of its own is split, which is the only way to honour the limit.
fn wrap(first: &str, indent: &str, text: &str, width: usize) -> Vec<String> {
    let hard = MAX_LINE - indent.len().max(first.len()) - 1;
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut line_has_word = false;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        for piece in chunks(word, hard) {
            let sep = usize::from(line_has_word);
            if line_has_word && line.len() + sep + piece.len() > width {
                lines.push(std::mem::replace(&mut line, indent.to_string()));
                line_has_word = false;
            }
            if line_has_word {
                line.push(' ');
            }
            line.push_str(piece);
            line_has_word = true;
        }
    }
    lines.push(line);
    lines
}

/// Writes `Name: value` as a header-style field, folded at spaces. Folding
/// inserts CRLF before an existing space, so unfolding restores the value.
pub(super) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    let first = format!("{name}: ");
    // The folding white space of a continuation line is the space `wrap`
    // would otherwise have put between two words.
    for line in wrap(&first, " ", value, SOFT_LINE) {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes a paragraph of prose wrapped for reading, continuation lines
/// indented by `indent`.
pub(super) fn write_paragraph(out: &mut Vec<u8>, text: &str, indent: &str) {
    for line in wrap("", indent, text, SOFT_LINE - 2) {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}
