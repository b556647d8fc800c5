//! Where check-tls connects: `host:port` or an address (one target), or a domain
//! (every MX in order, with the DNSSEC status, TLSA records and MTA-STS policy that
//! delivery would weigh), each finding a transcript line.

use std::net::{IpAddr, SocketAddr};

use super::{Check, CheckOptions, Dir, Verdict};
use crate::config::DnsConfig;
use crate::dane::{DaneState, Tlsa};
use crate::dns::{Addresses, Dns};

/// One host to try: its name, address, and what DNS said about DANE for it.
pub(super) struct Target {
    pub host: String,
    pub addr: Option<SocketAddr>,
    pub dane: DaneState,
}

/// The hosts to try, in order; none when DNS gave nothing to try.
pub(super) async fn targets(o: &CheckOptions, c: &mut Check) -> Vec<Target> {
    if let Some(t) = literal(o) {
        return vec![t];
    }
    let dns = match Dns::new(&o.dns) {
        Ok(d) => d,
        Err(e) => {
            c.note(Dir::Info, format!("No resolver: {e}"));
            return vec![];
        }
    };
    let Some((hosts, mx_secure, port)) = hosts(o, &dns, c).await else {
        return vec![];
    };
    let mut targets = Vec::new();
    for host in hosts {
        targets.push(target(&dns, c, host, mx_secure, port).await);
    }
    targets
}

/// An address, with or without a port: no DNS is involved.
fn literal(o: &CheckOptions) -> Option<Target> {
    let addr = match o.target.parse::<SocketAddr>() {
        Ok(sa) => sa,
        Err(_) => SocketAddr::new(o.target.parse::<IpAddr>().ok()?, o.port),
    };
    Some(Target {
        host: addr.ip().to_string(),
        addr: Some(addr),
        dane: DaneState::NotApplicable("the target is an address".into()),
    })
}

/// The host names to try, whether the MX answer was DNSSEC-secure, and the port.
async fn hosts(o: &CheckOptions, dns: &Dns, c: &mut Check) -> Option<(Vec<String>, bool, u16)> {
    if let Some((h, p)) = o.target.rsplit_once(':') {
        if let Ok(port) = p.parse::<u16>() {
            // A host named by the operator: no MX is involved.
            return Some((vec![h.to_ascii_lowercase()], true, port));
        }
    }
    let answer = match dns.mx(&o.target).await {
        Ok(a) => a,
        Err(e) => {
            c.note(Dir::Info, format!("MX lookup of {} failed: {e}", o.target));
            return None;
        }
    };
    let list: Vec<String> = answer
        .hosts
        .iter()
        .map(|h| format!("{} ({})", h.name, h.preference))
        .collect();
    c.note(
        Dir::Info,
        format!(
            "MX lookup of {} ({}): {}",
            o.target,
            secure_word(dns, answer.secure),
            list.join(", ")
        ),
    );
    if let Some(settings) = &o.mta_sts {
        note_sts(c, &o.dns, settings, &o.target).await;
    }
    let names = answer.hosts.into_iter().map(|h| h.name).collect();
    Some((names, answer.secure, o.port))
}

/// One host's addresses (the first is tried) and its DANE state.
async fn target(dns: &Dns, c: &mut Check, host: String, mx_secure: bool, port: u16) -> Target {
    let addrs = match dns.lookup_addresses(&host).await {
        Ok(a) => a,
        Err(e) => {
            c.note(Dir::Info, format!("Address lookup of {host} failed: {e}"));
            return Target {
                host,
                addr: None,
                dane: DaneState::NotApplicable("no address".into()),
            };
        }
    };
    let ips: Vec<String> = addrs.ips.iter().map(|i| i.to_string()).collect();
    let via = addrs
        .cname_target
        .as_ref()
        .map(|t| format!(" via CNAME {t}"))
        .unwrap_or_default();
    c.note(
        Dir::Info,
        format!(
            "Address lookup of {host}{via} ({}): {}",
            secure_word(dns, addrs.secure),
            ips.join(", ")
        ),
    );
    let dane = dane_state(dns, c, mx_secure, &host, &addrs, port).await;
    Target {
        addr: addrs.ips.first().map(|ip| SocketAddr::new(*ip, port)),
        host,
        dane,
    }
}

/// What DANE says of the host, as delivery would decide it, with every TLSA record.
async fn dane_state(
    dns: &Dns,
    c: &mut Check,
    mx_secure: bool,
    host: &str,
    addrs: &Addresses,
    port: u16,
) -> DaneState {
    if !dns.dnssec() {
        return DaneState::NotApplicable("[dns] dnssec is off".into());
    }
    let state = dns.dane_state(mx_secure, host, addrs, port).await;
    // Every record at the base, usable or not (from the per-run cache).
    let all = match &state {
        DaneState::Usable(set) => dns.tlsa(&set.base, port).await.ok().map(|x| x.0),
        DaneState::Unusable { records, .. } => Some(records.clone()),
        _ => None,
    };
    note_tlsa(c, &state, all.unwrap_or_default(), port);
    state
}

fn secure_word(dns: &Dns, secure: bool) -> &'static str {
    match (dns.dnssec(), secure) {
        (false, _) => "DNSSEC not checked: [dns] dnssec = \"off\"",
        (true, true) => "DNSSEC secure",
        (true, false) => "DNSSEC insecure",
    }
}

fn note_tlsa(c: &mut Check, state: &DaneState, records: Vec<Tlsa>, port: u16) {
    let base = match state {
        DaneState::Usable(set) => set.base.clone(),
        DaneState::Unusable { base, .. } => base.clone(),
        _ => {
            c.note(Dir::Info, state.describe());
            return;
        }
    };
    c.note(
        Dir::Info,
        format!("TLSA records at _{port}._tcp.{base} (DNSSEC secure):"),
    );
    for r in &records {
        let usable = match r.unusable_reason() {
            None => "usable".to_string(),
            Some(why) => format!("unusable: {why}"),
        };
        c.note(Dir::Info, format!("  {r} ({}, {usable})", r.usage_name()));
    }
    c.note(Dir::Info, state.describe());
}

/// The MTA-STS TXT record and policy of `domain`, as transcript lines.
async fn note_sts(
    c: &mut Check,
    dns: &DnsConfig,
    settings: &crate::mta_sts::StsSettings,
    domain: &str,
) {
    let sts = match crate::mta_sts::MtaSts::with(dns, settings, None, false) {
        Ok(m) => std::rc::Rc::new(m),
        Err(e) => {
            c.note(Dir::Info, format!("MTA-STS not checked: {e}"));
            return;
        }
    };
    let view = sts.lookup(domain).await;
    for line in view.describe(crate::queue::clock::now_ms()) {
        c.note(Dir::Info, format!("MTA-STS {line}"));
    }
    c.sts = Some(view);
}

/// What the MTA-STS policy says of `host` after its check, when there is one.
pub(super) fn note_sts_host(c: &mut Check, host: &str, verdict: &Verdict) {
    use crate::mta_sts::HostPlan;
    let Some(view) = &c.sts else { return };
    let text = match crate::mta_sts::host_plan(view, host) {
        HostPlan::NoPolicy => return,
        HostPlan::Verify { pattern } if verdict.verify => format!(
            "MTA-STS enforce: {host} matches `{pattern}` and its certificate verified: delivery would go ahead"
        ),
        HostPlan::Verify { pattern } => format!(
            "MTA-STS enforce: {host} matches `{pattern}`, but TLS with a verified certificate failed: delivery would be deferred (4.7.5)"
        ),
        HostPlan::Refuse { text } => format!("MTA-STS enforce: {text}: delivery would not use it"),
        HostPlan::Testing { matches } => format!(
            "MTA-STS testing: {host} {} the policy{}; delivery goes ahead either way",
            if matches { "matches" } else { "does not match" },
            if matches && !verdict.verify { " but its certificate did not verify" } else { "" }
        ),
    };
    c.note(Dir::Info, text);
}
