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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("bound").required(true).multiple(true).args(["messages", "duration", "ramp"])
))]
pub struct LoadArgs {
    /// SMTP server to load, HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// Concurrent connections (SMTP sessions), spread over the --threads.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Threads of the load generator, each running an event loop for its share of the
    /// connections (default: one per CPU core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
    /// Offer this many messages/s in total, spread evenly over the connections (open
    /// loop; default: each connection sends as soon as its last message was answered).
    #[arg(long, value_parser = parse_rate, conflicts_with = "ramp")]
    pub rate: Option<f64>,
    /// Offer a rate rising linearly from START to END messages/s over DURATION, e.g.
    /// 1000:10000:60s; the run lasts DURATION unless --duration is given.
    #[arg(long, value_parser = parse_ramp)]
    pub ramp: Option<Ramp>,
    /// A p99 message latency to check each second against, e.g. 50ms: the report gives
    /// the first second (and offered rate) where p99 crossed it.
    #[arg(long, value_parser = parse_duration)]
    pub slo_p99: Option<std::time::Duration>,
    /// Total messages to send (stops at whichever of --messages/--duration comes first).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds to keep sending.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Fixed body size in bytes (k/m suffixes = KiB/MiB). Without --size or --size-dist
    /// the body sizes follow the default mix (see README).
    #[arg(long, value_parser = parse_size, conflicts_with = "size_dist")]
    pub size: Option<usize>,
    /// Weighted body sizes, e.g. "1k:50,10k:40,100k:10".
    #[arg(long, value_parser = parse_size_dist)]
    pub size_dist: Option<SizeDist>,
    /// Recipients per message.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub recipients: u32,
    /// Spread each message's recipients over this many domains (d1.DOMAIN, d2.DOMAIN, ...;
    /// with 1, every recipient is at --to-domain itself).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub domains: u32,
    /// Transport security.
    #[arg(long, value_enum, default_value_t = ClientTls::None)]
    pub tls: ClientTls,
    /// Pin the TLS version (default: the best both sides support).
    #[arg(long, value_enum)]
    pub tls_version: Option<TlsVersion>,
    /// Resume TLS sessions from earlier connections (tickets or session IDs, as the server
    /// offers); off makes every handshake a full one.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub tls_resumption: OnOff,
    /// Open a fresh connection for every message instead of reusing it.
    #[arg(long)]
    pub new_connection_per_message: bool,
    /// Send one command at a time even when the server offers PIPELINING.
    #[arg(long)]
    pub no_pipelining: bool,
    /// Send the message with BDAT when the server offers CHUNKING (default: DATA).
    #[arg(long)]
    pub bdat: bool,
    /// Envelope and header sender.
    #[arg(long, default_value = "bench@load.test")]
    pub from: String,
    /// Recipient domain; recipients are userN@DOMAIN.
    #[arg(long, default_value = "example.com")]
    pub to_domain: String,
    /// Name given in EHLO/HELO.
    #[arg(long, default_value = "load.test")]
    pub helo: String,
    /// Per-operation timeout in seconds (connect, each reply, each write).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Print only the final report, as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the per-second time series to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw messages/s and p99 latency over time into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
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
    /// Threads, each accepting on its own socket and running an event loop for its
    /// connections (default: one per CPU core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,
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
    /// Answer this fraction of messages (0 to 1) with --reject-code instead, at random.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub reject_rate: f64,
    /// The reply code of messages picked by --reject-rate.
    #[arg(long, default_value_t = 451, value_parser = clap::value_parser!(u16).range(400..=599))]
    pub reject_code: u16,
    /// Wait this long before each answer (e.g. 5ms), to play a slower server.
    #[arg(long, value_parser = parse_duration)]
    pub reply_delay: Option<std::time::Duration>,
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

/// A linear rate ramp, in messages/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    pub start: f64,
    pub end: f64,
    pub over: std::time::Duration,
}

pub fn parse_ramp(s: &str) -> Result<Ramp, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [start, end, over] = parts[..] else {
        return Err(format!(
            "'{s}' is not a ramp: expected START:END:DURATION, e.g. 1000:10000:60s"
        ));
    };
    let over = parse_duration(over)?;
    if over.is_zero() {
        return Err(format!("ramp '{s}': the duration must be above zero"));
    }
    Ok(Ramp {
        start: parse_rate(start)?,
        end: parse_rate(end)?,
        over,
    })
}

/// Parses "50ms", "2s", "1.5s", "250us", "1m"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: expected e.g. 50ms, 2s or 1m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use us, ms, s or m)")),
    };
    if !secs.is_finite() || secs > 86_400.0 {
        return Err(format!("'{s}' is not a usable duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("'{s}' is not a fraction between 0 and 1")),
    }
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
        .map_err(|_| format!("invalid size '{s}': expected e.g. 512, 10k or 1m"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' too large"))?;
    // Above this a single message would dwarf any realistic SMTP SIZE limit.
    if bytes > 512 * 1024 * 1024 {
        return Err(format!("size '{s}' too large (max 512m)"));
    }
    Ok(bytes)
}

pub fn parse_size_dist(s: &str) -> Result<SizeDist, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (size, weight) = part
            .split_once(':')
            .ok_or_else(|| format!("invalid entry '{part}': expected SIZE:WEIGHT"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("invalid weight in '{part}'"))?;
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
            "'{s}' is not a positive number of messages per second"
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
    fn ramps_and_durations() {
        assert_eq!(
            parse_ramp("1000:10000:60s"),
            Ok(Ramp {
                start: 1000.0,
                end: 10000.0,
                over: std::time::Duration::from_secs(60)
            })
        );
        assert!(parse_ramp("1000:10000").is_err());
        assert!(parse_ramp("0:10:5s").is_err());
        assert!(parse_ramp("1:10:0s").is_err());
        assert_eq!(
            parse_duration("50ms"),
            Ok(std::time::Duration::from_millis(50))
        );
        assert_eq!(parse_duration("2"), Ok(std::time::Duration::from_secs(2)));
        assert!(parse_duration("5 parsecs").is_err());
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
