//! check-tls: connect to a peer the way delivery would and show, line by line with
//! elapsed seconds, what it really offers: banner, EHLO (or HELO), STARTTLS,
//! protocol and cipher, each certificate, chain and host name verification, the
//! DNSSEC status of the MX and address records and the TLSA records of each MX
//! (with which certificate matched which record), and a verdict on which outbound
//! levels it would satisfy. A domain's MX hosts are tried in order. The transcript
//! always ends with a verdict line. Modelled on CheckTLS transcripts.
//!
//! The SMTP conversation is delivery's own (`delivery::outbound::open_observed`
//! over `proto::ClientSession`, at level `may`): check-tls only watches it and
//! judges what it saw, so the check and delivery cannot drift apart.

mod certs;
mod converse;
mod render;
mod report;
mod resolve;

pub use report::{Dir, HostVerdict, Line, Report, Verdict};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{DnsConfig, TlsLevel};
use crate::dane::DaneState;
use crate::delivery::observe::Observer;
use resolve::Target;

pub struct CheckOptions {
    pub target: String,
    pub helo: String,
    pub port: u16,
    pub dns: DnsConfig,
    pub ca_file: Option<PathBuf>,
    /// Also try MAIL FROM / RCPT TO (never DATA).
    pub mail_from: Option<String>,
    pub rcpt_to: Option<String>,
    pub timeout: Duration,
    /// The level the final verdict line is about (the CLI's `--level`).
    pub level: TlsLevel,
    /// Look up the domain's MTA-STS policy (fetched live, never from a server's
    /// cache) and say which MX hosts it allows; None skips it.
    pub mta_sts: Option<crate::mta_sts::StsSettings>,
}

/// The report being written, and the clock its lines are timed by.
struct Check {
    report: Report,
    start: Instant,
    /// The target domain's MTA-STS lookup, when one was made.
    sts: Option<crate::mta_sts::StsView>,
}

impl Check {
    fn note(&mut self, dir: Dir, text: impl Into<String>) {
        self.note_at(Instant::now(), dir, text);
    }

    /// A line timed by when it happened rather than when it is written down.
    fn note_at(&mut self, at: Instant, dir: Dir, text: impl Into<String>) {
        self.report.lines.push(Line {
            elapsed: at.saturating_duration_since(self.start).as_secs_f64(),
            dir,
            text: text.into(),
        });
    }
}

pub async fn check(o: &CheckOptions) -> Report {
    let mut c = Check {
        report: Report::default(),
        start: Instant::now(),
        sts: None,
    };
    let targets = resolve::targets(o, &mut c).await;
    let mut passed_by = None;
    for t in &targets {
        let verdict = check_host(o, &mut c, t).await;
        if conclude_host(o, &mut c, t, verdict, passed_by.is_some()) && passed_by.is_none() {
            passed_by = Some(t.host.clone());
        }
    }
    c.report.passed = passed_by.is_some();
    c.note(
        Dir::Info,
        final_verdict(o.level, passed_by.as_deref(), targets.len()),
    );
    c.report
}

/// One host: delivery's connection to it, watched, then judged line by line.
async fn check_host(o: &CheckOptions, c: &mut Check, t: &Target) -> Verdict {
    let Some(addr) = t.addr else {
        return Verdict::default();
    };
    c.note(
        Dir::Info,
        format!("Trying TLS on {}[{}]:{}", t.host, addr.ip(), addr.port()),
    );
    let observer = Observer::new(o.timeout);
    let ended = converse::converse(o, &t.host, addr, observer.clone()).await;
    let host = render::HostFacts {
        host: &t.host,
        dane: &t.dane,
        ca_file: o.ca_file.as_deref(),
    };
    render::render(c, &host, &observer.take(), ended.as_ref())
}

/// The host's verdict lines, and its place in the report (the first host to pass,
/// else the first tried, is the report's own); whether it passed.
fn conclude_host(
    o: &CheckOptions,
    c: &mut Check,
    t: &Target,
    verdict: Verdict,
    one_passed: bool,
) -> bool {
    let levels = verdict.levels();
    let satisfied = if levels.is_empty() {
        "no level (no SMTP session)".to_string()
    } else {
        levels.join(", ")
    };
    let dane_asked = o.dns.dnssec != crate::config::Dnssec::Off
        || matches!(o.level, TlsLevel::Dane | TlsLevel::DaneOnly);
    if let (true, Some(DaneState::NotApplicable(why))) = (dane_asked, &verdict.dane_state) {
        c.note(
            Dir::Info,
            format!("Level dane falls back to may here: DANE does not apply ({why})"),
        );
    }
    resolve::note_sts_host(c, &t.host, &verdict);
    c.note(
        Dir::Info,
        format!("Verdict: {} satisfies {satisfied}", t.host),
    );
    let passes = verdict.satisfies(o.level);
    c.report.hosts.push(HostVerdict {
        host: t.host.clone(),
        address: t.addr,
        verdict: verdict.clone(),
    });
    if c.report.address.is_none() || (passes && !one_passed) {
        c.report.host = t.host.clone();
        c.report.address = t.addr;
        c.report.verdict = verdict;
    }
    passes
}

fn final_verdict(level: TlsLevel, passed_by: Option<&str>, tried: usize) -> String {
    let level = level.name();
    match (passed_by, tried) {
        (Some(h), _) => format!("Verdict: level {level} is met (by {h})"),
        (None, 0) => format!("Verdict: level {level} is not met: no host to try"),
        (None, 1) => format!("Verdict: level {level} is not met"),
        (None, n) => format!("Verdict: level {level} is not met by any of the {n} MX hosts"),
    }
}
