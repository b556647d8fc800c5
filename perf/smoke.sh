#!/usr/bin/env bash
# A short, bounded smoke run of the bench harness for CI (not a benchmark): mxring
# relays 2,000 messages from mxring-bench load into mxring-bench sink, plaintext and
# STARTTLS, and every message must arrive. Then each mode of the harness once, load
# straight into its sink: open loop with CSV and plot, a ramp with an SLO, the TLS
# handshake workload, 2,000 live sessions, a rejecting and slow sink. About 15 s more.
# Loopback only; everything stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=target/release
[ -x "$BIN/mxring" ] && [ -x "$BIN/mxring-bench" ] || cargo build --release --workspace
T=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_MX=$(free_port); P_SINK=$(free_port); P_ADMIN=$(free_port)
cat >"$T/mxring.toml" <<CFG
[server]
hostname = "smoke.test"
spool = "$T/spool"
[[listener]]
address = "127.0.0.1:$P_MX"
tls = "starttls"
[[route]]
domains = ["*"]
next_hop = "[127.0.0.1]:$P_SINK"
[admin]
address = "127.0.0.1:$P_ADMIN"
CFG
N=2000
"$BIN/mxring-bench" sink --listen "127.0.0.1:$P_SINK" --tls starttls --messages $((2 * N)) --duration 120 --json >"$T/sink.json" 2>"$T/sink.log" &
sink_pid=$!
pids+=("$sink_pid")
RUST_LOG=warn "$BIN/mxring" serve --config "$T/mxring.toml" 2>"$T/mxring.log" &
pids+=($!)
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$P_MX") 2>/dev/null && break; sleep 0.1; done
for tls in none starttls; do
    echo "== load: $N messages, 20 connections, tls $tls"
    "$BIN/mxring-bench" load --target "127.0.0.1:$P_MX" --connections 20 --messages "$N" --size 1k --tls "$tls" --quiet
done
if ! wait "$sink_pid"; then
    echo "FAIL: the sink did not receive all $((2 * N)) messages in time"; cat "$T/sink.json" "$T/mxring.log" | tail -20; exit 1
fi
echo "== sink"; cat "$T/sink.json"
echo "smoke: $((2 * N)) messages relayed end to end"

# check FILE PYTHON-EXPR: the expression, over the JSON report r, must hold.
check() {
    python3 - "$1" "$2" <<'PY' || { echo "FAIL: $2"; cat "$1"; exit 1; }
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}
# mode NAME SINK-ARGS -- LOAD-ARGS: one load run into a fresh sink; the sink's report
# must count exactly the messages the load generator saw accepted.
mode() {
    local name=$1; shift
    local sink_args=()
    while [[ $1 != -- ]]; do sink_args+=("$1"); shift; done; shift
    local port; port=$(free_port)
    "$BIN/mxring-bench" sink --listen "127.0.0.1:$port" --duration 60 --json "${sink_args[@]}" \
        >"$T/$name.sink.json" 2>"$T/$name.sink.log" &
    local spid=$!
    pids+=("$spid")
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
    echo "== mode $name: ${*}"
    "$BIN/mxring-bench" load --target "127.0.0.1:$port" --json --quiet --size 1k "$@" >"$T/$name.json" \
        || { echo "FAIL: load ($name) exited with $?"; cat "$T/$name.json"; exit 1; }
    kill -INT "$spid"; wait "$spid" || true
    python3 - "$T/$name.json" "$T/$name.sink.json" <<'PY' || { echo "FAIL: $name: the counts disagree"; exit 1; }
import json, sys
r, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert r["messages"] == r["messages_ok"] + r["messages_failed"], r
assert s["accepted"] == r["messages_ok"], (s, r["messages_ok"])
print(f'   {r["messages_ok"]} ok, {r["messages_failed"]} refused, {r["messages_per_s"]:.0f} msg/s, '
      f'p99 {r["phases_ms"]["message"]["p99"]:.1f} ms, {r["peak_open_sessions"]} sessions open at most')
PY
}
mode open-loop --tls starttls -- --connections 10 --rate 500 --duration 2 --tls starttls \
    --csv "$T/series.csv" --plot "$T/plot.svg"
check "$T/open-loop.json" 'r["messages_failed"] == 0 and len(r["series"]) >= 2'
[[ $(wc -l <"$T/series.csv") -ge 3 ]] && grep -q '<svg' "$T/plot.svg" || { echo "FAIL: no CSV or plot"; exit 1; }
mode ramp --reply-delay 5ms -- --connections 4 --ramp 100:2000:3s --slo-p99 50ms
check "$T/ramp.json" 'r["slo"] is not None and r["slo"]["crossed"]'
mode handshakes --tls starttls -- --connections 4 --messages 200 --tls starttls \
    --new-connection-per-message --tls-resumption off
check "$T/handshakes.json" 'r["connections_opened"] == 200 and r["tls_resumed"] == 0'
mode sessions -- --connections 2000 --duration 2 --threads 2
check "$T/sessions.json" 'r["peak_open_sessions"] == 2000 and r["process_threads_peak"] <= 4'
mode rejecting --reject-rate 0.2 --reject-code 451 -- --connections 4 --messages 500 --no-pipelining \
    --recipients 3 --domains 2
check "$T/rejecting.json" '0 < r["errors"].get("451", 0) < 500 and r["messages"] == 500'
echo "smoke: every mode ran and both sides agreed"
