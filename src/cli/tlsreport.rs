//! `mxring tls-report show`: the TLS session counts a running server keeps for
//! its RFC 8460 reports (the current period and any not yet sent).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use mxring::admin::AdminClient;
use mxring::tlsrpt::PeriodCounts;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum TlsReportAction {
    /// Print the counts per period, policy domain and policy.
    Show {
        /// Only this recipient (policy) domain.
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn run(arg: &ConfigArg, action: TlsReportAction) -> anyhow::Result<ExitCode> {
    let TlsReportAction::Show { domain, json } = action;
    let (config, _) = arg.load()?;
    let addr: SocketAddr = config
        .admin
        .address
        .parse()
        .context("admin.address is not set in this config")?;
    let (status, body) = AdminClient::new(addr).request("GET", "/tls-report")?;
    if status != 200 {
        eprintln!("mxring: {body}");
        return Ok(ExitCode::from(1));
    }
    let mut counts: Vec<PeriodCounts> = serde_json::from_str(&body)?;
    if let Some(d) = &domain {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        counts.retain(|c| c.policy_domain == d);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&counts)?);
        return Ok(ExitCode::SUCCESS);
    }
    if counts.is_empty() {
        outln!(
            "no TLS sessions counted{}",
            domain.map(|d| format!(" for {d}")).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for c in &counts {
        outln!(
            "{} to {}  {}  policy {}: {} successful, {} failed",
            when(c.period_start_ms),
            when(c.period_end_ms),
            c.policy_domain,
            c.policy_type,
            c.success,
            c.failure_total()
        );
        for f in &c.failures {
            let ip = f
                .receiving_ip
                .map(|i| format!(" [{i}]"))
                .unwrap_or_default();
            outln!(
                "    {} x {} at {}{ip}: {}",
                f.count,
                f.result_type,
                if f.receiving_mx_hostname.is_empty() {
                    "(policy lookup)"
                } else {
                    &f.receiving_mx_hostname
                },
                f.additional_information.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
