#!/usr/bin/env bash
# A short, bounded smoke run of the bench harness for CI (not a benchmark): mxring
# relays 2,000 messages from mxring-bench load into mxring-bench sink, plaintext and
# STARTTLS, and every message must arrive. Loopback only; everything stops by itself.
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
