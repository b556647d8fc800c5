//! `GET /metrics` in the Prometheus text format, scraped after real traffic and read
//! with a Prometheus parser (not our own). Counters are process-wide, so this binary
//! holds one test: the counts it asserts are exactly its own traffic.

use mxring::config::TlsVersion;
use mxring_testkit::client::Client;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::TestServer;
use prometheus_parse::{Scrape, Value};

fn scrape(s: &TestServer) -> Scrape {
    let (status, body) = s.admin().request("GET", "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a scalar: {other:?}"),
        })
}

#[test]
fn prometheus_scrape_counts_real_traffic() {
    let sink = Sink::start(Script::default());
    let s = TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:0\"\ntls = \"required\"\n\
         [relay]\nnetworks = []\ndomains = [\"dest.test\"]\n{}",
        mxring_testkit::route_all(sink.addr)
    ));

    let mut plain = Client::connect(s.addr("mx"));
    plain.cmd("EHLO client.test");
    for n in 0..2 {
        let (code, text) = plain.send_mail(
            "a@src.test",
            &["b@dest.test"],
            &format!("Subject: {n}\n\nhi\n"),
        );
        assert_eq!(code, 250, "{text}");
    }
    plain.cmd("MAIL FROM:<a@src.test>");
    assert_eq!(plain.cmd("RCPT TO:<x@elsewhere.test>").0, 554);
    plain.cmd("QUIT");

    let mut tls = Client::connect(s.addr("mx"));
    tls.cmd("EHLO client.test");
    tls.starttls(TlsVersion::Tls13);
    tls.cmd("EHLO client.test");
    assert_eq!(tls.send_mail("a@src.test", &["c@dest.test"], "hi\n").0, 250);
    tls.cmd("QUIT");

    let mut refused = Client::connect(s.addr("secure"));
    refused.cmd("EHLO client.test");
    assert_eq!(refused.cmd("MAIL FROM:<a@src.test>").0, 530);
    refused.cmd("QUIT");

    for _ in 0..3 {
        sink.next(20);
    }
    s.wait_queue_empty(20);
    // A connection is counted when its session ends, after QUIT's reply: poll.
    let mut last = (0.0, None);
    let m = mxring_testkit::wait_for(
        std::time::Duration::from_secs(10),
        "3 connections ended and 3 recipients delivered",
        || {
            let m = scrape(&s);
            let ended = ["mx", "secure"]
                .iter()
                .flat_map(|l| {
                    ["none", "TLSv1.3"].map(|t| {
                        value(
                            &m,
                            "mxring_inbound_connections_total",
                            &[("listener", l), ("tls", t)],
                        )
                    })
                })
                .flatten()
                .sum::<f64>();
            let delivered = value(&m, "mxring_recipients_total", &[("outcome", "delivered")]);
            last = (ended, delivered);
            (ended == 3.0 && delivered == Some(3.0)).then_some(m)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: connections ended: {}, delivered: {:?}",
            last.0, last.1
        )
    });

    assert_eq!(
        value(&m, "mxring_messages_received_total", &[("listener", "mx")]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &m,
            "mxring_inbound_connections_total",
            &[("listener", "mx"), ("tls", "TLSv1.3")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "mxring_inbound_connections_total",
            &[("listener", "mx"), ("tls", "none")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "mxring_inbound_error_replies_total",
            &[("code", "554"), ("status", "5.7.1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "mxring_inbound_error_replies_total",
            &[("code", "530"), ("status", "5.7.0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "mxring_recipients_total",
            &[("outcome", "delivered"), ("reason", "none")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&m, "mxring_queue_depth", &[("shard", "0")]),
        Some(0.0)
    );
    assert!(value(
        &m,
        "mxring_policy_decisions_total",
        &[
            ("direction", "outbound"),
            ("rule", "default_tls"),
            ("result", "may")
        ]
    )
    .is_some_and(|v| v >= 3.0));
    let waits = m
        .samples
        .iter()
        .find(|s| s.metric == "mxring_store_commit_wait_seconds")
        .expect("the commit wait histogram");
    let Value::Histogram(buckets) = &waits.value else {
        panic!("not a histogram: {waits:?}")
    };
    let inf = buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .expect("+Inf bucket");
    assert!(inf.count >= 3.0, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative: {buckets:?}"
    );

    // The JSON view is kept for scripts.
    let (status, body) = s.admin().request("GET", "/metrics.json").unwrap();
    assert_eq!(status, 200);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["queued"], 0, "{j}");
}
