//! The semantic checks `load` runs after the file has parsed: each names the
//! rule it enforces and returns the key to blame. Checks across entries (shared
//! sockets, names used twice) are in `checks`, the identity rules in `identity`.

use std::time::Duration;

use super::checks::{self, Problem};
use super::{Config, Dnssec, TlsLevel};

pub(super) fn validate(c: &Config) -> Result<(), Problem> {
    checks::listeners(c)?;
    checks::outbound_rules(c)?;
    server_identity(c)?;
    server_limits(c)?;
    timeouts_above_zero(c)?;
    listeners_present_and_proxied(c)?;
    tls_pair(c)?;
    queue_schedule(c)?;
    ports_and_intervals(c)?;
    admin_address(c)?;
    routes_have_domains(c)?;
    inbound_tls_matchers(c)?;
    dnssec_setup(c)?;
    dane_needs_dnssec(c)?;
    super::identity::validate(c)?;
    Ok(())
}

fn problem(table: &'static str, key: &'static str, message: impl Into<String>) -> Problem {
    (table, None, key, message.into())
}

/// The name we give in banners and DSNs, and the address `<postmaster>` means.
fn server_identity(c: &Config) -> Result<(), Problem> {
    let host = &c.server.hostname;
    if host.trim().is_empty() || host.contains(char::is_whitespace) {
        return Err(problem(
            "server",
            "hostname",
            "must be a host name without spaces",
        ));
    }
    if let Some(pm) = &c.server.postmaster {
        if super::syntax::split_mailbox(pm, true).is_none() {
            return Err(problem(
                "server",
                "postmaster",
                "must be a mail address (local@domain)",
            ));
        }
    }
    Ok(())
}

fn server_limits(c: &Config) -> Result<(), Problem> {
    if c.server.max_recipients == 0 {
        return Err(problem("server", "max_recipients", "must be at least 1"));
    }
    if c.server.data_total_timeout.is_some_and(|d| d.0.is_zero()) {
        return Err(problem(
            "server",
            "data_total_timeout",
            "must be above zero",
        ));
    }
    Ok(())
}

/// A zero timeout would fail every handshake and every command at once.
fn timeouts_above_zero(c: &Config) -> Result<(), Problem> {
    let (s, o) = (&c.server, &c.outbound);
    let keys = [
        ("server", "tls_handshake_timeout", s.tls_handshake_timeout),
        ("server", "proxy_header_timeout", s.proxy_header_timeout),
        ("outbound", "connect_timeout", o.connect_timeout),
        ("outbound", "tls_handshake_timeout", o.tls_handshake_timeout),
        ("outbound", "banner_timeout", o.banner_timeout),
        ("outbound", "ehlo_timeout", o.ehlo_timeout),
        ("outbound", "starttls_timeout", o.starttls_timeout),
        ("outbound", "mail_from_timeout", o.mail_from_timeout),
        ("outbound", "rcpt_to_timeout", o.rcpt_to_timeout),
        ("outbound", "data_timeout", o.data_timeout),
        ("outbound", "data_dot_timeout", o.data_dot_timeout),
        ("outbound", "rset_timeout", o.rset_timeout),
        ("outbound", "quit_timeout", o.quit_timeout),
    ];
    match keys.into_iter().find(|(_, _, d)| d.0.is_zero()) {
        Some((table, key, _)) => Err(problem(table, key, "must be above zero")),
        None => Ok(()),
    }
}

fn listeners_present_and_proxied(c: &Config) -> Result<(), Problem> {
    if c.listeners.is_empty() {
        return Err(problem(
            "listener",
            "address",
            "at least one [[listener]] is needed",
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
    Ok(())
}

fn tls_pair(c: &Config) -> Result<(), Problem> {
    if c.tls.certificate.is_some() != c.tls.private_key.is_some() {
        return Err(problem(
            "tls",
            "private_key",
            "certificate and private_key go together",
        ));
    }
    Ok(())
}

/// Retries that can run, a warning before the give-up, segments that hold a frame.
fn queue_schedule(c: &Config) -> Result<(), Problem> {
    let q = &c.queue;
    if q.segment_size.0 < 1 << 20 {
        return Err(problem("queue", "segment_size", "must be at least 1MiB"));
    }
    if q.retry.is_empty() {
        return Err(problem("queue", "retry", "needs at least one delay"));
    }
    if q.retry.iter().any(|d| d.0.is_zero()) {
        return Err(problem("queue", "retry", "delays must be above zero"));
    }
    if q.give_up_after < q.delay_warning_after {
        return Err(problem(
            "queue",
            "give_up_after",
            "must not be shorter than delay_warning_after",
        ));
    }
    Ok(())
}

fn ports_and_intervals(c: &Config) -> Result<(), Problem> {
    if c.tls_report.interval.0 < Duration::from_secs(1) {
        return Err(problem("tls_report", "interval", "must be at least 1s"));
    }
    if c.outbound.mta_sts_port == 0 {
        return Err(problem(
            "outbound",
            "mta_sts_port",
            "must be a port number (443 unless testing)",
        ));
    }
    Ok(())
}

fn admin_address(c: &Config) -> Result<(), Problem> {
    let a = &c.admin.address;
    if !a.is_empty() && a.parse::<std::net::SocketAddr>().is_err() {
        return Err(problem("admin", "address", format!("`{a}` is not ip:port")));
    }
    Ok(())
}

fn routes_have_domains(c: &Config) -> Result<(), Problem> {
    match c.routes.iter().position(|r| r.domains.is_empty()) {
        Some(i) => Err((
            "route",
            Some(i),
            "domains",
            "needs at least one domain".into(),
        )),
        None => Ok(()),
    }
}

fn inbound_tls_matchers(c: &Config) -> Result<(), Problem> {
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
    Ok(())
}

/// In-process validation is not built, and a trusted AD bit must come from this host.
fn dnssec_setup(c: &Config) -> Result<(), Problem> {
    match c.dns.dnssec {
        Dnssec::Validate => Err(problem(
            "dns",
            "dnssec",
            "in-process DNSSEC validation is not built (hickory's validator has open \
             false-bogus bugs, and a bogus answer defers mail); run a validating resolver \
             such as unbound on loopback and set dnssec = \"trust-ad\"",
        )),
        Dnssec::TrustAd => match c.dns.nameservers.iter().find(|ns| !ns.0.ip().is_loopback()) {
            Some(ns) => Err(problem(
                "dns",
                "nameservers",
                format!(
                    "`{ns}` is not on loopback: with dnssec = \"trust-ad\" the AD bit is \
                     trusted, so the validating resolver must run on this host"
                ),
            )),
            None => Ok(()),
        },
        Dnssec::Off => Ok(()),
    }
}

fn dane_needs_dnssec(c: &Config) -> Result<(), Problem> {
    let refused = |level: TlsLevel| {
        (matches!(level, TlsLevel::Dane | TlsLevel::DaneOnly) && c.dns.dnssec == Dnssec::Off).then(
            || {
                format!(
                    "`{}` needs DNSSEC: set [dns] dnssec = \"trust-ad\" with a validating \
                     resolver on loopback",
                    level.name()
                )
            },
        )
    };
    for (i, r) in c.outbound_tls.iter().enumerate() {
        if let Some(why) = refused(r.level) {
            return Err(("outbound_tls", Some(i), "level", why));
        }
    }
    match refused(c.outbound.default_tls) {
        Some(why) => Err(problem("outbound", "default_tls", why)),
        None => Ok(()),
    }
}
