//! SIGHUP reloads policy and routes without dropping connections; a bad new config
//! is refused with a message and the old one stays in force.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use mxring_testkit::client::Client;
use mxring_testkit::process::Mx;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{closed_port, free_port, wait_for, Toml};

/// How long a log line may take to come.
const LOG_WAIT: Duration = Duration::from_secs(20);

fn config(
    domains: &str,
    port: u16,
    admin: std::net::SocketAddr,
    spool: &std::path::Path,
    server_extra: &str,
) -> String {
    Toml::new(spool, 2)
        .server(server_extra)
        .listener("mx", port, "starttls")
        .admin(&admin.to_string())
        .extra(&format!("[relay]\nnetworks = []\ndomains = [{domains}]"))
        .route_all(closed_port())
        .text()
}

fn rcpt(addr: std::net::SocketAddr, to: &str) -> u16 {
    let mut c = Client::connect(addr);
    c.cmd("EHLO c");
    c.cmd("MAIL FROM:<a@s.test>");
    c.cmd(&format!("RCPT TO:<{to}>")).0
}

/// The next log line that has every one of `needles`.
fn wait_for_all(mx: &Mx, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + LOG_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = mx.wait_log(needles[0], left);
        if needles.iter().all(|n| line.contains(n)) {
            return line;
        }
    }
}

/// Write the config file and send SIGHUP.
fn reload_with(mx: &Mx, file: &std::path::Path, text: String) {
    std::fs::write(file, text).unwrap();
    mx.sighup();
}

/// Until every shard has logged that it applied the new settings. The CLI logs
/// "configuration reloaded" too, once it has sent them (before the shards may
/// have taken them), so only the shards' lines count.
fn wait_reloaded(mx: &Mx, shards: usize) {
    let mut pending: Vec<String> = (0..shards).map(|i| format!("shard={i}")).collect();
    while !pending.is_empty() {
        let line = mx.wait_log("configuration reloaded", LOG_WAIT);
        pending.retain(|shard| !line.contains(shard.as_str()));
    }
}

fn stop(mx: Mx) {
    mx.sigterm();
    let status = mx.wait_exit(LOG_WAIT).expect("mxring stops on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_reloads_policy_and_keeps_connections_and_refuses_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin = closed_port();
    let file = dir.path().join("mxring.toml");
    let spool = dir.path().join("spool");
    std::fs::write(&file, config("\"a.test\"", port, admin, &spool, "")).unwrap();
    let mx = Mx::start(&file, dir.path().join("mxring.log"));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(rcpt(addr, "x@a.test"), 250);
    assert_eq!(rcpt(addr, "x@b.test"), 554);

    let mut kept = Client::connect(addr);
    kept.cmd("EHLO kept");
    reload_with(
        &mx,
        &file,
        config(
            "\"b.test\"",
            port,
            admin,
            &spool,
            "command_timeout = \"1s\"\n",
        ),
    );
    wait_reloaded(&mx, 2);
    // Every shard applies it; new connections may land on any of them.
    for _ in 0..8 {
        assert_eq!(rcpt(addr, "x@b.test"), 250);
        assert_eq!(rcpt(addr, "x@a.test"), 554);
    }
    assert_eq!(
        kept.cmd("NOOP").0,
        250,
        "the open connection survived the reload"
    );
    // New sessions take the reloaded timeouts (the default is 5 minutes).
    let started = std::time::Instant::now();
    let mut idle = Client::connect(addr);
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The session that began before the reload keeps the timeout it began with.
    assert_eq!(kept.cmd("NOOP").0, 250);

    reload_with(&mx, &file, "[server]\nshardz = 1\n".into());
    let refused = mx.wait_log("reload refused", LOG_WAIT);
    assert!(refused.contains("shardz"), "{refused}");
    assert_eq!(rcpt(addr, "x@b.test"), 250, "the old config stays in force");

    // A key that needs a restart is named, not silently ignored.
    reload_with(
        &mx,
        &file,
        config(
            "\"b.test\"",
            port,
            admin,
            &spool,
            "max_connections_per_ip = 7\n",
        ),
    );
    let warned = mx.wait_log("only after a restart", LOG_WAIT);
    assert!(warned.contains("server.max_connections_per_ip"), "{warned}");
    wait_reloaded(&mx, 2);
    stop(mx);
}

fn effects_config(
    port: u16,
    admin: std::net::SocketAddr,
    spool: &std::path::Path,
    hops: (std::net::SocketAddr, std::net::SocketAddr),
    ca: &std::path::Path,
    server_extra: &str,
    outbound_extra: &str,
) -> String {
    let (sink, silent) = hops;
    Toml::new(spool, 2)
        .server(server_extra)
        .listener("mx", port, "starttls")
        .admin(&admin.to_string())
        .extra("[relay]\nnetworks = []\ndomains = [\"c.test\", \"slow.test\"]")
        .extra(&format!("[outbound]\n{outbound_extra}"))
        .route("\"c.test\"", sink)
        .route("\"slow.test\"", silent)
        .extra(&format!(
            "[[outbound_tls]]\ndomains = [\"c.test\"]\nlevel = \"verify\"\nca_file = \"{}\"\n\
             match_names = [\"mx.c.test\"]",
            ca.display()
        ))
        .text()
}

/// The code of one (possibly multiline) reply.
fn reply_code(r: &mut impl BufRead) -> u16 {
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "closed before a reply");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line[..3].parse().unwrap();
        }
    }
}

fn send(addr: std::net::SocketAddr, to: &str) -> String {
    let mut c = Client::connect(addr);
    c.cmd("EHLO c");
    let (code, reply) = c.send_mail("a@s.test", &[to], "Subject: reload\r\n\r\nhello\r\n");
    assert_eq!(code, 250, "{reply}");
    mxring_testkit::client::queued_id(&reply)
}

/// Each reloadable key whose effect shows from outside: a CA file replaced in
/// place (the TLS client configs are built again), the outbound reply timeouts
/// and the inbound TLS handshake timeout.
#[test]
fn sighup_applies_a_replaced_ca_file_and_the_reloaded_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let admin = closed_port();
    let file = dir.path().join("mxring.toml");
    let spool = dir.path().join("spool");
    let (old_ca, new_ca) = (mxring_testkit::ca::Ca::new(), mxring_testkit::ca::Ca::new());
    let sink = Sink::start(Script {
        tls: Some(new_ca.issue("mx.c.test")),
        ..Default::default()
    });
    // Accepts (the kernel does) and never says a word: only a banner timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hops = (sink.addr, silent.local_addr().unwrap());
    let ca = old_ca.write(dir.path());
    let text = |server_extra: &str, outbound_extra: &str| {
        effects_config(port, admin, &spool, hops, &ca, server_extra, outbound_extra)
    };
    std::fs::write(&file, text("", "")).unwrap();
    let mx = Mx::start(&file, dir.path().join("mxring.log"));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // The next hop's certificate is from a CA the file does not hold yet.
    let id = send(addr, "x@c.test");
    let line = wait_for_all(&mx, &["to=x@c.test", "result=\"deferred\""]);
    assert!(line.contains("certificate"), "{line}");
    // The same path, another CA: it counts from the reload on.
    new_ca.write(dir.path());
    reload_with(&mx, &file, text("", ""));
    wait_reloaded(&mx, 2);
    let admin_api = mxring::admin::AdminClient::new(admin);
    // 409 while the deferred attempt is still being recorded.
    let (status, body) = wait_for(LOG_WAIT, "the retry to be taken (not 409)", || {
        let (status, body) = admin_api
            .request("POST", &format!("/queue/{id}/retry"))
            .unwrap();
        (status != 409).then_some((status, body))
    })
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let arrival = sink.next(20);
    assert_eq!(arrival.rcpts, ["x@c.test"]);
    assert!(arrival.tls.is_some(), "delivered over verified TLS");

    // Reply timeouts (default 5 minutes for the banner) and the inbound TLS
    // handshake timeout (default 30s) come from the reloaded file.
    reload_with(
        &mx,
        &file,
        text(
            "tls_handshake_timeout = \"1s\"\n",
            "banner_timeout = \"1s\"\n",
        ),
    );
    wait_reloaded(&mx, 2);
    let started = std::time::Instant::now();
    send(addr, "x@slow.test");
    let line = wait_for_all(&mx, &["to=x@slow.test", "result=\"deferred\""]);
    assert!(line.contains("timed out after 1s"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(15), "{line}");

    let raw = std::net::TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut r = BufReader::new(raw.try_clone().unwrap());
    let mut w = raw;
    assert_eq!(reply_code(&mut r), 220);
    w.write_all(b"EHLO c\r\n").unwrap();
    assert_eq!(reply_code(&mut r), 250);
    w.write_all(b"STARTTLS\r\n").unwrap();
    assert_eq!(reply_code(&mut r), 220);
    // No ClientHello follows: the server gives up after the handshake timeout.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection stayed open: {e}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    stop(mx);
}
