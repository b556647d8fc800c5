//! MX resolution with hickory-resolver, one resolver per shard. The answer is
//! classified the way delivery needs it: hosts to try, or a permanent or
//! temporary failure with its enhanced status code.

use std::net::IpAddr;

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioAsyncResolver;
use rand::seq::SliceRandom;

use crate::config::DnsConfig;

/// A host to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    /// The domain cannot receive mail: NXDOMAIN (5.1.2) or a null MX (5.1.10).
    Permanent { status: &'static str, text: String },
    /// SERVFAIL, a timeout, no answer: try again later (4.4.3).
    Temporary { text: String },
}

pub struct Dns {
    resolver: TokioAsyncResolver,
}

impl Dns {
    pub fn new(cfg: &DnsConfig) -> Result<Dns, ResolveError> {
        let resolver = if cfg.nameservers.is_empty() {
            let (conf, mut opts) = hickory_resolver::system_conf::read_system_conf()?;
            opts.timeout = cfg.timeout.0;
            opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
            TokioAsyncResolver::tokio(conf, opts)
        } else {
            let mut conf = ResolverConfig::new();
            for ns in &cfg.nameservers {
                if let Some(addr) = super::parse_nameserver(ns) {
                    conf.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                    conf.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                }
            }
            let mut opts = ResolverOpts::default();
            opts.timeout = cfg.timeout.0;
            opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
            opts.attempts = 2;
            opts.use_hosts_file = false;
            TokioAsyncResolver::tokio(conf, opts)
        };
        Ok(Dns { resolver })
    }

    /// MX hosts of `domain` by preference, random among equals (RFC 5321 5.1);
    /// the domain itself when it has no MX (implicit MX).
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<MxHost>, DnsFailure> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(answer) => {
                let mut hosts: Vec<MxHost> = answer
                    .iter()
                    .map(|mx| MxHost {
                        name: mx.exchange().to_utf8().trim_end_matches('.').to_ascii_lowercase(),
                        preference: mx.preference(),
                    })
                    .collect();
                if hosts.len() == 1 && hosts[0].name.is_empty() {
                    return Err(DnsFailure::Permanent {
                        status: "5.1.10",
                        text: format!("domain {domain} does not accept mail (null MX)"),
                    });
                }
                hosts.retain(|h| !h.name.is_empty());
                if hosts.is_empty() {
                    return self.implicit_mx(domain).await;
                }
                hosts.shuffle(&mut rand::thread_rng());
                hosts.sort_by_key(|h| h.preference);
                Ok(hosts)
            }
            Err(e) => match classify(&e) {
                Lookup::NoSuchDomain => Err(DnsFailure::Permanent {
                    status: "5.1.2",
                    text: format!("Host or domain name not found. Name service error for name={domain} type=MX: Host not found"),
                }),
                Lookup::NoRecords => self.implicit_mx(domain).await,
                Lookup::Failed(text) => Err(DnsFailure::Temporary { text: format!("MX lookup of {domain} failed: {text}") }),
            },
        }
    }

    async fn implicit_mx(&self, domain: &str) -> Result<Vec<MxHost>, DnsFailure> {
        Ok(vec![MxHost {
            name: domain.to_ascii_lowercase(),
            preference: 0,
        }])
    }

    /// Addresses of a host, IPv6 and IPv4 as the resolver orders them.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => {
                let v: Vec<IpAddr> = ips.iter().collect();
                if v.is_empty() {
                    Err(DnsFailure::Temporary { text: format!("no address for {host}") })
                } else {
                    Ok(v)
                }
            }
            Err(e) => match classify(&e) {
                Lookup::NoSuchDomain => Err(DnsFailure::Permanent {
                    status: "5.1.2",
                    text: format!("Host or domain name not found. Name service error for name={host} type=A: Host not found"),
                }),
                Lookup::NoRecords => Err(DnsFailure::Permanent {
                    status: "5.1.2",
                    text: format!("Host or domain name not found. Name service error for name={host} type=AAAA: No address"),
                }),
                Lookup::Failed(text) => Err(DnsFailure::Temporary { text: format!("address lookup of {host} failed: {text}") }),
            },
        }
    }
}

enum Lookup {
    NoSuchDomain,
    NoRecords,
    Failed(String),
}

fn classify(e: &ResolveError) -> Lookup {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain,
            ..
        } => Lookup::NoSuchDomain,
        ResolveErrorKind::NoRecordsFound {
            response_code: ResponseCode::NoError,
            ..
        } => Lookup::NoRecords,
        ResolveErrorKind::NoRecordsFound { response_code, .. } => {
            Lookup::Failed(format!("server answered {response_code}"))
        }
        _ => Lookup::Failed(e.to_string()),
    }
}
