//! PROXY protocol (`HAProxy`) v1 and v2 headers, sans-IO.
//!
//! A load balancer in front of the MTA prepends one header to the TCP stream naming
//! the real client. The driver feeds the first bytes of a connection to
//! [`parse_proxy_header`] until it yields a header, then hands every byte after it to
//! the SMTP session. Written from haproxy.org's `doc/proxy-protocol.txt` (2.9).
//!
//! Accept this header only on listeners reached solely through the proxy: whoever can
//! send it chooses the client address that relay control and logging will believe.

// This parser sees bytes from the network before anything else does: it must not be
// able to panic (proto/mod.rs refuses indexing, unwraps and panics for all of proto).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What the proxy told us about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The real client and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL or v1 UNKNOWN (or v2 PROXY with family UNSPEC): a health check from
    /// the proxy itself, or a connection it could not describe; use the socket's
    /// addresses.
    Local,
}

/// Why the start of a connection is not an acceptable PROXY header. Every variant
/// means the connection must be dropped: the spec forbids guessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// The header started correctly but breaks the grammar; the text says where.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// v1 line without CRLF within 107 bytes, or v2 declared length over
    /// [`MAX_V2_PAYLOAD`].
    #[error("PROXY header too long")]
    TooLong,
    /// v2 signature followed by a version nibble other than 2.
    #[error("unsupported PROXY protocol version {0}")]
    UnsupportedVersion(u8),
    /// v2 command nibble other than LOCAL (0) or PROXY (1).
    #[error("unsupported PROXY v2 command {0:#x}")]
    UnsupportedCommand(u8),
    /// v2 family/protocol byte other than TCP over IPv4 (0x11), TCP over IPv6 (0x21)
    /// or UNSPEC (0x00), e.g. UDP or UNIX sockets, which an SMTP listener never sees.
    #[error("unsupported PROXY v2 address family/protocol {0:#04x}")]
    UnsupportedFamily(u8),
}

/// Longest v1 line the spec allows, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// Largest v2 payload (addresses plus TLVs) we accept. The format allows 65535, but we
/// read no TLV, and a proxy that sends kilobytes of them is misconfigured; refusing
/// keeps the pre-SMTP buffer small.
pub const MAX_V2_PAYLOAD: usize = 4096;
/// The most bytes a driver may need to buffer before [`parse_proxy_header`] decides.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + MAX_V2_PAYLOAD;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol, 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// Address block sizes: two addresses and two 16-bit ports.
const V2_INET_LEN: usize = 4 + 4 + 2 + 2;
const V2_INET6_LEN: usize = 16 + 16 + 2 + 2;

const EMPTY_FIELD: ProxyError =
    ProxyError::Malformed("empty field: fields are separated by exactly one space");
const BAD_PROTOCOL: ProxyError = ProxyError::Malformed("protocol must be TCP4, TCP6 or UNKNOWN");
const BAD_PORT: ProxyError = ProxyError::Malformed("port must be a decimal number 0-65535");
const EXTRA_FIELD: ProxyError = ProxyError::Malformed("extra field after the destination port");

/// Parse a PROXY header from the start of `input`.
///
/// - `Ok(None)`: more bytes needed; everything so far is a valid prefix of a header
///   (an empty input included). Call again with the same bytes plus more.
/// - `Ok(Some((header, consumed)))`: the header took `input[..consumed]`; bytes after
///   it are the client's SMTP data and are not looked at.
///
/// # Errors
///
/// A [`ProxyError`] when the input is not a header we accept; drop the connection.
/// Errors are reported as soon as the bytes seen prove them, without waiting for the
/// rest of the header.
pub fn parse_proxy_header(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    // The two versions start with different bytes, so the first one picks the parser.
    match input.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(input),
        Some(b'\r') => parse_v2(input),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

fn parse_v1(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if !input.starts_with(V1_PREFIX) {
        // "PROX" may still become "PROXY "; "PROXZ" or "PROXYX" never will.
        return if V1_PREFIX.starts_with(input) {
            Ok(None)
        } else {
            Err(ProxyError::NotProxy)
        };
    }
    // Look for the end of the line only where the spec allows it to be, so a client
    // that never sends LF costs us at most 107 bytes.
    let window = input.get(..V1_MAX_LEN).unwrap_or(input);
    if let Some(lf) = memchr::memchr(b'\n', window) {
        let line = window.get(V1_PREFIX.len()..lf).unwrap_or_default();
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(ProxyError::Malformed(
                "line must end with CRLF, not a bare LF",
            ));
        };
        return parse_v1_line(line).map(|header| Some((header, lf + 1)));
    }
    // No LF yet: judge what we have, so garbage fails now rather than after 107 bytes.
    check_v1_partial(window.get(V1_PREFIX.len()..).unwrap_or_default())?;
    if input.len() >= V1_MAX_LEN {
        Err(ProxyError::TooLong)
    } else {
        Ok(None)
    }
}

/// A complete v1 line after `PROXY ` and before CRLF.
fn parse_v1_line(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let mut fields = line.split(|&b| b == b' ');
    let family = match fields.next() {
        Some(b"TCP4") => Family::V4,
        Some(b"TCP6") => Family::V6,
        // The spec tells receivers to ignore whatever follows UNKNOWN up to CRLF.
        Some(b"UNKNOWN") => return Ok(ProxyHeader::Local),
        _ => return Err(BAD_PROTOCOL),
    };
    let mut next = |missing: &'static str| fields.next().ok_or(ProxyError::Malformed(missing));
    let source_ip = parse_v1_addr(family, next("missing source address")?)?;
    let destination_ip = parse_v1_addr(family, next("missing destination address")?)?;
    let source_port = parse_v1_port(next("missing source port")?)?;
    let destination_port = parse_v1_port(next("missing destination port")?)?;
    if fields.next().is_some() {
        return Err(EXTRA_FIELD);
    }
    Ok(ProxyHeader::Proxied {
        source: socket_addr(source_ip, source_port),
        destination: socket_addr(destination_ip, destination_port),
    })
}

/// Check a v1 line that has no LF yet, so that `Ok(None)` promises a real prefix.
fn check_v1_partial(rest: &[u8]) -> Result<(), ProxyError> {
    if let Some(after) = rest.strip_prefix(b"UNKNOWN") {
        // Anything may follow "UNKNOWN ", but "UNKNOWNX" is another word.
        return match after.first() {
            None | Some(b' ' | b'\r') => Ok(()),
            Some(_) => Err(BAD_PROTOCOL),
        };
    }
    // A CR may only be the last byte before LF: judge the line as if LF came next.
    if let Some(line) = rest.strip_suffix(b"\r") {
        return parse_v1_line(line).map(drop);
    }
    let mut fields = rest.split(|&b| b == b' ');
    let family = match fields.next().unwrap_or_default() {
        b"TCP4" => Family::V4,
        b"TCP6" => Family::V6,
        word if word.len() == rest.len()
            && [b"TCP4".as_slice(), b"TCP6", b"UNKNOWN"]
                .iter()
                .any(|w| w.starts_with(word)) =>
        {
            return Ok(()); // still inside the protocol word
        }
        _ => return Err(BAD_PROTOCOL),
    };
    // Fields followed by a space are complete and must parse; the last may be cut.
    let mut fields = fields.enumerate().peekable();
    while let Some((index, field)) = fields.next() {
        let complete = fields.peek().is_some();
        match index {
            0 | 1 if complete => drop(parse_v1_addr(family, field)?),
            0 | 1 => check_v1_addr_prefix(family, field)?,
            // Every non-empty prefix of a valid port is itself a valid port.
            2 | 3 if field.is_empty() && !complete => {}
            2 | 3 => drop(parse_v1_port(field)?),
            _ => return Err(EXTRA_FIELD),
        }
    }
    Ok(())
}

fn parse_v1_addr(family: Family, field: &[u8]) -> Result<IpAddr, ProxyError> {
    if field.is_empty() {
        return Err(EMPTY_FIELD);
    }
    let text =
        std::str::from_utf8(field).map_err(|_| ProxyError::Malformed("address is not ASCII"))?;
    // std refuses leading zeros in IPv4 octets (they read as octal elsewhere), brackets,
    // zone ids and ports, which is what the spec's plain textual forms call for.
    match family {
        Family::V4 => text
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ProxyError::Malformed("TCP4 address is not a dotted-quad IPv4 address")),
        Family::V6 => text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ProxyError::Malformed("TCP6 address is not an IPv6 address")),
    }
}

/// Could `field` still grow into an address of `family`? Cheap character and length
/// checks only; the full parse happens once the field is complete.
fn check_v1_addr_prefix(family: Family, field: &[u8]) -> Result<(), ProxyError> {
    let (max, allowed): (usize, fn(&u8) -> bool) = match family {
        Family::V4 => (15, |b| b.is_ascii_digit() || *b == b'.'),
        Family::V6 => (45, |b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.'),
    };
    if field.len() <= max && field.iter().all(allowed) {
        Ok(())
    } else {
        parse_v1_addr(family, field).map(drop)
    }
}

/// Decimal 0-65535, digits only: no sign (std's u16 parser would take "+25"), and no
/// leading zero, since no proxy writes one and the spec's grammar is plain decimal.
fn parse_v1_port(field: &[u8]) -> Result<u16, ProxyError> {
    match field {
        [] => Err(EMPTY_FIELD),
        [b'0', _, ..] => Err(ProxyError::Malformed("port has a leading zero")),
        _ if field.len() > 5 || !field.iter().all(u8::is_ascii_digit) => Err(BAD_PORT),
        _ => std::str::from_utf8(field)
            .ok()
            .and_then(|text| text.parse::<u16>().ok())
            .ok_or(BAD_PORT),
    }
}

fn socket_addr(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(ip) => SocketAddr::V4(SocketAddrV4::new(ip, port)),
        IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
    }
}

fn parse_v2(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let seen = input.get(..V2_SIGNATURE.len()).unwrap_or(input);
    if !V2_SIGNATURE.starts_with(seen) {
        return Err(ProxyError::NotProxy);
    }
    // Each fixed byte is judged as soon as it arrives.
    let Some(&version_command) = input.get(12) else {
        return Ok(None);
    };
    let version = version_command >> 4;
    if version != 2 {
        return Err(ProxyError::UnsupportedVersion(version));
    }
    let local = match version_command & 0x0f {
        0x0 => true,
        0x1 => false,
        command => return Err(ProxyError::UnsupportedCommand(command)),
    };
    let Some(&family) = input.get(13) else {
        return Ok(None);
    };
    // LOCAL: the spec says the family and any address block are ignored. PROXY with
    // UNSPEC: the proxy could not describe the client; like v1 UNKNOWN, fall back to
    // the socket's addresses.
    let address_len = match family {
        _ if local => 0,
        0x00 => 0,
        0x11 => V2_INET_LEN,
        0x21 => V2_INET6_LEN,
        other => return Err(ProxyError::UnsupportedFamily(other)),
    };
    let Some(&length) = input.get(14..).and_then(<[u8]>::first_chunk::<2>) else {
        return Ok(None);
    };
    let length = usize::from(u16::from_be_bytes(length));
    if length > MAX_V2_PAYLOAD {
        return Err(ProxyError::TooLong);
    }
    if length < address_len {
        return Err(ProxyError::Malformed(
            "declared length is shorter than the address block",
        ));
    }
    let total = V2_FIXED_LEN + length;
    let Some(mut payload) = input.get(V2_FIXED_LEN..total) else {
        return Ok(None);
    };
    // TLVs after the address block (ALPN, SSL info, unique id...) are skipped unread:
    // nothing here uses them, and the declared length tells us where they end.
    let truncated = ProxyError::Malformed("address block truncated");
    let header = match address_len {
        V2_INET_LEN => {
            let source = take::<4>(&mut payload).ok_or(truncated)?;
            let destination = take::<4>(&mut payload).ok_or(truncated)?;
            let source_port = take::<2>(&mut payload).ok_or(truncated)?;
            let destination_port = take::<2>(&mut payload).ok_or(truncated)?;
            ProxyHeader::Proxied {
                source: socket_addr(source.into(), u16::from_be_bytes(source_port)),
                destination: socket_addr(destination.into(), u16::from_be_bytes(destination_port)),
            }
        }
        V2_INET6_LEN => {
            let source = take::<16>(&mut payload).ok_or(truncated)?;
            let destination = take::<16>(&mut payload).ok_or(truncated)?;
            let source_port = take::<2>(&mut payload).ok_or(truncated)?;
            let destination_port = take::<2>(&mut payload).ok_or(truncated)?;
            ProxyHeader::Proxied {
                source: socket_addr(source.into(), u16::from_be_bytes(source_port)),
                destination: socket_addr(destination.into(), u16::from_be_bytes(destination_port)),
            }
        }
        _ => ProxyHeader::Local,
    };
    Ok(Some((header, total)))
}

/// Split the first `N` bytes off `buf`; `None` when it is shorter.
fn take<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = buf.split_first_chunk::<N>()?;
    *buf = rest;
    Some(*head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(a.into(), port))
    }

    fn v6(text: &str, port: u16) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(text.parse().unwrap(), port, 0, 0))
    }

    fn parse(input: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
        parse_proxy_header(input)
    }

    fn malformed(input: &[u8]) -> bool {
        matches!(parse(input), Err(ProxyError::Malformed(_)))
    }

    // ---- encoders used by the tests (the MTA itself never sends PROXY headers) ----

    fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes()
    }

    /// A v2 header; `tlvs` are appended after the address block and counted in the
    /// length.
    fn encode_v2(header: ProxyHeader, tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        let mut body = Vec::new();
        match header {
            ProxyHeader::Local => out.extend([0x20, 0x00]),
            ProxyHeader::Proxied {
                source,
                destination,
            } => {
                match (source.ip(), destination.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        out.extend([0x21, 0x11]);
                        body.extend(s.octets());
                        body.extend(d.octets());
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        out.extend([0x21, 0x21]);
                        body.extend(s.octets());
                        body.extend(d.octets());
                    }
                    _ => panic!("mixed families"),
                }
                body.extend(source.port().to_be_bytes());
                body.extend(destination.port().to_be_bytes());
            }
        }
        body.extend(tlvs);
        out.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend(body);
        out
    }

    /// Every proper prefix must ask for more, and the whole must give `expected`,
    /// also with SMTP bytes after it that must not be consumed.
    fn check_incremental(header: &[u8], expected: ProxyHeader) {
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        assert_eq!(parse(header), Ok(Some((expected, header.len()))));
        let mut with_data = header.to_vec();
        with_data.extend_from_slice(b"EHLO client.example\r\n");
        assert_eq!(parse(&with_data), Ok(Some((expected, header.len()))));
    }

    // ---- v1 ----

    #[test]
    fn v1_tcp4() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
        check_incremental(
            line,
            ProxyHeader::Proxied {
                source: v4([192, 0, 2, 1], 56324),
                destination: v4([198, 51, 100, 2], 25),
            },
        );
    }

    #[test]
    fn v1_tcp6() {
        let line = b"PROXY TCP6 2001:db8::1 2001:db8:0:1::25 65535 0\r\n";
        check_incremental(
            line,
            ProxyHeader::Proxied {
                source: v6("2001:db8::1", 65535),
                destination: v6("2001:db8:0:1::25", 0),
            },
        );
        // Mapped and full forms are IPv6 text too.
        let line = b"PROXY TCP6 ::ffff:192.0.2.1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 1 2\r\n";
        check_incremental(
            line,
            ProxyHeader::Proxied {
                source: v6("::ffff:192.0.2.1", 1),
                destination: v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2),
            },
        );
    }

    #[test]
    fn v1_unknown_is_local() {
        check_incremental(b"PROXY UNKNOWN\r\n", ProxyHeader::Local);
        // The spec says to ignore whatever follows UNKNOWN.
        check_incremental(
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
            ProxyHeader::Local,
        );
    }

    #[test]
    fn v1_longest_line_fits() {
        // 107 bytes exactly, the spec's worst case, padded through UNKNOWN.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(line.len(), V1_MAX_LEN);
        check_incremental(&line, ProxyHeader::Local);
    }

    #[test]
    fn v1_no_crlf_within_limit_is_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN - 1, b'x');
        assert_eq!(parse(&line), Ok(None));
        line.push(b'\r'); // 107 bytes, LF would be the 108th
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        line.push(b'\n');
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
        line.resize(500, b'x');
        assert_eq!(parse(&line), Err(ProxyError::TooLong));
    }

    #[test]
    fn v1_not_proxy() {
        assert_eq!(parse(b"EHLO x\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"proxy TCP4"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXZ"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXYTCP4"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXY\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"P"), Ok(None));
        assert_eq!(parse(b"PROXY"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn v1_malformed_variants() {
        let bad: &[&[u8]] = &[
            // spacing
            b"PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2  1 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1  2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n",
            b"PROXY TCP4\t192.0.2.1 192.0.2.2 1 2\r\n",
            // missing or extra fields
            b"PROXY \r\n",
            b"PROXY TCP4\r\n",
            b"PROXY TCP4 192.0.2.1\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
            // protocol word
            b"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            // ports
            b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 100000 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 00 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 0x19\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2a\r\n",
            // addresses
            b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 ::1 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
            b"PROXY TCP6 ::1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.000.2.1 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1.5 192.0.2.2 1 2\r\n",
            b"PROXY TCP4 host.example 192.0.2.2 1 2\r\n",
            b"PROXY TCP6 [::1] ::2 1 2\r\n",
            b"PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n",
            b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::2 1 2\r\n",
            b"PROXY TCP4 192.0.2.\xff 192.0.2.2 1 2\r\n",
            // line endings
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n",
            b"PROXY UNKNOWN\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\r\n",
            b"PROXY TCP4 192.0.2.1\r192.0.2.2 1 2\r\n",
        ];
        for line in bad {
            assert!(
                malformed(line),
                "{:?} gave {:?}",
                String::from_utf8_lossy(line),
                parse(line)
            );
        }
    }

    #[test]
    fn v1_errors_are_reported_before_the_line_ends() {
        // Prefixes that can no longer become a valid header fail at once.
        let early: &[&[u8]] = &[
            b"PROXY  ",
            b"PROXY TCP5",
            b"PROXY TCP ",
            b"PROXY UNKNOWNX",
            b"PROXY TCP4 2001:",
            b"PROXY TCP4 1.2.3.4  ",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 70000",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 00",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 1 01",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2 ",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\rX",
            b"PROXY TCP4 1.2.3.4\r",
            b"PROXY TCP6 ::1::2 ",
            b"PROXY TCP6 ::g",
        ];
        for line in early {
            assert!(
                malformed(line),
                "{:?} gave {:?}",
                String::from_utf8_lossy(line),
                parse(line)
            );
        }
    }

    #[test]
    fn v1_leading_zero_port_zero_alone_is_fine() {
        // "0" is a port, so it is a prefix; "00" never becomes one.
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4 1.2.3.5 0"), Ok(None));
        let line = b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n";
        check_incremental(
            line,
            ProxyHeader::Proxied {
                source: v4([0, 0, 0, 0], 0),
                destination: v4([255, 255, 255, 255], 0),
            },
        );
    }

    // ---- v2 ----

    #[test]
    fn v2_ipv4() {
        let expected = ProxyHeader::Proxied {
            source: v4([192, 0, 2, 1], 56324),
            destination: v4([198, 51, 100, 2], 25),
        };
        let header = encode_v2(expected, &[]);
        assert_eq!(header.len(), 28);
        assert_eq!(
            &header[12..16],
            &[0x21, 0x11, 0x00, 0x0c],
            "encoder matches spec"
        );
        check_incremental(&header, expected);
    }

    #[test]
    fn v2_ipv6() {
        let expected = ProxyHeader::Proxied {
            source: v6("2001:db8::1", 1),
            destination: v6("2001:db8::25", 25),
        };
        let header = encode_v2(expected, &[]);
        assert_eq!(header.len(), 52);
        check_incremental(&header, expected);
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        // PP2_TYPE_ALPN "smtp", PP2_TYPE_UNIQUE_ID, and a NOOP padding TLV.
        let tlvs = [
            0x01, 0x00, 0x04, b's', b'm', b't', b'p', 0x05, 0x00, 0x02, 0xab, 0xcd, 0x04, 0x00,
            0x03, 0, 0, 0,
        ];
        for expected in [
            ProxyHeader::Proxied {
                source: v4([10, 0, 0, 1], 1000),
                destination: v4([10, 0, 0, 2], 25),
            },
            ProxyHeader::Proxied {
                source: v6("::1", 1000),
                destination: v6("::2", 587),
            },
            ProxyHeader::Local,
        ] {
            let header = encode_v2(expected, &tlvs);
            check_incremental(&header, expected);
        }
    }

    #[test]
    fn v2_local_skips_declared_length_and_ignores_family() {
        check_incremental(&encode_v2(ProxyHeader::Local, &[]), ProxyHeader::Local);
        // LOCAL with an address block and a family we would otherwise refuse (UNIX).
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x20, 0x31, 0x00, 0x05, 1, 2, 3, 4, 5]);
        check_incremental(&header, ProxyHeader::Local);
    }

    #[test]
    fn v2_proxy_unspec_is_local() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x21, 0x00, 0x00, 0x00]);
        check_incremental(&header, ProxyHeader::Local);
    }

    #[test]
    fn v2_bad_version_and_command() {
        for (byte, err) in [
            (0x11, ProxyError::UnsupportedVersion(1)),
            (0x31, ProxyError::UnsupportedVersion(3)),
            (0x01, ProxyError::UnsupportedVersion(0)),
            (0x22, ProxyError::UnsupportedCommand(2)),
            (0x2f, ProxyError::UnsupportedCommand(0xf)),
        ] {
            let mut header = V2_SIGNATURE.to_vec();
            header.push(byte);
            // Known as soon as the byte arrives.
            assert_eq!(parse(&header), Err(err));
            header.extend([0x11, 0x00, 0x0c]);
            header.extend([0; 12]);
            assert_eq!(parse(&header), Err(err));
        }
    }

    #[test]
    fn v2_unsupported_families() {
        for family in [0x12, 0x22, 0x31, 0x32, 0x10, 0x13, 0x41, 0x01, 0xff] {
            let mut header = V2_SIGNATURE.to_vec();
            header.extend([0x21, family]);
            assert_eq!(parse(&header), Err(ProxyError::UnsupportedFamily(family)));
            header.extend([0x00, 0xd8]);
            header.extend([0; 216]);
            assert_eq!(parse(&header), Err(ProxyError::UnsupportedFamily(family)));
        }
    }

    #[test]
    fn v2_length_shorter_than_addresses() {
        for (family, short) in [(0x11u8, 11u8), (0x11, 0), (0x21, 35), (0x21, 12)] {
            let mut header = V2_SIGNATURE.to_vec();
            header.extend([0x21, family, 0x00, short]);
            // Refused from the length alone, before the body arrives...
            assert!(malformed(&header), "{family:#x} {short}");
            // ...and with it.
            header.extend(vec![0; usize::from(short)]);
            assert!(malformed(&header), "{family:#x} {short}");
        }
    }

    #[test]
    fn v2_too_long() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x21, 0x11]);
        header.extend(u16::try_from(MAX_V2_PAYLOAD + 1).unwrap().to_be_bytes());
        assert_eq!(parse(&header), Err(ProxyError::TooLong));
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x20, 0x00, 0xff, 0xff]);
        assert_eq!(parse(&header), Err(ProxyError::TooLong));
        // The limit itself is fine.
        let expected = ProxyHeader::Local;
        let header = encode_v2(expected, &vec![0; MAX_V2_PAYLOAD]);
        assert_eq!(header.len(), MAX_HEADER_LEN);
        assert_eq!(parse(&header), Ok(Some((expected, MAX_HEADER_LEN))));
    }

    #[test]
    fn v2_truncated_waits() {
        let header = encode_v2(
            ProxyHeader::Proxied {
                source: v6("::1", 1),
                destination: v6("::2", 2),
            },
            &[0x04, 0x00, 0x10],
        );
        // A length promising more than we have is a wait, not an error.
        assert_eq!(parse(&header[..header.len() - 1]), Ok(None));
        assert_eq!(parse(&header[..16]), Ok(None));
        assert_eq!(parse(&header[..15]), Ok(None));
    }

    #[test]
    fn v2_bad_signature() {
        let mut header = encode_v2(ProxyHeader::Local, &[]);
        for i in 0..12 {
            let saved = header[i];
            header[i] ^= 0x40;
            assert!(
                matches!(parse(&header), Err(ProxyError::NotProxy)),
                "byte {i}"
            );
            assert!(
                matches!(parse(&header[..=i]), Err(ProxyError::NotProxy)),
                "byte {i}"
            );
            header[i] = saved;
        }
        assert_eq!(parse(b"\r\nQUIT"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n"), Ok(None));
    }

    #[test]
    fn errors_have_text() {
        assert_eq!(
            ProxyError::UnsupportedFamily(0x12).to_string(),
            "unsupported PROXY v2 address family/protocol 0x12"
        );
        assert_eq!(
            ProxyError::Malformed("x").to_string(),
            "malformed PROXY header: x"
        );
    }

    // ---- properties ----

    fn any_socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<[u8; 4]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (v4(s, sp), v4(d, dp))),
            (
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<[u8; 16]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (
                    SocketAddr::V6(SocketAddrV6::new(s.into(), sp, 0, 0)),
                    SocketAddr::V6(SocketAddrV6::new(d.into(), dp, 0, 0)),
                )),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn random_bytes_after_each_prefix_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..200),
            which in 0..3usize,
        ) {
            // Random bytes after a valid start reach deeper into both parsers.
            let start: &[u8] = match which {
                0 => b"PROXY TCP4 ",
                1 => b"PROXY TCP6 ",
                _ => V2_SIGNATURE,
            };
            let mut input = start.to_vec();
            input.extend(tail);
            if let Ok(Some((_, consumed))) = parse(&input) {
                prop_assert!(consumed <= input.len());
            }
        }

        #[test]
        fn v1_round_trip(
            (source, destination) in any_socket_pair(),
            smtp in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let line = encode_v1(source, destination);
            prop_assert!(line.len() <= V1_MAX_LEN);
            let mut input = line.clone();
            input.extend(smtp);
            prop_assert_eq!(
                parse(&input),
                Ok(Some((ProxyHeader::Proxied { source, destination }, line.len())))
            );
            let cut = line.len() / 2;
            prop_assert_eq!(parse(&line[..cut]), Ok(None));
        }

        #[test]
        fn v2_round_trip(
            (source, destination) in any_socket_pair(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..64),
            smtp in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let expected = ProxyHeader::Proxied { source, destination };
            let header = encode_v2(expected, &tlvs);
            let mut input = header.clone();
            input.extend(smtp);
            prop_assert_eq!(parse(&input), Ok(Some((expected, header.len()))));
            for cut in 0..header.len() {
                prop_assert_eq!(parse(&header[..cut]), Ok(None));
            }
        }
    }
}
