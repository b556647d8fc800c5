//! PROXY protocol listeners: v1 and v2 headers from the load balancer's network set
//! the client address used for policy and Received headers; a header from anyone
//! else, or a malformed one, closes the connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mxring_testkit::{closed_port, route_all, TestServer};

fn server(networks: &str) -> TestServer {
    TestServer::start(&format!(
        "[[listener]]\nname = \"lb\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\nproxy_protocol = true\nproxy_networks = [{networks}]\n\
         [[inbound_tls]]\nclients = [\"203.0.113.0/24\"]\nrequire = true\n\
         [relay]\nnetworks = [\"198.51.100.0/24\"]\n{}",
        route_all(closed_port())
    ))
}

fn talk(s: &TestServer, header: &[u8], commands: &str) -> String {
    let mut t = TcpStream::connect(s.addr("lb")).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = header.to_vec();
    all.extend_from_slice(commands.as_bytes());
    t.write_all(&all).unwrap();
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

const MAIL: &str = "EHLO c\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\nSubject: p\r\n\r\nx\r\n.\r\nQUIT\r\n";

#[test]
fn v1_header_sets_the_client_for_relay_and_received() {
    let s = server("\"127.0.0.1\"");
    let out = talk(&s, b"PROXY TCP4 198.51.100.7 192.0.2.1 55555 25\r\n", MAIL);
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let q = s.queue();
    assert_eq!(q[0].client_ip, "198.51.100.7");
    let (_, body) = s
        .admin()
        .request("GET", &format!("/queue/{}", q[0].id))
        .unwrap();
    assert!(body.contains("([198.51.100.7])"), "{body}");
}

#[test]
fn v2_header_and_policy_by_real_client() {
    let s = server("\"127.0.0.0/8\"");
    // v2, PROXY command, TCP over IPv4, 203.0.113.9:4000 -> 192.0.2.1:25.
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[
        0x21, 0x11, 0x00, 12, 203, 0, 113, 9, 192, 0, 2, 1, 0x0f, 0xa0, 0x00, 25,
    ]);
    let out = talk(&s, &h, "EHLO c\r\nMAIL FROM:<a@s.test>\r\nQUIT\r\n");
    // The inbound_tls rule for 203.0.113.0/24 applies to the real client.
    assert!(
        out.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{out}"
    );
}

#[test]
fn header_from_outside_proxy_networks_or_malformed_closes() {
    let s = server("\"10.0.0.0/8\"");
    let out = talk(&s, b"PROXY TCP4 198.51.100.7 192.0.2.1 55555 25\r\n", MAIL);
    assert_eq!(out, "", "no greeting for a peer outside proxy_networks");
    let s = server("\"127.0.0.1\"");
    for bad in [
        &b"PROXY TCP4 198.51.100.7  192.0.2.1 1 25\r\n"[..],
        b"EHLO no header\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        let out = talk(&s, bad, MAIL);
        assert_eq!(
            out,
            "",
            "malformed header {:?} must close",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(s.queue().is_empty());
}
