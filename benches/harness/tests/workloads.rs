//! The event-driven load generator and sink under the workloads operators ask for:
//! open-loop rates and ramps with an SLO,
//! TLS resumption on and off, a rejecting and a slow sink, several domains, and the
//! time series in JSON, CSV and SVG. Real processes on loopback, every run bounded.

use mxring_testkit::bench::{load, start_sink, stop_sink, temp_dir};
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn series_csv_and_plot_agree_with_the_totals() {
    let dir = temp_dir("series");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("series.csv");
    let svg = dir.join("plot.svg");
    let sink = start_sink(&[]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--connections",
            "8",
            "--rate",
            "200",
            "--duration",
            "3",
            "--size",
            "1k",
            "--csv",
            csv.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    let series = r["series"].as_array().unwrap();
    assert!((3..=4).contains(&series.len()), "{} seconds", series.len());
    let sum: u64 = series.iter().map(|p| u(&p["messages_ok"])).sum();
    assert_eq!(sum, u(&r["messages_ok"]));
    assert_eq!(s["messages"], r["messages_ok"]);
    // 200/s for 3 s, open loop: the sink keeps up easily.
    let ok = u(&r["messages_ok"]);
    assert!((560..=601).contains(&ok), "{ok} messages at 200/s for 3 s");
    for p in series.iter().filter(|p| f(&p["span"]) == 1.0) {
        assert_eq!(f(&p["offered_rate"]), 200.0);
        assert!(f(&p["p99_ms"]) > 0.0);
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("t,span,offered_rate,messages_ok"));
    let rows: Vec<_> = lines.collect();
    assert_eq!(rows.len(), series.len());
    let csv_sum: u64 = rows
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(csv_sum, ok);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"), "{}", &plot[..plot.len().min(200)]);
    assert!(plot.contains("messages/s") && plot.contains("p99"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sink that waits 20 ms before each answer serves about 24 messages/s per
/// pipelined connection, so four connections top out near 95/s: a ramp from 20 to
/// 400/s must see the p99 cross 100 ms once the offered rate passes that capacity.
#[test]
fn ramp_finds_where_p99_crosses_the_slo() {
    let sink = start_sink(&["--reply-delay", "20ms"]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--connections",
            "4",
            "--ramp",
            "20:400:5s",
            "--slo-p99",
            "100ms",
            "--size",
            "1k",
        ],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    let slo = &r["slo"];
    assert_eq!(slo["crossed"], true, "{slo}");
    let at = f(&slo["offered_rate_at_crossing"]);
    assert!(
        (60.0..=250.0).contains(&at),
        "crossed at an offered {at} msg/s"
    );
    assert!(f(&slo["best_rate_within_slo"]) < 120.0, "{slo}");
    assert!(
        u(&r["backlog"]) > 0,
        "the server fell behind, so messages were owed"
    );
    // The run lasts the ramp's 5 s, and the delay shows in every reply.
    assert!(
        (5.0..6.5).contains(&f(&r["elapsed_s"])),
        "{}",
        r["elapsed_s"]
    );
    assert!(f(&r["phases_ms"]["data_end"]["p50"]) >= 20.0);
    assert_eq!(s["messages"], r["messages_ok"]);
}

#[test]
fn sink_rejects_the_asked_fraction() {
    let sink = start_sink(&["--reject-rate", "0.3", "--reject-code", "451"]);
    let (code, r) = load(
        &sink.addr,
        &["--connections", "4", "--messages", "300", "--size", "1k"],
    );
    let s = stop_sink(sink);
    // Reply codes are the server's answer, not a fault of the run.
    assert_eq!(code, 0, "{r}");
    let rejected = u(&r["errors"]["451"]);
    assert_eq!(u(&r["messages_ok"]) + rejected, 300);
    assert_eq!(u(&r["messages_failed"]), rejected);
    // 90 expected; the bounds are six standard deviations out.
    assert!((40..=140).contains(&rejected), "{rejected} of 300 refused");
    assert_eq!(u(&s["rejected"]), rejected);
    assert_eq!(u(&s["accepted"]), u(&r["messages_ok"]));
}

fn tls_run(resumption: &str) -> Value {
    let sink = start_sink(&["--tls", "starttls"]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--connections",
            "2",
            "--messages",
            "30",
            "--tls",
            "starttls",
            "--new-connection-per-message",
            "--tls-resumption",
            resumption,
            "--size",
            "1k",
        ],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    assert_eq!(u(&r["messages_ok"]), 30);
    assert_eq!(u(&r["connections_opened"]), 30);
    assert_eq!(u(&r["phases_ms"]["starttls"]["count"]), 30);
    assert_eq!(u(&s["messages"]), 30);
    r
}

/// The handshake-rate workload: a new TLS session per message, resumed from the
/// tickets of earlier ones unless resumption is off.
#[test]
fn tls_handshake_rate_with_and_without_resumption() {
    let on = tls_run("on");
    // Only the first connection of each slot (and any that raced it) needs a full one.
    assert!(u(&on["tls_resumed"]) >= 20, "{}", on["tls_resumed"]);
    let off = tls_run("off");
    assert_eq!(u(&off["tls_resumed"]), 0);
}

#[test]
fn implicit_tls_and_every_phase_measured() {
    let sink = start_sink(&["--tls", "implicit"]);
    let (code, r) = load(
        &sink.addr,
        &["--messages", "20", "--tls", "implicit", "--size", "1k"],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    assert_eq!(u(&s["messages"]), 20);
    let p = &r["phases_ms"];
    for phase in ["connect", "banner", "ehlo", "starttls"] {
        assert!(u(&p[phase]["count"]) >= 1, "{phase}: {p}");
    }
    for phase in ["mail_rcpt", "data_end", "message"] {
        assert_eq!(u(&p[phase]["count"]), 20, "{phase}: {p}");
    }
}

/// Several recipients over several domains, one command at a time, sent with BDAT.
#[test]
fn recipients_over_domains_without_pipelining_by_bdat() {
    let dir = temp_dir("domains");
    let sink = start_sink(&["--dump-dir", dir.to_str().unwrap()]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--messages",
            "6",
            "--connections",
            "2",
            "--recipients",
            "4",
            "--domains",
            "2",
            "--no-pipelining",
            "--bdat",
            "--size",
            "300",
        ],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    assert_eq!(u(&s["messages"]), 6);
    assert_eq!(u(&s["bdat_messages"]), 6);
    assert_eq!(r["pipelining"], false);
    let first = std::fs::read_to_string(dir.join("00000000.eml")).unwrap();
    assert!(
        first.contains(
            "<user1@d1.example.com>,\r\n <user2@d2.example.com>,\r\n <user3@d1.example.com>"
        ),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without --size, bodies follow the default mix: several sizes, mean near 90 KiB.
#[test]
fn default_size_mix() {
    let sink = start_sink(&[]);
    let (code, r) = load(&sink.addr, &["--messages", "400", "--connections", "4"]);
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{r}");
    let mean = u(&r["body_bytes"]) as f64 / 400.0 / 1024.0;
    assert!((40.0..160.0).contains(&mean), "mean body {mean:.1} KiB");
    assert_eq!(u(&s["messages"]), 400);
}
