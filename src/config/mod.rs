//! The configuration model. One TOML file describes a whole mxring; every field has
//! a documented default, and unknown keys are refused (with the key and its line).

mod checks;
#[cfg(test)]
mod defaults_tests;
mod files;
mod identity;
mod load;
mod restart;
mod route;
pub mod syntax;
mod units;
mod validate;

pub use checks::warnings;
pub use files::check_files;
pub use identity::{AuthConfig, CertificateEntry, ListenerAuth};
pub use load::{load_file, load_str, ConfigError, EMBEDDED_DEFAULT};
pub use restart::restart_only_changes;
pub use route::{Nameserver, NextHop};
pub use units::{canonical_ip, ByteSize, Cidr, Dur};

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub inbound_tls: Vec<InboundTlsRule>,
    #[serde(default)]
    pub outbound_tls: Vec<OutboundTlsRule>,
    #[serde(default)]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub tls_report: TlsReportConfig,
}

/// `[tls_report]`: SMTP TLS reporting (RFC 8460) to the domains mxring delivers to.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsReportConfig {
    /// Count TLS sessions per policy domain and send the reports the domains ask
    /// for in their `_smtp._tls` TXT record. Default false.
    pub enabled: bool,
    /// `organization-name` of the reports. Default: server.hostname.
    pub organization: Option<String>,
    /// `contact-info` of the reports. Default: the postmaster address.
    pub contact: Option<String>,
    /// Length of a report period; counts are kept per period and sent after it
    /// ends. RFC 8460 asks for days (UTC); shorter periods are for tests. Default 24h.
    pub interval: Dur,
}

impl Default for TlsReportConfig {
    fn default() -> Self {
        TlsReportConfig {
            enabled: false,
            organization: None,
            contact: None,
            interval: Dur(std::time::Duration::from_secs(86_400)),
        }
    }
}

/// `[server]`: identity, sharding, spool and per-connection limits.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Name in the banner, EHLO reply, Received headers and DSNs. Default "mxring.localhost".
    pub hostname: String,
    /// Number of shard threads; 0 = one per core. Default 0.
    pub shards: usize,
    /// Spool directory holding the sled queue. Default "./mxring-spool".
    pub spool: PathBuf,
    /// Largest message accepted (SIZE and DATA). Default 50MiB.
    pub max_message_size: ByteSize,
    /// Recipients per transaction; more get 452 4.5.3. Default 1000.
    pub max_recipients: usize,
    /// Open connections per shard; more get 421 4.7.0 and are closed. Default 10000.
    pub max_connections_per_shard: usize,
    /// Idle time allowed between commands (RFC 5321 4.5.3.2: at least 5 minutes). Default 5m.
    pub command_timeout: Dur,
    /// Idle time allowed inside DATA or BDAT (RFC 5321 data block: 3 minutes). Default 3m.
    pub data_timeout: Dur,
    /// Longest time a message body may take from DATA (or the first BDAT) to its
    /// end, however steadily it trickles; then 421 4.4.2 and close. Default: 10
    /// minutes per started MiB of `max_message_size` (50MiB: 500 minutes), a minimum rate
    /// of about 1.7 KiB/s for a message of the largest size.
    pub data_total_timeout: Option<Dur>,
    /// Where mail for the bare `<postmaster>` (RFC 5321 4.5.1: no domain) is
    /// delivered. Default: postmaster@`hostname`.
    pub postmaster: Option<String>,
    /// Errors in one session before it is closed with 421. Default 20.
    pub max_errors: usize,
    /// Open connections from one client address; more get 421 4.7.0. Enforced per
    /// shard as this share of it (SO_REUSEPORT spreads a client over shards). 0 = no
    /// limit. Default 100.
    pub max_connections_per_ip: usize,
    /// New connections per minute from one client address; more get 421 4.7.0.
    /// Per shard, as above. 0 = no limit. Default 0.
    pub connection_rate_per_ip: u32,
    /// I/O back end: "auto" (io_uring when the kernel and any seccomp filter allow
    /// it, else epoll with a warning), "uring" (refuse to start without it) or
    /// "epoll". The environment variable MXRING_IO overrides it. Default "auto".
    pub io: IoChoice,
    /// Time a client has to finish the TLS handshake, on an `implicit` listener and
    /// after STARTTLS; then the connection is closed. Default 30s.
    pub tls_handshake_timeout: Dur,
    /// Time a load balancer has to send the PROXY header on a `proxy_protocol`
    /// listener; then the connection is closed. Default 10s.
    pub proxy_header_timeout: Dur,
}

/// `[server] io`: which I/O back end the shards run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IoChoice {
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl IoChoice {
    pub fn parse(s: &str) -> Option<IoChoice> {
        match s {
            "auto" => Some(IoChoice::Auto),
            "uring" => Some(IoChoice::Uring),
            "epoll" => Some(IoChoice::Epoll),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IoChoice::Auto => "auto",
            IoChoice::Uring => "uring",
            IoChoice::Epoll => "epoll",
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "mxring.localhost".into(),
            shards: 0,
            spool: PathBuf::from("./mxring-spool"),
            max_message_size: ByteSize(50 << 20),
            max_recipients: 1000,
            max_connections_per_shard: 10_000,
            command_timeout: Dur(std::time::Duration::from_secs(300)),
            data_timeout: Dur(std::time::Duration::from_secs(180)),
            data_total_timeout: None,
            postmaster: None,
            max_errors: 20,
            max_connections_per_ip: 100,
            connection_rate_per_ip: 0,
            io: IoChoice::Auto,
            tls_handshake_timeout: Dur(std::time::Duration::from_secs(30)),
            proxy_header_timeout: Dur(std::time::Duration::from_secs(10)),
        }
    }
}

impl ServerConfig {
    /// `data_total_timeout`, or its default from `max_message_size`.
    pub fn data_total_timeout(&self) -> std::time::Duration {
        if let Some(d) = self.data_total_timeout {
            return d.0;
        }
        let mib = self.max_message_size.0.div_ceil(1 << 20).max(1);
        std::time::Duration::from_secs(600 * mib)
    }

    /// The address `<postmaster>` stands for.
    pub fn postmaster_address(&self) -> String {
        self.postmaster
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", self.hostname))
    }
}

/// How a listener treats TLS.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerTls {
    /// Plain SMTP, STARTTLS not offered.
    None,
    /// STARTTLS offered, plaintext allowed (opportunistic).
    Starttls,
    /// STARTTLS offered and mandatory before MAIL, RCPT, DATA and BDAT. A floor:
    /// `[[inbound_tls]]` rules can add a minimum version but never exempt plaintext.
    Required,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

impl ListenerTls {
    /// The config file's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ListenerTls::None => "none",
            ListenerTls::Starttls => "starttls",
            ListenerTls::Required => "required",
            ListenerTls::Implicit => "implicit",
        }
    }
}

/// `[[listener]]`: one address to accept SMTP on; every shard binds it with SO_REUSEPORT.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Name for logs and policy explanations.
    #[serde(default = "default_listener_name")]
    pub name: String,
    /// Address and port; port 0 picks a free port (tests).
    pub address: SocketAddr,
    /// none | starttls | required | implicit. Default starttls.
    #[serde(default = "default_listener_tls")]
    pub tls: ListenerTls,
    /// Expect a PROXY protocol v1/v2 header (HAProxy, cloud load balancers) first;
    /// its source address is the client for policy and Received headers. Default false.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Load balancers allowed to send PROXY headers; anyone else is disconnected.
    #[serde(default)]
    pub proxy_networks: Vec<Cidr>,
    /// SMTP AUTH (submission): `false`, `true` (offered once TLS is up) or
    /// `"required"` (MAIL before AUTH gets 530 5.7.0). Only on `required` or
    /// `implicit` listeners. Default false.
    #[serde(default)]
    pub auth: ListenerAuth,
}

fn default_listener_name() -> String {
    "mx".into()
}
fn default_listener_tls() -> ListenerTls {
    ListenerTls::Starttls
}

/// TLS protocol floor.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl TlsVersion {
    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// `[tls]`: the server certificate and the protocol floor for inbound TLS.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. Empty: a self-signed ECDSA P-256 certificate for
    /// server.hostname is generated at start.
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub private_key: Option<PathBuf>,
    /// Lowest protocol offered: "1.2" or "1.3". Default "1.2".
    pub min_version: TlsVersion,
    /// `[[tls.certificates]]`: certificates chosen by the client's SNI name; a client
    /// with no SNI, or a name none of them has, gets `certificate` (or the
    /// self-signed default). Default none.
    pub certificates: Vec<CertificateEntry>,
    /// A directory of `NAME.pem` + `NAME.key` pairs, each served for the names
    /// (SANs) of its certificate. Default none.
    pub certificate_dir: Option<PathBuf>,
    /// More names for the self-signed default, besides server.hostname. Default none.
    pub self_signed_names: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            private_key: None,
            min_version: TlsVersion::Tls12,
            certificates: vec![],
            certificate_dir: None,
            self_signed_names: vec![],
        }
    }
}

/// `[relay]`: who may send where. Never an open relay.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Clients that may relay to any domain. Default 127.0.0.0/8 and ::1.
    pub networks: Vec<Cidr>,
    /// Domains we are the MX for: accepted from anyone.
    pub domains: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            domains: vec![],
        }
    }
}

/// `[[route]]`: a fixed next hop for some domains instead of an MX lookup.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub domains: Vec<String>,
    /// `host`, `host:port`, `[ip]` or `[ip]:port`. A bracketed host is used as is
    /// (no MX lookup), as in Postfix's relayhost. Without a port: `[outbound] port`.
    pub next_hop: NextHop,
}

/// `[[inbound_tls]]`: when TLS is mandatory for mail we receive. First match wins.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InboundTlsRule {
    /// Recipient matchers: `user@domain`, `*@domain`, `domain`, a local part, or `*`.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Sender matchers: `user@domain` or `*@domain`.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Recipient domains the rule is limited to (`domain`, `.domain` for its
    /// subdomains). With them a bare local part in `recipients` means that mailbox
    /// at these domains only. Empty: every domain.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Client addresses or CIDR ranges, IPv4 or IPv6.
    #[serde(default)]
    pub clients: Vec<Cidr>,
    /// Whether the matched traffic must use TLS. Default true.
    #[serde(default = "yes")]
    pub require: bool,
    /// Lowest TLS version accepted when this rule matches.
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
}

fn yes() -> bool {
    true
}

/// Outbound TLS levels, with Postfix's names.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum TlsLevel {
    None,
    May,
    Encrypt,
    Verify,
    Dane,
    DaneOnly,
}

impl TlsLevel {
    pub fn name(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::May => "may",
            TlsLevel::Encrypt => "encrypt",
            TlsLevel::Verify => "verify",
            TlsLevel::Dane => "dane",
            TlsLevel::DaneOnly => "dane-only",
        }
    }
    /// Levels at which a delivery without TLS is not acceptable.
    pub fn is_mandatory(self) -> bool {
        matches!(
            self,
            TlsLevel::Encrypt | TlsLevel::Verify | TlsLevel::DaneOnly
        )
    }
}

/// What to do when a mandatory outbound level cannot be met.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum OnTlsFailure {
    /// Retry on the queue schedule: delay DSN, then failure DSN at give_up_after.
    #[default]
    Defer,
    /// Fail the recipient at once with a failure DSN.
    Bounce,
}

impl OnTlsFailure {
    /// The config file's spelling.
    pub fn name(self) -> &'static str {
        match self {
            OnTlsFailure::Defer => "defer",
            OnTlsFailure::Bounce => "bounce",
        }
    }
}

/// `[[outbound_tls]]`: the TLS level for mail we send. First match wins.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTlsRule {
    /// Recipient domains: exact, or `.domain` for every subdomain.
    #[serde(default)]
    pub domains: Vec<String>,
    /// MX host names: exact, or `.domain` for subdomains.
    #[serde(default)]
    pub mx_hosts: Vec<String>,
    /// MX addresses or CIDR ranges (evaluated per MX host tried).
    #[serde(default)]
    pub mx_ips: Vec<Cidr>,
    /// Envelope senders (MAIL FROM): `user@domain` or `*@domain`. Anyone can
    /// write any MAIL FROM, so this can be forged; use `accounts` for a promise.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Authenticated logins (SMTP AUTH) that submitted the message: `user@domain`
    /// or `*@domain`. Cannot be forged: it is the login whose password was checked.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Recipient addresses.
    #[serde(default)]
    pub recipients: Vec<String>,
    pub level: TlsLevel,
    /// Lowest TLS version accepted under a mandatory level. Default "1.2".
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    /// Names the peer certificate may carry under `verify` (default: the MX host name).
    #[serde(default)]
    pub match_names: Vec<String>,
    /// PEM CA bundle for `verify` (default: the system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub on_failure: OnTlsFailure,
    /// PEM certificate chain presented when the next hop asks for a client
    /// certificate (partners that require one). Default none.
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// PEM private key of `client_certificate`.
    #[serde(default)]
    pub client_private_key: Option<PathBuf>,
}

/// `[outbound]`: defaults for delivery.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Level when no `[[outbound_tls]]` rule matches. Default "may".
    pub default_tls: TlsLevel,
    /// Parallel connections per next hop (per shard). Default 20.
    pub max_connections_per_host: usize,
    /// Parallel deliveries per shard. Default 200.
    pub max_deliveries_per_shard: usize,
    /// TCP connect timeout. Default 30s.
    pub connect_timeout: Dur,
    /// How long an idle outbound connection is kept for reuse. Default 5s.
    pub idle_timeout: Dur,
    /// Port used for MX hosts. Default 25.
    pub port: u16,
    /// After a TCP connect to an address fails, deliveries skip that address (and
    /// defer with its error) for this long instead of connecting again. Default 10s;
    /// 0s tries every time. `mxring queue retry` ignores it.
    pub unreachable_hold: Dur,
    /// Apply the MTA-STS policies recipient domains publish (RFC 8461) when no
    /// `[[outbound_tls]]` rule matches and DANE does not apply. Default true.
    pub mta_sts: bool,
    /// PEM CA bundle trusted besides the system roots for MTA-STS: the policy
    /// server's HTTPS certificate and the MX certificates under `enforce`. For
    /// private deployments and tests. Default none.
    pub mta_sts_ca_file: Option<PathBuf>,
    /// Port of the HTTPS policy server. RFC 8461 fixes 443; another port is an
    /// override for tests and lab setups only. Default 443.
    pub mta_sts_port: u16,
    /// Time the next hop has to finish the TLS handshake after STARTTLS. Default 60s.
    pub tls_handshake_timeout: Dur,
    /// How long to wait for the next hop's reply, per command, as KumoMTA names
    /// them; the defaults are RFC 5321 4.5.3.2's. The 220 greeting. Default 5m.
    pub banner_timeout: Dur,
    /// The reply to EHLO (or HELO). Default 5m.
    pub ehlo_timeout: Dur,
    /// The reply to STARTTLS. Default 2m.
    pub starttls_timeout: Dur,
    /// The reply to MAIL FROM. Default 5m.
    pub mail_from_timeout: Dur,
    /// The reply to each RCPT TO. Default 5m.
    pub rcpt_to_timeout: Dur,
    /// The 354 reply to DATA. Default 2m.
    pub data_timeout: Dur,
    /// The reply after the message: to the final dot, or to each BDAT chunk. Default 10m.
    pub data_dot_timeout: Dur,
    /// The reply to RSET. Default 2m.
    pub rset_timeout: Dur,
    /// The reply to QUIT; then the connection is closed anyway. Default 2s.
    pub quit_timeout: Dur,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        let secs = |n| Dur(std::time::Duration::from_secs(n));
        OutboundConfig {
            default_tls: TlsLevel::May,
            max_connections_per_host: 20,
            max_deliveries_per_shard: 200,
            connect_timeout: Dur(std::time::Duration::from_secs(30)),
            idle_timeout: Dur(std::time::Duration::from_secs(5)),
            port: 25,
            unreachable_hold: Dur(std::time::Duration::from_secs(10)),
            mta_sts: true,
            mta_sts_ca_file: None,
            mta_sts_port: 443,
            tls_handshake_timeout: secs(60),
            banner_timeout: secs(300),
            ehlo_timeout: secs(300),
            starttls_timeout: secs(120),
            mail_from_timeout: secs(300),
            rcpt_to_timeout: secs(300),
            data_timeout: secs(120),
            data_dot_timeout: secs(600),
            rset_timeout: secs(120),
            quit_timeout: secs(2),
        }
    }
}

/// `[queue]`: retry schedule and group commit.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Delays between attempts; the last one repeats. Default 5m 10m 20m 40m 1h.
    pub retry: Vec<Dur>,
    /// After this long in the queue, one delay DSN goes to the sender. Default 1h.
    pub delay_warning_after: Dur,
    /// After this long, a failure DSN and the message leaves the queue. Default 24h.
    pub give_up_after: Dur,
    /// New mail is refused with 452 4.3.1 while the spool's file system has less free
    /// space than this (plus the message). Like Postfix's queue_minfree. Default 64MiB.
    pub min_free_space: ByteSize,
    /// Size of each log segment file of a shard's queue; at least 1MiB. A message
    /// larger than a segment gets a file of its own. Restart to change. Default 8MiB.
    pub segment_size: ByteSize,
    /// A full log segment that is less than a quarter full of queued messages has
    /// them copied forward after this long, so its file is reused. Default 60s.
    pub compact_after: Dur,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let m = |n: u64| Dur(std::time::Duration::from_secs(n * 60));
        QueueConfig {
            retry: vec![m(5), m(10), m(20), m(40), m(60)],
            delay_warning_after: m(60),
            give_up_after: m(24 * 60),
            min_free_space: ByteSize(64 << 20),
            segment_size: ByteSize(8 << 20),
            compact_after: Dur(std::time::Duration::from_secs(60)),
        }
    }
}

/// `[dns]`: resolver settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Nameservers (`ip` or `ip:port`). Empty: the system's /etc/resolv.conf.
    pub nameservers: Vec<Nameserver>,
    /// Per-query timeout. Default 5s.
    pub timeout: Dur,
    /// Where DNSSEC status comes from (DANE needs it). Default "off".
    pub dnssec: Dnssec,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: vec![],
            timeout: Dur(std::time::Duration::from_secs(5)),
            dnssec: Dnssec::Off,
        }
    }
}

/// `[dns] dnssec`: how mxring learns whether an answer is DNSSEC-validated.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Dnssec {
    /// No DNSSEC: every answer is insecure, so DANE never applies.
    #[default]
    Off,
    /// Set the DO bit and trust the AD bit of the configured resolver, which must
    /// be a validating resolver on loopback (Postfix's `smtp_dns_support_level =
    /// dnssec`). An answer without AD is insecure.
    TrustAd,
    /// Validate in process. Not built: refused at load with the reason.
    Validate,
}

impl Dnssec {
    pub fn name(self) -> &'static str {
        match self {
            Dnssec::Off => "off",
            Dnssec::TrustAd => "trust-ad",
            Dnssec::Validate => "validate",
        }
    }
}

/// `[admin]`: the loopback HTTP API used by `mxring queue ...`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin API; keep it on loopback. Empty string disables it.
    pub address: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: "127.0.0.1:9725".into(),
        }
    }
}

/// `[log]`: how log lines are written (to standard error).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one human-readable line per event) or `json` (one JSON object per
    /// line, the same fields). `--log-format` overrides it. Default "text".
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
