//! RFC 5321 paths and mailboxes. Parsing borrows from the command line; nothing is
//! copied until the session keeps an address for the envelope.

pub use crate::config::syntax::is_domain;
use crate::config::syntax::split_mailbox;

/// A mailbox `local@domain` as written on the wire (a quoted local part keeps its quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mailbox<'a> {
    pub local: &'a str,
    pub domain: &'a str,
}

impl Mailbox<'_> {
    /// True when the domain is an address literal such as `[192.0.2.1]`.
    pub fn is_address_literal(&self) -> bool {
        self.domain.starts_with('[')
    }
}

/// Why an address was refused; all map to `501 5.1.3` (or 553 5.6.7 for UTF-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address must be enclosed in <>")]
    MissingBrackets,
    #[error("bad address syntax")]
    Syntax,
    #[error("non-ASCII address without SMTPUTF8")]
    NeedsSmtpUtf8,
}

/// Split `<path> params` into the path and the parameter text. Leading spaces before
/// the path are tolerated, as Postfix does, because many clients send `FROM: <a>`.
pub fn split_path(arg: &str) -> Result<(&str, &str), AddressError> {
    let Some(inner) = arg.trim_start().strip_prefix('<') else {
        return Err(AddressError::MissingBrackets);
    };
    // A '>' inside a quoted local part does not end the path.
    let (mut quoted, mut escaped) = (false, false);
    let closing = |c: char| {
        if escaped {
            escaped = false;
            return false;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return true,
            _ => {}
        }
        false
    };
    let (path, params) = inner
        .split_once(closing)
        .ok_or(AddressError::MissingBrackets)?;
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(AddressError::Syntax);
    }
    Ok((path, params.trim()))
}

/// Parse the inside of `<...>`: empty (the null path) or an optional source route
/// (`@a,@b:`), which RFC 5321 says to accept and ignore, then a mailbox.
pub fn parse_path(inner: &str, utf8_allowed: bool) -> Result<Option<Mailbox<'_>>, AddressError> {
    if inner.is_empty() {
        return Ok(None);
    }
    let mailbox = if inner.starts_with('@') {
        let (route, mailbox) = inner.split_once(':').ok_or(AddressError::Syntax)?;
        for hop in route.split(',') {
            let hop = hop.strip_prefix('@').ok_or(AddressError::Syntax)?;
            if !is_domain(hop, utf8_allowed) {
                return Err(AddressError::Syntax);
            }
        }
        mailbox
    } else {
        inner
    };
    parse_mailbox(mailbox, utf8_allowed).map(Some)
}

/// Parse `local@domain`.
pub fn parse_mailbox(s: &str, utf8_allowed: bool) -> Result<Mailbox<'_>, AddressError> {
    if !utf8_allowed && !s.is_ascii() {
        return Err(AddressError::NeedsSmtpUtf8);
    }
    let (local, domain) = split_mailbox(s, utf8_allowed).ok_or(AddressError::Syntax)?;
    Ok(Mailbox { local, domain })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Result<Option<Mailbox<'_>>, AddressError> {
        let (inner, _) = split_path(s)?;
        parse_path(inner, false)
    }

    #[test]
    fn ordinary_and_null_paths() {
        assert_eq!(
            path("<a@b.example>").unwrap(),
            Some(Mailbox {
                local: "a",
                domain: "b.example"
            })
        );
        assert_eq!(path("<>").unwrap(), None);
        assert_eq!(split_path("<a@b> SIZE=10").unwrap(), ("a@b", "SIZE=10"));
        assert_eq!(split_path(" <a@b>").unwrap(), ("a@b", ""));
    }

    #[test]
    fn source_route_is_ignored_and_the_last_mailbox_counts() {
        assert_eq!(
            path("<@relay.example,@x.example:user@final.example>")
                .unwrap()
                .unwrap()
                .domain,
            "final.example"
        );
        assert!(path("<@:user@final.example>").is_err());
    }

    #[test]
    fn quoted_local_part_with_at_sign_keeps_the_real_domain() {
        let m = path("<\"user@evil.example\"@local.example>")
            .unwrap()
            .unwrap();
        assert_eq!(m.domain, "local.example");
        assert_eq!(m.local, "\"user@evil.example\"");
        let (inner, _) = split_path("<\"a>b\"@c.example>").unwrap();
        assert_eq!(inner, "\"a>b\"@c.example");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for bad in [
            "a@b.",
            "a@.b",
            "a@-b.c",
            "a..b@c",
            "@c",
            "a@",
            "a b@c",
            "a@b_c",
            "a@[300.1.1.1]",
            "<a@b",
        ] {
            assert!(
                path(bad).is_err() || path(&format!("<{bad}>")).is_err(),
                "{bad}"
            );
        }
        assert!(path("a@b").is_err());
        assert_eq!(path("<a@b>x"), Err(AddressError::Syntax));
    }

    #[test]
    fn address_literals_and_utf8() {
        assert!(path("<a@[192.0.2.1]>")
            .unwrap()
            .unwrap()
            .is_address_literal());
        assert!(path("<a@[IPv6:2001:db8::1]>").is_ok());
        assert_eq!(path("<jösé@b.example>"), Err(AddressError::NeedsSmtpUtf8));
        assert!(parse_path("jösé@bücher.example", true).is_ok());
    }
}
