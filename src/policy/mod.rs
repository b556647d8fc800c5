//! Policy: pure functions from facts to verdicts. Relay control and the inbound
//! and outbound TLS rules. No I/O here, so every rule is testable in a table.

pub mod inbound;
pub mod matchers;
pub mod outbound;

use std::net::IpAddr;

use crate::config::{Cidr, Config, TlsLevel};

pub use inbound::{InboundDecision, InboundRule, TlsShortfall};
pub use matchers::{AddressMatcher, DomainMatcher};
pub use outbound::{dane_plan, DanePlan, OutboundDecision, OutboundFacts, OutboundRule};

/// Every rule of a config, compiled for fast matching. Shared read-only by shards.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Where the rules came from, for explanations.
    pub origin: String,
    pub relay_networks: Vec<Cidr>,
    pub relay_domains: Vec<DomainMatcher>,
    pub inbound: Vec<InboundRule>,
    pub outbound: Vec<OutboundRule>,
    pub default_outbound: TlsLevel,
}

impl Policy {
    pub fn from_config(c: &Config, origin: &str) -> Policy {
        Policy {
            origin: origin.to_string(),
            relay_networks: c.relay.networks.clone(),
            relay_domains: c
                .relay
                .domains
                .iter()
                .map(|d| DomainMatcher::parse(d))
                .collect(),
            inbound: c.inbound_tls.iter().map(InboundRule::from_config).collect(),
            outbound: c
                .outbound_tls
                .iter()
                .map(OutboundRule::from_config)
                .collect(),
            default_outbound: c.outbound.default_tls,
        }
    }

    /// Whether the client may send to `domain`: our own domains from anyone, any
    /// domain from `relay.networks`. Address literals are never our own domains.
    pub fn relay_allowed(&self, client: IpAddr, domain: &str) -> bool {
        let ours = !domain.starts_with('[') && self.relay_domains.iter().any(|d| d.matches(domain));
        ours || self.relay_networks.iter().any(|n| n.contains(client))
    }

    pub fn inbound_at_mail(
        &self,
        client: IpAddr,
        sender: &str,
        listener_required: bool,
    ) -> Option<InboundDecision> {
        let d = inbound::decide_at_mail(&self.inbound, client, sender, listener_required);
        if let Some(d) = &d {
            count_inbound(d);
        }
        d
    }

    pub fn inbound_at_rcpt(
        &self,
        client: IpAddr,
        sender: Option<&str>,
        recipient: &str,
        listener_required: bool,
    ) -> InboundDecision {
        let d =
            inbound::decide_at_rcpt(&self.inbound, client, sender, recipient, listener_required);
        count_inbound(&d);
        d
    }

    pub fn outbound(&self, facts: &OutboundFacts) -> OutboundDecision {
        let d = outbound::decide(&self.outbound, self.default_outbound, facts);
        crate::metrics::global()
            .policy_decisions
            .get_or_create(&crate::metrics::PolicyLabels {
                direction: "outbound".into(),
                rule: match d.rule {
                    Some(i) => format!("outbound_tls[{}]", i + 1),
                    None => "default_tls".into(),
                },
                result: d.level.name().into(),
            })
            .inc();
        d
    }
}

/// Decisions are counted where they are made, so the metric can't drift from
/// what the server did.
fn count_inbound(d: &InboundDecision) {
    crate::metrics::global()
        .policy_decisions
        .get_or_create(&crate::metrics::PolicyLabels {
            direction: "inbound".into(),
            rule: match d.rule {
                Some(i) => format!("inbound_tls[{}]", i + 1),
                None => "listener".into(),
            },
            result: if d.require_tls { "require" } else { "optional" }.into(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_control() {
        let mut c = crate::config::load_str(crate::config::EMBEDDED_DEFAULT, "t").unwrap();
        c.relay.domains = vec!["local.example".into()];
        let p = Policy::from_config(&c, "t");
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        let inside: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p.relay_allowed(outside, "LOCAL.example"));
        assert!(!p.relay_allowed(outside, "other.example"));
        assert!(!p.relay_allowed(outside, "local.example.evil"));
        assert!(!p.relay_allowed(outside, "[192.0.2.9]"));
        assert!(p.relay_allowed(inside, "other.example"));
        assert!(p.relay_allowed("::1".parse().unwrap(), "other.example"));
    }
}
