//! What all sink connections share: settings and the counters the report is made of.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How the sink answers.
pub struct Behaviour {
    pub reply_code: u16,
    pub reject_rate: f64,
    pub reject_code: u16,
    pub reply_delay: Option<Duration>,
    pub dump_dir: Option<PathBuf>,
}

pub struct SinkState {
    pub acceptor: Option<TlsAcceptor>,
    /// TLS starts with the connection instead of after STARTTLS.
    pub implicit_tls: bool,
    pub reply_code: u16,
    pub reject_rate: f64,
    pub reject_code: u16,
    pub reply_delay: Option<Duration>,
    pub dump_dir: Option<PathBuf>,
    started: Instant,
    pub messages: AtomicU64,
    pub accepted: AtomicU64,
    pub bytes: AtomicU64,
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub peak_active: AtomicU64,
    /// Messages that came by BDAT (the rest by DATA).
    pub bdat_messages: AtomicU64,
    pub dump_errors: AtomicU64,
    /// The first MAIL FROM: where a load generator's clock starts too.
    first_mail: OnceLock<Instant>,
    /// Nanoseconds after `started` at which the latest message completed.
    last_message_ns: AtomicU64,
}

impl SinkState {
    pub fn new(tls: Option<Arc<ServerConfig>>, implicit_tls: bool, b: Behaviour) -> Self {
        SinkState {
            acceptor: tls.map(TlsAcceptor::from),
            implicit_tls,
            reply_code: b.reply_code,
            reject_rate: b.reject_rate,
            reject_code: b.reject_code,
            reply_delay: b.reply_delay,
            dump_dir: b.dump_dir,
            started: Instant::now(),
            messages: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            active: AtomicU64::new(0),
            peak_active: AtomicU64::new(0),
            bdat_messages: AtomicU64::new(0),
            dump_errors: AtomicU64::new(0),
            first_mail: OnceLock::new(),
            last_message_ns: AtomicU64::new(0),
        }
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_active.fetch_max(now, Ordering::Relaxed);
    }

    pub fn mail_started(&self) {
        self.first_mail.get_or_init(Instant::now);
    }

    pub fn connection_closed(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Counts a message answered with `code`.
    pub fn record_message(&self, bytes: u64, code: u16, kept: Option<&[u8]>) {
        let n = self.messages.fetch_add(1, Ordering::Relaxed);
        if (200..300).contains(&code) {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let ns = self.started.elapsed().as_nanos() as u64;
        self.last_message_ns.fetch_max(ns, Ordering::Relaxed);
        if let (Some(dir), Some(data)) = (&self.dump_dir, kept) {
            if fs::write(dir.join(format!("{n:08}.eml")), data).is_err() {
                self.dump_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The span over which messages arrived: first MAIL FROM to last message. Idle time
    /// before the load generator starts (or while it opens its sessions) or after it
    /// stops would only dilute the rate.
    pub fn active_span(&self) -> Duration {
        let Some(first) = self.first_mail.get() else {
            return Duration::ZERO;
        };
        let last =
            self.started + Duration::from_nanos(self.last_message_ns.load(Ordering::Relaxed));
        last.saturating_duration_since(*first)
    }
}
