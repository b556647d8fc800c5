//! `ServerSession` fed arbitrary client bytes in arbitrary chunks by a driver that
//! behaves like the shard's: it keeps unconsumed bytes, completes STARTTLS, stores
//! messages (or fails to, per an input bit) and stops at `Close`.
//!
//! Input layout: `flags, n, len_1 .. len_n, client bytes...`
//! - flags bits 0-1: listener TLS (none, starttls, required, starttls)
//! - flags bit 2: client inside `relay.networks` (127.0.0.1) or not (192.0.2.1)
//! - flags bit 3: negotiated TLS version 1.2 (set) or 1.3
//! - flags bits 4-7: message i is stored with `Err(Io)` when bit 4 + i % 4 is set
//! - n % 8 chunk lengths, each one byte; the rest of the input is the last chunk.
//!
//! Properties: no panic; `consumed <= len`; the output is a sequence of well-formed
//! replies (3 digits, space or dash, CRLF, same code on every line of one reply);
//! a message received with DATA holds no bare CR or LF; and when no STARTTLS
//! happened the replies and messages do not depend on how the input was split.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mxring::config::{self, ListenerTls, TlsVersion};
use mxring::policy::Policy;
use mxring::proto::reply::parse_reply;
use mxring::proto::{Envelope, Event, ServerSession, SessionConfig, StoreFailure, TlsFacts};
use mxring::queue::IdSource;

const MAX_RECIPIENTS: usize = 3;
const DATA_GO_AHEAD: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";

const POLICY: &str = r#"
[[listener]]
address = "127.0.0.1:0"

[relay]
networks = ["127.0.0.0/8"]
domains = ["local.example", "*.sub.local.example"]

[[inbound_tls]]
recipients = ["secret@local.example"]
require = true

[[inbound_tls]]
senders = ["*@bank.example"]
min_version = "1.3"

[[inbound_tls]]
recipients = ["*@tls12.local.example"]
min_version = "1.2"

[[inbound_tls]]
clients = ["192.0.2.0/24"]
recipients = ["plain@local.example"]
require = false
"#;

struct Configs {
    by_tls: [Arc<SessionConfig>; 3],
}

fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let c = config::load_str(POLICY, "fuzz").expect("fuzz policy loads");
        let policy = Arc::new(Policy::from_config(&c, "fuzz"));
        let make = |listener_tls| {
            Arc::new(SessionConfig {
                hostname: "mx.fuzz.example".into(),
                max_message_size: 2_000,
                max_recipients: MAX_RECIPIENTS,
                max_errors: 12,
                listener: "mx".into(),
                listener_tls,
                policy: policy.clone(),
                auth: Default::default(),
                postmaster: "postmaster@mx.test".into(),
            })
        };
        Configs {
            by_tls: [
                make(ListenerTls::None),
                make(ListenerTls::Starttls),
                make(ListenerTls::Required),
            ],
        }
    })
}

#[derive(PartialEq, Debug)]
struct Run {
    out: Vec<u8>,
    messages: Vec<(u64, Envelope, Vec<u8>)>,
    closed: bool,
    starttls: bool,
}

fn no_bare_line_endings(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && b[i - 1] == b'\r',
        _ => true,
    })
}

fn drive(flags: u8, chunks: &[&[u8]]) -> Run {
    let cfg = configs().by_tls[[0, 1, 2, 1][(flags & 3) as usize]].clone();
    let ip: IpAddr = if flags & 4 != 0 {
        "127.0.0.1".parse().unwrap()
    } else {
        "192.0.2.1".parse().unwrap()
    };
    let version = if flags & 8 != 0 {
        TlsVersion::Tls12
    } else {
        TlsVersion::Tls13
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut s = ServerSession::new(cfg, ip, IdSource::new(1, SystemTime::UNIX_EPOCH, 0));
    let mut out = Vec::new();
    s.greeting(&mut out);
    let mut run = Run {
        out: Vec::new(),
        messages: Vec::new(),
        closed: false,
        starttls: false,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut steps = 0usize;
    'chunks: for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "driver loop does not terminate");
            let fed = s.feed(&pending, now, &mut out);
            assert!(
                fed.consumed <= pending.len(),
                "consumed {} of {}",
                fed.consumed,
                pending.len()
            );
            pending.drain(..fed.consumed);
            match fed.event {
                None => break,
                Some(Event::StartTls) => {
                    run.starttls = true;
                    pending.clear();
                    s.tls_established(
                        version,
                        TlsFacts {
                            version: version.name().into(),
                            cipher: "TLS13_AES_128_GCM_SHA256".into(),
                            dane: None,
                        },
                    );
                }
                Some(Event::Message(m)) => {
                    let from_data = out.ends_with(DATA_GO_AHEAD);
                    let (id, env, body) = (m.id, m.envelope, m.body);
                    assert!(
                        !env.recipients.is_empty() && env.recipients.len() <= MAX_RECIPIENTS,
                        "{} recipients",
                        env.recipients.len()
                    );
                    assert!(body.starts_with(b"Received: "), "no Received header");
                    if from_data {
                        assert!(
                            no_bare_line_endings(&body),
                            "bare CR or LF in a DATA message: {:?}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    let i = run.messages.len();
                    let result = if flags & (0x10 << (i % 4)) != 0 {
                        Err(StoreFailure::Io)
                    } else {
                        Ok(id)
                    };
                    s.message_stored(result, &mut out);
                    run.messages.push((id, env, body));
                }
                Some(Event::Authenticate) => {
                    // Listeners here offer no AUTH, so this never happens; answer anyway.
                    let c = s
                        .take_credentials()
                        .expect("Event::Authenticate has credentials");
                    let _ = c;
                    s.auth_checked(mxring::proto::auth::AuthOutcome::Rejected, &mut out);
                }
                Some(Event::Close) => {
                    assert!(s.is_closed(), "Close event but the session is open");
                    run.closed = true;
                    break 'chunks;
                }
            }
        }
    }
    let _ = s.waiting();
    run.out = out;
    run
}

/// The output must be CRLF-terminated lines making up whole, well-formed replies.
fn check_output(out: &[u8]) {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "output ends mid-line"
    );
    for line in out.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue; // after the final LF
        }
        let text = line.strip_suffix(b"\r").unwrap_or_else(|| {
            panic!(
                "reply line without CRLF: {:?}",
                String::from_utf8_lossy(line)
            )
        });
        assert!(
            !text.contains(&b'\r'),
            "bare CR in a reply: {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            text.len() >= 4
                && text[..3].iter().all(u8::is_ascii_digit)
                && matches!(text[3], b' ' | b'-'),
            "malformed reply line: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let mut rest = out;
    while !rest.is_empty() {
        match parse_reply(rest) {
            Ok(Some((_, n))) => rest = &rest[n..],
            other => panic!(
                "output does not parse as replies ({other:?}) at {:?}",
                String::from_utf8_lossy(rest)
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, rest, chunks)) = mxring_fuzz::chunked_input(data) else {
        return;
    };

    let split = drive(flags, &chunks);
    check_output(&split.out);
    let whole = drive(flags, &[rest]);
    check_output(&whole.out);
    // STARTTLS drops whatever followed it in the same read, so only runs without it
    // must agree whatever the split.
    if !split.starttls && !whole.starttls {
        if split.out != whole.out {
            panic!(
                "replies depend on the split:\nwhole: {:?}\nsplit: {:?}",
                String::from_utf8_lossy(&whole.out),
                String::from_utf8_lossy(&split.out)
            );
        }
        assert_eq!(
            split.messages, whole.messages,
            "messages depend on the split"
        );
        assert_eq!(split.closed, whole.closed);
    }
});
