//! Inbound TLS rules: whether a transaction or a recipient must arrive over TLS.
//! The decision is made at the earliest point its facts are known: rules without
//! recipient matchers decide at MAIL, the others at each RCPT.

use std::net::IpAddr;

use crate::config::{Cidr, InboundTlsRule, TlsVersion};

use super::matchers::{AddressMatcher, DomainMatcher};

#[derive(Clone, Debug)]
pub struct InboundRule {
    pub recipients: Vec<AddressMatcher>,
    /// Recipient domains the rule is limited to; empty: every domain.
    pub domains: Vec<DomainMatcher>,
    pub senders: Vec<AddressMatcher>,
    pub clients: Vec<Cidr>,
    pub require: bool,
    pub min_version: Option<TlsVersion>,
}

impl InboundRule {
    pub fn from_config(r: &InboundTlsRule) -> Self {
        InboundRule {
            recipients: r
                .recipients
                .iter()
                .map(|s| AddressMatcher::parse(s))
                .collect(),
            domains: r.domains.iter().map(|d| DomainMatcher::parse(d)).collect(),
            senders: r.senders.iter().map(|s| AddressMatcher::parse(s)).collect(),
            clients: r.clients.clone(),
            require: r.require,
            min_version: r.min_version,
        }
    }

    fn client_matches(&self, ip: IpAddr) -> Option<String> {
        if self.clients.is_empty() {
            return Some(String::new());
        }
        self.clients
            .iter()
            .find(|c| c.contains(ip))
            .map(|c| format!("client {c}"))
    }

    fn sender_matches(&self, sender: Option<&str>) -> Option<String> {
        if self.senders.is_empty() {
            return Some(String::new());
        }
        let sender = sender?;
        self.senders
            .iter()
            .find(|m| m.matches(sender))
            .map(|m| format!("sender {m}"))
    }

    /// Decided per recipient: the rule names recipients or recipient domains.
    fn is_per_recipient(&self) -> bool {
        !self.recipients.is_empty() || !self.domains.is_empty()
    }

    fn recipient_matches(&self, rcpt: &str) -> Option<String> {
        let domain = match self.domains.as_slice() {
            [] => String::new(),
            list => {
                let at = rcpt.rsplit_once('@').map(|x| x.1).unwrap_or("");
                let hit = list.iter().find(|d| d.matches(at))?;
                format!("domain {hit}")
            }
        };
        if self.recipients.is_empty() {
            return Some(domain);
        }
        let rcpt_hit = self
            .recipients
            .iter()
            .find(|m| m.matches(rcpt))
            .map(|m| format!("recipient {m}"))?;
        Some(if domain.is_empty() {
            rcpt_hit
        } else {
            format!("{rcpt_hit} at {domain}")
        })
    }
}

/// The outcome for one transaction or recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundDecision {
    /// Index of the rule that matched; None when the listener's mode applied.
    pub rule: Option<usize>,
    /// The matchers that hit, for `policy explain` and logs.
    pub matched: String,
    pub require_tls: bool,
    pub min_version: Option<TlsVersion>,
}

/// Why a TLS requirement is not met by the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsShortfall {
    NoTls,
    TooOld { required: TlsVersion },
}

impl TlsShortfall {
    /// The text of the 530 reply (after `530 5.7.0 `), shared by the server and
    /// `policy explain` so the two can't say different things.
    pub fn reply_text(&self, have: Option<TlsVersion>) -> String {
        match self {
            TlsShortfall::NoTls => "Must issue a STARTTLS command first".into(),
            TlsShortfall::TooOld { required } => format!(
                "{} or later is required, this session uses {}",
                required.name(),
                have.map(|v| v.name()).unwrap_or("none")
            ),
        }
    }
}

impl InboundDecision {
    fn listener(required: bool) -> Self {
        InboundDecision {
            rule: None,
            matched: "listener mode".into(),
            require_tls: required,
            min_version: None,
        }
    }

    /// A rule's decision. On a `required` listener the listener is a floor: a
    /// rule can add a minimum version there, never exempt a plaintext session.
    fn from_rule(i: usize, r: &InboundRule, matched: String, listener_required: bool) -> Self {
        let floor = listener_required && !r.require;
        InboundDecision {
            rule: Some(i),
            matched: if floor {
                format!(
                    "{matched} (require = false, but the listener's tls = \"required\" is a floor)"
                )
            } else {
                matched
            },
            require_tls: r.require || listener_required,
            min_version: r.min_version,
        }
    }

    /// Check the session's TLS against this decision.
    pub fn check(&self, tls: Option<TlsVersion>) -> Result<(), TlsShortfall> {
        if !self.require_tls {
            return Ok(());
        }
        match (tls, self.min_version) {
            (None, _) => Err(TlsShortfall::NoTls),
            (Some(have), Some(min)) if have < min => Err(TlsShortfall::TooOld { required: min }),
            _ => Ok(()),
        }
    }
}

fn join(parts: &[String]) -> String {
    let v: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() {
        "(rule with no matchers)".into()
    } else {
        v.join(", ")
    }
}

/// The decision at MAIL, or None when it must wait for the recipients: a rule with
/// recipient matchers that could still match comes first.
pub fn decide_at_mail(
    rules: &[InboundRule],
    client: IpAddr,
    sender: &str,
    listener_required: bool,
) -> Option<InboundDecision> {
    for (i, rule) in rules.iter().enumerate() {
        let (Some(c), Some(s)) = (
            rule.client_matches(client),
            rule.sender_matches(Some(sender)),
        ) else {
            continue;
        };
        if rule.is_per_recipient() {
            return None;
        }
        return Some(InboundDecision::from_rule(
            i,
            rule,
            join(&[c, s]),
            listener_required,
        ));
    }
    Some(InboundDecision::listener(listener_required))
}

/// The decision for one recipient (every fact known). `sender` is None when asked
/// outside a transaction (policy explain without a sender).
pub fn decide_at_rcpt(
    rules: &[InboundRule],
    client: IpAddr,
    sender: Option<&str>,
    recipient: &str,
    listener_required: bool,
) -> InboundDecision {
    for (i, rule) in rules.iter().enumerate() {
        let hit = (|| {
            Some(join(&[
                rule.client_matches(client)?,
                rule.sender_matches(sender)?,
                rule.recipient_matches(recipient)?,
            ]))
        })();
        if let Some(matched) = hit {
            return InboundDecision::from_rule(i, rule, matched, listener_required);
        }
    }
    InboundDecision::listener(listener_required)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(recipients: &[&str], senders: &[&str], clients: &[&str], require: bool) -> InboundRule {
        InboundRule {
            recipients: recipients
                .iter()
                .map(|s| AddressMatcher::parse(s))
                .collect(),
            domains: Vec::new(),
            senders: senders.iter().map(|s| AddressMatcher::parse(s)).collect(),
            clients: clients.iter().map(|s| s.parse().unwrap()).collect(),
            require,
            min_version: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_and_sender_rules_decide_at_mail() {
        let rules = vec![
            rule(&[], &[], &["207.219.44.0/24"], true),
            rule(&[], &["*@partner.example"], &[], true),
        ];
        let d = decide_at_mail(&rules, ip("207.219.44.7"), "a@x.example", false).unwrap();
        assert_eq!((d.rule, d.require_tls), (Some(0), true));
        assert_eq!(d.matched, "client 207.219.44.0/24");
        let d = decide_at_mail(&rules, ip("192.0.2.1"), "Boss@Partner.example", false).unwrap();
        assert_eq!(d.rule, Some(1));
        let d = decide_at_mail(&rules, ip("192.0.2.1"), "a@x.example", false).unwrap();
        assert_eq!((d.rule, d.require_tls), (None, false));
        let d = decide_at_mail(&rules, ip("192.0.2.1"), "a@x.example", true).unwrap();
        assert_eq!((d.rule, d.require_tls), (None, true));
    }

    #[test]
    fn an_earlier_recipient_rule_defers_the_decision_to_rcpt() {
        let rules = vec![
            rule(&["bob"], &[], &[], false),
            rule(&[], &[], &["0.0.0.0/0"], true),
        ];
        assert_eq!(decide_at_mail(&rules, ip("192.0.2.1"), "a@b", false), None);
        let bob = decide_at_rcpt(
            &rules,
            ip("192.0.2.1"),
            Some("a@b"),
            "bob@here.example",
            false,
        );
        assert!(!bob.require_tls);
        let eve = decide_at_rcpt(
            &rules,
            ip("192.0.2.1"),
            Some("a@b"),
            "eve@here.example",
            false,
        );
        assert_eq!((eve.rule, eve.require_tls), (Some(1), true));
    }

    #[test]
    fn ipv6_cidr_and_first_match_order() {
        let rules = vec![
            rule(&[], &[], &["2001:db8::/32"], false),
            rule(&["*"], &[], &[], true),
        ];
        let d = decide_at_rcpt(&rules, ip("2001:db8::5"), Some(""), "x@y", false);
        assert_eq!((d.rule, d.require_tls), (Some(0), false));
        let d = decide_at_rcpt(&rules, ip("2001:db9::5"), Some(""), "x@y", false);
        assert_eq!((d.rule, d.require_tls), (Some(1), true));
    }

    #[test]
    fn domains_scope_a_bare_local_part() {
        let mut r = rule(&["john.smith"], &[], &[], true);
        r.domains = vec![DomainMatcher::parse("corp.example")];
        let rules = [r];
        assert_eq!(decide_at_mail(&rules, ip("192.0.2.1"), "a@b", false), None);
        let at = |rcpt| decide_at_rcpt(&rules, ip("192.0.2.1"), Some("a@b"), rcpt, false);
        assert_eq!(at("john.smith@corp.example").rule, Some(0));
        assert_eq!(at("john.smith@other.example").rule, None);
        assert_eq!(at("jane@corp.example").rule, None);
    }

    #[test]
    fn a_required_listener_is_a_floor_no_rule_lowers() {
        let rules = [rule(&[], &["*@partner.example"], &[], false)];
        let d = decide_at_mail(&rules, ip("192.0.2.1"), "a@partner.example", true).unwrap();
        assert_eq!((d.rule, d.require_tls), (Some(0), true));
        assert!(d.matched.contains("floor"), "{}", d.matched);
        assert_eq!(d.check(None), Err(TlsShortfall::NoTls));
        let d = decide_at_rcpt(
            &rules,
            ip("192.0.2.1"),
            Some("a@partner.example"),
            "x@y",
            true,
        );
        assert!(d.require_tls);
        let d = decide_at_mail(&rules, ip("192.0.2.1"), "a@partner.example", false).unwrap();
        assert!(
            !d.require_tls,
            "on a starttls listener the rule applies as written"
        );
    }

    #[test]
    fn every_list_of_a_rule_must_match() {
        let rules = vec![rule(
            &["*@bank.example"],
            &["*@partner.example"],
            &["10.0.0.0/8"],
            true,
        )];
        let hit = decide_at_rcpt(
            &rules,
            ip("10.1.1.1"),
            Some("a@partner.example"),
            "x@bank.example",
            false,
        );
        assert_eq!(hit.rule, Some(0));
        assert_eq!(
            hit.matched,
            "client 10.0.0.0/8, sender *@partner.example, recipient *@bank.example"
        );
        let miss = decide_at_rcpt(
            &rules,
            ip("10.1.1.1"),
            Some("a@other.example"),
            "x@bank.example",
            false,
        );
        assert_eq!(miss.rule, None);
    }

    #[test]
    fn minimum_version_is_checked() {
        let mut r = rule(&["*"], &[], &[], true);
        r.min_version = Some(TlsVersion::Tls13);
        let d = decide_at_rcpt(&[r], ip("192.0.2.1"), None, "a@b", false);
        assert_eq!(d.check(None), Err(TlsShortfall::NoTls));
        assert_eq!(
            d.check(Some(TlsVersion::Tls12)),
            Err(TlsShortfall::TooOld {
                required: TlsVersion::Tls13
            })
        );
        assert_eq!(d.check(Some(TlsVersion::Tls13)), Ok(()));
    }
}
