//! Command-line interface: the `load` and `sink` subcommands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mxring-bench",
    version,
    about = "Load generator and SMTP sink for benchmarking SMTP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send messages to an SMTP server as fast as it accepts them.
    Load(LoadArgs),
    /// Run a receiving SMTP server that counts and discards messages.
    Sink(SinkArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTls {
    None,
    Starttls,
    Implicit,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    None,
    Starttls,
    /// TLS from the first byte (port 465 style), to exercise the client's implicit mode.
    Implicit,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("bound").required(true).multiple(true).args(["messages", "duration"])
))]
pub struct LoadArgs {
    /// SMTP server to load, HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub connections: u32,
    /// Send at this many messages/s in total, spread evenly over the connections
    /// (default: as fast as the server answers). For latency at a given load, e.g. at
    /// half of the peak rate, with the connection count the peak was measured with.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Total messages to send (stops at whichever of --messages/--duration comes first).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds to keep sending.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Fixed body size in bytes (k/m suffixes = KiB/MiB).
    #[arg(long, value_parser = parse_size, default_value = "1024", conflicts_with = "size_dist")]
    pub size: usize,
    /// Weighted body sizes, e.g. "1k:50,10k:40,100k:10".
    #[arg(long, value_parser = parse_size_dist)]
    pub size_dist: Option<SizeDist>,
    /// Recipients per message.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub recipients: u32,
    /// Transport security.
    #[arg(long, value_enum, default_value_t = ClientTls::None)]
    pub tls: ClientTls,
    /// Pin the TLS version (default: the best both sides support).
    #[arg(long, value_enum)]
    pub tls_version: Option<TlsVersion>,
    /// Open a fresh connection for every message instead of reusing it.
    #[arg(long)]
    pub new_connection_per_message: bool,
    /// Send one command at a time even when the server offers PIPELINING.
    #[arg(long)]
    pub no_pipelining: bool,
    /// Envelope and header sender.
    #[arg(long, default_value = "bench@load.test")]
    pub from: String,
    /// Recipient domain; recipients are userN@DOMAIN.
    #[arg(long, default_value = "example.com")]
    pub to_domain: String,
    /// Name given in EHLO/HELO.
    #[arg(long, default_value = "load.test")]
    pub helo: String,
    /// Per-operation socket timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Print only the final report, as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("bound").required(true).multiple(true).args(["messages", "duration"])
))]
pub struct SinkArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:2626")]
    pub listen: String,
    /// Offer STARTTLS, or speak TLS from the first byte (implicit), or neither.
    #[arg(long, value_enum, default_value_t = SinkTls::None)]
    pub tls: SinkTls,
    /// Certificate chain, PEM (default: a generated self-signed ECDSA P-256 certificate).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key, PEM.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Stop after receiving this many messages.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Reply code for the end of DATA / BDAT LAST (e.g. 451 to exercise retries).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u16).range(200..=599))]
    pub reply_code: u16,
    /// Write each received message to a file in this directory.
    #[arg(long)]
    pub dump_dir: Option<PathBuf>,
    /// Print a progress line on stderr every second.
    #[arg(long)]
    pub progress: bool,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Body sizes with relative weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeDist(pub Vec<(usize, u32)>);

/// Parses "1024", "10k", "1m" (binary multiples, as people mean them for message sizes).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1024),
        Some((i, 'm' | 'M')) => (&s[..i], 1024 * 1024),
        _ => (s, 1),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 512, 10k or 1m"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))?;
    // Above this a single message would dwarf any realistic SMTP SIZE limit.
    if bytes > 512 * 1024 * 1024 {
        return Err(format!("size {s:?} too large (max 512m)"));
    }
    Ok(bytes)
}

pub fn parse_size_dist(s: &str) -> Result<SizeDist, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (size, weight) = part
            .split_once(':')
            .ok_or_else(|| format!("invalid entry {part:?}: expected SIZE:WEIGHT"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("invalid weight in {part:?}"))?;
        out.push((parse_size(size)?, weight));
    }
    if out.is_empty() || out.iter().all(|&(_, w)| w == 0) {
        return Err("size distribution needs at least one entry with a non-zero weight".into());
    }
    Ok(SizeDist(out))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of messages per second"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10k"), Ok(10 * 1024));
        assert_eq!(parse_size("2M"), Ok(2 * 1024 * 1024));
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn dist() {
        assert_eq!(
            parse_size_dist("1k:50,10k:40,100k:10"),
            Ok(SizeDist(vec![(1024, 50), (10240, 40), (102400, 10)]))
        );
        assert!(parse_size_dist("1k").is_err());
        assert!(parse_size_dist("1k:0").is_err());
    }
}
