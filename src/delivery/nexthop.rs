//! Next hops as written in `[[route]] next_hop`: `host`, `host:port`, `[ip]`,
//! `[ip]:port` (brackets: use the address as is, no MX lookup, as in Postfix).

use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// A literal address: connect to it directly.
    Addr(SocketAddr),
    /// A host name: MX lookup unless `no_mx`, then A/AAAA.
    Host {
        name: String,
        port: u16,
        no_mx: bool,
    },
}

impl NextHop {
    /// Parse with port 25 where none is written.
    pub fn parse(s: &str) -> Result<NextHop, String> {
        Self::parse_with_port(s, 25)
    }

    /// Parse with `default_port` (`[outbound] port`) where none is written.
    pub fn parse_with_port(s: &str, default_port: u16) -> Result<NextHop, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing ]"))?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("`{s}`: bad port"))?,
            };
            return match inside.parse::<IpAddr>() {
                Ok(ip) => Ok(NextHop::Addr(SocketAddr::new(ip, port))),
                Err(_) if crate::proto::address::is_domain(inside, false) => Ok(NextHop::Host {
                    name: inside.to_ascii_lowercase(),
                    port,
                    no_mx: true,
                }),
                Err(_) => Err(format!("`{s}`: not an address or host name")),
            };
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, p)) => (n, p.parse::<u16>().map_err(|_| format!("`{s}`: bad port"))?),
            None => (s, default_port),
        };
        if !crate::proto::address::is_domain(name, false) {
            return Err(format!("`{s}`: not a host name"));
        }
        Ok(NextHop::Host {
            name: name.to_ascii_lowercase(),
            port,
            no_mx: false,
        })
    }
}

/// A nameserver written as `ip` or `ip:port` (port 53 by default).
pub fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_applies_only_where_none_is_written() {
        let host = |name: &str, port, no_mx| NextHop::Host {
            name: name.into(),
            port,
            no_mx,
        };
        assert_eq!(
            NextHop::parse_with_port("mail.customer.test", 2525),
            Ok(host("mail.customer.test", 2525, false))
        );
        assert_eq!(
            NextHop::parse_with_port("[mail.customer.test]", 2525),
            Ok(host("mail.customer.test", 2525, true))
        );
        assert_eq!(
            NextHop::parse_with_port("mail.customer.test:26", 2525),
            Ok(host("mail.customer.test", 26, false))
        );
        assert_eq!(
            NextHop::parse_with_port("[10.0.0.5]", 2525),
            Ok(NextHop::Addr("10.0.0.5:2525".parse().unwrap()))
        );
    }

    #[test]
    fn next_hop_forms() {
        assert_eq!(
            NextHop::parse("[10.0.0.5]:2525").unwrap(),
            NextHop::Addr("10.0.0.5:2525".parse().unwrap())
        );
        assert_eq!(
            NextHop::parse("[::1]").unwrap(),
            NextHop::Addr("[::1]:25".parse().unwrap())
        );
        assert_eq!(
            NextHop::parse("[relay.example]").unwrap(),
            NextHop::Host {
                name: "relay.example".into(),
                port: 25,
                no_mx: true
            }
        );
        assert_eq!(
            NextHop::parse("mx.example:587").unwrap(),
            NextHop::Host {
                name: "mx.example".into(),
                port: 587,
                no_mx: false
            }
        );
        assert!(NextHop::parse("[1.2.3.4]:99999").is_err());
        assert!(NextHop::parse("bad host").is_err());
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Some("[::1]:53".parse().unwrap()));
    }
}
