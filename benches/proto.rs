//! Micro-benchmarks of the hot paths under the bench harness's end-to-end figures:
//! command parsing, whole sessions, DATA decoding and dot-stuffing, the spool's
//! group commit, the timer wheel, and TLS record protection.
//!
//! Run a short pass with
//! `cargo bench --bench proto -- --warm-up-time 1 --measurement-time 3`;
//! append a group name (e.g. `store`) to run one group only.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, ClientConnection, ConnectionCommon, ServerConnection};

use mxring::config::{ListenerTls, TlsVersion};
use mxring::policy::Policy;
use mxring::proto::command::parse_command;
use mxring::proto::data::{dot_stuff, DataDecoder};
use mxring::proto::envelope::BodyType;
use mxring::proto::{Envelope, Event, Recipient, ServerSession, SessionConfig};
use mxring::queue::IdSource;
use mxring::queue::{QueuedMessage, ShardQueue, Spool};
use mxring::timer::TimerWheel;

// The server binary runs on mimalloc (src/main.rs); measure with the same allocator,
// since sled inserts and message buffers spend much of their time in it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A fixed "now": the session only uses it for Received headers and arrival times.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Body of `approx_len` octets or a little more, in the wire form a client sends
/// after DATA: 76-character lines (base64-like), every 16th line dot-stuffed,
/// ending with the CRLF "." CRLF marker. Returns (wire, unstuffed content).
fn data_body(approx_len: usize) -> (Vec<u8>, Vec<u8>) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut content = Vec::with_capacity(approx_len + 80);
    let mut line = 0usize;
    while content.len() < approx_len {
        let mut text: Vec<u8> = (0..76)
            .map(|i| ALPHABET[(i * 7 + line * 13) % ALPHABET.len()])
            .collect();
        if line % 16 == 5 {
            text[0] = b'.';
        }
        content.extend_from_slice(&text);
        content.extend_from_slice(b"\r\n");
        line += 1;
    }
    let mut wire = Vec::new();
    dot_stuff(&content, &mut wire);
    (wire, content)
}

fn size_label(n: usize) -> String {
    if n >= MIB {
        format!("{}MiB", n / MIB)
    } else {
        format!("{}KiB", n / KIB)
    }
}

// ---------------------------------------------------------------- parse

/// Command lines as a typical ESMTP client sends them, CRLF removed.
const COMMAND_MIX: &[&[u8]] = &[
    b"EHLO mail-ed1-f41.google.com",
    b"MAIL FROM:<bounces+1234-abcd-user=example.org@em123.sendgrid.net> SIZE=48213 BODY=8BITMIME RET=HDRS ENVID=QQ314159",
    b"RCPT TO:<alice@local.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@local.example",
    b"RCPT TO:<bob@local.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob+2Blist@local.example",
    b"DATA",
    b"RSET",
    b"BDAT 1000 LAST",
    b"NOOP",
];

fn bench_parse(c: &mut Criterion) {
    let bytes: usize = COMMAND_MIX.iter().map(|l| l.len()).sum();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("command_mix", |b| {
        b.iter(|| {
            for line in COMMAND_MIX {
                // Every line of the mix is valid: a parse error would mean the
                // bench measures the error path instead.
                black_box(parse_command(black_box(line)).unwrap());
            }
        })
    });
    group.finish();
}

// ---------------------------------------------------------------- session

fn session_config(max_message_size: u64) -> Arc<SessionConfig> {
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nnetworks = []\ndomains = [\"local.example\"]\n";
    let c = mxring::config::load_str(text, "bench").expect("bench config");
    Arc::new(SessionConfig {
        hostname: "mx.bench.test".into(),
        max_message_size,
        max_recipients: 100,
        max_errors: 20,
        listener: "mx".into(),
        listener_tls: ListenerTls::Starttls,
        policy: Arc::new(Policy::from_config(&c, "bench")),
        auth: Default::default(),
        postmaster: "postmaster@mx.bench".into(),
    })
}

/// What a pipelining client writes for one message, split the way it reaches the
/// server: EHLO; the MAIL/RCPT/DATA group; the body in 16 KiB socket reads; QUIT.
fn session_input(body_len: usize) -> Vec<Vec<u8>> {
    let mut body =
        b"From: sender@client.example\r\nTo: alice@local.example\r\nSubject: bench\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&data_body(body_len).0);
    let envelope = format!(
        "MAIL FROM:<sender@client.example> SIZE={} BODY=8BITMIME\r\n\
         RCPT TO:<alice@local.example> NOTIFY=FAILURE ORCPT=rfc822;alice@local.example\r\n\
         RCPT TO:<bob@local.example>\r\n\
         DATA\r\n",
        body.len()
    );
    let mut chunks = vec![b"EHLO client.example\r\n".to_vec(), envelope.into_bytes()];
    chunks.extend(body.chunks(16 * KIB).map(<[u8]>::to_vec));
    chunks.push(b"QUIT\r\n".to_vec());
    chunks
}

/// One connection from greeting to QUIT, driven as the shard driver does it:
/// carry unconsumed bytes over, and "store" each message at once. Returns the
/// number of messages accepted.
fn run_session(cfg: &Arc<SessionConfig>, ip: IpAddr, chunks: &[Vec<u8>]) -> usize {
    let mut s = ServerSession::new(cfg.clone(), ip, IdSource::new(0, SystemTime::UNIX_EPOCH, 0));
    let mut out = Vec::with_capacity(4 * KIB);
    let mut pending: Vec<u8> = Vec::with_capacity(32 * KIB);
    let mut stored = 0;
    s.greeting(&mut out);
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let fed = s.feed(&pending, now(), &mut out);
            pending.drain(..fed.consumed);
            match fed.event {
                None => break,
                Some(Event::Message(m)) => {
                    let (id, env, body) = (m.id, m.envelope, m.body);
                    black_box((&env, &body));
                    s.message_stored(Ok(id), &mut out);
                    stored += 1;
                }
                Some(Event::Close) => return stored,
                Some(Event::StartTls) => unreachable!("the bench client never asks for TLS"),
                Some(Event::Authenticate) => unreachable!("the bench listener offers no AUTH"),
            }
        }
        // The driver writes `out` once per read; here it is only discarded.
        out.clear();
    }
    stored
}

fn bench_session(c: &mut Criterion) {
    let cfg = session_config(10 * MIB as u64);
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let mut group = c.benchmark_group("session");
    for body_len in [KIB, 100 * KIB] {
        let chunks = session_input(body_len);
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        // A silently refused message would make the figure meaningless.
        assert_eq!(run_session(&cfg, ip, &chunks), 1, "bench message refused");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("transaction", size_label(body_len)),
            &chunks,
            |b, chunks| b.iter(|| run_session(&cfg, ip, chunks)),
        );
    }
    group.finish();
}

// ---------------------------------------------------------------- DATA

const BODY_SIZES: [usize; 3] = [KIB, 64 * KIB, MIB];

fn bench_data_unstuff(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_unstuff");
    for size in BODY_SIZES {
        let (wire, content) = data_body(size);
        // The output buffer is reused so the figure is the decoder's, not the allocator's.
        let mut out = Vec::with_capacity(content.len());
        // Checked before timing: criterion skips filtered-out benches, not this code.
        DataDecoder::new(u64::MAX).decode(&wire, &mut out);
        assert!(out == content, "decoder output differs from the body");
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(size_label(size)),
            &wire,
            |b, wire| {
                b.iter(|| {
                    out.clear();
                    let mut dec = DataDecoder::new(u64::MAX);
                    let (used, done) = dec.decode(black_box(wire), &mut out);
                    assert!(done && used == wire.len());
                })
            },
        );
    }
    group.finish();
}

fn bench_dot_stuff(c: &mut Criterion) {
    let mut group = c.benchmark_group("dot_stuff");
    for size in BODY_SIZES {
        let (wire, content) = data_body(size);
        let mut out = Vec::with_capacity(wire.len());
        dot_stuff(&content, &mut out);
        assert!(out == wire, "dot_stuff output differs from the wire form");
        group.throughput(Throughput::Bytes(content.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(size_label(size)),
            &content,
            |b, content| {
                b.iter(|| {
                    out.clear();
                    dot_stuff(black_box(content), &mut out);
                })
            },
        );
    }
    group.finish();
}

// ---------------------------------------------------------------- store

fn envelope() -> Envelope {
    let rcpt = |address: &str| Recipient {
        address: address.into(),
        notify: None,
        orcpt: None,
    };
    Envelope {
        sender: "sender@client.example".into(),
        recipients: vec![rcpt("alice@local.example"), rcpt("bob@local.example")],
        ret: None,
        envid: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        client_ip: "192.0.2.10".parse().unwrap(),
        helo: "client.example".into(),
        tls: None,
        arrival_ms: 1_800_000_000_000,
        listener: "mx".into(),
        requiretls: false,
        tls_required_no: false,
    }
}

/// `per_commit` sessions each append a message and wait for it to be durable, all
/// at once, so the shard's committer covers them with one write and fdatasync.
async fn store_batch(
    q: &ShardQueue,
    record: &QueuedMessage,
    body: &[u8],
    next_id: &mut u64,
    per_commit: usize,
) {
    let mut waits = Vec::with_capacity(per_commit);
    for _ in 0..per_commit {
        waits.push(q.append(*next_id, record, None, body).expect("append"));
        *next_id += 1;
    }
    for w in waits {
        w.wait().await.expect("durable");
    }
}

fn bench_store(c: &mut Criterion) {
    // On the target directory's file system, not a possible tmpfs /tmp, so the
    // fsync is real.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let spool = Spool::open(dir.path()).expect("open spool");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The shard's log runs on a LocalSet, as on a shard thread (epoll back end).
    let local = tokio::task::LocalSet::new();
    let q = local
        .block_on(&rt, ShardQueue::start(spool.shard(0).expect("shard 0")))
        .expect("shard queue");
    let body = data_body(KIB).1;
    let record = QueuedMessage::new(envelope(), body.len() as u64);
    let mut next_id = 1u64;

    let mut group = c.benchmark_group("store");
    // Each iteration waits for at least one fsync: few, slow iterations.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for per_commit in [1usize, 64] {
        group.throughput(Throughput::Bytes((per_commit * body.len()) as u64));
        group.bench_function(
            BenchmarkId::new("enqueue_1KiB", format!("{per_commit}_per_commit")),
            |b| {
                b.iter(|| {
                    local.block_on(
                        &rt,
                        store_batch(&q, &record, &body, &mut next_id, per_commit),
                    )
                })
            },
        );
    }
    group.finish();
}

// ---------------------------------------------------------------- timer

const TIMERS: usize = 100_000;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// Due times spread uniformly over the next 24 hours, seeded for repeatability.
fn due_times() -> Vec<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let start = 1_800_000_000_000u64;
    (0..TIMERS)
        .map(|_| start + rng.gen_range(0..DAY_MS))
        .collect()
}

fn filled_wheel(due: &[u64]) -> TimerWheel<u64> {
    let mut wheel = TimerWheel::new(1_800_000_000_000);
    for (id, &t) in due.iter().enumerate() {
        wheel.insert(t, id as u64);
    }
    wheel
}

fn bench_timer(c: &mut Criterion) {
    let due = due_times();
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("insert_100k_24h", |b| b.iter(|| filled_wheel(&due)));
    // A shard ticks its wheel as timers come due; 1 s steps over the day.
    group.bench_function("advance_1s_steps_24h", |b| {
        b.iter_batched(
            || filled_wheel(&due),
            |mut wheel| {
                let mut fired = 0;
                let mut t = wheel.now_ms();
                let end = t + DAY_MS;
                while t < end {
                    t += 1000;
                    fired += wheel.advance(t).due.len();
                }
                assert_eq!(fired, TIMERS);
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

// ---------------------------------------------------------------- TLS

const RECORD: usize = 16 * KIB;

/// A server config like `mxring::tls::server_config`, but whose provider offers
/// only `suite`: the server picks from its own list, so this forces the suite
/// whatever the client offers.
fn server_config_with(suite: CipherSuite) -> Arc<rustls::ServerConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    assert_eq!(
        provider.cipher_suites.len(),
        1,
        "{suite:?} not in aws-lc-rs"
    );
    let (certs, key) = mxring::tls::self_signed("bench.test").expect("self-signed cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(mxring::tls::protocol_versions(TlsVersion::Tls13))
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    Arc::new(config)
}

/// Move every pending TLS byte from `from` to `to` and let `to` process it.
fn transfer<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write_tls");
    }
    let mut rd = &wire[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).expect("read_tls");
        to.process_new_packets().expect("process_new_packets");
    }
}

/// A connected client/server pair, handshake done in memory.
fn tls_pair(suite: CipherSuite) -> (ClientConnection, ServerConnection) {
    let client_cfg =
        mxring::tls::client_config(&mxring::tls::ClientVerification::None, TlsVersion::Tls13)
            .expect("client config");
    let name = ServerName::try_from("bench.test").unwrap();
    let mut client = ClientConnection::new(client_cfg, name).unwrap();
    let mut server = ServerConnection::new(server_config_with(suite)).unwrap();
    // A few extra rounds after the handshake deliver the session tickets too.
    for _ in 0..4 {
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(
        client.negotiated_cipher_suite().map(|s| s.suite()),
        Some(suite)
    );
    (client, server)
}

/// Encrypt one 16 KiB record (the largest TLS allows) and take its wire bytes.
fn seal(client: &mut ClientConnection, plain: &[u8], wire: &mut Vec<u8>) {
    client.writer().write_all(plain).expect("write plaintext");
    while client.wants_write() {
        client.write_tls(wire).expect("write_tls");
    }
}

/// Decrypt the records in `wire` and read the plaintext back out.
fn open(server: &mut ServerConnection, wire: &[u8], plain: &mut [u8]) {
    let mut rd = wire;
    while !rd.is_empty() {
        server.read_tls(&mut rd).expect("read_tls");
        server.process_new_packets().expect("decrypt");
    }
    server.reader().read_exact(plain).expect("read plaintext");
}

fn bench_tls(c: &mut Criterion) {
    let plain = vec![0x5au8; RECORD];
    let mut group = c.benchmark_group("tls_seal_open");
    group.throughput(Throughput::Bytes(RECORD as u64));
    for suite in [
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ] {
        let name = suite.as_str().unwrap_or("?");
        // Seal alone: nobody reads these records, so this pair is spent after.
        let (mut client, _server) = tls_pair(suite);
        let mut wire = Vec::with_capacity(RECORD + 64);
        group.bench_function(BenchmarkId::new("seal_16KiB", name), |b| {
            b.iter(|| {
                wire.clear();
                seal(&mut client, &plain, &mut wire);
            })
        });

        // Open alone: records carry sequence numbers, so each needs fresh
        // ciphertext; sealing it is setup, outside the timing.
        let (mut client, mut server) = tls_pair(suite);
        let mut back = vec![0u8; RECORD];
        // One untimed round trip: the plaintext comes back, in a single record
        // (5-octet header, 16-octet tag, 1-octet inner content type).
        wire.clear();
        seal(&mut client, &plain, &mut wire);
        assert_eq!(wire.len(), RECORD + 22, "not one record");
        open(&mut server, &wire, &mut back);
        assert!(back == plain, "TLS round trip corrupted the data");
        group.bench_function(BenchmarkId::new("open_16KiB", name), |b| {
            b.iter_batched(
                || {
                    let mut wire = Vec::with_capacity(RECORD + 64);
                    seal(&mut client, &plain, &mut wire);
                    wire
                },
                // Returned, so freeing it is not timed.
                |wire| {
                    open(&mut server, &wire, &mut back);
                    wire
                },
                // 1 MiB of ciphertext per batch: a size-relative batch would
                // hold hundreds of MiB and time page faults.
                BatchSize::NumIterations(64),
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_session,
    bench_data_unstuff,
    bench_dot_stuff,
    bench_store,
    bench_timer,
    bench_tls
);
criterion_main!(benches);
