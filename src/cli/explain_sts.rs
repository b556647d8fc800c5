//! The MTA-STS part of `mxring policy explain --direction outbound`: the TXT
//! record, the policy (fetched live: a running server's cache is in its locked
//! spool) and, per MX host, what delivery would do under it.

use std::rc::Rc;

use mxring::config::{Config, TlsLevel};
use mxring::dns::Dns;
use mxring::mta_sts::{host_plan, HostPlan, MtaSts};

/// Print the MTA-STS lines for `domain` when no explicit rule matched.
pub fn explain_sts(config: &Config, domain: &str, mx_host: Option<&str>) {
    let routed = config.routes.iter().any(|r| {
        r.domains
            .iter()
            .any(|m| m == "*" || mxring::policy::DomainMatcher::parse(m).matches(domain))
    });
    if routed {
        outln!("mta-sts:   not applied: {domain} has a [[route]] (MTA-STS speaks of MX hosts)");
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            outln!("mta-sts:   cannot look it up: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let sts = match MtaSts::new(config, None, false) {
            Ok(s) => Rc::new(s),
            Err(e) => {
                outln!("mta-sts:   {e}");
                return;
            }
        };
        let view = sts.lookup(domain).await;
        for line in view.describe(mxring::queue::clock::now_ms()) {
            outln!("mta-sts:   {line}");
        }
        if view.active.is_none() {
            return;
        }
        outln!("mta-sts:   (looked up now; a running server uses its cached copy until the TXT id changes)");
        let hosts: Vec<String> = match mx_host {
            Some(h) => vec![h.to_ascii_lowercase()],
            None => match Dns::new(&config.dns) {
                Ok(dns) => match dns.mx_hosts(domain).await {
                    Ok(h) => h.into_iter().map(|h| h.name).collect(),
                    Err(e) => {
                        outln!("mta-sts:   MX lookup of {domain}: {}", e.text());
                        return;
                    }
                },
                Err(e) => {
                    outln!("mta-sts:   no resolver: {e}");
                    return;
                }
            },
        };
        let dane = matches!(
            config.outbound.default_tls,
            TlsLevel::Dane | TlsLevel::DaneOnly
        );
        for host in hosts {
            let what = match host_plan(&view, &host) {
                HostPlan::NoPolicy => "mode none: default_tls applies".to_string(),
                HostPlan::Verify { pattern } => format!(
                    "matches `{pattern}`: level verify (certificate chain and the name {host}){}",
                    if dane { ", unless usable DANE TLSA records exist (DANE wins)" } else { "" }
                ),
                HostPlan::Refuse { text } => format!("{text}: not used; deferred 4.7.5 when no MX matches"),
                HostPlan::Testing { matches } => format!(
                    "mode testing ({}): delivered as default_tls says",
                    if matches { "matches" } else { "does not match" }
                ),
            };
            outln!("decision:  {host}: {what}");
        }
    });
}
