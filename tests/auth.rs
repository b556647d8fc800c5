//! Submission with SMTP AUTH over real loopback sockets and real TLS: AUTH refused
//! before STARTTLS and accepted after, 535 for a wrong password, the lockout after
//! five failures and its end, relaying as an authenticated user, a sender the login
//! does not own, and an `accounts` rule that a forged MAIL FROM cannot trigger.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{closed_port, wait_for, wait_until, TestServer};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn plain(login: &str, password: &str) -> String {
    format!("AUTH PLAIN {}", b64(&format!("\0{login}\0{password}")))
}

/// A users file with alice (who also owns *@alice.test) and bob.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let alice = mxring::auth::hash_password(b"alice-pw").unwrap();
    let bob = mxring::auth::hash_password(b"bob-pw").unwrap();
    let path = dir.join("users");
    std::fs::write(
        &path,
        format!("# test accounts\nalice@customer-a.test:{alice}:*@alice.test\nbob@customer-b.test:{bob}\n"),
    )
    .unwrap();
    path
}

fn route(domain: &str, to: std::net::SocketAddr) -> String {
    format!(
        "[[route]]\ndomains = [\"{domain}\"]\nnext_hop = \"[{}]:{}\"\n",
        to.ip(),
        to.port()
    )
}

/// A submission listener (STARTTLS required, AUTH required) and an MX listener,
/// relaying for nobody by address.
fn server(users: &Path, extra: &str) -> TestServer {
    TestServer::start(&format!(
        "[[listener]]\nname = \"submission\"\naddress = \"127.0.0.1:0\"\ntls = \"required\"\nauth = \"required\"\n\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [auth]\nusers_file = \"{}\"\nfailure_window = \"2s\"\n{extra}",
        users.display()
    ))
}

fn submit(s: &TestServer) -> Client {
    let mut c = Client::connect(s.addr("submission"));
    c.cmd("EHLO laptop.test");
    c.starttls(TlsVersion::Tls13);
    c.cmd("EHLO laptop.test");
    c
}

#[test]
fn auth_is_refused_before_starttls_and_accepted_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&users_file(dir.path()), "[relay]\nnetworks = []\n");
    let mut c = Client::connect(s.addr("submission"));
    let (code, ehlo) = c.cmd("EHLO laptop.test");
    assert_eq!(code, 250);
    assert!(!ehlo.contains("AUTH"), "AUTH offered in plaintext: {ehlo}");
    let (code, text) = c.cmd(&plain("alice@customer-a.test", "alice-pw"));
    assert_eq!(
        (code, text.as_str()),
        (
            538,
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
        )
    );
    c.starttls(TlsVersion::Tls13);
    let (_, ehlo) = c.cmd("EHLO laptop.test");
    assert!(
        ehlo.contains("250-AUTH PLAIN LOGIN\r\n") || ehlo.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{ehlo}"
    );
    let (code, text) = c.cmd("MAIL FROM:<alice@customer-a.test>");
    assert_eq!(
        (code, text.as_str()),
        (530, "530 5.7.0 Authentication required\r\n")
    );
    let (code, text) = c.cmd(&plain("alice@customer-a.test", "wrong"));
    assert_eq!(
        (code, text.as_str()),
        (535, "535 5.7.8 Authentication credentials invalid\r\n")
    );
    // LOGIN, step by step.
    assert_eq!(c.cmd("AUTH LOGIN").1, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.cmd(&b64("alice@customer-a.test")).1,
        "334 UGFzc3dvcmQ6\r\n"
    );
    let (code, text) = c.cmd(&b64("alice-pw"));
    assert_eq!(
        (code, text.as_str()),
        (235, "235 2.7.0 Authentication successful\r\n")
    );
    assert_eq!(c.cmd("MAIL FROM:<alice@customer-a.test>").0, 250);
}

#[test]
fn an_authenticated_user_relays_and_only_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(Script::default());
    let held = closed_port();
    let s = server(
        &users_file(dir.path()),
        &format!(
            "[relay]\nnetworks = []\n{}{}",
            route("far.test", sink.addr),
            route("held.test", held)
        ),
    );
    // Without AUTH, the MX listener relays for nobody.
    let mut mx = Client::connect(s.addr("mx"));
    mx.cmd("EHLO outsider.test");
    mx.cmd("MAIL FROM:<alice@customer-a.test>");
    let (code, text) = mx.cmd("RCPT TO:<x@far.test>");
    assert_eq!(code, 554, "{text}");

    let mut c = submit(&s);
    assert_eq!(c.cmd(&plain("alice@customer-a.test", "alice-pw")).0, 235);
    let (code, text) = c.cmd("MAIL FROM:<ceo@bank.test>");
    assert_eq!(
        (code, text.as_str()),
        (553, "553 5.7.1 <ceo@bank.test>: Sender address rejected: not owned by user alice@customer-a.test\r\n")
    );
    let (code, _) = c.send_mail(
        "sales@alice.test",
        &["x@far.test"],
        "Subject: from alice\n\nhello\n",
    );
    assert_eq!(code, 250);
    let got = sink.next(20);
    assert_eq!(got.from, "sales@alice.test");
    let data = String::from_utf8_lossy(&got.data);
    assert!(data.contains("(mxring) with ESMTPSA id "), "{data}");
    assert!(
        !data.contains("alice@customer-a.test"),
        "login shown in Received: {data}"
    );
    // The null sender is allowed; the login is stored with the message.
    let (code, _) = c.send_mail("", &["y@held.test"], "Subject: bounce\n\nx\n");
    assert_eq!(code, 250);
    let q = s.queue();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].login.as_deref(), Some("alice@customer-a.test"));
}

#[test]
fn five_failures_lock_the_address_out_until_the_window_passes() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&users_file(dir.path()), "");
    let mut c = submit(&s);
    for _ in 0..5 {
        assert_eq!(c.cmd(&plain("alice@customer-a.test", "guess")).0, 535);
    }
    let fifth = Instant::now();
    // Locked: even the right password gets 454, from a new connection too.
    let (code, text) = c.cmd(&plain("alice@customer-a.test", "alice-pw"));
    assert_eq!(
        (code, text.as_str()),
        (454, "454 4.7.0 Temporary authentication failure\r\n")
    );
    let mut other = submit(&s);
    assert_eq!(other.cmd(&plain("bob@customer-b.test", "bob-pw")).0, 454);
    // The window is 2 s: poll, bounded, until the right password works again.
    wait_until(Duration::from_secs(15), "the lockout to end", || {
        // A new session each time: 454s count as session errors (max_errors).
        let (code, _) = submit(&s).cmd(&plain("bob@customer-b.test", "bob-pw"));
        assert!(code == 235 || code == 454, "{code}");
        code == 235
    })
    .unwrap();
    assert!(
        fifth.elapsed() >= Duration::from_millis(1900),
        "lockout ended after {:?}",
        fifth.elapsed()
    );
}

#[test]
fn an_accounts_rule_defers_alice_to_a_plaintext_next_hop_and_not_bob_or_a_forged_alice() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext_only = Sink::start(Script::default());
    let s = server(
        &users_file(dir.path()),
        &format!(
            "[relay]\nnetworks = [\"127.0.0.0/8\"]\n{}[[outbound_tls]]\naccounts = [\"alice@customer-a.test\"]\nlevel = \"encrypt\"\n[queue]\nretry = [\"1h\"]\n",
            route("far.test", plaintext_only.addr)
        ),
    );
    let mut alice = submit(&s);
    assert_eq!(
        alice.cmd(&plain("alice@customer-a.test", "alice-pw")).0,
        235
    );
    let (code, reply) = alice.send_mail(
        "alice@customer-a.test",
        &["to-alice@far.test"],
        "Subject: a\n\nx\n",
    );
    assert_eq!(code, 250);
    let alice_id = mxring_testkit::client::queued_id(&reply);
    let mut bob = submit(&s);
    assert_eq!(bob.cmd(&plain("bob@customer-b.test", "bob-pw")).0, 235);
    assert_eq!(
        bob.send_mail(
            "bob@customer-b.test",
            &["to-bob@far.test"],
            "Subject: b\n\nx\n"
        )
        .0,
        250
    );
    // From a relay network, without AUTH: MAIL FROM alice is only an envelope sender.
    let mut forged = Client::connect(s.addr("mx"));
    forged.cmd("EHLO forger.test");
    assert_eq!(
        forged
            .send_mail(
                "alice@customer-a.test",
                &["forged@far.test"],
                "Subject: f\n\nx\n"
            )
            .0,
        250
    );

    let mut got: Vec<String> = (0..2)
        .map(|_| plaintext_only.next(20).rcpts[0].clone())
        .collect();
    got.sort();
    assert_eq!(got, ["forged@far.test", "to-bob@far.test"]);
    // Alice's message waits for a next hop with TLS, with the reason.
    let reply = wait_for(
        Duration::from_secs(20),
        "an attempt for alice's message",
        || {
            let q = s.queue();
            let m = q
                .iter()
                .find(|m| m.id == alice_id)
                .expect("alice's message is queued");
            m.recipients[0].last_reply.clone()
        },
    )
    .unwrap();
    assert!(
        reply.contains("4.7.4") && reply.contains("TLS is required, but was not offered"),
        "{reply}"
    );
    assert!(
        plaintext_only.arrivals.try_recv().is_err(),
        "alice's message went out in plaintext"
    );
}

#[test]
fn implicit_tls_submission_and_a_users_file_reload() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let text = |users: &Path| {
        format!(
            "[server]\nhostname = \"mx.test\"\nshards = 1\nspool = \"{}\"\n[admin]\naddress = \"\"\n\
             [[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:0\"\ntls = \"implicit\"\nauth = true\n\
             [auth]\nusers_file = \"{}\"\n",
            dir.path().join("spool").display(),
            users.display()
        )
    };
    let config = mxring::config::load_str(&text(&users), "test").unwrap();
    let server = mxring::shard::start(config, "test").unwrap();
    let addr = server.address("smtps").unwrap();
    let mut c = Client::connect_tls(addr);
    let (_, ehlo) = c.cmd("EHLO laptop.test");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(c.cmd(&plain("carol@customer-c.test", "carol-pw")).0, 535);
    // A new account, then a reload: the open session stays, the new login works.
    let carol = mxring::auth::hash_password(b"carol-pw").unwrap();
    let mut file = std::fs::read_to_string(&users).unwrap();
    file.push_str(&format!("carol@customer-c.test:{carol}\n"));
    std::fs::write(&users, file).unwrap();
    server
        .reload(
            mxring::config::load_str(&text(&users), "test").unwrap(),
            "test",
        )
        .unwrap();
    assert_eq!(c.cmd(&plain("carol@customer-c.test", "carol-pw")).0, 235);
    // A broken users file is refused, naming the file and line; the accounts stay.
    std::fs::write(&users, "dave@d.test:plaintext\n").unwrap();
    let err = server
        .reload(
            mxring::config::load_str(&text(&users), "test").unwrap(),
            "test",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&users.display().to_string()) && err.contains("line 1"),
        "{err}"
    );
    let mut again = Client::connect_tls(addr);
    again.cmd("EHLO laptop.test");
    assert_eq!(
        again.cmd(&plain("alice@customer-a.test", "alice-pw")).0,
        235
    );
    server.shutdown();
}

#[test]
fn a_slow_password_check_does_not_hold_up_other_sessions_on_the_shard() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    // t=60: about 30 times the cost of a default hash, so the check takes a while.
    let params = argon2::Params::new(19456, 60, 1, None).unwrap();
    let slow = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(
            b"slow-pw",
            &SaltString::encode_b64(b"saltsaltsalt").unwrap(),
        )
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("slow@s.test:{slow}\n")).unwrap();
    // One shard: a check on its event loop would stall every session.
    let s = server(&users, "");
    let mut waiting = submit(&s);
    let mut other = submit(&s);
    let started = Instant::now();
    waiting.send_raw(format!("{}\r\n", plain("slow@s.test", "slow-pw")).as_bytes());
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(200) {
        let t = Instant::now();
        assert_eq!(other.cmd("NOOP").0, 250);
        slowest = slowest.max(t.elapsed());
    }
    assert_eq!(waiting.reply().0, 235);
    let check = started.elapsed();
    println!("password check {check:?}; slowest NOOP meanwhile {slowest:?}");
    assert!(
        check >= Duration::from_millis(250),
        "the check was too quick to tell: {check:?}"
    );
    assert!(
        slowest < check / 3,
        "a NOOP took {slowest:?} during a {check:?} check"
    );
}

#[test]
fn policy_explain_account_shows_the_accounts_rule_and_a_forged_sender_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mxring.toml");
    std::fs::write(
        &file,
        "[[listener]]\naddress = \"127.0.0.1:25\"\n\
         [[outbound_tls]]\naccounts = [\"alice@customer-a.test\", \"*@customer-b.test\"]\nlevel = \"encrypt\"\n",
    )
    .unwrap();
    let explain = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxring"))
            .args([
                "policy",
                "explain",
                "--direction",
                "outbound",
                "--recipient",
                "x@far.test",
                "--config",
            ])
            .arg(&file)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let by_login = explain(&["--account", "carol@customer-b.test"]);
    assert!(
        by_login.contains("matched:   account *@customer-b.test"),
        "{by_login}"
    );
    assert!(by_login.contains("level:     encrypt"), "{by_login}");
    let forged = explain(&["--sender", "alice@customer-a.test"]);
    assert!(forged.contains("level:     may"), "{forged}");
    assert!(forged.contains("give --account LOGIN"), "{forged}");
}
