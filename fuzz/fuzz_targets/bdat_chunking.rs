//! BDAT content through `ServerSession`, cut into chunks by the input.
//!
//! Input layout: `flags, n, len_1 .. len_n, content...` (see `chunked_input`): the
//! content is sent as `n % 8 + 1` BDAT chunks, the last with LAST; the whole
//! transcript (commands and chunks) is then fed to the session in pieces of
//! `flags % 16 + 1` octets and also all at once.
//!
//! Properties (issue 11):
//! 1. The verdict does not depend on the chunking nor on the TCP segmentation:
//!    accepted exactly when `ContentCheck` accepts the content whole, refused at the
//!    first chunk whose end shows an error, and the same replies however it is fed.
//! 2. An accepted message holds exactly the content sent (after our Received
//!    header), and that content is canonical: no NUL, no bare CR or LF, so the
//!    outbound encoder relays it unchanged and no next hop can find an early end.
//! 3. A refused one is refused with 550 5.6.0, 500 5.5.6 or 552 5.3.4, as DATA is.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use mxring::config::{self, ListenerTls};
use mxring::policy::Policy;
use mxring::proto::content::ContentCheck;
use mxring::proto::data::DataError;
use mxring::proto::encode::is_canonical;
use mxring::proto::{Event, ServerSession, SessionConfig, StoreFailure};
use mxring::queue::IdSource;
use mxring_fuzz::chunked_input;

const MAX_SIZE: u64 = 3_000;

fn session_config() -> Arc<SessionConfig> {
    static CFG: OnceLock<Arc<SessionConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let c = config::load_str(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\ndomains = [\"local.example\"]\n",
            "fuzz",
        )
        .expect("fuzz config loads");
        Arc::new(SessionConfig {
            hostname: "mx.fuzz.example".into(),
            max_message_size: MAX_SIZE,
            max_recipients: 3,
            max_errors: 100,
            listener: "mx".into(),
            listener_tls: ListenerTls::None,
            policy: Arc::new(Policy::from_config(&c, "fuzz")),
            postmaster: "postmaster@mx.fuzz.example".into(),
            auth: Default::default(),
        })
    })
    .clone()
}

/// Feed `wire` in pieces of `step` octets (keeping what is not consumed, as the
/// driver does); returns the output and the stored message bodies.
fn drive(wire: &[u8], step: usize) -> (String, Vec<Vec<u8>>) {
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut s = ServerSession::new(session_config(), ip, IdSource::new(1, now, 0));
    let mut out = Vec::new();
    s.greeting(&mut out);
    let mut pending: Vec<u8> = Vec::new();
    let mut bodies = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        pending.extend_from_slice(piece);
        loop {
            let fed = s.feed(&pending, now, &mut out);
            assert!(fed.consumed <= pending.len());
            pending.drain(..fed.consumed);
            match fed.event {
                Some(Event::Message(m)) => {
                    let (id, body) = (m.id, m.body);
                    bodies.push(body);
                    s.message_stored(Ok::<u64, StoreFailure>(id), &mut out);
                }
                Some(Event::Close) => return (String::from_utf8_lossy(&out).into(), bodies),
                Some(Event::StartTls) => unreachable!("STARTTLS is not offered here"),
                Some(Event::Authenticate) => unreachable!("AUTH is not offered here"),
                None => break,
            }
        }
    }
    (String::from_utf8_lossy(&out).into(), bodies)
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, content, chunks)) = chunked_input(data) else {
        return;
    };
    let mut wire = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\n".to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { " LAST" } else { "" };
        wire.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
    }
    wire.extend_from_slice(b"NOOP\r\n");

    // The session refuses at the end of the first chunk with an error, naming the
    // error seen by then; with none, the verdict is that of the content whole.
    let mut check = ContentCheck::new(MAX_SIZE);
    let mut refusal = None;
    for (i, chunk) in chunks.iter().enumerate() {
        check.check(chunk);
        if i + 1 == chunks.len() {
            check.finish();
        }
        if let Some(e) = check.error() {
            refusal = Some(e);
            break;
        }
    }
    let mut whole = ContentCheck::new(MAX_SIZE);
    whole.check(content);
    whole.finish();
    assert_eq!(
        refusal.is_none(),
        whole.error().is_none(),
        "verdict depends on the chunking"
    );

    let (out, bodies) = drive(&wire, wire.len());
    let (out_split, bodies_split) = drive(&wire, usize::from(flags % 16) + 1);
    assert_eq!(out, out_split, "replies depend on the segmentation");
    assert_eq!(bodies, bodies_split);
    assert!(
        out.ends_with("250 2.0.0 Ok\r\n"),
        "session out of sync: {out:?}"
    );

    match refusal {
        None => {
            assert_eq!(bodies.len(), 1, "{out}");
            assert!(bodies[0].ends_with(content), "content changed");
            assert!(
                is_canonical(&bodies[0]),
                "accepted content is not canonical"
            );
        }
        Some(e) => {
            assert!(bodies.is_empty(), "refused content stored: {e:?}");
            let want = match e {
                DataError::TooBig => "552 5.3.4",
                DataError::LineTooLong => "500 5.5.6",
                DataError::BareLineEnding | DataError::Nul => "550 5.6.0",
            };
            assert!(out.contains(want), "{e:?}: {out}");
        }
    }
});
