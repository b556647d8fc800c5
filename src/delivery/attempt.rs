//! One delivery attempt of one message: recipients grouped by domain (policy is
//! decided per recipient domain, never per MX), each domain routed or MX-resolved,
//! recipients split by their TLS decision per MX tried, results recorded. The TLS
//! of each group is planned in `tls_plan`, its transaction sent in `transaction`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::outcome::RcptResult;
use super::pool::Pool;
use super::tls_plan::GroupPlan;
use crate::config::{Config, NextHop, RouteConfig};
use crate::dane::DaneState;
use crate::dns::{Addresses, Dns, DnsFailure, MxAnswer};
use crate::mta_sts::StsView;
use crate::policy::{DomainMatcher, OutboundDecision, OutboundFacts, Policy};
use crate::proto::Enhanced;
use crate::queue::format_id;
use crate::queue::status::{Failure, RemoteMta};
use crate::queue::QueuedMessage;

/// MX hosts tried per attempt, and addresses per host (Postfix's limits are similar).
const MAX_HOSTS: usize = 5;
const MAX_ADDRS_PER_HOST: usize = 2;

pub struct Delivery {
    pub dns: Dns,
    pub pool: Pool,
    pub unreachable: std::rc::Rc<super::Unreachable>,
    /// MTA-STS policies and their cache; None with `[outbound] mta_sts = false`.
    pub sts: Option<std::rc::Rc<crate::mta_sts::MtaSts>>,
    /// TLS session counts for reports; None with `[tls_report] enabled = false`.
    pub tlsrpt: Option<std::rc::Rc<crate::tlsrpt::Counters>>,
}

/// A host to try: as named (or the address a route gives), and its port.
pub(super) struct Hop {
    pub name: String,
    pub port: u16,
    /// Set when the route names an address: no lookup, and never DNSSEC-secure.
    pub literal: Option<IpAddr>,
}

/// The `[[route]]` for `domain`, if one names its next hop.
fn route_for<'c>(config: &'c Config, domain: &str) -> Option<&'c RouteConfig> {
    config.routes.iter().find(|r| {
        r.domains
            .iter()
            .any(|m| DomainMatcher::parse(m).matches(domain) || m == "*")
    })
}

/// The hosts for a domain (from `[[route]]`, else by MX lookup) and whether the
/// list is DNSSEC-validated: a literal address never is, a bracketed host named by
/// the operator counts as secure (no MX is involved), an MX RRset as DNS says.
async fn targets(
    d: &Delivery,
    config: &Config,
    domain: &str,
) -> Result<(Vec<Hop>, bool), DnsFailure> {
    let by_mx = |answer: MxAnswer, port: u16| {
        let secure = answer.secure;
        let hosts = answer
            .hosts
            .into_iter()
            .map(|h| Hop {
                name: h.name,
                port,
                literal: None,
            })
            .collect();
        (hosts, secure)
    };
    let port = config.outbound.port;
    match route_for(config, domain).map(|r| &r.next_hop) {
        Some(NextHop::Addr { ip, port: p }) => {
            let hop = Hop {
                name: ip.to_string(),
                port: p.unwrap_or(port),
                literal: Some(*ip),
            };
            Ok((vec![hop], false))
        }
        Some(NextHop::Host {
            name,
            port: p,
            no_mx: true,
        }) => {
            let hop = Hop {
                name: name.clone(),
                port: p.unwrap_or(port),
                literal: None,
            };
            Ok((vec![hop], true))
        }
        Some(NextHop::Host {
            name,
            port: p,
            no_mx: false,
        }) => Ok(by_mx(d.dns.mx(name).await?, p.unwrap_or(port))),
        None => Ok(by_mx(d.dns.mx(domain).await?, port)),
    }
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|x| x.1)
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// A DNS lookup that gave no answer (never a reason to fail for good: the next
/// attempt may get one).
fn dns_unanswered(text: String) -> Failure {
    Failure::Dns {
        status: Enhanced::new(4, 4, 3),
        text,
    }
}

/// Deliver every pending recipient of `rec` once. Returns one result per recipient tried.
pub async fn attempt(
    d: &Delivery,
    config: &Config,
    policy: &Policy,
    id: u64,
    rec: &QueuedMessage,
    body: &[u8],
) -> Vec<(usize, RcptResult)> {
    let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rec.rcpts.iter().enumerate() {
        if !r.is_done() {
            by_domain
                .entry(domain_of(&r.rcpt.address))
                .or_default()
                .push(i);
        }
    }
    let mut results = Vec::new();
    for (domain, idxs) in by_domain {
        let message = Message {
            d,
            config,
            policy,
            id,
            rec,
            body,
        };
        results.extend(message.deliver_domain(&domain, idxs).await);
    }
    results
}

/// The message of an attempt and what it is delivered with.
#[derive(Clone, Copy)]
pub(super) struct Message<'a> {
    pub d: &'a Delivery,
    pub config: &'a Config,
    pub policy: &'a Policy,
    pub id: u64,
    pub rec: &'a QueuedMessage,
    pub body: &'a [u8],
}

/// One domain's share of an attempt: what DNS and MTA-STS said of the domain.
pub(super) struct DomainAttempt<'a> {
    pub m: Message<'a>,
    pub domain: &'a str,
    /// Whether the MX list is DNSSEC-validated (DANE needs it).
    pub mx_secure: bool,
    pub sts: Option<StsView>,
}

/// The results so far of one domain's recipients, and the last deferral of each
/// recipient still to be tried at another address.
#[derive(Default)]
pub(super) struct Outcomes {
    pub results: Vec<(usize, RcptResult)>,
    pub last: BTreeMap<usize, RcptResult>,
}

impl<'a> Message<'a> {
    async fn deliver_domain(self, domain: &'a str, idxs: Vec<usize>) -> Vec<(usize, RcptResult)> {
        let started = Instant::now();
        let (hosts, mx_secure) = match targets(self.d, self.config, domain).await {
            Ok(h) => h,
            Err(e) => {
                let failure = match e {
                    DnsFailure::Permanent { status, text } => Failure::Dns { status, text },
                    DnsFailure::Temporary { text } => dns_unanswered(text),
                };
                let r = RcptResult::failed(failure, None);
                // Every attempt gets its log line, a failed lookup too.
                for &i in &idxs {
                    self.log_attempt(i, None, domain, &r, started);
                }
                return idxs.into_iter().map(|i| (i, r.clone())).collect();
            }
        };
        // MTA-STS speaks of the domain's MX hosts; a `[[route]]` next hop is the
        // operator's choice and not subject to it.
        let sts = match &self.d.sts {
            Some(sts) if route_for(self.config, domain).is_none() => Some(sts.lookup(domain).await),
            _ => None,
        };
        if let (Some(counters), Some(view)) = (&self.d.tlsrpt, &sts) {
            super::tls_report::count_sts_problem(counters, view);
        }
        let attempt = DomainAttempt {
            m: self,
            domain,
            mx_secure,
            sts,
        };
        let mut out = Outcomes::default();
        let mut remaining = idxs;
        for hop in hosts.iter().take(MAX_HOSTS) {
            remaining = attempt.try_host(hop, remaining, &mut out).await;
            if remaining.is_empty() {
                break;
            }
        }
        for i in remaining {
            let r = out.last.remove(&i).unwrap_or_else(|| {
                RcptResult::failed(
                    Failure::Connect {
                        text: format!("no reachable host for {domain}"),
                    },
                    None,
                )
            });
            out.results.push((i, r));
        }
        out.results
    }

    /// The one log line of each recipient's attempt; `addr` is None when no address
    /// was reached (a failed DNS lookup of `host`, the domain or its route).
    pub(super) fn log_attempt(
        &self,
        i: usize,
        addr: Option<&SocketAddr>,
        host: &str,
        r: &RcptResult,
        started: Instant,
    ) {
        let rec = self.rec;
        let delay = crate::queue::clock::now_ms().saturating_sub(rec.envelope.arrival_ms);
        let tls = r.status.remote().and_then(|m| m.tls.as_ref());
        let by = r.status.decided_by();
        tracing::info!(
            id = %format_id(self.id),
            to = %rec.rcpts[i].rcpt.address,
            relay = %host,
            mx_ip = %addr.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
            tls = tls.map(|t| t.version.as_str()).unwrap_or("none"),
            cipher = tls.map(|t| t.cipher.as_str()).unwrap_or("none"),
            dane = tls.and_then(|t| t.dane.as_deref()).unwrap_or("none"),
            status = %r.status.code().map(|c| c.to_string()).unwrap_or_default(),
            result = r.status.name(),
            decided_by = %by.describe(),
            reply = %r.status.last_reply().unwrap_or_default(),
            delay_ms = delay,
            attempt_ms = started.elapsed().as_millis() as u64,
            "delivery attempt"
        );
    }
}

impl DomainAttempt<'_> {
    /// Try the recipients still pending at one host, address by address, each
    /// group of them with its own TLS. Returns those to try at the next host.
    async fn try_host(
        &self,
        hop: &Hop,
        mut remaining: Vec<usize>,
        out: &mut Outcomes,
    ) -> Vec<usize> {
        let addresses = match hop.literal {
            Some(ip) => Addresses {
                ips: vec![ip],
                secure: false,
                cname_target: None,
            },
            None => match self.m.d.dns.lookup_addresses(&hop.name).await {
                Ok(a) => a,
                Err(e) => {
                    let text = match e {
                        DnsFailure::Permanent { text, .. } | DnsFailure::Temporary { text } => text,
                    };
                    for &i in &remaining {
                        out.last
                            .insert(i, RcptResult::failed(dns_unanswered(text.clone()), None));
                    }
                    return remaining;
                }
            },
        };
        // Looked up once per host, and only when a recipient's level asks for DANE.
        let mut dane_state: Option<DaneState> = None;
        for &ip in addresses.ips.iter().take(MAX_ADDRS_PER_HOST) {
            let addr = SocketAddr::new(ip, hop.port);
            let mut still = Vec::new();
            for (decision, group) in self.groups(&hop.name, ip, &remaining) {
                let plan = self
                    .plan_group(&decision, hop, &addresses, &mut dane_state)
                    .await;
                still.extend(
                    self.send_group(addr, &hop.name, &decision, plan, &group, out)
                        .await,
                );
            }
            remaining = still;
            if remaining.is_empty() {
                break;
            }
        }
        remaining
    }

    /// The recipients split by their TLS decision for this MX address: one
    /// recipient's rule never changes another's delivery.
    fn groups(
        &self,
        host: &str,
        ip: IpAddr,
        remaining: &[usize],
    ) -> Vec<(OutboundDecision, Vec<usize>)> {
        let rec = self.m.rec;
        let mut groups = Vec::new();
        for &i in remaining {
            let decision = self.m.policy.outbound(&OutboundFacts {
                sender: &rec.envelope.sender,
                account: rec.login.as_deref(),
                recipient: &rec.rcpts[i].rcpt.address,
                domain: self.domain,
                mx_host: Some(host),
                mx_ip: Some(ip),
            });
            join_group(&mut groups, decision, i);
        }
        groups
    }

    /// Send one group to one address with its plan (or not, when the plan refuses
    /// or the address is held), and record each recipient's result. Returns the
    /// recipients deferred here, to be tried at the next address.
    async fn send_group(
        &self,
        addr: SocketAddr,
        host: &str,
        decision: &OutboundDecision,
        planned: GroupPlan,
        group: &[usize],
        out: &mut Outcomes,
    ) -> Vec<usize> {
        let started = Instant::now();
        let hold = self.m.config.outbound.unreachable_hold.0;
        let d = self.m.d;
        // Only a connection really tried starts (or ends) a hold.
        let held = d.unreachable.check(addr, hold);
        let tried = planned.refusal.is_none() && held.is_none();
        let delivered = match (&planned.refusal, held) {
            (Some(refusal), _) => Err(refusal.failure.clone()),
            // Not a new connect failure: the hold runs from the real one.
            (None, Some(error)) => Err(Failure::Connect {
                text: format!(
                    "{error} (not tried again within {})",
                    crate::config::Dur(hold)
                ),
            }),
            (None, None) => self.m.transmit(addr, host, &planned.plan, group).await,
        };
        match &delivered {
            Err(Failure::Connect { text }) if tried => d.unreachable.mark(addr, text.clone()),
            Ok(_) => d.unreachable.forget(addr),
            Err(_) => {}
        }
        if let Some(counters) = &d.tlsrpt {
            let tls_used = delivered.as_ref().ok().map(|sent| sent.tls.is_some());
            super::tls_report::count_session(
                counters,
                self.domain,
                host,
                addr,
                &planned.plan,
                self.sts.as_ref(),
                tls_used,
                &delivered,
            );
        }
        match delivered {
            Ok(sent) => {
                let remote = RemoteMta {
                    name: sent.remote,
                    tls: sent.tls,
                };
                for (k, &i) in group.iter().enumerate() {
                    let mut r = super::transaction::classify(&sent.outcome, k, &remote);
                    r.peer_dsn = sent.peer_dsn;
                    self.m.log_attempt(i, Some(&addr), host, &r, started);
                    out.results.push((i, r));
                }
                Vec::new()
            }
            Err(failure) => {
                let failure = planned.attribute(failure, decision, self.domain);
                let remote = RemoteMta {
                    name: format!("{host}[{}]:{}", addr.ip(), addr.port()),
                    tls: None,
                };
                let r = RcptResult::failed(failure, Some(remote));
                let mut deferred = Vec::new();
                for &i in group {
                    self.m.log_attempt(i, Some(&addr), host, &r, started);
                    if r.is_deferral() {
                        out.last.insert(i, r.clone());
                        deferred.push(i);
                    } else {
                        out.results.push((i, r.clone()));
                    }
                }
                deferred
            }
        }
    }
}

/// Put recipient `i` in the group of its decision. Decisions that ask for the
/// same TLS share a transaction even when different matchers of a rule chose
/// them (their explanations differ, their requirement does not).
fn join_group(
    groups: &mut Vec<(OutboundDecision, Vec<usize>)>,
    decision: OutboundDecision,
    i: usize,
) {
    match groups
        .iter_mut()
        .find(|(d, _)| d.same_requirement(&decision))
    {
        Some((_, v)) => v.push(i),
        None => groups.push((decision, vec![i])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnTlsFailure, TlsLevel, TlsVersion};

    fn decision(rule: Option<usize>, matched: &str, level: TlsLevel) -> OutboundDecision {
        OutboundDecision {
            rule,
            matched: matched.into(),
            level,
            min_version: TlsVersion::Tls12,
            match_names: vec![],
            ca_file: None,
            on_failure: OnTlsFailure::Defer,
            client_certificate: None,
        }
    }

    #[test]
    fn recipients_of_one_rule_share_a_group_whichever_matcher_chose_them() {
        let mut groups = Vec::new();
        join_group(
            &mut groups,
            decision(Some(0), "recipient a@example.com", TlsLevel::Verify),
            0,
        );
        join_group(
            &mut groups,
            decision(Some(0), "recipient b@example.com", TlsLevel::Verify),
            1,
        );
        join_group(&mut groups, decision(None, "", TlsLevel::May), 2);
        join_group(
            &mut groups,
            decision(Some(1), "domain example.com", TlsLevel::Verify),
            3,
        );
        let members: Vec<Vec<usize>> = groups.into_iter().map(|(_, v)| v).collect();
        assert_eq!(members, vec![vec![0, 1], vec![2], vec![3]]);
    }
}
