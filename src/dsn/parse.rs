//! Reading a report back: for tests, and for tools that inspect bounces.
//!
//! Lenient where it costs nothing (LF or CRLF lines, any header case), since
//! reports from other MTAs are not always tidy.

use std::fmt;

/// Header-style fields in the order they appeared, values unfolded and
/// trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnFields {
    pub fields: Vec<(String, String)>,
}

impl DsnFields {
    /// The first value of field `name`, compared without regard to case.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A report taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDsn {
    /// The report's own header fields (From, Subject, ...).
    pub headers: DsnFields,
    /// Body of the human-readable first part, when it is a text part.
    pub notification: Option<String>,
    /// Reporting-MTA, Arrival-Date and the other per-message fields.
    pub per_message: DsnFields,
    /// One group per recipient.
    pub recipients: Vec<DsnFields>,
    /// Media type of the third part, lower case without parameters
    /// (`message/rfc822` or `text/rfc822-headers`).
    pub returned_content_type: Option<String>,
    /// Body of the third part.
    pub returned: Option<Vec<u8>>,
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsnParseError {
    /// The top-level Content-Type is missing or not multipart/report; holds
    /// what it was.
    NotMultipartReport(String),
    MissingBoundary,
    NoDeliveryStatusPart,
    /// The delivery-status part has no per-message fields.
    EmptyDeliveryStatus,
}

impl fmt::Display for DsnParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DsnParseError::NotMultipartReport(ct) => {
                write!(f, "not a multipart/report message (Content-Type {ct:?})")
            }
            DsnParseError::MissingBoundary => f.write_str("multipart/report without a boundary"),
            DsnParseError::NoDeliveryStatusPart => f.write_str("no message/delivery-status part"),
            DsnParseError::EmptyDeliveryStatus => {
                f.write_str("delivery-status part has no per-message fields")
            }
        }
    }
}

impl std::error::Error for DsnParseError {}

/// Finds the message/delivery-status part of a report and splits it into
/// per-message and per-recipient fields.
pub fn parse_delivery_status(dsn: &[u8]) -> Result<ParsedDsn, DsnParseError> {
    let lines = split_lines(dsn);
    let (headers, body) = header_block(&lines);
    let content_type = headers.field("Content-Type").unwrap_or("").to_string();
    if media_type(&content_type) != "multipart/report" {
        return Err(DsnParseError::NotMultipartReport(content_type));
    }
    let boundary = param(&content_type, "boundary").ok_or(DsnParseError::MissingBoundary)?;
    let parts = split_parts(body, &boundary);

    let parsed: Vec<(String, &[&[u8]])> = parts
        .iter()
        .map(|part| {
            let (headers, body) = header_block(part);
            let ct = headers
                .field("Content-Type")
                .map(media_type)
                .unwrap_or_else(|| "text/plain".to_string());
            (ct, body)
        })
        .collect();

    let status_body = parsed
        .iter()
        .find(|(ct, _)| ct == "message/delivery-status")
        .map(|(_, body)| *body)
        .ok_or(DsnParseError::NoDeliveryStatusPart)?;
    let mut groups = status_body
        .split(|line| line.iter().all(|b| b.is_ascii_whitespace()))
        .filter(|group| !group.is_empty())
        .map(fields);
    let per_message = groups.next().ok_or(DsnParseError::EmptyDeliveryStatus)?;
    let recipients = groups.collect();

    let notification = parsed
        .first()
        .filter(|(ct, _)| ct.starts_with("text/"))
        .map(|(_, body)| String::from_utf8_lossy(&join(body)).into_owned());
    let third = parsed.get(2);
    Ok(ParsedDsn {
        headers,
        notification,
        per_message,
        recipients,
        returned_content_type: third.map(|(ct, _)| ct.clone()),
        returned: third.map(|(_, body)| join(body)),
    })
}

/// Lines without their terminators (CRLF or LF).
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    // A final terminator does not start another line.
    if bytes.ends_with(b"\n") {
        lines.pop();
    }
    lines
}

/// Rejoins lines with CRLF; the terminator of the last line belonged to the
/// boundary delimiter that followed, so it is not added back.
fn join(lines: &[&[u8]]) -> Vec<u8> {
    lines.join(&b"\r\n"[..])
}

/// Splits a header section off `lines`; the body starts after the first
/// empty line.
fn header_block<'a, 'b>(lines: &'a [&'b [u8]]) -> (DsnFields, &'a [&'b [u8]]) {
    let end = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let body = lines.get(end + 1..).unwrap_or(&[]);
    (fields(&lines[..end]), body)
}

/// Parses `Name: value` lines, joining continuation lines (RFC 5322
/// unfolding removes only the line break, keeping the white space).
fn fields(lines: &[&[u8]]) -> DsnFields {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in lines {
        let line = String::from_utf8_lossy(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(&line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.to_string()));
        }
    }
    for (_, value) in &mut out {
        *value = value.trim().to_string();
    }
    DsnFields { fields: out }
}

/// Body parts between `--boundary` lines; the preamble and epilogue are
/// dropped.
fn split_parts<'a, 'b>(lines: &'a [&'b [u8]], boundary: &str) -> Vec<&'a [&'b [u8]]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix(delimiter.as_bytes()) else {
            continue;
        };
        let close = rest.starts_with(b"--");
        let rest = if close { &rest[2..] } else { rest };
        // RFC 2046 allows trailing white space after a delimiter.
        if !rest.iter().all(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        if let Some(s) = start {
            parts.push(&lines[s..i]);
        }
        if close {
            return parts;
        }
        start = Some(i + 1);
    }
    // Tolerate a missing close delimiter.
    if let Some(s) = start {
        parts.push(&lines[s..]);
    }
    parts
}

/// `type/subtype` in lower case, parameters dropped.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A Content-Type parameter, quoted or not.
fn param(content_type: &str, name: &str) -> Option<String> {
    let mut rest = content_type.split_once(';')?.1;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(value);
        }
        rest = next;
    }
}
