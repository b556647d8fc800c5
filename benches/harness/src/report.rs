//! The load run's final report, as a human table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{ClientTls, LoadArgs, OnOff};
use crate::schedule::Offered;
use crate::series::{self, Point, SloReport};
use crate::stats::ThreadStats;

/// Latency percentiles in milliseconds.
#[derive(Serialize, Debug)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn from(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Per-phase latency (see README for where each starts and ends).
#[derive(Serialize, Debug)]
pub struct PhaseReport {
    pub connect: Latency,
    pub banner: Latency,
    pub ehlo: Latency,
    pub starttls: Latency,
    pub mail_rcpt: Latency,
    pub data_end: Latency,
    pub message: Latency,
}

#[derive(Serialize, Debug)]
pub struct RampReport {
    pub start: f64,
    pub end: f64,
    pub over_s: f64,
}

/// What the run loop knows that the threads' statistics do not.
pub struct RunFacts {
    pub ok: u64,
    pub failed: u64,
    pub body_bytes: u64,
    pub elapsed: Duration,
    pub threads: u32,
    pub peak_threads: u64,
    pub fd_limit: u64,
    pub peak_open_sessions: u64,
    pub sessions_before_start: u64,
    pub open_series: Vec<u64>,
    pub offered: Option<Offered>,
}

#[derive(Serialize, Debug)]
pub struct LoadReport {
    pub target: String,
    pub connections: u32,
    /// Event-loop threads (--threads).
    pub threads: u32,
    /// Most threads this process had at once (the event loops plus the main thread).
    pub process_threads_peak: u64,
    /// The open-files limit in force for the run (raised to fit the connections).
    pub fd_limit: u64,
    pub tls: String,
    pub tls_resumption: bool,
    pub pipelining: bool,
    pub bdat: bool,
    pub new_connection_per_message: bool,
    pub recipients: u32,
    pub domains: u32,
    /// The --rate asked for (messages/s), or null when closed loop or ramping.
    pub offered_rate: Option<f64>,
    pub ramp: Option<RampReport>,
    /// Messages taken on: every one is in messages_ok or messages_failed.
    pub messages: u64,
    pub messages_ok: u64,
    pub messages_failed: u64,
    pub elapsed_s: f64,
    pub messages_per_s: f64,
    /// Body bytes of accepted messages, in 10^6 bytes per second.
    pub mb_per_s: f64,
    pub body_bytes: u64,
    /// End of DATA (final ".\r\n" written) to the server's reply.
    pub data_latency_ms: Latency,
    pub connect_latency_ms: Latency,
    /// STARTTLS command (or, implicit TLS, the connection) to the end of the handshake;
    /// empty (count 0) without TLS.
    pub handshake_latency_ms: Latency,
    pub phases_ms: PhaseReport,
    pub connections_opened: u64,
    /// Sessions opened per second of the run (the handshake rate with
    /// --new-connection-per-message).
    pub connections_per_s: f64,
    pub peak_open_sessions: u64,
    /// Sessions opened before the clock started (reused connections open first).
    pub sessions_before_start: u64,
    pub tls_resumed: u64,
    /// Open loop: messages due before the end of the run that were never sent, because
    /// their connection was still behind schedule when the run ended.
    pub backlog: u64,
    pub errors: BTreeMap<String, u64>,
    /// One description per error key.
    pub error_examples: BTreeMap<String, String>,
    pub slo: Option<SloReport>,
    pub series: Vec<Point>,
}

impl LoadReport {
    pub fn new(args: &LoadArgs, f: &RunFacts, stats: &ThreadStats) -> LoadReport {
        let secs = f.elapsed.as_secs_f64().max(1e-9);
        let series = series::build(&stats.series, f.elapsed, &f.open_series, f.offered);
        let p = &stats.phases;
        LoadReport {
            target: args.target.clone(),
            connections: args.connections,
            threads: f.threads,
            process_threads_peak: f.peak_threads,
            fd_limit: f.fd_limit,
            tls: match args.tls {
                ClientTls::None => "none",
                ClientTls::Starttls => "starttls",
                ClientTls::Implicit => "implicit",
            }
            .to_string(),
            tls_resumption: args.tls_resumption == OnOff::On,
            pipelining: !args.no_pipelining,
            bdat: args.bdat,
            new_connection_per_message: args.new_connection_per_message,
            recipients: args.recipients,
            domains: args.domains,
            offered_rate: args.rate,
            ramp: args.ramp.map(|r| RampReport {
                start: r.start,
                end: r.end,
                over_s: r.over.as_secs_f64(),
            }),
            messages: f.ok + f.failed,
            messages_ok: f.ok,
            messages_failed: f.failed,
            elapsed_s: secs,
            messages_per_s: f.ok as f64 / secs,
            mb_per_s: f.body_bytes as f64 / secs / 1e6,
            body_bytes: f.body_bytes,
            data_latency_ms: Latency::from(&p.data_end),
            connect_latency_ms: Latency::from(&p.connect),
            handshake_latency_ms: Latency::from(&p.starttls),
            phases_ms: PhaseReport {
                connect: Latency::from(&p.connect),
                banner: Latency::from(&p.banner),
                ehlo: Latency::from(&p.ehlo),
                starttls: Latency::from(&p.starttls),
                mail_rcpt: Latency::from(&p.mail_rcpt),
                data_end: Latency::from(&p.data_end),
                message: Latency::from(&p.message),
            },
            connections_opened: stats.connections,
            connections_per_s: stats.connections.saturating_sub(f.sessions_before_start) as f64
                / secs,
            peak_open_sessions: f.peak_open_sessions,
            sessions_before_start: f.sessions_before_start,
            tls_resumed: stats.tls_resumed,
            backlog: stats.backlog,
            errors: stats.errors.clone(),
            error_examples: stats.examples.clone(),
            slo: args.slo_p99.map(|limit| series::slo(&series, limit)),
            series,
        }
    }

    /// At least one message went through, and every failure was the server's answer
    /// (a reply code) rather than a broken connection, timeout or protocol violation.
    pub fn success(&self) -> bool {
        self.messages_ok > 0
            && self
                .errors
                .keys()
                .all(|k| k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report is plain data")
    }

    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "target            {} ({} connections on {} threads, tls {}{}, pipelining {}, {})",
            self.target,
            self.connections,
            self.threads,
            self.tls,
            if self.tls != "none" && !self.tls_resumption {
                " without resumption"
            } else {
                ""
            },
            if self.pipelining { "on" } else { "off" },
            if self.new_connection_per_message {
                "new connection per message"
            } else {
                "connections reused"
            }
        );
        let _ = writeln!(
            s,
            "messages          {} ({} ok, {} failed)",
            self.messages, self.messages_ok, self.messages_failed
        );
        let _ = writeln!(s, "elapsed           {:.2} s", self.elapsed_s);
        match (self.offered_rate, &self.ramp) {
            (Some(r), _) => {
                let _ = writeln!(
                    s,
                    "throughput        {:.1} msg/s (offered {r:.1} msg/s)",
                    self.messages_per_s
                );
            }
            (None, Some(r)) => {
                let _ = writeln!(
                    s,
                    "throughput        {:.1} msg/s (offered {:.0} rising to {:.0} msg/s over {:.0} s)",
                    self.messages_per_s, r.start, r.end, r.over_s
                );
            }
            (None, None) => {
                let _ = writeln!(s, "throughput        {:.1} msg/s", self.messages_per_s);
            }
        }
        let _ = writeln!(s, "body throughput   {:.2} MB/s", self.mb_per_s);
        let _ = writeln!(
            s,
            "sessions          {} opened ({} before the clock started, then {:.1}/s), {} open at most{}",
            self.connections_opened,
            self.sessions_before_start,
            self.connections_per_s,
            self.peak_open_sessions,
            if self.tls_resumed > 0 {
                format!(", {} TLS sessions resumed", self.tls_resumed)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "process           {} threads at most, open-files limit {}",
            self.process_threads_peak, self.fd_limit
        );
        if self.backlog > 0 {
            let _ = writeln!(
                s,
                "backlog           {} messages were due but not sent: the server fell behind the offered rate",
                self.backlog
            );
        }
        let p = &self.phases_ms;
        if p.connect.count > 0 {
            let _ = writeln!(
                s,
                "latency (ms)      {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "count", "p50", "p90", "p99", "p99.9", "max"
            );
        }
        for (name, l) in [
            ("  connect", &p.connect),
            ("  banner", &p.banner),
            ("  EHLO", &p.ehlo),
            ("  STARTTLS", &p.starttls),
            ("  MAIL->RCPT", &p.mail_rcpt),
            ("  DATA->250", &p.data_end),
            ("  message", &p.message),
        ] {
            if l.count == 0 {
                continue;
            }
            let _ = writeln!(
                s,
                "{name:<17} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                l.count, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        if let Some(slo) = &self.slo {
            let line = match (slo.crossed_at_s, slo.offered_rate_at_crossing) {
                (Some(t), Some(r)) => format!(
                    "p99 crossed {:.1} ms at {t} s, offered {r:.0} msg/s, achieved {:.0} msg/s",
                    slo.p99_ms,
                    slo.achieved_rate_at_crossing.unwrap_or(0.0)
                ),
                (Some(t), None) => format!(
                    "p99 crossed {:.1} ms at {t} s, achieved {:.0} msg/s",
                    slo.p99_ms,
                    slo.achieved_rate_at_crossing.unwrap_or(0.0)
                ),
                (None, _) => format!("p99 stayed within {:.1} ms every second", slo.p99_ms),
            };
            let _ = writeln!(s, "SLO               {line}");
            if let Some(b) = slo.best_rate_within_slo {
                let _ = writeln!(s, "                  best rate within it: {b:.0} msg/s");
            }
        }
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            serde_json::to_string(&self.errors).expect("plain map")
        };
        let _ = writeln!(s, "errors            {errors}");
        for (k, v) in &self.error_examples {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }
}
