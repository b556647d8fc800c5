//! REQUIRETLS (RFC 8689): the MAIL parameter that asks every hop to relay the
//! message only over TLS it authenticated (parsed in params.rs, advertised by the
//! server only under TLS), and the `TLS-Required: No` header field by which a
//! sender asks that recipient-side policies (MTA-STS, DANE) be ignored (§4.1).

/// Whether the header section of `message` has `TLS-Required: No`. Only the
/// header section counts (up to the first empty line); folded values are joined.
pub fn tls_required_no(message: &[u8]) -> bool {
    let mut field: Vec<u8> = Vec::new();
    let mut found = false;
    let mut check = |field: &[u8]| {
        let mut parts = field.splitn(2, |&b| b == b':');
        if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            if name.eq_ignore_ascii_case(b"TLS-Required")
                && value.trim_ascii().eq_ignore_ascii_case(b"No")
            {
                found = true;
            }
        }
    };
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            field.push(b' ');
            field.extend_from_slice(line.trim_ascii());
            continue;
        }
        check(&field);
        field.clear();
        if line.is_empty() {
            break;
        }
        field.extend_from_slice(line);
    }
    check(&field);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_found_only_in_the_header_section() {
        assert!(tls_required_no(
            b"Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n"
        ));
        assert!(tls_required_no(b"tls-required:   no  \r\n\r\n"));
        assert!(
            tls_required_no(b"Subject: x\r\nTLS-Required:\r\n No\r\n\r\n"),
            "folded"
        );
        assert!(
            !tls_required_no(b"Subject: x\r\n\r\nTLS-Required: No\r\n"),
            "in the body"
        );
        assert!(!tls_required_no(b"TLS-Required: Yes\r\n\r\n"));
        assert!(!tls_required_no(b"X-TLS-Required: No\r\n\r\n"));
        assert!(!tls_required_no(b"Subject: TLS-Required: No\r\n\r\n"));
        assert!(!tls_required_no(b""));
    }
}
