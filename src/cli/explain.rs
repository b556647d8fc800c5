//! `mxring policy explain`: which rule applies to given facts, and why.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use mxring::config::{ListenerTls, NextHop, TlsLevel};
use mxring::dane::DaneState;
use mxring::dns::Dns;
use mxring::policy::{dane_plan, DanePlan, OutboundFacts, Policy};

#[derive(Clone, Copy, ValueEnum)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[arg(long, value_enum)]
    direction: Direction,
    /// Inbound: the connecting client's address.
    #[arg(long)]
    client_ip: Option<IpAddr>,
    #[arg(long)]
    sender: Option<String>,
    /// Outbound: the SMTP AUTH login that submitted the message (`accounts` rules).
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    recipient: Option<String>,
    /// Outbound: the MX host tried.
    #[arg(long)]
    mx_host: Option<String>,
    /// Outbound: the MX address tried.
    #[arg(long)]
    mx_ip: Option<IpAddr>,
    /// Inbound: the session already uses TLS 1.3 (shows whether it would pass).
    #[arg(long)]
    tls: bool,
    /// Inbound: the session uses this TLS version ("1.2" or "1.3"); implies --tls.
    #[arg(long, value_parser = parse_version)]
    tls_version: Option<mxring::config::TlsVersion>,
    /// Inbound: the listener the client connects to (default: the first).
    #[arg(long)]
    listener: Option<String>,
    /// Outbound: look up the recipient domain's MTA-STS TXT record and fetch its
    /// policy now (DNS and HTTPS traffic), and say what it means per MX host.
    #[arg(long)]
    lookup: bool,
}

fn parse_version(s: &str) -> Result<mxring::config::TlsVersion, String> {
    match s.trim_start_matches("TLSv").trim_start_matches("tls") {
        "1.2" => Ok(mxring::config::TlsVersion::Tls12),
        "1.3" => Ok(mxring::config::TlsVersion::Tls13),
        other => Err(format!("{other}: give 1.2 or 1.3")),
    }
}

pub fn explain(
    config: &mxring::config::Config,
    origin: &str,
    a: &ExplainArgs,
) -> anyhow::Result<ExitCode> {
    let policy = Policy::from_config(config, origin);
    match a.direction {
        Direction::Inbound => {
            let listener = match &a.listener {
                Some(n) => config
                    .listeners
                    .iter()
                    .find(|l| &l.name == n)
                    .ok_or_else(|| anyhow::anyhow!("no listener named {n}"))?,
                None => &config.listeners[0],
            };
            let required = listener.tls == ListenerTls::Required;
            let client = a.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let sender = a.sender.as_deref().unwrap_or("");
            let decision = match &a.recipient {
                Some(r) => policy.inbound_at_rcpt(client, Some(sender), r, required),
                None => match policy.inbound_at_mail(client, sender, required) {
                    Some(d) => d,
                    None => {
                        outln!("decided per recipient: an [[inbound_tls]] rule with recipient matchers comes first; give --recipient");
                        return Ok(ExitCode::SUCCESS);
                    }
                },
            };
            let rule = match decision.rule {
                Some(i) => format!("{origin}: [[inbound_tls]] #{} (index {i})", i + 1),
                None => format!(
                    "listener {} (tls = \"{}\")",
                    listener.name,
                    listener.tls.name()
                ),
            };
            outln!("direction: inbound");
            outln!("rule:      {rule}");
            outln!("matched:   {}", decision.matched);
            let min = decision
                .min_version
                .map(|v| format!(", {} or later", v.name()))
                .unwrap_or_default();
            outln!(
                "tls:       {}{min}",
                if decision.require_tls {
                    "required"
                } else {
                    "optional"
                }
            );
            if a.recipient.as_deref().is_some_and(|r| !r.contains('@')) {
                outln!("note:      --recipient should be a full address");
            }
            let have = a
                .tls_version
                .or(a.tls.then_some(mxring::config::TlsVersion::Tls13));
            let verdict = match decision.check(have) {
                Ok(()) => "accepted".to_string(),
                Err(s) => format!("refused: 530 5.7.0 {}", s.reply_text(have)),
            };
            outln!(
                "verdict:   {verdict} ({})",
                match have {
                    Some(v) => format!("with {}", v.name()),
                    None => "without TLS".into(),
                }
            );
        }
        Direction::Outbound => {
            let recipient = a.recipient.as_deref().unwrap_or("");
            let domain = recipient.rsplit_once('@').map(|x| x.1).unwrap_or(recipient);
            let d = policy.outbound(&OutboundFacts {
                sender: a.sender.as_deref().unwrap_or(""),
                account: a.account.as_deref(),
                recipient,
                domain,
                mx_host: a.mx_host.as_deref(),
                mx_ip: a.mx_ip,
            });
            let rule = match d.rule {
                Some(i) => format!("{origin}: [[outbound_tls]] #{} (index {i})", i + 1),
                None => format!("{origin}: [outbound] default_tls"),
            };
            outln!("direction: outbound");
            outln!("rule:      {rule}");
            outln!("matched:   {}", d.matched);
            outln!("level:     {}", d.level.name());
            if d.level.is_mandatory() {
                outln!("minimum:   {}", d.min_version.name());
                outln!("on_failure: {}", d.on_failure.name());
            }
            if !d.match_names.is_empty() {
                outln!("match:     {}", d.match_names.join(", "));
            }
            if matches!(d.level, TlsLevel::Dane | TlsLevel::DaneOnly) {
                explain_dane(config, d.level, domain, a.mx_host.as_deref());
            }
            if !config.outbound.mta_sts {
                outln!("mta-sts:   off ([outbound] mta_sts = false)");
            } else if d.rule.is_some() {
                outln!(
                    "mta-sts:   not applied: an explicit [[outbound_tls]] rule wins over MTA-STS"
                );
            } else if a.lookup && !domain.is_empty() {
                super::explain_sts::explain_sts(config, domain, a.mx_host.as_deref());
            } else if !domain.is_empty() {
                outln!("mta-sts:   applies when {domain} publishes a policy (below DANE, above default_tls); give --lookup to fetch it now");
            }
            if a.mx_host.is_none()
                && a.mx_ip.is_none()
                && policy
                    .outbound
                    .iter()
                    .any(|r| !r.mx_hosts.is_empty() || !r.mx_ips.is_empty())
            {
                outln!("note:      rules with mx_hosts/mx_ips are decided per MX tried; give --mx-host/--mx-ip");
            }
            if d.matched.contains("sender ") {
                outln!("note:      `senders` match the envelope sender (MAIL FROM), which anyone can forge; `accounts` match the authenticated login and can't be");
            }
            if a.account.is_none() && policy.outbound.iter().any(|r| !r.accounts.is_empty()) {
                outln!("note:      rules with accounts match the login of an authenticated submission; give --account LOGIN");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The DANE decision per MX host, from live DNS lookups (RFC 7672: MX secure or
/// not, the TLSA records found, usable or not, and what delivery would do).
fn explain_dane(
    config: &mxring::config::Config,
    level: TlsLevel,
    domain: &str,
    mx_host: Option<&str>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("dane:      cannot look it up: {e}");
            return;
        }
    };
    rt.block_on(async {
        let dns = match Dns::new(&config.dns) {
            Ok(d) => d,
            Err(e) => {
                println!("dane:      no resolver: {e}");
                return;
            }
        };
        let mut port = config.outbound.port;
        // As delivery does: a [[route]] comes first; a literal address never has
        // DANE, a bracketed host is looked up as named, another host by its MX.
        let route = config.routes.iter().find(|r| {
            r.domains
                .iter()
                .any(|m| m == "*" || mxring::policy::DomainMatcher::parse(m).matches(domain))
        });
        let mut mx_domain = domain.to_string();
        match route.map(|r| &r.next_hop) {
            Some(hop @ NextHop::Addr { .. }) => {
                println!(
                    "dane:      {domain} is routed to {hop}: DANE does not apply to an address"
                );
                return;
            }
            Some(
                hop @ NextHop::Host {
                    name, no_mx: true, ..
                },
            ) => {
                let route_port = hop.port_or(port);
                let state = match dns.lookup_addresses(name).await {
                    Ok(addrs) => dns.dane_state(true, name, &addrs, route_port).await,
                    Err(e) => DaneState::Failed(e.text().to_string()),
                };
                print_dane(level, name, &state);
                return;
            }
            Some(hop @ NextHop::Host { name, .. }) => {
                mx_domain = name.clone();
                port = hop.port_or(port);
            }
            None => {}
        }
        let domain = mx_domain.as_str();
        // The MX RRset decides whether DANE can apply, also for a host given with
        // --mx-host.
        let (mut hosts, mx_secure) = match dns.mx(domain).await {
            Ok(answer) => {
                let list: Vec<String> = answer
                    .hosts
                    .iter()
                    .map(|h| format!("{} ({})", h.name, h.preference))
                    .collect();
                println!(
                    "mx:        {domain}: {} ({})",
                    list.join(", "),
                    if answer.secure {
                        "DNSSEC secure"
                    } else {
                        "not DNSSEC-validated: DANE does not apply"
                    }
                );
                (
                    answer.hosts.into_iter().map(|h| h.name).collect::<Vec<_>>(),
                    answer.secure,
                )
            }
            Err(e) => {
                println!("mx:        {domain}: {}", e.text());
                return;
            }
        };
        if let Some(h) = mx_host {
            hosts = vec![h.to_ascii_lowercase()];
        }
        for host in hosts {
            let state = match dns.lookup_addresses(&host).await {
                Ok(addrs) => dns.dane_state(mx_secure, &host, &addrs, port).await,
                Err(e) => DaneState::Failed(e.text().to_string()),
            };
            print_dane(level, &host, &state);
        }
    });
}

fn print_dane(level: TlsLevel, host: &str, state: &DaneState) {
    let decision = match dane_plan(level, state, host) {
        DanePlan::Authenticate(_) => {
            "TLS required; the certificate must match one of these records".to_string()
        }
        DanePlan::Fallback { level, .. } => {
            format!("level {} (DANE does not apply)", level.name())
        }
        DanePlan::Defer { status, .. } => format!("deferred ({status})"),
    };
    println!("dane:      {host}: {}", state.describe());
    println!("decision:  {host}: {decision}");
}
