//! Ten thousand live sessions from one machine on two event-loop threads (its own test
//! binary, so it does not share the machine's two cores with the timing-sensitive
//! tests of the other files; cargo runs test binaries one after another).

use mxring_testkit::bench::{load, start_sink, stop_sink};
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The first target: 10,000 concurrent sessions from one machine on at most
/// four harness threads, every message accounted for on both sides.
#[test]
fn ten_thousand_sessions_on_two_threads() {
    let sink = start_sink(&["--threads", "2"]);
    let (code, r) = load(
        &sink.addr,
        &[
            "--connections",
            "10000",
            "--threads",
            "2",
            "--duration",
            "6",
            "--size",
            "1k",
        ],
    );
    let s = stop_sink(sink);
    assert_eq!(code, 0, "{}", r["errors"]);
    assert_eq!(u(&r["messages_failed"]), 0, "{}", r["error_examples"]);
    assert_eq!(u(&r["peak_open_sessions"]), 10_000);
    assert_eq!(u(&r["connections_opened"]), 10_000);
    assert!(u(&r["fd_limit"]) >= 10_000);
    // Two event loops and the main thread.
    assert!(
        u(&r["process_threads_peak"]) <= 4,
        "{}",
        r["process_threads_peak"]
    );
    assert!(u(&r["messages_ok"]) >= 10_000, "{}", r["messages_ok"]);
    // Every message the load generator counted as accepted arrived, and no other.
    assert_eq!(s["messages"], r["messages_ok"]);
    assert_eq!(u(&s["peak_connections"]), 10_000);
    assert_eq!(u(&s["threads"]), 2);
}
