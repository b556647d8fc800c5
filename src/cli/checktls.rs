//! `mxring check-tls DOMAIN|HOST[:PORT]`: a timed transcript of what a peer offers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use mxring::checktls::{check, CheckOptions};
use mxring::config::TlsLevel;

use super::ConfigArg;

#[derive(Args)]
pub struct CheckTlsArgs {
    /// A domain (its MX hosts are tried in order), a host, or HOST:PORT.
    target: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Port for MX hosts and bare hosts.
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// PEM CA bundle for chain verification (default: the system roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Also try MAIL FROM with this address (and RCPT TO with --rcpt-to). No DATA is sent.
    #[arg(long)]
    mail_from: Option<String>,
    #[arg(long)]
    rcpt_to: Option<String>,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 only when some host satisfies this outbound level: none, may,
    /// encrypt, verify, dane or dane-only.
    #[arg(long, default_value = "encrypt", value_parser = parse_level)]
    level: TlsLevel,
}

fn parse_level(s: &str) -> Result<TlsLevel, String> {
    [
        TlsLevel::None,
        TlsLevel::May,
        TlsLevel::Encrypt,
        TlsLevel::Verify,
        TlsLevel::Dane,
        TlsLevel::DaneOnly,
    ]
    .into_iter()
    .find(|l| l.name() == s)
    .ok_or_else(|| format!("`{s}` is not a level (none, may, encrypt, verify, dane, dane-only)"))
}

pub fn run(a: &CheckTlsArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = a.config.load()?;
    let opts = CheckOptions {
        target: a.target.clone(),
        helo: config.server.hostname.clone(),
        port: a.port,
        dns: config.dns.clone(),
        ca_file: a.ca_file.clone(),
        mail_from: a.mail_from.clone(),
        rcpt_to: a.rcpt_to.clone(),
        timeout: Duration::from_secs(a.timeout),
        level: a.level,
        mta_sts: config
            .outbound
            .mta_sts
            .then(|| mxring::mta_sts::StsSettings::from_config(&config)),
    };
    let backend = mxring::net::choose(config.server.io).map_err(anyhow::Error::msg)?;
    let report = mxring::net::run(backend, async move { check(&opts).await })?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.text());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
