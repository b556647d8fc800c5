//! check-tls: connect to a peer the way delivery would and show, line by line with
//! elapsed seconds, what it really offers: banner, EHLO, STARTTLS, protocol and
//! cipher, each certificate, chain and host name verification, and a verdict on
//! which outbound levels it would satisfy. Modelled on CheckTLS transcripts.

mod certs;
mod report;

pub use report::{Dir, Line, Report, Verdict};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::DnsConfig;
use crate::delivery::Dns;
use crate::proto::client::Capabilities;
use crate::proto::reply::{parse_reply, ParsedReply};
use crate::shard::transport::Transport;
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
}

struct Session {
    report: Report,
    start: Instant,
    transport: Option<Transport>,
    pending: Vec<u8>,
    tls: bool,
    timeout: Duration,
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

/// Where to connect: `host:port`, an address, or a domain (MX lookup, first MX).
async fn resolve(o: &CheckOptions, s: &mut Session) -> Option<(String, SocketAddr)> {
    if let Ok(sa) = o.target.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa));
    }
    if let Ok(ip) = o.target.parse::<IpAddr>() {
        return Some((ip.to_string(), SocketAddr::new(ip, o.port)));
    }
    let dns = match Dns::new(&o.dns) {
        Ok(d) => d,
        Err(e) => {
            s.note(Dir::Info, format!("No resolver: {e}"));
            return None;
        }
    };
    let (host, port) = match o.target.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(o.port)),
        _ => {
            let hosts = match dns.mx_hosts(&o.target).await {
                Ok(h) => h,
                Err(e) => {
                    s.note(
                        Dir::Info,
                        format!("MX lookup of {} failed: {e:?}", o.target),
                    );
                    return None;
                }
            };
            let list: Vec<String> = hosts
                .iter()
                .map(|h| format!("{} ({})", h.name, h.preference))
                .collect();
            s.note(
                Dir::Info,
                format!("MX lookup of {}: {}", o.target, list.join(", ")),
            );
            (hosts[0].name.clone(), o.port)
        }
    };
    match dns.addresses(&host).await {
        Ok(ips) => Some((host, SocketAddr::new(ips[0], port))),
        Err(e) => {
            s.note(Dir::Info, format!("Address lookup of {host} failed: {e:?}"));
            None
        }
    }
}

pub async fn check(o: &CheckOptions) -> Report {
    let mut s = Session {
        report: Report::default(),
        start: Instant::now(),
        transport: None,
        pending: Vec::new(),
        tls: false,
        timeout: o.timeout,
    };
    let Some((host, addr)) = resolve(o, &mut s).await else {
        return s.report;
    };
    s.report.host = host.clone();
    s.report.address = Some(addr);
    s.note(
        Dir::Info,
        format!("Trying TLS on {host}[{}]:{}", addr.ip(), addr.port()),
    );
    let stream =
        match tokio::time::timeout(o.timeout, tokio_uring::net::TcpStream::connect(addr)).await {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => {
                s.note(Dir::Info, format!("Cannot connect: {e}"));
                return s.report;
            }
            Err(_) => {
                s.note(Dir::Info, "Cannot connect: timed out");
                return s.report;
            }
        };
    s.transport = Some(Transport::new(stream));
    s.note(Dir::Info, "Connected to server");
    match s.reply().await {
        Some(r) if r.code == 220 => s.note(Dir::Info, "We are allowed to connect"),
        _ => {
            s.note(Dir::Info, "Server refused the connection");
            return s.report;
        }
    }
    let Some(ehlo) = s.send(&format!("EHLO {}", o.helo)).await else {
        return s.report;
    };
    if ehlo.code != 250 {
        s.note(Dir::Info, "EHLO refused");
        return s.report;
    }
    s.note(Dir::Info, "We can use this server");
    s.report.verdict.may = true;
    let caps = Capabilities::parse(&ehlo);
    if caps.starttls {
        s.note(Dir::Info, "TLS is an option on this server");
        starttls(o, &mut s, &host).await;
    } else {
        s.note(Dir::Info, "TLS is not an option on this server");
    }
    if s.transport.is_none() {
        return s.report;
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
    let v = &s.report.verdict;
    let mut levels = vec!["none"];
    if v.may {
        levels.push("may");
    }
    if v.encrypt {
        levels.push("encrypt");
    }
    if v.verify {
        levels.push("verify");
    }
    let text = format!("Verdict: {host} satisfies {}", levels.join(", "));
    s.note(Dir::Info, text);
    s.report
}

async fn starttls(o: &CheckOptions, s: &mut Session, host: &str) {
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
        s.note(Dir::Info, format!("TLS handshake failed: {e}"));
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
    let Some(r) = s.send(&format!("EHLO {}", o.helo)).await else {
        return;
    };
    if r.code == 250 {
        s.note(Dir::Info, "TLS successfully started on this server");
        s.report.verdict.encrypt = true;
        s.report.verdict.verify = check.chain.is_ok() && check.host.is_ok();
    }
}
