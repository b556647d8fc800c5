//! `ClientSession` fed arbitrary server bytes in arbitrary chunks by a driver that
//! behaves like the delivery code: a transaction on `Ready`, the handshake on
//! `StartTls`, the body on `SendData`/`SendChunk`, QUIT after a few transactions.
//!
//! Input layout: `flags, n, len_1 .. len_n, server bytes...`
//! - flags bits 0-1: TLS want (never, opportunistic, required, opportunistic)
//! - flags bits 2-3: recipients per transaction, 1 to 4
//! - flags bit 4: SMTPUTF8; bit 5: 8BITMIME body; bit 6: RET and ENVID
//! - flags bit 7: QUIT after the first transaction (else after three)
//! - every second transaction asks REQUIRETLS
//! - n % 8 chunk lengths, each one byte; the rest of the input is the last chunk.
//!
//! Properties: no panic; `consumed <= len`; our commands are CRLF lines; an outcome
//! has one entry per recipient; when no STARTTLS happened the actions and commands
//! do not depend on how the input was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxring::proto::client::{ClientAction, ClientSession, OutboundRcpt, OutboundTx, TlsWant};
use mxring::proto::envelope::{BodyType, Ret};

#[derive(PartialEq, Debug)]
struct Run {
    out: Vec<u8>,
    actions: Vec<ClientAction>,
    starttls: bool,
}

fn transaction(flags: u8, n: usize) -> OutboundTx {
    let rcpts = ((flags >> 2) & 3) as usize + 1;
    OutboundTx {
        sender: format!("sender{n}@s.example"),
        rcpts: (0..rcpts)
            .map(|i| OutboundRcpt {
                address: format!("r{i}@r.example"),
                notify: (i % 2 == 0).then(|| mxring::proto::NotifyFlags::parse("FAILURE,DELAY").unwrap()),
                orcpt: (i % 3 == 0).then(|| format!("rfc822;r{i}+x@r.example")),
            })
            .collect(),
        size: 100 + n as u64,
        body_type: if flags & 0x20 != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        smtputf8: flags & 0x10 != 0,
        ret: (flags & 0x40 != 0).then_some(Ret::Hdrs),
        envid: (flags & 0x40 != 0).then(|| "env id=1".to_string()),
        requiretls: n % 2 == 1,
    }
}

fn check_commands(out: &[u8]) {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "command ends mid-line"
    );
    for (i, &c) in out.iter().enumerate() {
        match c {
            b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in commands"),
            b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "bare LF in commands"),
            _ => {}
        }
    }
}

fn drive(flags: u8, chunks: &[&[u8]]) -> Run {
    let tls = [
        TlsWant::Never,
        TlsWant::Opportunistic,
        TlsWant::Required,
        TlsWant::Opportunistic,
    ][(flags & 3) as usize];
    let max_tx = if flags & 0x80 != 0 { 1 } else { 3 };
    let mut s = ClientSession::new("client.fuzz.example", tls);
    let mut run = Run {
        out: Vec::new(),
        actions: Vec::new(),
        starttls: false,
    };
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut started = 0usize;
    let mut rcpts_in_tx = 0usize;
    let mut quit_sent = false;
    let mut steps = 0usize;
    'chunks: for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "driver loop does not terminate");
            let _ = s.timeout();
            let (n, action) = s.feed(&pending, &mut out);
            assert!(n <= pending.len(), "consumed {n} of {}", pending.len());
            pending.drain(..n);
            if action == ClientAction::NeedMore {
                break;
            }
            run.actions.push(action.clone());
            match action {
                ClientAction::NeedMore => unreachable!(),
                ClientAction::Ready | ClientAction::Done(_) => {
                    if let ClientAction::Done(o) = &action {
                        assert_eq!(o.rcpts.len(), rcpts_in_tx, "one outcome per recipient");
                        if !o.mail.is_positive() {
                            assert!(o.data.is_none(), "data reply without MAIL accepted");
                        }
                    }
                    if quit_sent {
                        continue;
                    }
                    if started < max_tx {
                        let tx = transaction(flags, started);
                        started += 1;
                        rcpts_in_tx = tx.rcpts.len();
                        match s.start_transaction(&tx, &mut out) {
                            Ok(ClientAction::NeedMore | ClientAction::SendChunk) => {}
                            Ok(other) => panic!("start_transaction returned {other:?}"),
                            Err(_) => {
                                s.quit(&mut out);
                                quit_sent = true;
                            }
                        }
                    } else {
                        s.quit(&mut out);
                        quit_sent = true;
                    }
                }
                // The body goes to the socket, not into `out`; nothing to model.
                ClientAction::SendData | ClientAction::SendChunk => {}
                ClientAction::StartTls => {
                    run.starttls = true;
                    pending.clear();
                    s.tls_established(&mut out);
                    assert!(s.tls_active());
                }
                ClientAction::Failed(_) | ClientAction::Closed => break 'chunks,
            }
        }
    }
    let _ = s.capabilities();
    run.out = out;
    run
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, whole_input, chunks)) = mxring_fuzz::chunked_input(data) else {
        return;
    };

    let split = drive(flags, &chunks);
    check_commands(&split.out);
    let whole = drive(flags, &[whole_input]);
    check_commands(&whole.out);
    if !split.starttls && !whole.starttls {
        assert_eq!(split.actions, whole.actions, "actions depend on the split");
        assert_eq!(split.out, whole.out, "commands depend on the split");
    }
});
