//! MX, address and TLSA resolution, one resolver per shard. The answer is
//! classified the way delivery needs it: hosts to try, or a permanent or
//! temporary failure with its enhanced status code. With `[dns] dnssec = "off"`
//! hickory-resolver does the lookups and every answer is insecure; with
//! "trust-ad" the DNSSEC-aware stub (`stub.rs`) does them and each answer carries
//! the AD status of the validating resolver, which DANE needs (RFC 7672 2.2).

mod dane;
mod stub;
mod txt;

use std::net::IpAddr;

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioAsyncResolver;
use rand::seq::SliceRandom;

use crate::config::{DnsConfig, Dnssec};
use crate::proto::Enhanced;
use hickory_resolver::proto::rr::{RData, RecordType};
use stub::Stub;

/// A host to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
}

/// An MX RRset and whether it validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxAnswer {
    pub hosts: Vec<MxHost>,
    /// DNSSEC-validated (the AD bit); always false with `dnssec = "off"`.
    pub secure: bool,
}

/// The addresses of a host and whether they validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub ips: Vec<IpAddr>,
    pub secure: bool,
    /// Where a CNAME chain led, when it did.
    pub cname_target: Option<String>,
}

/// RFC 3463 5.1.2: bad destination system address.
const NO_SUCH_DOMAIN: Enhanced = Enhanced::new(5, 1, 2);
/// RFC 7505 4.1: the domain says it accepts no mail (null MX).
const NULL_MX: Enhanced = Enhanced::new(5, 1, 10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    /// The domain cannot receive mail: NXDOMAIN (5.1.2) or a null MX (5.1.10).
    Permanent { status: Enhanced, text: String },
    /// SERVFAIL, a timeout, no answer: try again later (4.4.3).
    Temporary { text: String },
}

impl DnsFailure {
    pub fn text(&self) -> &str {
        match self {
            DnsFailure::Permanent { text, .. } | DnsFailure::Temporary { text } => text,
        }
    }
}

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsFailure::Permanent { status, text } => write!(f, "{text} ({status}, permanent)"),
            DnsFailure::Temporary { text } => write!(f, "{text} (temporary)"),
        }
    }
}

pub struct Dns {
    pub(super) resolver: TokioAsyncResolver,
    /// Present with `dnssec = "trust-ad"`: every lookup goes through it.
    pub(super) stub: Option<Stub>,
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
                conf.add_name_server(NameServerConfig::new(ns.0, Protocol::Udp));
                conf.add_name_server(NameServerConfig::new(ns.0, Protocol::Tcp));
            }
            let mut opts = ResolverOpts::default();
            opts.timeout = cfg.timeout.0;
            opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
            opts.attempts = 2;
            opts.use_hosts_file = false;
            TokioAsyncResolver::tokio(conf, opts)
        };
        let stub = match cfg.dnssec {
            Dnssec::Off | Dnssec::Validate => None,
            Dnssec::TrustAd => Some(Stub::new(trusted_servers(cfg)?, cfg.timeout.0)),
        };
        Ok(Dns { resolver, stub })
    }

    /// Whether answers carry a DNSSEC status (`dnssec = "trust-ad"`).
    pub fn dnssec(&self) -> bool {
        self.stub.is_some()
    }

    /// MX hosts of `domain` by preference, random among equals (RFC 5321 5.1);
    /// the domain itself when it has no MX (implicit MX).
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<MxHost>, DnsFailure> {
        self.mx(domain).await.map(|a| a.hosts)
    }

    /// As `mx_hosts`, with the DNSSEC status of the MX RRset (or of its denial,
    /// for an implicit MX).
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsFailure> {
        match &self.stub {
            Some(stub) => mx_secure(stub, domain).await,
            None => self.mx_plain(domain).await.map(|hosts| MxAnswer {
                hosts,
                secure: false,
            }),
        }
    }

    async fn mx_plain(&self, domain: &str) -> Result<Vec<MxHost>, DnsFailure> {
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
                        status: NULL_MX,
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
                    status: NO_SUCH_DOMAIN,
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
        self.lookup_addresses(host).await.map(|a| a.ips)
    }

    /// As `addresses`, with their DNSSEC status and any CNAME target.
    pub async fn lookup_addresses(&self, host: &str) -> Result<Addresses, DnsFailure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Addresses {
                ips: vec![ip],
                secure: false,
                cname_target: None,
            });
        }
        match &self.stub {
            Some(stub) => addresses_secure(stub, host).await,
            None => self.addresses_plain(host).await.map(|ips| Addresses {
                ips,
                secure: false,
                cname_target: None,
            }),
        }
    }

    async fn addresses_plain(&self, host: &str) -> Result<Vec<IpAddr>, DnsFailure> {
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
                    status: NO_SUCH_DOMAIN,
                    text: format!("Host or domain name not found. Name service error for name={host} type=A: Host not found"),
                }),
                Lookup::NoRecords => Err(DnsFailure::Permanent {
                    status: NO_SUCH_DOMAIN,
                    text: format!("Host or domain name not found. Name service error for name={host} type=AAAA: No address"),
                }),
                Lookup::Failed(text) => Err(DnsFailure::Temporary { text: format!("address lookup of {host} failed: {text}") }),
            },
        }
    }
}

/// The resolvers whose AD bit is trusted: the configured ones, else the system's;
/// all must be on loopback (config validation checks the configured ones).
fn trusted_servers(cfg: &DnsConfig) -> Result<Vec<std::net::SocketAddr>, ResolveError> {
    let servers: Vec<std::net::SocketAddr> = if cfg.nameservers.is_empty() {
        let (conf, _) = hickory_resolver::system_conf::read_system_conf()?;
        let mut v: Vec<_> = conf.name_servers().iter().map(|n| n.socket_addr).collect();
        v.dedup();
        v
    } else {
        cfg.nameservers.iter().map(|n| n.0).collect()
    };
    if let Some(far) = servers.iter().find(|a| !a.ip().is_loopback()) {
        return Err(ResolveError::from(format!(
            "dnssec = \"trust-ad\" trusts the resolver's AD bit, but {far} is not on loopback; run a validating resolver (unbound) on this host"
        )));
    }
    Ok(servers)
}

async fn mx_secure(stub: &Stub, domain: &str) -> Result<MxAnswer, DnsFailure> {
    let a = stub
        .query(domain, RecordType::MX)
        .await
        .map_err(|text| DnsFailure::Temporary {
            text: format!("MX lookup of {domain} failed: {text}"),
        })?;
    if a.rcode == ResponseCode::NXDomain {
        return Err(DnsFailure::Permanent {
            status: NO_SUCH_DOMAIN,
            text: format!("Host or domain name not found. Name service error for name={domain} type=MX: Host not found"),
        });
    }
    let mut hosts: Vec<MxHost> = a
        .records
        .iter()
        .filter_map(|r| match r {
            RData::MX(mx) => Some(MxHost {
                name: mx
                    .exchange()
                    .to_utf8()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
                preference: mx.preference(),
            }),
            _ => None,
        })
        .collect();
    if hosts.len() == 1 && hosts[0].name.is_empty() {
        return Err(DnsFailure::Permanent {
            status: NULL_MX,
            text: format!("domain {domain} does not accept mail (null MX)"),
        });
    }
    hosts.retain(|h| !h.name.is_empty());
    if hosts.is_empty() {
        hosts.push(MxHost {
            name: domain.to_ascii_lowercase(),
            preference: 0,
        });
    }
    hosts.shuffle(&mut rand::thread_rng());
    hosts.sort_by_key(|h| h.preference);
    Ok(MxAnswer {
        hosts,
        secure: a.secure,
    })
}

async fn addresses_secure(stub: &Stub, host: &str) -> Result<Addresses, DnsFailure> {
    let (v4, v6) = (
        stub.query(host, RecordType::A).await,
        stub.query(host, RecordType::AAAA).await,
    );
    let mut ips = Vec::new();
    let mut secure = true;
    let mut cname_target = None;
    let mut nxdomain = 0;
    let mut errors = Vec::new();
    for answer in [&v4, &v6] {
        match answer {
            Ok(a) => {
                secure &= a.secure;
                if a.rcode == ResponseCode::NXDomain {
                    nxdomain += 1;
                }
                cname_target = cname_target.or_else(|| a.cname_target.clone());
                ips.extend(a.records.iter().filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
            Err(e) => errors.push(e.clone()),
        }
    }
    if !ips.is_empty() {
        return Ok(Addresses {
            ips,
            secure,
            cname_target,
        });
    }
    if !errors.is_empty() {
        return Err(DnsFailure::Temporary {
            text: format!("address lookup of {host} failed: {}", errors.join("; ")),
        });
    }
    Err(DnsFailure::Permanent {
        status: NO_SUCH_DOMAIN,
        text: if nxdomain == 2 {
            format!("Host or domain name not found. Name service error for name={host} type=A: Host not found")
        } else {
            format!("Host or domain name not found. Name service error for name={host} type=AAAA: No address")
        },
    })
}

pub(super) enum Lookup {
    NoSuchDomain,
    NoRecords,
    Failed(String),
}

pub(super) fn classify(e: &ResolveError) -> Lookup {
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
