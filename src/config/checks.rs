//! Checks that span entries of the config: listeners that would share a socket,
//! names used twice, matchers that can never match. Each returns the key to blame.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Config;

pub(super) type Problem = (&'static str, Option<usize>, &'static str, String);

/// Two listeners on one address would share their connections through
/// SO_REUSEPORT (a `required` "securemx" silently taking plaintext mail meant for a
/// `starttls` one), and a wildcard address overlaps every address on its port.
pub(super) fn listeners(c: &Config) -> Result<(), Problem> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, l) in c.listeners.iter().enumerate() {
        if let Some(first) = names.insert(l.name.as_str(), i) {
            return Err((
                "listener",
                Some(i),
                "name",
                format!(
                    "`{}` is already the name of listener[{first}]; names must be unique",
                    l.name
                ),
            ));
        }
        for (j, earlier) in c.listeners[..i].iter().enumerate() {
            if overlap(earlier.address, l.address) {
                return Err((
                    "listener",
                    Some(i),
                    "address",
                    format!(
                        "{} overlaps listener `{}` ({}): the kernel would share connections \
                         between them; give each listener its own address or port",
                        l.address, earlier.name, c.listeners[j].address
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether two bound addresses would take each other's connections. Port 0 asks
/// for a free port, so it never overlaps.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let wildcard = |s: SocketAddr| s.ip().is_unspecified();
    let same_family = a.is_ipv4() == b.is_ipv4();
    // An IPv6 wildcard is dual-stack on Linux by default: it takes IPv4 too.
    let v6_any = |s: SocketAddr| s.is_ipv6() && wildcard(s);
    a.ip() == b.ip() || (same_family && (wildcard(a) || wildcard(b))) || v6_any(a) || v6_any(b)
}

/// `domains = ["*"]` reads as "every domain" but the matcher takes it literally.
pub(super) fn outbound_rules(c: &Config) -> Result<(), Problem> {
    for (i, r) in c.outbound_tls.iter().enumerate() {
        if r.domains.iter().any(|d| d.trim() == "*") {
            return Err((
                "outbound_tls",
                Some(i),
                "domains",
                "`*` is not a domain; leave `domains` out to match every domain".into(),
            ));
        }
    }
    Ok(())
}

/// What is valid but likely not what the operator meant, for `config check`.
pub fn warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in c.inbound_tls.iter().enumerate() {
        let bare: Vec<&String> = r
            .recipients
            .iter()
            .filter(|m| !m.contains('@') && m.trim() != "*")
            .collect();
        if !bare.is_empty() && r.domains.is_empty() && c.relay.domains.len() > 1 {
            out.push(format!(
                "inbound_tls[{i}].recipients: the local part {} matches that mailbox at every \
                 hosted domain ({}); add `domains = [...]` to the rule to limit it",
                bare.iter()
                    .map(|b| format!("`{b}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.relay.domains.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlapping_addresses() {
        assert!(overlap(addr("0.0.0.0:25"), addr("0.0.0.0:25")));
        assert!(overlap(addr("0.0.0.0:25"), addr("192.0.2.1:25")));
        assert!(overlap(addr("[::]:25"), addr("192.0.2.1:25")));
        assert!(!overlap(addr("0.0.0.0:25"), addr("0.0.0.0:587")));
        assert!(!overlap(addr("192.0.2.1:25"), addr("192.0.2.2:25")));
        assert!(!overlap(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
        assert!(!overlap(addr("[2001:db8::1]:25"), addr("192.0.2.1:25")));
    }
}
