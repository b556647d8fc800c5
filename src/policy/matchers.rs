//! Matchers used by policy rules. All comparisons of domains and local parts are
//! case-insensitive: operators write rules by hand, and mail systems treat case loosely.

use std::fmt;

/// Matches an envelope address (sender or recipient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressMatcher {
    /// `*`: every address.
    Any,
    /// `<>`: the null sender.
    Null,
    /// `user@domain`.
    Exact { local: String, domain: String },
    /// `*@domain` or `@domain`: every address at the domain.
    Domain(String),
    /// `*@.domain` or `@.domain`: every address at a subdomain of the domain.
    Subdomains(String),
    /// `user`: that local part at any domain.
    LocalPart(String),
}

impl AddressMatcher {
    pub fn parse(s: &str) -> AddressMatcher {
        let s = s.trim();
        if s == "*" {
            return AddressMatcher::Any;
        }
        if s == "<>" {
            return AddressMatcher::Null;
        }
        match s.rsplit_once('@') {
            Some((local, domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if local.is_empty() || local == "*" {
                    match domain.strip_prefix('.') {
                        Some(parent) => AddressMatcher::Subdomains(parent.to_string()),
                        None => AddressMatcher::Domain(domain),
                    }
                } else {
                    AddressMatcher::Exact {
                        local: local.to_ascii_lowercase(),
                        domain,
                    }
                }
            }
            None => AddressMatcher::LocalPart(s.to_ascii_lowercase()),
        }
    }

    /// `address` is a mailbox without brackets; empty for the null sender.
    pub fn matches(&self, address: &str) -> bool {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        match self {
            AddressMatcher::Any => true,
            AddressMatcher::Null => address.is_empty(),
            AddressMatcher::Exact {
                local: l,
                domain: d,
            } => local.eq_ignore_ascii_case(l) && domain.eq_ignore_ascii_case(d),
            AddressMatcher::Domain(d) => !address.is_empty() && domain.eq_ignore_ascii_case(d),
            AddressMatcher::Subdomains(d) => is_strict_subdomain(domain, d),
            AddressMatcher::LocalPart(l) => !address.is_empty() && local.eq_ignore_ascii_case(l),
        }
    }
}

impl fmt::Display for AddressMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressMatcher::Any => write!(f, "*"),
            AddressMatcher::Null => write!(f, "<>"),
            AddressMatcher::Exact { local, domain } => write!(f, "{local}@{domain}"),
            AddressMatcher::Domain(d) => write!(f, "*@{d}"),
            AddressMatcher::Subdomains(d) => write!(f, "*@.{d}"),
            AddressMatcher::LocalPart(l) => write!(f, "{l}"),
        }
    }
}

/// Matches a domain or host name: `example.com` exactly, `.example.com` any subdomain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainMatcher {
    Exact(String),
    Subdomains(String),
}

impl DomainMatcher {
    pub fn parse(s: &str) -> DomainMatcher {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        match s.strip_prefix('.') {
            Some(parent) => DomainMatcher::Subdomains(parent.to_string()),
            None => DomainMatcher::Exact(s),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        match self {
            DomainMatcher::Exact(d) => name.eq_ignore_ascii_case(d),
            DomainMatcher::Subdomains(d) => is_strict_subdomain(name, d),
        }
    }
}

impl fmt::Display for DomainMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainMatcher::Exact(d) => write!(f, "{d}"),
            DomainMatcher::Subdomains(d) => write!(f, ".{d}"),
        }
    }
}

fn is_strict_subdomain(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
        && name[name.len() - parent.len()..].eq_ignore_ascii_case(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_matcher_forms() {
        let t = |m: &str, a: &str| AddressMatcher::parse(m).matches(a);
        assert!(t("*", "a@b.example"));
        assert!(t("*", ""));
        assert!(t("<>", ""));
        assert!(!t("<>", "a@b"));
        assert!(t("ceo@Partner.example", "CEO@partner.EXAMPLE"));
        assert!(!t("ceo@partner.example", "cfo@partner.example"));
        assert!(t("*@bank.example", "x@BANK.example"));
        assert!(t("@bank.example", "x@bank.example"));
        assert!(!t("*@bank.example", "x@sub.bank.example"));
        assert!(t("*@.bank.example", "x@sub.bank.example"));
        assert!(!t("*@.bank.example", "x@bank.example"));
        assert!(t("john.smith", "John.Smith@any.example"));
        assert!(!t("john.smith", "john@smith.example"));
        assert!(!t("*@bank.example", ""));
    }

    #[test]
    fn domain_matcher_exact_and_subdomains() {
        let d = DomainMatcher::parse("their-domain.com");
        assert!(d.matches("Their-Domain.com."));
        assert!(!d.matches("mx.their-domain.com"));
        let s = DomainMatcher::parse(".their-domain.com");
        assert!(s.matches("mx.their-domain.com"));
        assert!(!s.matches("their-domain.com"));
        assert!(!s.matches("eviltheir-domain.com"));
    }
}
