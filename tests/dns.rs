//! MX resolution against a real DNS server on loopback (the testkit's DNS server), and one
//! message delivered end to end by MX lookup: client → mxring → DNS → SMTP sink.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mxring::config::{DnsConfig, Dur};
use mxring::dns::{Dns, DnsFailure, MxHost};

use mxring_testkit::client::Client;
use mxring_testkit::dns_server::{DnsServer, Zone};
use mxring_testkit::sink::{Arrival, Script, Sink};
use mxring_testkit::TestServer;

/// Run `f` with a resolver pointed at `server`, on a current-thread runtime (as in a shard).
fn with_dns<T>(server: &DnsServer, timeout: Duration, f: impl AsyncFnOnce(&Dns) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dns = Dns::new(&DnsConfig {
            nameservers: vec![server
                .nameserver()
                .parse()
                .expect("the test server's address")],
            timeout: Dur(timeout),
            ..Default::default()
        })
        .expect("resolver");
        f(&dns).await
    })
}

fn names(hosts: &[MxHost]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

const T: Duration = Duration::from_secs(2);

#[test]
fn mx_sorted_by_preference() {
    // The server answers in file order: the higher preference first.
    let server = DnsServer::start(Zone::new().mx("pref.test", 20, "mx2.pref.test").mx(
        "pref.test",
        10,
        "mx1.pref.test",
    ));
    let hosts = with_dns(&server, T, async |dns| dns.mx_hosts("pref.test").await).unwrap();
    assert_eq!(
        hosts,
        vec![
            MxHost {
                name: "mx1.pref.test".into(),
                preference: 10
            },
            MxHost {
                name: "mx2.pref.test".into(),
                preference: 20
            },
        ]
    );
}

#[test]
fn mx_equal_preference_order_is_random() {
    let server = DnsServer::start(
        Zone::new()
            .mx("eq.test", 10, "a.eq.test")
            .mx("eq.test", 10, "b.eq.test")
            .mx("eq.test", 20, "backup.eq.test"),
    );
    let seen = with_dns(&server, T, async |dns| {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let hosts = dns.mx_hosts("eq.test").await.unwrap();
            let order: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
            assert_eq!(hosts.len(), 3, "{hosts:?}");
            assert_eq!(order[2], "backup.eq.test", "preference 20 always last");
            assert!(hosts[0].preference == 10 && hosts[1].preference == 10);
            seen.insert(order);
        }
        seen
    });
    let ab = vec!["a.eq.test", "b.eq.test", "backup.eq.test"];
    let ba = vec!["b.eq.test", "a.eq.test", "backup.eq.test"];
    let seen: HashSet<Vec<&str>> = seen
        .iter()
        .map(|v| v.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(seen, HashSet::from([ab, ba]), "both orders in 50 lookups");
}

#[test]
fn implicit_mx_when_domain_has_only_an_address() {
    // MX query: NOERROR with no answer (and the zone's SOA); the domain has an A.
    let server = DnsServer::start(Zone::new().a("implicit.test", Ipv4Addr::new(192, 0, 2, 7)));
    let (hosts, addrs) = with_dns(&server, T, async |dns| {
        (
            dns.mx_hosts("implicit.test").await,
            dns.addresses("implicit.test").await,
        )
    });
    assert_eq!(
        hosts.unwrap(),
        vec![MxHost {
            name: "implicit.test".into(),
            preference: 0
        }]
    );
    assert_eq!(
        addrs.unwrap(),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))]
    );
}

#[test]
fn null_mx_is_permanent_5_1_10() {
    let server = DnsServer::start(
        Zone::new()
            .mx("nullmx.test", 0, ".")
            .a("nullmx.test", Ipv4Addr::new(192, 0, 2, 8)),
    );
    let r = with_dns(&server, T, async |dns| dns.mx_hosts("nullmx.test").await);
    match r {
        Err(DnsFailure::Permanent { status, text }) => {
            assert_eq!(status, "5.1.10");
            assert!(text.contains("nullmx.test"), "{text}");
        }
        other => panic!("null MX must fail permanently with 5.1.10, got {other:?}"),
    }
}

#[test]
fn nxdomain_is_permanent_5_1_2() {
    // Only other names exist: "missing.test" gets NXDOMAIN with the SOA.
    let server = DnsServer::start(Zone::new().mx("other.test", 10, "mx.other.test"));
    let (mx, addrs) = with_dns(&server, T, async |dns| {
        (
            dns.mx_hosts("missing.test").await,
            dns.addresses("missing.test").await,
        )
    });
    match mx {
        Err(DnsFailure::Permanent { status, text }) => {
            assert_eq!(status, "5.1.2");
            assert!(text.contains("missing.test"), "{text}");
        }
        other => panic!("NXDOMAIN must fail permanently with 5.1.2, got {other:?}"),
    }
    assert!(
        matches!(
            &addrs,
            Err(DnsFailure::Permanent { status, .. }) if *status == "5.1.2"
        ),
        "{addrs:?}"
    );
}

#[test]
fn servfail_is_temporary() {
    let server = DnsServer::start(
        Zone::new()
            .rcode("broken.test", RecordType::MX, ResponseCode::ServFail)
            .rcode("broken.test", RecordType::A, ResponseCode::ServFail)
            .rcode("broken.test", RecordType::AAAA, ResponseCode::ServFail),
    );
    let (mx, addrs) = with_dns(&server, T, async |dns| {
        (
            dns.mx_hosts("broken.test").await,
            dns.addresses("broken.test").await,
        )
    });
    assert!(matches!(mx, Err(DnsFailure::Temporary { .. })), "{mx:?}");
    assert!(
        matches!(addrs, Err(DnsFailure::Temporary { .. })),
        "{addrs:?}"
    );
}

#[test]
fn silent_server_is_temporary_within_bounded_time() {
    let server = DnsServer::silent();
    let start = Instant::now();
    let r = with_dns(&server, Duration::from_secs(1), async |dns| {
        dns.mx_hosts("silent.test").await
    });
    let took = start.elapsed();
    match r {
        Err(DnsFailure::Temporary { text }) => assert!(text.contains("silent.test"), "{text}"),
        other => panic!("no answer must be a temporary failure, got {other:?}"),
    }
    // timeout 1 s, 2 attempts: a few seconds at most, never the default 5 s × n.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        server
            .counters
            .queries()
            .contains(&"silent.test MX udp".to_string()),
        "the query reached the server"
    );
}

#[test]
fn addresses_include_ipv6_and_ipv4() {
    let v4 = Ipv4Addr::new(192, 0, 2, 25);
    let v6: Ipv6Addr = "2001:db8::25".parse().unwrap();
    let server = DnsServer::start(
        Zone::new()
            .mx("dual.test", 10, "mx.dual.test")
            .a("mx.dual.test", v4)
            .aaaa("mx.dual.test", v6),
    );
    let addrs = with_dns(&server, T, async |dns| dns.addresses("mx.dual.test").await).unwrap();
    let set: HashSet<IpAddr> = addrs.iter().copied().collect();
    assert_eq!(
        set,
        HashSet::from([IpAddr::V4(v4), IpAddr::V6(v6)]),
        "addresses {addrs:?}; queries the server saw: {:?}",
        server.counters.queries()
    );
    assert_eq!(addrs.len(), 2, "{addrs:?}");
}

#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    let server = DnsServer::start(
        Zone::new()
            .mx("big.test", 10, "mx1.big.test")
            .mx("big.test", 20, "mx2.big.test")
            .truncate_udp("big.test", RecordType::MX),
    );
    let hosts = with_dns(&server, T, async |dns| dns.mx_hosts("big.test").await).unwrap();
    assert_eq!(names(&hosts), ["mx1.big.test", "mx2.big.test"]);
    let queries = server.counters.queries();
    assert!(
        queries.contains(&"big.test MX udp".to_string())
            && queries.contains(&"big.test MX tcp".to_string()),
        "UDP first, then the full answer over TCP: {queries:?}"
    );
}

// ---------------------------------------------------------------------------
// End to end: a message to user@dest.test goes to dest.test's MX, found in DNS.

/// Start mxring with `dns` as its resolver and `[outbound] port` = the sink's, plus
/// `extra` config; send one message to `rcpt`; return what the sink received.
fn relay_one(dns: &DnsServer, extra: &str, rcpt: &str) -> Arrival {
    let sink = Sink::start(Script::default());
    let server = TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n\
         [dns]\nnameservers = [\"{ns}\"]\ntimeout = \"2s\"\n\
         [outbound]\nport = {port}\n{extra}",
        ns = dns.nameserver(),
        port = sink.addr.port(),
    ));
    let mut c = Client::connect(server.addr("mx"));
    assert_eq!(c.greeting.0, 220, "{}", c.greeting.1);
    let (code, text) = c.cmd("EHLO client.test");
    assert_eq!(code, 250, "{text}");
    let (code, queued) = c.send_mail(
        "sender@client.test",
        &[rcpt],
        "Subject: via MX\r\n\r\nHello through DNS.\r\n.dot-stuffed line\r\n",
    );
    assert_eq!(code, 250, "{queued}");
    assert!(queued.contains("queued as"), "{queued}");
    assert_eq!(c.cmd("QUIT").0, 221);
    let got = sink.arrivals.recv_timeout(Duration::from_secs(20));
    drop(server);
    got.expect("message delivered within 20 s")
}

#[test]
fn delivers_to_mx_found_in_dns() {
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, "mx1.dest.test")
            .a("mx1.dest.test", Ipv4Addr::LOCALHOST),
    );
    let got = relay_one(&dns, "", "user@dest.test");
    assert_eq!(got.from, "sender@client.test");
    assert_eq!(got.rcpts, ["user@dest.test"]);
    let body = String::from_utf8(got.data).expect("the message is UTF-8");
    assert!(
        body.starts_with("Received: "),
        "Received: header at the top: {body}"
    );
    assert!(body.contains("by mx.test"), "{body}");
    assert!(
        body.ends_with("Subject: via MX\r\n\r\nHello through DNS.\r\n.dot-stuffed line\r\n"),
        "{body}"
    );
}

/// A route to a host name without a port goes to `[outbound] port`, like MX hosts.
#[test]
fn route_to_a_host_name_uses_the_outbound_port() {
    let dns = DnsServer::start(Zone::new().a("relay.customer.test", Ipv4Addr::LOCALHOST));
    let route = "[[route]]\ndomains = [\"customer.test\"]\nnext_hop = \"[relay.customer.test]\"\n\
                 [[route]]\ndomains = [\"other.test\"]\nnext_hop = \"relay.customer.test\"\n";
    assert_eq!(
        relay_one(&dns, route, "a@customer.test").rcpts,
        ["a@customer.test"]
    );
    assert_eq!(
        relay_one(&dns, route, "b@other.test").rcpts,
        ["b@other.test"]
    );
}
