//! Hostile clients: slowloris, clients that never read, connection floods from one
//! address, pipelining floods, huge headers, NUL bytes, invalid UTF-8, STARTTLS
//! twice, TLS garbage, and a reset in the middle of DATA. Each gets a clear reply
//! or a closed connection; the server keeps serving and nothing accepted is lost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::{closed_port, route_all, wait_until, TestServer};

fn server(server_keys: &str) -> TestServer {
    TestServer::start_cfg(
        server_keys,
        &format!(
            "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n{}",
            route_all(closed_port())
        ),
    )
}

/// The server still takes mail after the abuse.
fn still_serves(s: &TestServer) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO ok.test");
    assert_eq!(c.send_mail("a@s.test", &["b@d.test"], "x\n").0, 250);
}

#[test]
fn slowloris_one_byte_per_second_hits_the_command_timeout() {
    let s = server("command_timeout = \"2s\"\n");
    let mut c = Client::connect(s.addr("mx"));
    let started = Instant::now();
    // Trickle a command that never ends; every byte arrives well within any per-read
    // timeout, but the command as a whole must not take longer than 2 s.
    let mut raw = TcpStream::connect(s.addr("mx")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 128];
    let _ = raw.read(&mut greeting).unwrap();
    let mut reply = Vec::new();
    for b in b"EHLO slow.client.example".iter().cycle().take(10) {
        if raw.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        raw.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        if let Ok(n) = raw.read(&mut buf) {
            reply.extend_from_slice(&buf[..n]);
            if n == 0 || reply.ends_with(b"\r\n") {
                break;
            }
        }
        raw.set_nonblocking(false).unwrap();
    }
    let text = String::from_utf8_lossy(&reply).to_string();
    assert!(
        text.starts_with("421 4.4.2 mx.test Error: timeout exceeded"),
        "{text:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    // An honest idle client is timed out too, and others are unaffected.
    let (code, _) = c.reply();
    assert_eq!(code, 421);
    still_serves(&s);
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    let s = server("command_timeout = \"2s\"\n");
    let mut raw = TcpStream::connect(s.addr("mx")).unwrap();
    raw.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let flood = b"NOOP\r\n".repeat(10_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut closed = false;
    while Instant::now() < deadline {
        if raw.write_all(&flood).is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the server kept a non-reading client forever");
    still_serves(&s);
}

#[test]
fn connections_per_address_are_capped_with_421() {
    let s = server("max_connections_per_ip = 20\n");
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(Client::connect(s.addr("mx")));
    }
    for _ in 0..5 {
        let c = Client::connect(s.addr("mx"));
        assert_eq!(c.greeting.0, 421, "{}", c.greeting.1);
        assert!(c.greeting.1.contains("421 4.7.0"), "{}", c.greeting.1);
    }
    drop(open.pop());
    // A slot frees when a connection closes; wait for the server to notice.
    wait_until(Duration::from_secs(10), "a connection slot to free", || {
        Client::connect(s.addr("mx")).greeting.0 == 220
    })
    .unwrap();
}

#[test]
fn connection_rate_per_address_is_limited() {
    let s = server("connection_rate_per_ip = 30\n");
    let mut refused = 0;
    for _ in 0..40 {
        let c = Client::connect(s.addr("mx"));
        if c.greeting.0 == 421 {
            refused += 1;
        }
    }
    assert!(
        refused >= 9,
        "only {refused} of 40 refused with a burst of 30"
    );
}

#[test]
fn pipelining_flood_gets_every_reply_in_order() {
    let s = server("");
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    let mut burst = b"NOOP\r\n".repeat(5000);
    burst.extend_from_slice(b"QUIT\r\n");
    c.send_raw(&burst);
    for _ in 0..5000 {
        assert_eq!(c.reply().0, 250);
    }
    assert_eq!(c.reply().0, 221);
}

#[test]
fn huge_header_lines_and_many_headers() {
    let s = server("max_message_size = 100000\n");
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd("RCPT TO:<b@d.test>");
    c.cmd("DATA");
    c.send_raw(format!("Subject: {}\r\n\r\nbody\r\n.\r\n", "h".repeat(5000)).as_bytes());
    let (code, text) = c.reply();
    assert_eq!(code, 500, "{text}");
    assert!(text.contains("5.5.6"));
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd("RCPT TO:<b@d.test>");
    c.cmd("DATA");
    let headers: String = (0..5000)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(60)))
        .collect();
    c.send_raw(format!("{headers}\r\nbody\r\n.\r\n").as_bytes());
    assert_eq!(c.reply().0, 552);
    assert!(s.queue().is_empty());
    still_serves(&s);
}

#[test]
fn nul_bytes_and_invalid_utf8_in_commands() {
    let s = server("");
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.send_raw(b"NOOP\0\r\n");
    assert_eq!(c.reply().0, 500);
    c.send_raw(b"MAIL FROM:<a\0b@s.test>\r\n");
    assert_eq!(c.reply().0, 500);
    c.send_raw(b"MAIL FROM:<\xff\xfe@s.test>\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 500, "{text}");
    assert!(text.contains("not valid UTF-8"));
    assert_eq!(c.cmd("MAIL FROM:<a@s.test>").0, 250);
    let (code, text) = c.cmd("RCPT TO:<jörg@d.test>");
    assert_eq!(code, 553, "{text}");
    assert!(text.contains("5.6.7"));
}

#[test]
fn starttls_twice_and_tls_garbage() {
    let s = server("");
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.starttls(TlsVersion::Tls13);
    c.cmd("EHLO c");
    let (code, text) = c.cmd("STARTTLS");
    assert_eq!(code, 503, "{text}");
    // Garbage instead of a ClientHello: the handshake fails and the connection closes.
    let mut raw = TcpStream::connect(s.addr("mx")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let _ = raw.read(&mut buf).unwrap();
    raw.write_all(b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("220 2.0.0") {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    raw.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .unwrap();
    raw.write_all(b"this is not TLS at all\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("250"),
        "garbage must not be treated as SMTP"
    );
    still_serves(&s);
}

#[test]
fn reset_in_the_middle_of_data_queues_nothing() {
    let s = server("");
    {
        let mut c = Client::connect(s.addr("mx"));
        c.cmd("EHLO c");
        c.cmd("MAIL FROM:<a@s.test>");
        c.cmd("RCPT TO:<b@d.test>");
        c.cmd("DATA");
        c.send_raw(b"Subject: half\r\n\r\nthe first half of a message\r\n");
        // Dropped here: the connection closes without the end of data.
    }
    still_serves(&s);
    let q = s.queue();
    assert_eq!(q.len(), 1, "only the complete message is queued: {q:?}");
}

/// Write `bytes` one at a time every `interval` (for at most `limit`), collecting
/// whatever the server says meanwhile; stops at the first complete reply line that
/// starts with `stop`, or when the server closes. Returns what was read and when
/// it stopped, from `started`.
fn trickle(
    raw: &mut TcpStream,
    bytes: &[u8],
    interval: Duration,
    limit: Duration,
    stop: &str,
    started: Instant,
) -> (String, Duration) {
    let mut seen = Vec::new();
    raw.set_nonblocking(true).unwrap();
    for b in bytes.iter().cycle() {
        if started.elapsed() > limit || raw.write_all(&[*b]).is_err() {
            break;
        }
        let until = Instant::now() + interval;
        let mut closed = false;
        while Instant::now() < until {
            let mut buf = [0u8; 512];
            match raw.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => closed = true,
            }
            let text = String::from_utf8_lossy(&seen);
            if closed || text.lines().any(|l| l.starts_with(stop)) {
                return (text.to_string(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    (
        String::from_utf8_lossy(&seen).to_string(),
        started.elapsed(),
    )
}

/// Issue 11, item 2: while the rest of an over-long line is skipped, the command
/// deadline keeps running from the line's first byte.
#[test]
fn slowloris_after_an_overlong_line_hits_the_command_timeout() {
    let s = server("command_timeout = \"2s\"\n");
    let mut raw = TcpStream::connect(s.addr("mx")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 128];
    let _ = raw.read(&mut greeting).unwrap();
    let started = Instant::now();
    let mut line = b"NOOP ".to_vec();
    line.extend_from_slice(&[b'A'; 600]);
    raw.write_all(&line).unwrap();
    let mut buf = [0u8; 256];
    let n = raw.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        text.starts_with("500 5.5.2 Error: line too long"),
        "{text:?}"
    );
    // The line goes on, a byte every 300 ms: each read is quick, the line is not.
    let (text, took) = trickle(
        &mut raw,
        b"A",
        Duration::from_millis(300),
        Duration::from_secs(10),
        "421",
        started,
    );
    assert!(
        text.contains("421 4.4.2 mx.test Error: timeout exceeded"),
        "after {took:?}: {text:?}"
    );
    assert!(took < Duration::from_secs(5), "closed only after {took:?}");
    still_serves(&s);
}

/// Issue 11, item 6: DATA trickled slower than the idle timeout allows ends at the
/// total deadline for a body, `data_total_timeout`.
#[test]
fn data_trickle_hits_the_total_data_deadline() {
    let s = server("data_timeout = \"2s\"\ndata_total_timeout = \"3s\"\n");
    // DATA content one byte every 300 ms: never idle for 2 s, never done either.
    let mut raw = TcpStream::connect(s.addr("mx")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let _ = raw.read(&mut buf).unwrap();
    raw.write_all(b"EHLO c\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n")
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("354 ") {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "closed before 354");
        seen.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let (text, took) = trickle(
        &mut raw,
        b"Subject: slow\r\n\r\nslow body line\r\n",
        Duration::from_millis(300),
        Duration::from_secs(12),
        "421",
        started,
    );
    assert!(
        text.contains("421 4.4.2 mx.test Error: message not received within the time allowed"),
        "after {took:?}: {text:?}"
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    assert!(s.queue().is_empty());
    still_serves(&s);
}

/// Issue 11, item 7: `RCPT TO:<postmaster>` (no domain) is accepted and delivered
/// to `[server] postmaster`.
#[test]
fn bare_postmaster_is_delivered_to_the_configured_address() {
    let sink = mxring_testkit::sink::Sink::start(Default::default());
    let s = TestServer::start_cfg(
        "postmaster = \"hostmaster@ops.test\"\n",
        &format!(
            "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n{}",
            route_all(sink.addr)
        ),
    );
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    let (code, text) = c.send_mail("someone@s.test", &["postmaster"], "Subject: hi\n\nhello\n");
    assert_eq!(code, 250, "{text}");
    let got = sink.next(30);
    assert_eq!(got.rcpts, ["hostmaster@ops.test"]);
    assert_eq!(got.from, "someone@s.test");
}

/// Issue 11, item 5, the other half: a body held on disk while it arrives (past the
/// spill threshold) is queued and delivered byte for byte, via DATA and via BDAT
/// chunks, and no spill file is left behind.
#[test]
fn large_bodies_spilled_while_arriving_arrive_intact() {
    let sink = mxring_testkit::sink::Sink::start(Default::default());
    let s = TestServer::start_cfg(
        "",
        &format!(
            "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n{}",
            route_all(sink.addr)
        ),
    );
    let body: Vec<u8> = (0..40_000)
        .flat_map(|i| {
            format!("line {i:05} of a body larger than the spill threshold\r\n").into_bytes()
        })
        .collect();
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd("RCPT TO:<b@d.test>");
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(&body);
    c.send_raw(b".\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 250, "{text}");
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd("RCPT TO:<b@d.test>");
    let parts: Vec<&[u8]> = body.chunks(700_001).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = if i + 1 == parts.len() { " LAST" } else { "" };
        c.send_raw(format!("BDAT {}{last}\r\n", part.len()).as_bytes());
        c.send_raw(part);
        let (code, text) = c.reply();
        assert_eq!(code, 250, "chunk {i}: {text}");
    }
    for _ in 0..2 {
        let got = sink.next(30);
        assert!(got.data.ends_with(&body), "body changed on the way");
        let received = &got.data[..got.data.len() - body.len()];
        assert_eq!(
            String::from_utf8_lossy(received)
                .matches("Received:")
                .count(),
            1,
            "{}",
            String::from_utf8_lossy(received)
        );
    }
    s.wait_queue_empty(30);
    let incoming = s.spool.as_ref().unwrap().path().join("incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming).unwrap().collect();
    assert!(left.is_empty(), "spill files left: {left:?}");
}
