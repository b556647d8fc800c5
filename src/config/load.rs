//! Reading and validating a config file. Syntax and type errors come from the TOML
//! parser with the offending line; semantic errors are located here the same way.

use std::path::Path;

use super::{Config, Dnssec, TlsLevel};

/// The configuration `mxring` runs with when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/mxring.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: line {line}: `{key}`: {message}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        message: String,
    },
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Parse and validate `text`; `origin` names it in error messages.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.into(),
        message: e.to_string(),
    })?;
    validate(&config, text).map_err(|p| located(origin, text, p))?;
    Ok(config)
}

/// A semantic problem as an error naming its key (`table[i].key`) and its line.
pub(super) fn located(origin: &str, text: &str, problem: Problem) -> ConfigError {
    let (table, index, key, message) = problem;
    ConfigError::Invalid {
        origin: origin.into(),
        line: locate(text, table, index, key),
        key: match index {
            Some(i) => format!("{table}[{i}].{key}"),
            None => format!("{table}.{key}"),
        },
        message,
    }
}

use super::checks::{self, Problem};

fn validate(c: &Config, _text: &str) -> Result<(), Problem> {
    checks::listeners(c)?;
    checks::outbound_rules(c)?;
    if c.server.hostname.trim().is_empty() || c.server.hostname.contains(char::is_whitespace) {
        return Err((
            "server",
            None,
            "hostname",
            "must be a host name without spaces".into(),
        ));
    }
    if c.queue.segment_size.0 < 1 << 20 {
        return Err((
            "queue",
            None,
            "segment_size",
            "must be at least 1MiB".into(),
        ));
    }
    if c.tls_report.interval.0 < std::time::Duration::from_secs(1) {
        return Err(("tls_report", None, "interval", "must be at least 1s".into()));
    }
    if c.outbound.mta_sts_port == 0 {
        return Err((
            "outbound",
            None,
            "mta_sts_port",
            "must be a port number (443 unless testing)".into(),
        ));
    }
    if c.server.max_recipients == 0 {
        return Err((
            "server",
            None,
            "max_recipients",
            "must be at least 1".into(),
        ));
    }
    if let Some(pm) = &c.server.postmaster {
        if crate::proto::address::parse_mailbox(pm, true).is_err() {
            return Err((
                "server",
                None,
                "postmaster",
                "must be a mail address (local@domain)".into(),
            ));
        }
    }
    if c.server.data_total_timeout.is_some_and(|d| d.0.is_zero()) {
        return Err((
            "server",
            None,
            "data_total_timeout",
            "must be above zero".into(),
        ));
    }
    if c.listeners.is_empty() {
        return Err((
            "listener",
            None,
            "address",
            "at least one [[listener]] is needed".into(),
        ));
    }
    for (i, l) in c.listeners.iter().enumerate() {
        if l.proxy_protocol && l.proxy_networks.is_empty() {
            return Err((
                "listener",
                Some(i),
                "proxy_networks",
                "proxy_protocol needs the load balancers' addresses in proxy_networks".into(),
            ));
        }
    }
    if c.tls.certificate.is_some() != c.tls.private_key.is_some() {
        return Err((
            "tls",
            None,
            "private_key",
            "certificate and private_key go together".into(),
        ));
    }
    if c.queue.retry.is_empty() {
        return Err(("queue", None, "retry", "needs at least one delay".into()));
    }
    if c.queue.retry.iter().any(|d| d.0.is_zero()) {
        return Err(("queue", None, "retry", "delays must be above zero".into()));
    }
    if c.queue.give_up_after < c.queue.delay_warning_after {
        return Err((
            "queue",
            None,
            "give_up_after",
            "must not be shorter than delay_warning_after".into(),
        ));
    }
    for ns in &c.dns.nameservers {
        if crate::delivery::parse_nameserver(ns).is_none() {
            return Err((
                "dns",
                None,
                "nameservers",
                format!("`{ns}` is not an ip or ip:port"),
            ));
        }
    }
    if !c.admin.address.is_empty() && c.admin.address.parse::<std::net::SocketAddr>().is_err() {
        return Err((
            "admin",
            None,
            "address",
            format!("`{}` is not ip:port", c.admin.address),
        ));
    }
    for (i, r) in c.routes.iter().enumerate() {
        if let Err(e) = crate::delivery::NextHop::parse(&r.next_hop) {
            return Err(("route", Some(i), "next_hop", e));
        }
        if r.domains.is_empty() {
            return Err((
                "route",
                Some(i),
                "domains",
                "needs at least one domain".into(),
            ));
        }
    }
    for (i, r) in c.inbound_tls.iter().enumerate() {
        for m in r.recipients.iter().chain(&r.senders) {
            if m.trim().is_empty() || m.contains(char::is_whitespace) {
                return Err((
                    "inbound_tls",
                    Some(i),
                    "recipients",
                    format!("bad matcher `{m}`"),
                ));
            }
        }
        for s in &r.senders {
            if s.trim() != "<>" && !s.contains('@') {
                return Err((
                    "inbound_tls",
                    Some(i),
                    "senders",
                    format!("`{s}`: a sender matcher is user@domain, *@domain or <>"),
                ));
            }
        }
    }
    if c.dns.dnssec == Dnssec::Validate {
        return Err((
            "dns",
            None,
            "dnssec",
            "in-process DNSSEC validation is not built (hickory's validator has open \
             false-bogus bugs, and a bogus answer defers mail); run a validating resolver \
             such as unbound on loopback and set dnssec = \"trust-ad\""
                .into(),
        ));
    }
    if c.dns.dnssec == Dnssec::TrustAd {
        for ns in &c.dns.nameservers {
            if crate::delivery::parse_nameserver(ns).is_some_and(|a| !a.ip().is_loopback()) {
                return Err((
                    "dns",
                    None,
                    "nameservers",
                    format!(
                        "`{ns}` is not on loopback: with dnssec = \"trust-ad\" the AD bit is \
                         trusted, so the validating resolver must run on this host"
                    ),
                ));
            }
        }
    }
    let dane_without_dnssec = |level: TlsLevel| {
        matches!(level, TlsLevel::Dane | TlsLevel::DaneOnly) && c.dns.dnssec == Dnssec::Off
    };
    for (i, r) in c.outbound_tls.iter().enumerate() {
        if dane_without_dnssec(r.level) {
            return Err((
                "outbound_tls",
                Some(i),
                "level",
                format!(
                    "`{}` needs DNSSEC: set [dns] dnssec = \"trust-ad\" with a validating \
                     resolver on loopback",
                    r.level.name()
                ),
            ));
        }
    }
    if dane_without_dnssec(c.outbound.default_tls) {
        return Err((
            "outbound",
            None,
            "default_tls",
            format!(
                "`{}` needs DNSSEC: set [dns] dnssec = \"trust-ad\" with a validating \
                 resolver on loopback",
                c.outbound.default_tls.name()
            ),
        ));
    }
    super::identity::validate(c)?;
    Ok(())
}

/// Line (1-based) of `key` inside table `table` (the `index`th one for arrays of
/// tables); falls back to the table header, then to line 1.
fn locate(text: &str, table: &str, index: Option<usize>, key: &str) -> usize {
    let header_single = format!("[{table}]");
    let header_array = format!("[[{table}]]");
    let mut seen = 0usize;
    let mut in_table = false;
    let mut header_line = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_table = false;
            if line.starts_with(&header_array) {
                if index.is_none_or(|i| i == seen) {
                    in_table = true;
                    header_line = Some(n + 1);
                }
                seen += 1;
            } else if line.starts_with(&header_single) {
                in_table = true;
                header_line = Some(n + 1);
            }
            continue;
        }
        if in_table {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return n + 1;
                }
            }
        }
    }
    header_line.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = load_str(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(c.listeners[0].address.port(), 2525);
        assert_eq!(c.admin.address, "127.0.0.1:9725");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[server]\nhostname = \"a.example\"\nshardz = 2\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("shardz"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_value_is_named_with_its_line() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n\n[queue]\nretry = [\"5x\"]\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("5x"), "{err}");
    }

    #[test]
    fn dane_levels_need_dnssec_and_validate_is_refused_with_a_reason() {
        let base = "[[listener]]\naddress = \"127.0.0.1:25\"\n";
        let err = load_str(&format!("{base}[outbound]\ndefault_tls = \"dane\"\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs DNSSEC") && err.contains("trust-ad"),
            "{err}"
        );
        let ok = format!("{base}[dns]\nnameservers = [\"127.0.0.1:53\"]\ndnssec = \"trust-ad\"\n[outbound]\ndefault_tls = \"dane\"\n[[outbound_tls]]\ndomains = [\"x.test\"]\nlevel = \"dane-only\"\n");
        load_str(&ok, "t").unwrap();
        let err = load_str(&format!("{base}[dns]\ndnssec = \"validate\"\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not built") && err.contains("unbound"),
            "{err}"
        );
        let err = load_str(
            &format!("{base}[dns]\nnameservers = [\"192.0.2.53\"]\ndnssec = \"trust-ad\"\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn semantic_error_is_located_in_the_right_array_entry() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[[route]]\ndomains = [\"a\"]\nnext_hop = \"x\"\n[[route]]\ndomains = [\"b\"]\nnext_hop = \"[1.2.3.4]:99999\"\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 8"), "{err}");
        assert!(err.contains("route[1].next_hop"), "{err}");
    }
}
