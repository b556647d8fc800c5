//! Outbound TLS rules: which level applies to a recipient when delivering through a
//! given MX host and address. Rules with MX matchers are evaluated per MX tried.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::{Cidr, OnTlsFailure, OutboundTlsRule, TlsLevel, TlsVersion};
use crate::dane::{DaneSet, DaneState};

use super::matchers::{AddressMatcher, DomainMatcher};

#[derive(Clone, Debug)]
pub struct OutboundRule {
    pub domains: Vec<DomainMatcher>,
    pub mx_hosts: Vec<DomainMatcher>,
    pub mx_ips: Vec<Cidr>,
    pub senders: Vec<AddressMatcher>,
    /// Authenticated logins (can't be forged, unlike `senders`).
    pub accounts: Vec<AddressMatcher>,
    pub recipients: Vec<AddressMatcher>,
    pub level: TlsLevel,
    pub min_version: Option<TlsVersion>,
    pub match_names: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub on_failure: OnTlsFailure,
    /// Certificate and key presented when the next hop asks for one.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

impl OutboundRule {
    pub fn from_config(r: &OutboundTlsRule) -> Self {
        OutboundRule {
            domains: r.domains.iter().map(|s| DomainMatcher::parse(s)).collect(),
            mx_hosts: r.mx_hosts.iter().map(|s| DomainMatcher::parse(s)).collect(),
            mx_ips: r.mx_ips.clone(),
            senders: r.senders.iter().map(|s| AddressMatcher::parse(s)).collect(),
            accounts: r
                .accounts
                .iter()
                .map(|s| AddressMatcher::parse(s))
                .collect(),
            recipients: r
                .recipients
                .iter()
                .map(|s| AddressMatcher::parse(s))
                .collect(),
            level: r.level,
            min_version: r.min_version,
            match_names: r.match_names.clone(),
            ca_file: r.ca_file.clone(),
            on_failure: r.on_failure,
            client_certificate: r
                .client_certificate
                .clone()
                .zip(r.client_private_key.clone()),
        }
    }
}

/// What is known about one recipient's delivery attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutboundFacts<'a> {
    pub sender: &'a str,
    /// The SMTP AUTH login that submitted the message; None without AUTH.
    pub account: Option<&'a str>,
    pub recipient: &'a str,
    /// The recipient's domain (routing is per recipient domain, never per MX).
    pub domain: &'a str,
    pub mx_host: Option<&'a str>,
    pub mx_ip: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundDecision {
    /// Index of the matching rule; None for `[outbound] default_tls`.
    pub rule: Option<usize>,
    pub matched: String,
    pub level: TlsLevel,
    pub min_version: TlsVersion,
    pub match_names: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub on_failure: OnTlsFailure,
    /// Certificate and key presented when the next hop asks for one.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

impl OutboundDecision {
    /// Whether two decisions ask for the same TLS: everything but `matched`,
    /// which says which matcher of the rule chose the recipient. Written out
    /// field by field so a new field must be placed on one side or the other.
    pub fn same_requirement(&self, other: &OutboundDecision) -> bool {
        let OutboundDecision {
            rule,
            matched: _,
            level,
            min_version,
            match_names,
            ca_file,
            on_failure,
            client_certificate,
        } = self;
        *rule == other.rule
            && *level == other.level
            && *min_version == other.min_version
            && *match_names == other.match_names
            && *ca_file == other.ca_file
            && *on_failure == other.on_failure
            && *client_certificate == other.client_certificate
    }
}

fn any_hit<T>(
    list: &[T],
    hit: impl Fn(&T) -> bool,
    label: &str,
    show: impl Fn(&T) -> String,
) -> Option<String> {
    if list.is_empty() {
        return Some(String::new());
    }
    list.iter()
        .find(|m| hit(m))
        .map(|m| format!("{label} {}", show(m)))
}

pub fn decide(rules: &[OutboundRule], default: TlsLevel, f: &OutboundFacts) -> OutboundDecision {
    for (i, r) in rules.iter().enumerate() {
        let hit = (|| {
            Some(vec![
                any_hit(
                    &r.domains,
                    |m| m.matches(f.domain),
                    "domain",
                    |m| m.to_string(),
                )?,
                any_hit(
                    &r.recipients,
                    |m| m.matches(f.recipient),
                    "recipient",
                    |m| m.to_string(),
                )?,
                any_hit(
                    &r.senders,
                    |m| m.matches(f.sender),
                    "sender",
                    |m| m.to_string(),
                )?,
                any_hit(
                    &r.accounts,
                    |m| f.account.is_some_and(|a| m.matches(a)),
                    "account",
                    |m| m.to_string(),
                )?,
                any_hit(
                    &r.mx_hosts,
                    |m| f.mx_host.is_some_and(|h| m.matches(h)),
                    "mx_host",
                    |m| m.to_string(),
                )?,
                any_hit(
                    &r.mx_ips,
                    |c| f.mx_ip.is_some_and(|ip| c.contains(ip)),
                    "mx_ip",
                    |c| c.to_string(),
                )?,
            ])
        })();
        if let Some(parts) = hit {
            let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
            return OutboundDecision {
                rule: Some(i),
                matched: if parts.is_empty() {
                    "(rule with no matchers)".into()
                } else {
                    parts.join(", ")
                },
                level: r.level,
                min_version: r.min_version.unwrap_or(TlsVersion::Tls12),
                match_names: r.match_names.clone(),
                ca_file: r.ca_file.clone(),
                on_failure: r.on_failure,
                client_certificate: r.client_certificate.clone(),
            };
        }
    }
    OutboundDecision {
        rule: None,
        matched: "default_tls".into(),
        level: default,
        min_version: TlsVersion::Tls12,
        match_names: vec![],
        ca_file: None,
        on_failure: OnTlsFailure::Defer,
        client_certificate: None,
    }
}

/// What a `dane` or `dane-only` level means for one MX host, given what DNS said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DanePlan {
    /// DANE does not apply: deliver at this level instead (`may`, or `encrypt` when
    /// secure TLSA records exist but none is usable), as Postfix's `dane` does.
    Fallback { level: TlsLevel, why: String },
    /// TLS is required and the peer must match one of these records.
    Authenticate(DaneSet),
    /// Do not deliver now. `tls_policy` says the level could not be met (so
    /// `on_failure` applies); otherwise it is a DNS failure and always retried.
    Defer {
        status: &'static str,
        text: String,
        tls_policy: bool,
    },
}

/// RFC 7672 and Postfix's levels: `dane` falls back when DANE does not apply,
/// `dane-only` defers; a failed lookup (SERVFAIL, bogus, timeout) defers both and
/// never downgrades. Other levels are returned unchanged.
pub fn dane_plan(level: TlsLevel, state: &DaneState, mx_host: &str) -> DanePlan {
    if !matches!(level, TlsLevel::Dane | TlsLevel::DaneOnly) {
        return DanePlan::Fallback {
            level,
            why: String::new(),
        };
    }
    match state {
        DaneState::Failed(why) => DanePlan::Defer {
            status: "4.7.5",
            text: format!("DANE policy for {mx_host} is unknown, not delivering without it: {why}"),
            tls_policy: false,
        },
        DaneState::Usable(set) => DanePlan::Authenticate(set.clone()),
        _ if level == TlsLevel::DaneOnly => DanePlan::Defer {
            status: "4.7.5",
            text: format!(
                "DANE is required (level dane-only), but {mx_host} has no usable DNSSEC-validated TLSA records: {}",
                state.describe()
            ),
            tls_policy: true,
        },
        DaneState::Unusable { .. } => DanePlan::Fallback {
            level: TlsLevel::Encrypt,
            why: state.describe(),
        },
        DaneState::NotApplicable(_) => DanePlan::Fallback {
            level: TlsLevel::May,
            why: state.describe(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(level: TlsLevel) -> OutboundRule {
        OutboundRule {
            domains: vec![],
            mx_hosts: vec![],
            mx_ips: vec![],
            senders: vec![],
            accounts: vec![],
            recipients: vec![],
            level,
            min_version: None,
            match_names: vec![],
            ca_file: None,
            on_failure: OnTlsFailure::Defer,
            client_certificate: None,
        }
    }

    fn facts<'a>(sender: &'a str, recipient: &'a str) -> OutboundFacts<'a> {
        let domain = recipient.rsplit_once('@').map(|x| x.1).unwrap_or("");
        OutboundFacts {
            sender,
            account: None,
            recipient,
            domain,
            mx_host: None,
            mx_ip: None,
        }
    }

    #[test]
    fn dane_levels_per_dns_state() {
        use crate::dane::Tlsa;
        let set = DaneSet {
            base: "mx.test".into(),
            names: vec!["mx.test".into()],
            records: vec![Tlsa::new(3, 1, 1, vec![1; 32])],
        };
        let insecure = DaneState::NotApplicable("MX not signed".into());
        let unusable = DaneState::Unusable {
            base: "mx.test".into(),
            records: vec![Tlsa::new(0, 1, 1, vec![1; 32])],
        };
        let failed = DaneState::Failed("SERVFAIL".into());
        let usable = DaneState::Usable(set.clone());
        let level = |p: DanePlan| match p {
            DanePlan::Fallback { level, .. } => Some(level),
            _ => None,
        };
        assert_eq!(
            level(dane_plan(TlsLevel::Dane, &insecure, "mx.test")),
            Some(TlsLevel::May)
        );
        assert_eq!(
            level(dane_plan(TlsLevel::Dane, &unusable, "mx.test")),
            Some(TlsLevel::Encrypt)
        );
        assert_eq!(
            dane_plan(TlsLevel::Dane, &usable, "mx.test"),
            DanePlan::Authenticate(set.clone())
        );
        assert_eq!(
            dane_plan(TlsLevel::DaneOnly, &usable, "mx.test"),
            DanePlan::Authenticate(set)
        );
        for level in [TlsLevel::Dane, TlsLevel::DaneOnly] {
            match dane_plan(level, &failed, "mx.test") {
                DanePlan::Defer {
                    status, tls_policy, ..
                } => {
                    assert_eq!(status, "4.7.5");
                    assert!(
                        !tls_policy,
                        "a DNS failure is retried, never bounced by on_failure"
                    );
                }
                other => panic!("a failed lookup must defer, got {other:?}"),
            }
        }
        for state in [&insecure, &unusable] {
            match dane_plan(TlsLevel::DaneOnly, state, "mx.test") {
                DanePlan::Defer {
                    text, tls_policy, ..
                } => {
                    assert!(tls_policy && text.contains("dane-only"), "{text}");
                }
                other => panic!("dane-only without usable records defers, got {other:?}"),
            }
        }
        assert_eq!(
            level(dane_plan(TlsLevel::Verify, &failed, "mx.test")),
            Some(TlsLevel::Verify)
        );
    }

    #[test]
    fn each_matcher_kind() {
        let mut by_domain = rule(TlsLevel::Encrypt);
        by_domain.domains = vec![
            DomainMatcher::parse("their-domain.com"),
            DomainMatcher::parse(".their-domain.com"),
        ];
        let mut by_sender = rule(TlsLevel::None);
        by_sender.senders = vec![AddressMatcher::parse("*@plain.example")];
        let mut by_ip = rule(TlsLevel::Verify);
        by_ip.mx_ips = vec!["207.219.44.0/24".parse().unwrap()];
        let mut by_host = rule(TlsLevel::Encrypt);
        by_host.mx_hosts = vec![DomainMatcher::parse(".secure-mx.example")];
        let mut by_rcpt = rule(TlsLevel::Encrypt);
        by_rcpt.recipients = vec![AddressMatcher::parse("vip@anywhere.example")];
        let rules = vec![by_domain, by_sender, by_ip, by_host, by_rcpt];

        let d = decide(
            &rules,
            TlsLevel::May,
            &facts("a@b", "x@Sub.Their-Domain.com"),
        );
        assert_eq!((d.rule, d.level), (Some(0), TlsLevel::Encrypt));
        let d = decide(
            &rules,
            TlsLevel::May,
            &facts("boss@plain.example", "x@else.example"),
        );
        assert_eq!((d.rule, d.level), (Some(1), TlsLevel::None));
        let mut f = facts("a@b", "x@else.example");
        assert_eq!(decide(&rules, TlsLevel::May, &f).rule, None);
        f.mx_ip = Some("207.219.44.20".parse().unwrap());
        assert_eq!(decide(&rules, TlsLevel::May, &f).rule, Some(2));
        f.mx_ip = Some("::1".parse().unwrap());
        f.mx_host = Some("mx1.secure-mx.example");
        assert_eq!(decide(&rules, TlsLevel::May, &f).rule, Some(3));
        let d = decide(&rules, TlsLevel::May, &facts("a@b", "VIP@anywhere.example"));
        assert_eq!((d.rule, d.level), (Some(4), TlsLevel::Encrypt));
        let d = decide(&rules, TlsLevel::May, &facts("a@b", "x@else.example"));
        assert_eq!(
            (d.rule, d.level, d.matched.as_str()),
            (None, TlsLevel::May, "default_tls")
        );
    }

    #[test]
    fn accounts_match_the_login_never_the_envelope_sender() {
        let mut by_account = rule(TlsLevel::Encrypt);
        by_account.accounts = vec![
            AddressMatcher::parse("alice@customer-a.test"),
            AddressMatcher::parse("*@customer-b.test"),
        ];
        let rules = vec![by_account];
        // A forged MAIL FROM of alice without her login does not match.
        let forged = facts("alice@customer-a.test", "x@far.example");
        assert_eq!(decide(&rules, TlsLevel::May, &forged).rule, None);
        let mut f = facts("anything@else.example", "x@far.example");
        f.account = Some("Alice@customer-a.test");
        let d = decide(&rules, TlsLevel::May, &f);
        assert_eq!(
            (d.rule, d.matched.as_str()),
            (Some(0), "account alice@customer-a.test")
        );
        f.account = Some("carol@customer-b.test");
        assert_eq!(
            decide(&rules, TlsLevel::May, &f).matched,
            "account *@customer-b.test"
        );
        f.account = Some("bob@customer-a.test");
        assert_eq!(decide(&rules, TlsLevel::May, &f).rule, None);
    }
}
