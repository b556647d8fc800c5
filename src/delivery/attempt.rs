//! One delivery attempt of one message: recipients grouped by domain (policy is
//! decided per recipient domain, never per MX), each domain routed or MX-resolved,
//! recipients split by their TLS decision per MX tried, results recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::dns::{Dns, DnsFailure};
use super::outbound::{open, OutboundConn, TlsPlan};
use super::outcome::RcptResult;
use super::pool::Pool;
use crate::config::{Config, NextHop, OnTlsFailure, TlsLevel};
use crate::dane::DaneState;
use crate::mta_sts::HostPlan;
use crate::policy::{dane_plan, DanePlan, DomainMatcher, OutboundDecision, OutboundFacts, Policy};
use crate::proto::client::{OutboundRcpt, OutboundTx, TxOutcome};
use crate::proto::received::format_id;
use crate::queue::status::{
    Enhanced, Failure, ProtocolProblem, RemoteMta, Reply, Status, TlsProblem, TlsRule,
};
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

/// The hosts for a domain (from `[[route]]`, else by MX lookup) and whether the
/// list is DNSSEC-validated: a literal address never is, a bracketed host named by
/// the operator counts as secure (no MX is involved), an MX RRset as DNS says.
async fn targets(
    d: &Delivery,
    config: &Config,
    domain: &str,
) -> Result<(Vec<(String, u16, bool)>, bool), DnsFailure> {
    let route = config.routes.iter().find(|r| {
        r.domains
            .iter()
            .any(|m| DomainMatcher::parse(m).matches(domain) || m == "*")
    });
    let by_mx = |answer: super::MxAnswer, port: u16| {
        let secure = answer.secure;
        let hosts = answer
            .hosts
            .into_iter()
            .map(|h| (h.name, port, false))
            .collect();
        (hosts, secure)
    };
    let port = config.outbound.port;
    match route.map(|r| &r.next_hop) {
        Some(NextHop::Addr { ip, port: p }) => {
            Ok((vec![(ip.to_string(), p.unwrap_or(port), true)], false))
        }
        Some(NextHop::Host {
            name,
            port: p,
            no_mx: true,
        }) => Ok((vec![(name.clone(), p.unwrap_or(port), false)], true)),
        Some(NextHop::Host {
            name,
            port: p,
            no_mx: false,
        }) => Ok(by_mx(d.dns.mx(name).await?, p.unwrap_or(port))),
        None => Ok(by_mx(d.dns.mx(domain).await?, port)),
    }
}

/// Whether a `[[route]]` names the next hop of `domain`.
fn has_route(config: &Config, domain: &str) -> bool {
    config.routes.iter().any(|r| {
        r.domains
            .iter()
            .any(|m| DomainMatcher::parse(m).matches(domain) || m == "*")
    })
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

/// The rule behind a decision, as the config file names it.
pub fn rule_name(decision: &OutboundDecision) -> String {
    match decision.rule {
        Some(i) => format!("[[outbound_tls]] #{}", i + 1),
        None => "[outbound] default_tls".into(),
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
        results.extend(deliver_domain(d, config, policy, id, rec, body, &domain, idxs).await);
    }
    results
}

#[allow(clippy::too_many_arguments)]
async fn deliver_domain(
    d: &Delivery,
    config: &Config,
    policy: &Policy,
    id: u64,
    rec: &QueuedMessage,
    body: &[u8],
    domain: &str,
    idxs: Vec<usize>,
) -> Vec<(usize, RcptResult)> {
    let started = Instant::now();
    let (hosts, mx_secure) = match targets(d, config, domain).await {
        Ok(h) => h,
        Err(e) => {
            let failure = match e {
                DnsFailure::Permanent { status, text } => Failure::Dns { status, text },
                DnsFailure::Temporary { text } => dns_unanswered(text),
            };
            let r = RcptResult::failed(failure, None);
            // Every attempt gets its log line, a failed lookup too.
            for &i in &idxs {
                log_attempt(id, rec, i, None, domain, &r, started);
            }
            return idxs.into_iter().map(|i| (i, r.clone())).collect();
        }
    };
    // MTA-STS speaks of the domain's MX hosts; a `[[route]]` next hop is the
    // operator's choice and not subject to it.
    let sts = match &d.sts {
        Some(sts) if !has_route(config, domain) => Some(sts.lookup(domain).await),
        _ => None,
    };
    if let (Some(counters), Some(view)) = (&d.tlsrpt, &sts) {
        super::tls_report::count_sts_problem(counters, view);
    }
    let mut remaining = idxs;
    let mut last: BTreeMap<usize, RcptResult> = BTreeMap::new();
    let mut results = Vec::new();
    'hosts: for (host, port, literal) in hosts.into_iter().take(MAX_HOSTS) {
        let addresses = if literal {
            super::Addresses {
                ips: vec![host.parse().expect("literal next hop is an address")],
                secure: false,
                cname_target: None,
            }
        } else {
            match d.dns.lookup_addresses(&host).await {
                Ok(a) => a,
                Err(e) => {
                    let text = match e {
                        DnsFailure::Permanent { text, .. } | DnsFailure::Temporary { text } => text,
                    };
                    for &i in &remaining {
                        last.insert(i, RcptResult::failed(dns_unanswered(text.clone()), None));
                    }
                    continue;
                }
            }
        };
        // Looked up once per host, and only when a recipient's level asks for DANE.
        let mut dane_state: Option<DaneState> = None;
        for ip in addresses.ips.clone().into_iter().take(MAX_ADDRS_PER_HOST) {
            let addr = SocketAddr::new(ip, port);
            // Split by TLS decision for this MX: one recipient's rule never changes
            // another's delivery.
            let mut groups: Vec<(OutboundDecision, Vec<usize>)> = Vec::new();
            for &i in &remaining {
                let rcpt = &rec.rcpts[i].rcpt.address;
                let decision = policy.outbound(&OutboundFacts {
                    sender: &rec.envelope.sender,
                    account: rec.login.as_deref(),
                    recipient: rcpt,
                    domain,
                    mx_host: Some(&host),
                    mx_ip: Some(ip),
                });
                match groups.iter_mut().find(|(dec, _)| *dec == decision) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((decision, vec![i])),
                }
            }
            let mut still = Vec::new();
            for (decision, group) in groups {
                let mut plan = TlsPlan {
                    level: decision.level,
                    min_version: decision.min_version,
                    peer_name: decision
                        .match_names
                        .first()
                        .cloned()
                        .unwrap_or_else(|| host.clone()),
                    ca_file: decision.ca_file.clone(),
                    client_certificate: decision.client_certificate.clone(),
                    dane: None,
                    mta_sts: false,
                };
                let mut dane_defer = None;
                // TLS-Required: No (RFC 8689 4.1): the sender asks that the
                // recipient's own policies (DANE by default_tls, MTA-STS) be
                // ignored; the operator's explicit rules still hold.
                let ignore_recipient_policy =
                    rec.envelope.tls_required_no && decision.rule.is_none();
                if ignore_recipient_policy
                    && matches!(plan.level, TlsLevel::Dane | TlsLevel::DaneOnly)
                {
                    plan.level = TlsLevel::May;
                }
                if matches!(plan.level, TlsLevel::Dane | TlsLevel::DaneOnly) {
                    if dane_state.is_none() {
                        dane_state =
                            Some(d.dns.dane_state(mx_secure, &host, &addresses, port).await);
                    }
                    let state = dane_state.as_ref().expect("just looked up");
                    match dane_plan(plan.level, state, &host) {
                        DanePlan::Authenticate(set) => {
                            // SNI is the MX host as named. RFC 7672 8.1 asks for the
                            // TLSA base domain, which differs only when TLSA came
                            // from a CNAME target; both are reference names.
                            plan.peer_name = host.clone();
                            plan.dane = Some(set);
                        }
                        DanePlan::Fallback { level, why } => {
                            tracing::debug!(relay = %host, level = level.name(), %why, "DANE level falls back");
                            plan.level = level;
                        }
                        DanePlan::Defer {
                            status: _,
                            text,
                            tls_policy,
                        } => {
                            // Not a policy decision when the DANE state is unknown
                            // (a failed lookup): retried, never bounced.
                            dane_defer = Some((
                                Failure::Tls {
                                    problem: TlsProblem::DaneUnavailable,
                                    text,
                                    required_by: None,
                                },
                                tls_policy,
                            ));
                        }
                    }
                }
                // Below an explicit rule and DANE, above default_tls.
                if let (Some(view), None, None, None, false) = (
                    &sts,
                    decision.rule,
                    &plan.dane,
                    &dane_defer,
                    ignore_recipient_policy,
                ) {
                    match crate::mta_sts::host_plan(view, &host) {
                        HostPlan::Verify { .. } => {
                            plan.level = TlsLevel::Verify;
                            plan.peer_name = host.clone();
                            plan.ca_file = config.outbound.mta_sts_ca_file.clone();
                            plan.mta_sts = true;
                        }
                        HostPlan::Refuse { text } => {
                            dane_defer = Some((
                                Failure::Tls {
                                    problem: TlsProblem::StsMxNotAllowed,
                                    text,
                                    required_by: None,
                                },
                                true,
                            ));
                            plan.mta_sts = true;
                        }
                        HostPlan::Testing { matches } => {
                            tracing::debug!(domain, relay = %host, matches, "MTA-STS policy in testing mode: delivering as usual");
                        }
                        HostPlan::NoPolicy => {}
                    }
                }
                // REQUIRETLS (RFC 8689 4.2.1): TLS authenticated by DANE, MTA-STS
                // or a verified chain and name, whatever the level would be.
                let requiretls_raised = rec.envelope.requiretls
                    && plan.dane.is_none()
                    && plan.level != TlsLevel::Verify;
                if requiretls_raised {
                    plan.level = TlsLevel::Verify;
                    plan.peer_name = host.clone();
                }
                let started = Instant::now();
                let hold = config.outbound.unreachable_hold.0;
                // Whether a TLS failure here is this rule's decision.
                let mut policy_tls = plan.mandatory();
                // Only a connection really tried starts (or ends) a hold.
                let held = d.unreachable.check(addr, hold);
                let tried = dane_defer.is_none() && held.is_none();
                let delivered = match held {
                    _ if dane_defer.is_some() => {
                        let (e, by_policy) = dane_defer.take().expect("checked");
                        policy_tls = by_policy;
                        Err(e)
                    }
                    // Not a new connect failure: the hold runs from the real one.
                    Some(error) => Err(Failure::Connect {
                        text: format!(
                            "{error} (not tried again within {})",
                            crate::config::Dur(hold)
                        ),
                    }),
                    None => deliver_group(d, config, addr, &host, &plan, rec, body, &group).await,
                };
                match &delivered {
                    Err(Failure::Connect { text }) if tried => {
                        d.unreachable.mark(addr, text.clone())
                    }
                    Ok(_) => d.unreachable.forget(addr),
                    Err(_) => {}
                }
                if let Some(counters) = &d.tlsrpt {
                    let tls_used = delivered.as_ref().ok().map(|(_, tls, _, _)| tls.is_some());
                    super::tls_report::count_session(
                        counters,
                        domain,
                        &host,
                        addr,
                        &plan,
                        sts.as_ref(),
                        tls_used,
                        &delivered,
                    );
                }
                match delivered {
                    Ok((conn_remote, tls, peer_dsn, outcome)) => {
                        let remote = RemoteMta {
                            name: conn_remote,
                            tls,
                        };
                        for (k, &i) in group.iter().enumerate() {
                            let mut r = classify(&outcome, k, &remote);
                            r.peer_dsn = peer_dsn;
                            log_attempt(id, rec, i, Some(&addr), &host, &r, started);
                            results.push((i, r));
                        }
                    }
                    Err(mut failure) => {
                        if let Failure::Tls {
                            required_by, text, ..
                        } = &mut failure
                        {
                            if plan.mta_sts {
                                *required_by = Some(TlsRule {
                                    rule: format!("the MTA-STS policy of {domain} (mode enforce)"),
                                    domain: domain.to_string(),
                                    bounce: false,
                                });
                                if !text.contains("MTA-STS") {
                                    *text = format!(
                                        "MTA-STS policy of {domain} (mode enforce) not met: {text}"
                                    );
                                }
                            } else if requiretls_raised {
                                *required_by = Some(TlsRule {
                                    rule: "REQUIRETLS, as the sender asked".into(),
                                    domain: domain.to_string(),
                                    bounce: false,
                                });
                                *text = format!(
                                    "REQUIRETLS asks for authenticated TLS, not met: {text}"
                                );
                            } else if policy_tls {
                                *required_by = Some(TlsRule {
                                    rule: rule_name(&decision),
                                    domain: domain.to_string(),
                                    bounce: decision.on_failure == OnTlsFailure::Bounce,
                                });
                            }
                        }
                        let remote = RemoteMta {
                            name: format!("{host}[{}]:{}", addr.ip(), addr.port()),
                            tls: None,
                        };
                        let r = RcptResult::failed(failure, Some(remote));
                        for &i in &group {
                            log_attempt(id, rec, i, Some(&addr), &host, &r, started);
                            if r.is_deferral() {
                                last.insert(i, r.clone());
                                still.push(i);
                            } else {
                                results.push((i, r.clone()));
                            }
                        }
                    }
                }
            }
            remaining = still;
            if remaining.is_empty() {
                break 'hosts;
            }
        }
    }
    for i in remaining {
        let r = last.remove(&i).unwrap_or_else(|| {
            RcptResult::failed(
                Failure::Connect {
                    text: format!("no reachable host for {domain}"),
                },
                None,
            )
        });
        results.push((i, r));
    }
    results
}

/// The one log line of each recipient's attempt; `addr` is None when no address
/// was reached (a failed DNS lookup of `host`, the domain or its route).
fn log_attempt(
    id: u64,
    rec: &QueuedMessage,
    i: usize,
    addr: Option<&SocketAddr>,
    host: &str,
    r: &RcptResult,
    started: Instant,
) {
    let delay = super::now_ms().saturating_sub(rec.envelope.arrival_ms);
    let tls = r.status.remote().and_then(|m| m.tls.as_ref());
    let by = r.status.decided_by();
    tracing::info!(
        id = %format_id(id),
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

/// The result for the `k`th recipient of a transaction.
fn classify(o: &TxOutcome, k: usize, remote: &RemoteMta) -> RcptResult {
    let remote = Some(remote.clone());
    let from = |reply: &crate::proto::reply::ParsedReply| {
        let reply = Reply::from_parsed(reply);
        if reply.is_positive() {
            RcptResult {
                status: Status::Delivered {
                    reply,
                    remote: remote.clone(),
                },
                peer_dsn: false,
            }
        } else {
            RcptResult::failed(Failure::Remote { reply }, remote.clone())
        }
    };
    let no_reply = |text: &str| {
        RcptResult::failed(
            Failure::Protocol {
                problem: ProtocolProblem::LostConnection,
                text: text.into(),
            },
            remote.clone(),
        )
    };
    if !o.mail.is_positive() {
        return from(&o.mail);
    }
    match &o.rcpts[k] {
        Some(r) if !r.is_positive() => from(r),
        Some(_) => match &o.data {
            Some(d) => from(d),
            None => no_reply("no reply to the end of data"),
        },
        None => no_reply("no reply to RCPT"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver_group(
    d: &Delivery,
    config: &Config,
    addr: SocketAddr,
    host: &str,
    plan: &TlsPlan,
    rec: &QueuedMessage,
    body: &[u8],
    group: &[usize],
) -> Result<(String, Option<crate::proto::TlsFacts>, bool, TxOutcome), Failure> {
    let _slot = d.pool.slot(addr).await;
    // Only canonical lines leave (BDAT too, whose size must then be the new one).
    let body = &*crate::proto::encode::canonical(body);
    let tx = OutboundTx {
        sender: rec.envelope.sender.clone(),
        rcpts: group
            .iter()
            .map(|&i| {
                let r = &rec.rcpts[i].rcpt;
                OutboundRcpt {
                    address: r.address.clone(),
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                }
            })
            .collect(),
        size: body.len() as u64,
        body_type: rec.envelope.body_type,
        smtputf8: rec.envelope.smtputf8,
        ret: rec.envelope.ret,
        envid: rec.envelope.envid.clone(),
        requiretls: rec.envelope.requiretls,
    };
    let idle = config.outbound.idle_timeout.0;
    if let Some(mut conn) = d.pool.checkout(addr, plan, idle) {
        if let Ok(outcome) = conn.send(&tx, body).await {
            return Ok(finish(d, plan, conn, outcome));
        }
        // A reused connection may have been closed by the peer: use a fresh one.
    }
    let helo = &config.server.hostname;
    let timeouts = &config.outbound;
    let mut conn = match open(addr, host, plan, helo, timeouts, false).await {
        Ok(c) => c,
        // Postfix at level `may`: a failed handshake is retried in plaintext.
        Err(
            e @ Failure::Tls {
                problem: TlsProblem::Handshake | TlsProblem::CertificateNotVerified,
                ..
            },
        ) if !plan.mandatory() => {
            tracing::info!(relay = %host, mx_ip = %addr, error = %e.text(), "TLS handshake failed; retrying in plaintext");
            open(addr, host, plan, helo, timeouts, true).await?
        }
        Err(e) => return Err(e),
    };
    let outcome = conn.send(&tx, body).await?;
    Ok(finish(d, plan, conn, outcome))
}

fn finish(
    d: &Delivery,
    plan: &TlsPlan,
    conn: OutboundConn,
    outcome: TxOutcome,
) -> (String, Option<crate::proto::TlsFacts>, bool, TxOutcome) {
    let info = (conn.remote(), conn.tls.clone(), conn.peer_dsn);
    d.pool.checkin(plan.clone(), conn);
    (info.0, info.1, info.2, outcome)
}
