//! The syntax of the names a config holds: host names (`[[route]] next_hop`) and
//! mail addresses (`[server] postmaster`), as RFC 5321 4.1.2 writes them. The SMTP
//! parser in `proto` checks paths with the same functions, so the config refuses
//! exactly what a session would.

/// `local@domain` split at its last `@`, when both halves are well formed: a
/// dot-atom or quoted local part of at most 64 octets, and a domain or address
/// literal; at most 254 octets in all. Non-ASCII passes only with `utf8_allowed`.
pub fn split_mailbox(s: &str, utf8_allowed: bool) -> Option<(&str, &str)> {
    if s.len() > 254 || (!utf8_allowed && !s.is_ascii()) {
        return None;
    }
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty() || local.len() > 64 || !is_local_part(local) {
        return None;
    }
    let domain_ok = if domain.starts_with('[') {
        is_address_literal(domain)
    } else {
        is_domain(domain, utf8_allowed)
    };
    domain_ok.then_some((local, domain))
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// A dot-atom, or a quoted string whose backslash escapes a printable character.
pub fn is_local_part(s: &str) -> bool {
    let Some(quoted) = s.strip_prefix('"') else {
        return s
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    };
    let Some(inner) = quoted.strip_suffix('"') else {
        return false;
    };
    let mut bytes = inner.bytes();
    while let Some(c) = bytes.next() {
        match c {
            b'\\' => {
                if !bytes.next().is_some_and(|e| (32..=126).contains(&e)) {
                    return false;
                }
            }
            b'"' => return false,
            c if (32..=126).contains(&c) || c >= 0x80 => {}
            _ => return false,
        }
    }
    true
}

/// A domain of letter-digit-hyphen labels; a trailing dot or an empty label is refused.
pub fn is_domain(s: &str, utf8_allowed: bool) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || (utf8_allowed && c >= 0x80))
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    if let Some(v6) = inner.strip_prefix("IPv6:") {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        inner.parse::<std::net::Ipv4Addr>().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_split_only_when_both_halves_are_well_formed() {
        assert_eq!(
            split_mailbox("postmaster@mx.example", false),
            Some(("postmaster", "mx.example"))
        );
        assert_eq!(
            split_mailbox("\"a b\"@[192.0.2.1]", false),
            Some(("\"a b\"", "[192.0.2.1]"))
        );
        assert_eq!(split_mailbox("a\\@b@c.example", false), None);
        assert_eq!(split_mailbox("\"a\\\"@c.example", false), None);
        assert_eq!(split_mailbox("postmaster", false), None);
        assert_eq!(split_mailbox("a@-b.example", false), None);
        assert_eq!(split_mailbox("a@b.example.", false), None);
        assert_eq!(split_mailbox("ü@b.example", false), None);
        assert_eq!(split_mailbox("ü@b.example", true), Some(("ü", "b.example")));
    }
}
