//! check-tls: connect to a peer the way delivery would and show, line by line with
//! elapsed seconds, what it really offers: banner, EHLO, STARTTLS, protocol and
//! cipher, each certificate, chain and host name verification, the DNSSEC status
//! of the MX and address records and the TLSA records of each MX (with which
//! certificate matched which record), and a verdict on which outbound levels it
//! would satisfy. A domain's MX hosts are tried in order. The transcript always
//! ends with a verdict line. Modelled on CheckTLS transcripts.

mod certs;
mod report;

pub use report::{Dir, HostVerdict, Line, Report, Verdict};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{DnsConfig, TlsLevel};
use crate::dane::DaneState;
use crate::dns::Dns;
use crate::net::{Stream, Transport};
use crate::proto::client::Capabilities;
use crate::proto::reply::{parse_reply, ParsedReply};
use crate::tls::ClientVerification;

pub struct CheckOptions {
    pub target: String,
    pub helo: String,
    pub port: u16,
    pub dns: DnsConfig,
    pub ca_file: Option<PathBuf>,
    /// Also try MAIL FROM / RCPT TO (never DATA).
    pub mail_from: Option<String>,
    pub rcpt_to: Option<String>,
    pub timeout: Duration,
    /// The level the final verdict line is about (the CLI's `--level`).
    pub level: TlsLevel,
    /// Look up the domain's MTA-STS policy (fetched live, never from a server's
    /// cache) and say which MX hosts it allows; None skips it.
    pub mta_sts: Option<crate::mta_sts::StsSettings>,
}

/// One host to try: its name, address, and what DNS said about DANE for it.
struct Target {
    host: String,
    addr: Option<SocketAddr>,
    dane: DaneState,
}

struct Session {
    report: Report,
    start: Instant,
    transport: Option<Transport>,
    pending: Vec<u8>,
    tls: bool,
    timeout: Duration,
    /// The target domain's MTA-STS lookup, when one was made.
    sts: Option<crate::mta_sts::StsView>,
}

impl Session {
    fn note(&mut self, dir: Dir, text: impl Into<String>) {
        self.report.lines.push(Line {
            elapsed: self.start.elapsed().as_secs_f64(),
            dir,
            text: text.into(),
        });
    }

    async fn send(&mut self, cmd: &str) -> Option<ParsedReply> {
        let dir = if self.tls { Dir::SendTls } else { Dir::Send };
        self.note(dir, cmd);
        let t = self.transport.as_mut()?;
        if let Err(e) = t.write(format!("{cmd}\r\n").as_bytes()).await {
            self.note(Dir::Info, format!("Connection lost: {e}"));
            return None;
        }
        self.reply().await
    }

    async fn reply(&mut self) -> Option<ParsedReply> {
        loop {
            match parse_reply(&self.pending) {
                Ok(Some((r, n))) => {
                    self.pending.drain(..n);
                    let dir = if self.tls { Dir::RecvTls } else { Dir::Recv };
                    let text = r.lines.iter().enumerate().map(|(i, l)| {
                        let sep = if i + 1 == r.lines.len() { ' ' } else { '-' };
                        format!("{}{sep}{l}", r.code)
                    });
                    self.note(dir, text.collect::<Vec<_>>().join(" "));
                    return Some(r);
                }
                Ok(None) => {}
                Err(e) => {
                    self.note(Dir::Info, format!("Bad reply from server: {e}"));
                    return None;
                }
            }
            let t = self.transport.as_mut()?;
            match tokio::time::timeout(self.timeout, t.read(&mut self.pending)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) => {
                    self.note(Dir::Info, "Connection closed by server");
                    return None;
                }
                Ok(Err(e)) => {
                    self.note(Dir::Info, format!("Connection lost: {e}"));
                    return None;
                }
                Err(_) => {
                    self.note(
                        Dir::Info,
                        format!("No reply within {}s", self.timeout.as_secs()),
                    );
                    return None;
                }
            }
        }
    }
}

fn secure_word(dns: &Dns, secure: bool) -> &'static str {
    match (dns.dnssec(), secure) {
        (false, _) => "DNSSEC not checked: [dns] dnssec = \"off\"",
        (true, true) => "DNSSEC secure",
        (true, false) => "DNSSEC insecure",
    }
}

/// Where to connect: `host:port` or an address (one target), or a domain (every MX
/// in order, with the DNSSEC status and TLSA records of each).
async fn resolve(o: &CheckOptions, s: &mut Session) -> Vec<Target> {
    let literal = |addr: SocketAddr| Target {
        host: addr.ip().to_string(),
        addr: Some(addr),
        dane: DaneState::NotApplicable("the target is an address".into()),
    };
    if let Ok(sa) = o.target.parse::<SocketAddr>() {
        return vec![literal(sa)];
    }
    if let Ok(ip) = o.target.parse::<IpAddr>() {
        return vec![literal(SocketAddr::new(ip, o.port))];
    }
    let dns = match Dns::new(&o.dns) {
        Ok(d) => d,
        Err(e) => {
            s.note(Dir::Info, format!("No resolver: {e}"));
            return vec![];
        }
    };
    let (hosts, mx_secure, port) = match o.target.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            // A host named by the operator: no MX is involved.
            (
                vec![h.to_ascii_lowercase()],
                true,
                p.parse().unwrap_or(o.port),
            )
        }
        _ => match dns.mx(&o.target).await {
            Ok(answer) => {
                let list: Vec<String> = answer
                    .hosts
                    .iter()
                    .map(|h| format!("{} ({})", h.name, h.preference))
                    .collect();
                s.note(
                    Dir::Info,
                    format!(
                        "MX lookup of {} ({}): {}",
                        o.target,
                        secure_word(&dns, answer.secure),
                        list.join(", ")
                    ),
                );
                let names = answer.hosts.into_iter().map(|h| h.name).collect();
                if let Some(settings) = &o.mta_sts {
                    note_sts(s, &o.dns, settings, &o.target).await;
                }
                (names, answer.secure, o.port)
            }
            Err(e) => {
                s.note(Dir::Info, format!("MX lookup of {} failed: {e}", o.target));
                return vec![];
            }
        },
    };
    let mut targets = Vec::new();
    for host in hosts {
        let addrs = match dns.lookup_addresses(&host).await {
            Ok(a) => a,
            Err(e) => {
                s.note(Dir::Info, format!("Address lookup of {host} failed: {e}"));
                targets.push(Target {
                    host,
                    addr: None,
                    dane: DaneState::NotApplicable("no address".into()),
                });
                continue;
            }
        };
        let ips: Vec<String> = addrs.ips.iter().map(|i| i.to_string()).collect();
        let via = addrs
            .cname_target
            .as_ref()
            .map(|t| format!(" via CNAME {t}"))
            .unwrap_or_default();
        s.note(
            Dir::Info,
            format!(
                "Address lookup of {host}{via} ({}): {}",
                secure_word(&dns, addrs.secure),
                ips.join(", ")
            ),
        );
        let dane = if dns.dnssec() {
            let state = dns.dane_state(mx_secure, &host, &addrs, port).await;
            // Every record at the base, usable or not (from the per-run cache).
            let all = match &state {
                DaneState::Usable(set) => dns.tlsa(&set.base, port).await.ok().map(|x| x.0),
                DaneState::Unusable { records, .. } => Some(records.clone()),
                _ => None,
            };
            note_tlsa(s, &state, all.unwrap_or_default(), port);
            state
        } else {
            DaneState::NotApplicable("[dns] dnssec is off".into())
        };
        targets.push(Target {
            addr: Some(SocketAddr::new(addrs.ips[0], port)),
            host,
            dane,
        });
    }
    targets
}

/// The MTA-STS TXT record and policy of `domain`, as transcript lines.
async fn note_sts(
    s: &mut Session,
    dns: &DnsConfig,
    settings: &crate::mta_sts::StsSettings,
    domain: &str,
) {
    let sts = match crate::mta_sts::MtaSts::with(dns, settings, None, false) {
        Ok(m) => std::rc::Rc::new(m),
        Err(e) => {
            s.note(Dir::Info, format!("MTA-STS not checked: {e}"));
            return;
        }
    };
    let view = sts.lookup(domain).await;
    for line in view.describe(crate::queue::clock::now_ms()) {
        s.note(Dir::Info, format!("MTA-STS {line}"));
    }
    s.sts = Some(view);
}

/// What the MTA-STS policy says of `host` after its check, when there is one.
fn note_sts_host(s: &mut Session, host: &str, verdict: &Verdict) {
    use crate::mta_sts::HostPlan;
    let Some(view) = &s.sts else { return };
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
    s.note(Dir::Info, text);
}

fn note_tlsa(s: &mut Session, state: &DaneState, records: Vec<crate::dane::Tlsa>, port: u16) {
    let base = match state {
        DaneState::Usable(set) => set.base.clone(),
        DaneState::Unusable { base, .. } => base.clone(),
        _ => {
            s.note(Dir::Info, state.describe());
            return;
        }
    };
    s.note(
        Dir::Info,
        format!("TLSA records at _{port}._tcp.{base} (DNSSEC secure):"),
    );
    for r in &records {
        let usable = match r.unusable_reason() {
            None => "usable".to_string(),
            Some(why) => format!("unusable: {why}"),
        };
        s.note(Dir::Info, format!("  {r} ({}, {usable})", r.usage_name()));
    }
    s.note(Dir::Info, state.describe());
}

pub async fn check(o: &CheckOptions) -> Report {
    let mut s = Session {
        report: Report::default(),
        start: Instant::now(),
        transport: None,
        pending: Vec::new(),
        tls: false,
        timeout: o.timeout,
        sts: None,
    };
    let targets = resolve(o, &mut s).await;
    let mut passed_by = None;
    for t in &targets {
        let verdict = check_host(o, &mut s, t).await;
        let levels = verdict.levels();
        let satisfied = if levels.is_empty() {
            "no level (no SMTP session)".to_string()
        } else {
            levels.join(", ")
        };
        let dane_asked = o.dns.dnssec != crate::config::Dnssec::Off
            || matches!(o.level, TlsLevel::Dane | TlsLevel::DaneOnly);
        if let (true, Some(DaneState::NotApplicable(why))) = (dane_asked, &verdict.dane_state) {
            s.note(
                Dir::Info,
                format!("Level dane falls back to may here: DANE does not apply ({why})"),
            );
        }
        note_sts_host(&mut s, &t.host, &verdict);
        s.note(
            Dir::Info,
            format!("Verdict: {} satisfies {satisfied}", t.host),
        );
        let passes = verdict.satisfies(o.level);
        s.report.hosts.push(HostVerdict {
            host: t.host.clone(),
            address: t.addr,
            verdict: verdict.clone(),
        });
        if s.report.address.is_none() || (passes && passed_by.is_none()) {
            s.report.host = t.host.clone();
            s.report.address = t.addr;
            s.report.verdict = verdict;
        }
        if passes && passed_by.is_none() {
            passed_by = Some(t.host.clone());
        }
    }
    s.report.passed = passed_by.is_some();
    let text = match (&passed_by, targets.len()) {
        (Some(h), _) => format!("Verdict: level {} is met (by {h})", o.level.name()),
        (None, 0) => format!(
            "Verdict: level {} is not met: no host to try",
            o.level.name()
        ),
        (None, 1) => format!("Verdict: level {} is not met", o.level.name()),
        (None, n) => format!(
            "Verdict: level {} is not met by any of the {n} MX hosts",
            o.level.name()
        ),
    };
    s.note(Dir::Info, text);
    s.report
}

/// One host: connect, greet, STARTTLS, certificates, DANE, MAIL/RCPT, QUIT.
async fn check_host(o: &CheckOptions, s: &mut Session, t: &Target) -> Verdict {
    let mut v = Verdict::default();
    s.tls = false;
    s.pending.clear();
    let Some(addr) = t.addr else {
        return v;
    };
    s.note(
        Dir::Info,
        format!("Trying TLS on {}[{}]:{}", t.host, addr.ip(), addr.port()),
    );
    let stream = match tokio::time::timeout(o.timeout, Stream::connect(addr)).await {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => {
            s.note(Dir::Info, format!("Cannot connect: {e}"));
            return v;
        }
        Err(_) => {
            s.note(Dir::Info, "Cannot connect: timed out");
            return v;
        }
    };
    s.transport = Some(Transport::new(stream));
    s.note(Dir::Info, "Connected to server");
    match s.reply().await {
        Some(r) if r.code == 220 => s.note(Dir::Info, "We are allowed to connect"),
        _ => {
            s.note(Dir::Info, "Server refused the connection");
            s.transport = None;
            return v;
        }
    }
    let Some(ehlo) = s.send(&format!("EHLO {}", o.helo)).await else {
        s.transport = None;
        return v;
    };
    if ehlo.code != 250 {
        s.note(Dir::Info, "EHLO refused");
        s.transport = None;
        return v;
    }
    s.note(Dir::Info, "We can use this server");
    v.may = true;
    v.dane_state = Some(t.dane.clone());
    let caps = Capabilities::parse(&ehlo);
    if caps.starttls {
        s.note(Dir::Info, "TLS is an option on this server");
        starttls(o, s, &t.host, &t.dane, &mut v).await;
    } else {
        s.note(Dir::Info, "TLS is not an option on this server");
    }
    if s.transport.is_none() {
        return v;
    }
    if let Some(from) = &o.mail_from {
        if let Some(r) = s.send(&format!("MAIL FROM:<{from}>")).await {
            s.note(
                Dir::Info,
                if r.is_positive() {
                    "Sender is OK"
                } else {
                    "Sender refused"
                },
            );
            if let (true, Some(rcpt)) = (r.is_positive(), &o.rcpt_to) {
                if let Some(r) = s.send(&format!("RCPT TO:<{rcpt}>")).await {
                    s.note(
                        Dir::Info,
                        if r.is_positive() {
                            "Recipient OK"
                        } else {
                            "Recipient refused"
                        },
                    );
                }
            }
        }
    }
    let _ = s.send("QUIT").await;
    if let Some(t) = s.transport.take() {
        t.close().await;
    }
    v
}

async fn starttls(
    o: &CheckOptions,
    s: &mut Session,
    host: &str,
    dane: &DaneState,
    v: &mut Verdict,
) {
    let Some(r) = s.send("STARTTLS").await else {
        return;
    };
    if r.code != 220 {
        s.note(Dir::Info, "STARTTLS command refused");
        return;
    }
    s.note(Dir::Info, "STARTTLS command works on this server");
    let config = match crate::tls::client_config(
        &ClientVerification::None,
        crate::config::TlsVersion::Tls12,
    ) {
        Ok(c) => c,
        Err(e) => {
            s.note(Dir::Info, format!("TLS setup failed: {e}"));
            return;
        }
    };
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => match rustls::pki_types::ServerName::try_from(host.to_string()) {
            Ok(n) => n,
            Err(_) => {
                rustls::pki_types::ServerName::try_from("invalid.invalid").expect("static name")
            }
        },
    };
    let Ok(conn) = rustls::ClientConnection::new(config, name) else {
        return;
    };
    let t = s.transport.as_mut().expect("connected");
    s.pending.clear();
    if let Err(e) = t.handshake(conn.into(), o.timeout).await {
        s.note(
            Dir::Info,
            format!("TLS handshake failed: {}", crate::tls::words::io_error(&e)),
        );
        s.note(
            Dir::Info,
            "At level may, delivery would retry this host without TLS",
        );
        s.transport = None;
        return;
    }
    let (chain, facts) = {
        let tls = s
            .transport
            .as_ref()
            .and_then(|t| t.tls())
            .expect("handshake done");
        let chain: Vec<Vec<u8>> = tls
            .peer_certificates()
            .unwrap_or(&[])
            .iter()
            .map(|c| c.to_vec())
            .collect();
        (chain, crate::tls::facts(tls))
    };
    s.tls = true;
    if let Some((_, f)) = &facts {
        s.note(Dir::Info, format!("Protocol: {}", f.version));
        s.note(Dir::Info, format!("Cipher in use: {}", f.cipher));
        s.report.tls = Some(f.clone());
    }
    s.note(Dir::Info, "Connection converted to TLS");
    for (i, der) in chain.iter().enumerate() {
        s.note(
            Dir::Info,
            format!(
                "Certificate {} of {} in chain: {}",
                i + 1,
                chain.len(),
                certs::describe(der)
            ),
        );
    }
    let check = certs::verify(&chain, host, o.ca_file.as_deref());
    match &check.chain {
        Ok(()) => s.note(
            Dir::Info,
            "Cert VALIDATED: the chain ends at a trusted root",
        ),
        Err(e) => {
            s.note(Dir::Info, format!("Cert NOT VALIDATED: {e}"));
            s.note(
                Dir::Info,
                "So email is encrypted but the domain is not verified",
            );
        }
    }
    match &check.host {
        Ok(()) => s.note(Dir::Info, format!("Cert Hostname VERIFIED ({host})")),
        Err(names) => {
            s.note(
                Dir::Info,
                format!("Cert Hostname DOES NOT VERIFY ({host} != {names})"),
            );
            s.note(
                Dir::Info,
                "So email is encrypted but the host is not verified",
            );
        }
    }
    v.dane_matched = dane_check(s, dane, &chain);
    let Some(r) = s.send(&format!("EHLO {}", o.helo)).await else {
        return;
    };
    if r.code == 250 {
        s.note(Dir::Info, "TLS successfully started on this server");
        v.encrypt = true;
        v.verify = check.chain.is_ok() && check.host.is_ok();
    }
}

/// Which certificate matches which TLSA record, and the RFC 7672 verdict.
fn dane_check(s: &mut Session, dane: &DaneState, chain: &[Vec<u8>]) -> bool {
    let DaneState::Usable(set) = dane else {
        return false;
    };
    for r in &set.records {
        let hits: Vec<String> = chain
            .iter()
            .enumerate()
            .filter(|(_, c)| crate::dane::matches(r, c))
            .map(|(i, _)| format!("certificate {}", i + 1))
            .collect();
        let text = if hits.is_empty() {
            format!(
                "TLSA {r} ({}) matches no certificate in the chain",
                r.usage_name()
            )
        } else {
            format!("TLSA {r} ({}) matches {}", r.usage_name(), hits.join(", "))
        };
        s.note(Dir::Info, text);
    }
    let ders: Vec<rustls::pki_types::CertificateDer> = chain
        .iter()
        .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
        .collect();
    match crate::tls::verify_dane_chain(set, &ders, rustls::pki_types::UnixTime::now()) {
        Ok(m) => {
            s.note(Dir::Info, format!("DANE VERIFIED: {m}"));
            true
        }
        Err(e) => {
            s.note(Dir::Info, format!("DANE NOT VERIFIED: {e}"));
            s.note(
                Dir::Info,
                "So delivery at level dane or dane-only would be deferred (4.7.5)",
            );
            false
        }
    }
}
