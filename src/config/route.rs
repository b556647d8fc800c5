//! Where mail goes when the config says so: `[[route]] next_hop` (`host`,
//! `host:port`, `[ip]`, `[ip]:port`, or `[host]`: brackets mean no MX lookup, as
//! in Postfix) and `[dns] nameservers` (`ip` or `ip:port`). Both are parsed when
//! the file is read, so a bad one is refused at load with its line, and delivery
//! uses the typed value instead of parsing the text on every attempt.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::syntax::is_domain;

/// A next hop as written; a port left out is `[outbound] port`, known only once
/// the whole file is read, so it stays `None` here.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A literal address: connect to it directly.
    Addr { ip: IpAddr, port: Option<u16> },
    /// A host name: MX lookup unless `no_mx`, then A/AAAA.
    Host {
        name: String,
        port: Option<u16>,
        no_mx: bool,
    },
}

impl NextHop {
    /// The port written, else `default_port` (`[outbound] port`).
    pub fn port_or(&self, default_port: u16) -> u16 {
        match self {
            NextHop::Addr { port, .. } | NextHop::Host { port, .. } => port.unwrap_or(default_port),
        }
    }
}

impl FromStr for NextHop {
    type Err = String;
    fn from_str(s: &str) -> Result<NextHop, String> {
        let s = s.trim();
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("`{s}`: bad port `{p}` (a number up to 65535)"))
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing ]"))?;
            let port = match after {
                "" => None,
                p => Some(port(p.strip_prefix(':').ok_or_else(|| {
                    format!("`{s}`: after ] only :port may follow")
                })?)?),
            };
            return match inside.parse::<IpAddr>() {
                Ok(ip) => Ok(NextHop::Addr { ip, port }),
                Err(_) if is_domain(inside, false) => Ok(NextHop::Host {
                    name: inside.to_ascii_lowercase(),
                    port,
                    no_mx: true,
                }),
                Err(_) => Err(format!("`{s}`: not an address or host name")),
            };
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, p)) => (n, Some(port(p)?)),
            None => (s, None),
        };
        if !is_domain(name, false) {
            return Err(format!("`{s}`: not a host name"));
        }
        Ok(NextHop::Host {
            name: name.to_ascii_lowercase(),
            port,
            no_mx: false,
        })
    }
}

/// The form the config file writes, for logs and `mxring explain`.
impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (host, port) = match self {
            NextHop::Addr { ip, port } => (format!("[{ip}]"), port),
            NextHop::Host {
                name,
                port,
                no_mx: true,
            } => (format!("[{name}]"), port),
            NextHop::Host { name, port, .. } => (name.clone(), port),
        };
        match port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

impl<'de> Deserialize<'de> for NextHop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for NextHop {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A nameserver: `ip` or `ip:port`, port 53 where none is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nameserver(pub SocketAddr);

impl FromStr for Nameserver {
    type Err = String;
    fn from_str(s: &str) -> Result<Nameserver, String> {
        let s = s.trim();
        s.parse::<SocketAddr>()
            .ok()
            .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
            .map(Nameserver)
            .ok_or_else(|| format!("`{s}` is not an ip or ip:port"))
    }
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Nameserver {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(s: &str) -> Result<NextHop, String> {
        s.parse()
    }

    fn host(name: &str, port: Option<u16>, no_mx: bool) -> NextHop {
        NextHop::Host {
            name: name.into(),
            port,
            no_mx,
        }
    }

    #[test]
    fn next_hop_forms_and_the_default_port() {
        assert_eq!(
            hop("mail.customer.test"),
            Ok(host("mail.customer.test", None, false))
        );
        assert_eq!(
            hop("[Mail.Customer.test]"),
            Ok(host("mail.customer.test", None, true))
        );
        assert_eq!(
            hop("mx.example:587"),
            Ok(host("mx.example", Some(587), false))
        );
        assert_eq!(
            hop("[10.0.0.5]:2525"),
            Ok(NextHop::Addr {
                ip: "10.0.0.5".parse().unwrap(),
                port: Some(2525)
            })
        );
        assert_eq!(
            hop("[::1]"),
            Ok(NextHop::Addr {
                ip: "::1".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(hop("[::1]").unwrap().port_or(2525), 2525);
        assert_eq!(hop("mx.example:26").unwrap().port_or(2525), 26);
        assert!(hop("[1.2.3.4]:99999").unwrap_err().contains("bad port"));
        assert!(hop("[1.2.3.4]x").is_err());
        assert!(hop("[1.2.3.4").is_err());
        assert!(hop("bad host").unwrap_err().contains("not a host name"));
    }

    #[test]
    fn next_hops_display_as_written() {
        for s in [
            "mx.example",
            "[relay.example]:587",
            "[10.0.0.5]",
            "[::1]:25",
        ] {
            assert_eq!(hop(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn nameservers_take_port_53_by_default() {
        assert_eq!(
            "127.0.0.1:5353".parse::<Nameserver>().unwrap().0,
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            "::1".parse::<Nameserver>().unwrap().0,
            "[::1]:53".parse().unwrap()
        );
        assert!("ns.example".parse::<Nameserver>().is_err());
    }
}
