//! One delivery attempt of one message: recipients grouped by domain (policy is
//! decided per recipient domain, never per MX), each domain routed or MX-resolved,
//! recipients split by their TLS decision per MX tried, results recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::dns::{Dns, DnsFailure};
use super::nexthop::NextHop;
use super::outbound::{open, AttemptError, OutboundConn, TlsPlan};
use super::outcome::{RcptResult, ResultKind};
use super::pool::Pool;
use crate::config::{Config, OnTlsFailure, TlsLevel};
use crate::dane::DaneState;
use crate::dsn::Decider;
use crate::mta_sts::HostPlan;
use crate::policy::{dane_plan, DanePlan, DomainMatcher, OutboundDecision, OutboundFacts, Policy};
use crate::proto::client::{OutboundRcpt, OutboundTx, TxOutcome};
use crate::proto::received::format_id;
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
    match route.map(|r| NextHop::parse_with_port(&r.next_hop, config.outbound.port)) {
        Some(Ok(NextHop::Addr(a))) => Ok((vec![(a.ip().to_string(), a.port(), true)], false)),
        Some(Ok(NextHop::Host {
            name,
            port,
            no_mx: true,
        })) => Ok((vec![(name, port, false)], true)),
        Some(Ok(NextHop::Host {
            name,
            port,
            no_mx: false,
        })) => Ok(by_mx(d.dns.mx(&name).await?, port)),
        Some(Err(e)) => Err(DnsFailure::Temporary {
            text: format!("bad route: {e}"),
        }),
        None => Ok(by_mx(d.dns.mx(domain).await?, config.outbound.port)),
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

/// A TLS failure under an MTA-STS `enforce` policy: 4.7.5, naming the policy.
fn sts_failure(e: &mut AttemptError, domain: &str) {
    e.status = "4.7.5".into();
    if !e.text.contains("MTA-STS") {
        e.text = format!(
            "MTA-STS policy of {domain} (mode enforce) not met: {}",
            e.text
        );
    }
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|x| x.1)
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn failure(kind: ResultKind, status: &str, text: String, decided_by: Decider) -> RcptResult {
    RcptResult {
        kind,
        status: status.into(),
        text,
        remote_mta: None,
        tls: None,
        peer_dsn: false,
        decided_by,
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
    for (i, r) in rec.envelope.recipients.iter().enumerate() {
        if !rec.rcpts[i].state.is_done() {
            by_domain.entry(domain_of(&r.address)).or_default().push(i);
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
            let r = match e {
                DnsFailure::Permanent { status, text } => {
                    failure(ResultKind::Permanent, status, text, Decider::Dns)
                }
                DnsFailure::Temporary { text } => {
                    failure(ResultKind::Temporary, "4.4.3", text, Decider::Dns)
                }
            };
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
                        last.insert(
                            i,
                            failure(ResultKind::Temporary, "4.4.3", text.clone(), Decider::Dns),
                        );
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
                let rcpt = &rec.envelope.recipients[i].address;
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
                            status,
                            text,
                            tls_policy,
                        } => {
                            let mut e = AttemptError::tls(status, text);
                            e.tls_policy = tls_policy;
                            dane_defer = Some(e);
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
                            dane_defer = Some(AttemptError::tls("4.7.5", text));
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
                let delivered = match d.unreachable.check(addr, hold) {
                    _ if dane_defer.is_some() => Err(dane_defer.take().expect("checked")),
                    // Not a new connect failure: the hold runs from the real one.
                    Some(error) => Err(AttemptError::temp(
                        "4.4.1",
                        format!(
                            "{error} (not tried again within {})",
                            crate::config::Dur(hold)
                        ),
                    )),
                    None => deliver_group(d, config, addr, &host, &plan, rec, body, &group).await,
                };
                match &delivered {
                    Err(e) if e.connect_failed => d.unreachable.mark(addr, e.text.clone()),
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
                        for (k, &i) in group.iter().enumerate() {
                            let mut r = classify(&outcome, k);
                            r.remote_mta = Some(conn_remote.clone());
                            r.tls = tls.clone();
                            r.peer_dsn = peer_dsn;
                            log_attempt(id, rec, i, Some(&addr), &host, &r, started);
                            results.push((i, r));
                        }
                    }
                    Err(mut e) => {
                        if plan.mta_sts && e.tls_policy {
                            sts_failure(&mut e, domain);
                        }
                        if requiretls_raised && e.tls_policy {
                            e.text = format!(
                                "REQUIRETLS asks for authenticated TLS, not met: {}",
                                e.text
                            );
                        }
                        let bounce = e.tls_policy && decision.on_failure == OnTlsFailure::Bounce;
                        let kind = if bounce || !e.temporary {
                            ResultKind::Permanent
                        } else {
                            ResultKind::Temporary
                        };
                        let status = if bounce {
                            e.status.replacen('4', "5", 1)
                        } else {
                            e.status.clone()
                        };
                        let decided_by =
                            if e.status == "5.7.10" || (requiretls_raised && e.tls_policy) {
                                Decider::TlsPolicy {
                                    rule: "REQUIRETLS, as the sender asked".into(),
                                    domain: domain.to_string(),
                                }
                            } else if e.tls_policy {
                                Decider::TlsPolicy {
                                    rule: if plan.mta_sts {
                                        format!("the MTA-STS policy of {domain} (mode enforce)")
                                    } else {
                                        rule_name(&decision)
                                    },
                                    domain: domain.to_string(),
                                }
                            } else {
                                e.decided_by.clone()
                            };
                        let mut r =
                            failure(kind, &status, format!("{status} {}", e.text), decided_by);
                        r.remote_mta = Some(format!("{host}[{}]:{}", addr.ip(), addr.port()));
                        for &i in &group {
                            log_attempt(id, rec, i, Some(&addr), &host, &r, started);
                            if kind == ResultKind::Permanent {
                                results.push((i, r.clone()));
                            } else {
                                last.insert(i, r.clone());
                                still.push(i);
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
            failure(
                ResultKind::Temporary,
                "4.4.1",
                format!("no reachable host for {domain}"),
                Decider::Network,
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
    let delay = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        .saturating_sub(rec.envelope.arrival_ms);
    tracing::info!(
        id = %format_id(id),
        to = %rec.envelope.recipients[i].address,
        relay = %host,
        mx_ip = %addr.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
        tls = r.tls.as_ref().map(|t| t.version.as_str()).unwrap_or("none"),
        cipher = r.tls.as_ref().map(|t| t.cipher.as_str()).unwrap_or("none"),
        dane = r.tls.as_ref().and_then(|t| t.dane.as_deref()).unwrap_or("none"),
        status = %r.status,
        result = r.kind.name(),
        reply = %r.text,
        delay_ms = delay,
        attempt_ms = started.elapsed().as_millis() as u64,
        "delivery attempt"
    );
}

/// The result for the `k`th recipient of a transaction.
fn classify(o: &TxOutcome, k: usize) -> RcptResult {
    let from = |reply: &crate::proto::reply::ParsedReply| {
        let kind = if reply.is_positive() {
            ResultKind::Delivered
        } else if reply.is_transient() {
            ResultKind::Temporary
        } else {
            ResultKind::Permanent
        };
        let status = reply.enhanced().map(str::to_string).unwrap_or_else(|| {
            match kind {
                ResultKind::Delivered => "2.0.0",
                ResultKind::Temporary => "4.0.0",
                ResultKind::Permanent => "5.0.0",
            }
            .to_string()
        });
        RcptResult {
            kind,
            status,
            text: reply.one_line(),
            remote_mta: None,
            tls: None,
            peer_dsn: false,
            decided_by: Decider::RemoteHost,
        }
    };
    if !o.mail.is_positive() {
        return from(&o.mail);
    }
    match &o.rcpts[k] {
        Some(r) if !r.is_positive() => from(r),
        Some(_) => match &o.data {
            Some(d) => from(d),
            None => failure(
                ResultKind::Temporary,
                "4.4.2",
                "no reply to the end of data".into(),
                Decider::Network,
            ),
        },
        None => failure(
            ResultKind::Temporary,
            "4.4.2",
            "no reply to RCPT".into(),
            Decider::Network,
        ),
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
) -> Result<(String, Option<crate::proto::TlsFacts>, bool, TxOutcome), AttemptError> {
    let _slot = d.pool.slot(addr).await;
    // Only canonical lines leave (BDAT too, whose size must then be the new one).
    let body = &*crate::proto::encode::canonical(body);
    let tx = OutboundTx {
        sender: rec.envelope.sender.clone(),
        rcpts: group
            .iter()
            .map(|&i| {
                let r = &rec.envelope.recipients[i];
                OutboundRcpt {
                    address: r.address.clone(),
                    notify: r.notify.clone(),
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
    let timeout = config.outbound.connect_timeout.0;
    let mut conn = match open(addr, host, plan, helo, timeout, false).await {
        Ok(c) => c,
        // Postfix at level `may`: a failed handshake is retried in plaintext.
        Err(e) if e.handshake_failed => {
            tracing::info!(relay = %host, mx_ip = %addr, error = %e.text, "TLS handshake failed; retrying in plaintext");
            open(addr, host, plan, helo, timeout, true).await?
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
