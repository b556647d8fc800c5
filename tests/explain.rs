//! `mxring policy explain` must say what the live server does. For every inbound
//! case of tests/policy.rs (and the `required` listener floor), the same config
//! drives both a running server and the `mxring` binary's explain; the verdicts
//! ("accepted" or the 530 text) must agree.

use std::process::Command;

use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::TestServer;

struct Case {
    name: &'static str,
    listener_tls: &'static str,
    rules: &'static str,
    sender: &'static str,
    recipient: &'static str,
    tls: Option<TlsVersion>,
}

/// The server's verdict: "accepted" when MAIL and RCPT get 250, else the 530 text.
fn live(s: &TestServer, c: &Case) -> String {
    let mut client = Client::connect(s.addr("mx"));
    client.cmd("EHLO client.test");
    if let Some(v) = c.tls {
        client.starttls(v);
        client.cmd("EHLO client.test");
    }
    for cmd in [
        format!("MAIL FROM:<{}>", c.sender),
        format!("RCPT TO:<{}>", c.recipient),
    ] {
        let (code, text) = client.cmd(&cmd);
        match code {
            250 => {}
            530 => {
                let line = text.lines().last().unwrap_or("").to_string();
                // RCPT refusals name the recipient first; explain speaks of the rule.
                let line = line.replace(&format!("<{}>: ", c.recipient), "");
                return format!("refused: {line}");
            }
            _ => panic!("{}: {cmd}: unexpected {text}", c.name),
        }
    }
    "accepted".into()
}

fn explained(config: &std::path::Path, c: &Case) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxring"));
    cmd.args([
        "policy",
        "explain",
        "--direction",
        "inbound",
        "--listener",
        "mx",
    ])
    .args(["--client-ip", "127.0.0.1", "--sender", c.sender])
    .args(["--recipient", c.recipient])
    .arg("--config")
    .arg(config);
    if let Some(v) = c.tls {
        cmd.args([
            "--tls-version",
            if v == TlsVersion::Tls12 { "1.2" } else { "1.3" },
        ]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: {text}{}",
        c.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = text
        .lines()
        .find_map(|l| l.strip_prefix("verdict:"))
        .unwrap_or_else(|| panic!("{}: no verdict in {text}", c.name))
        .trim();
    // "accepted (without TLS)" -> "accepted"; the facts in brackets are explain's own.
    verdict
        .rsplit_once(" (")
        .map_or(verdict, |v| v.0)
        .to_string()
}

#[test]
fn explain_agrees_with_the_server_for_every_inbound_policy_case() {
    const CLIENT: &str = "[[inbound_tls]]\nclients = [\"127.0.0.0/8\"]\nrequire = true\n";
    const SENDER: &str = "[[inbound_tls]]\nsenders = [\"*@partner.test\"]\nrequire = true\n";
    const RCPTS: &str =
        "[[inbound_tls]]\nrecipients = [\"*@bank.test\", \"john.smith\"]\nrequire = true\n";
    const MIN13: &str =
        "[[inbound_tls]]\nrecipients = [\"*\"]\nrequire = true\nmin_version = \"1.3\"\n";
    const EXEMPT: &str = "[[inbound_tls]]\nsenders = [\"*@partner.test\"]\nrequire = false\n";
    let case = |name, listener_tls, rules, sender, recipient, tls| Case {
        name,
        listener_tls,
        rules,
        sender,
        recipient,
        tls,
    };
    let t12 = Some(TlsVersion::Tls12);
    let t13 = Some(TlsVersion::Tls13);
    let cases = [
        case(
            "client rule, plaintext",
            "starttls",
            CLIENT,
            "a@outside.test",
            "x@bank.test",
            None,
        ),
        case(
            "client rule, TLS",
            "starttls",
            CLIENT,
            "a@outside.test",
            "x@bank.test",
            t13,
        ),
        case(
            "sender rule, that sender",
            "starttls",
            SENDER,
            "ceo@partner.test",
            "x@bank.test",
            None,
        ),
        case(
            "sender rule, another sender",
            "starttls",
            SENDER,
            "a@else.test",
            "x@bank.test",
            None,
        ),
        case(
            "recipient rule, domain",
            "starttls",
            RCPTS,
            "a@outside.test",
            "teller@bank.test",
            None,
        ),
        case(
            "recipient rule, local part",
            "starttls",
            RCPTS,
            "a@outside.test",
            "John.Smith@corp.test",
            None,
        ),
        case(
            "recipient rule, other",
            "starttls",
            RCPTS,
            "a@outside.test",
            "jane@corp.test",
            None,
        ),
        case(
            "recipient rule, TLS",
            "starttls",
            RCPTS,
            "a@outside.test",
            "teller@bank.test",
            t13,
        ),
        case(
            "minimum 1.3 on TLS 1.2",
            "starttls",
            MIN13,
            "a@outside.test",
            "x@bank.test",
            t12,
        ),
        case(
            "minimum 1.3 on TLS 1.3",
            "starttls",
            MIN13,
            "a@outside.test",
            "x@bank.test",
            t13,
        ),
        case(
            "no rule, starttls listener",
            "starttls",
            "",
            "a@outside.test",
            "x@bank.test",
            None,
        ),
        case(
            "required listener is a floor",
            "required",
            EXEMPT,
            "a@partner.test",
            "x@bank.test",
            None,
        ),
        case(
            "required listener, TLS",
            "required",
            EXEMPT,
            "a@partner.test",
            "x@bank.test",
            t12,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for c in &cases {
        let extra = format!(
            "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"{}\"\n\
             [relay]\nnetworks = []\ndomains = [\"bank.test\", \"corp.test\"]\n\
             {}{}",
            c.listener_tls,
            mxring_testkit::route_all(mxring_testkit::closed_port()),
            c.rules
        );
        let s = TestServer::start(&extra);
        let file = dir.path().join("explain.toml");
        std::fs::write(&file, &extra).unwrap();
        let (server, explain) = (live(&s, c), explained(&file, c));
        assert_eq!(
            explain, server,
            "{}: explain disagrees with the server",
            c.name
        );
    }
}
