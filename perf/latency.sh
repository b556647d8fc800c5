#!/usr/bin/env bash
# What bounds mxring's DATA→250 latency at half of its peak rate. mxring alone (no
# Postfix), accept-1k plaintext, the same 50 connections as perf/compare.sh:
#   1. the peak: closed loop, every connection as fast as mxring answers (ROUNDS runs);
#   2. half of the median peak, offered open-loop (`mxring-bench load --rate`), ROUNDS
#      runs each with the load generator at normal priority and at nice 19;
# and for every half-peak run mxring's own counters (GET /metrics: write, commit, sled
# flush, fdatasync, commit wait, DATA→250 written) and the run-queue wait of its threads
# (/proc/PID/task/*/schedstat: runnable, but no CPU free). The spool device's idle
# fdatasync latency is probed before and after.
#
#   perf/latency.sh                      # ROUNDS=3, 10 s runs: about 3 minutes
#
# Writes perf/results/<date>-latency.md and the raw JSON in <date>-latency-raw.tar.gz.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
MX_PORT=${MX_PORT:-27125}
MX_ADMIN_PORT=${MX_ADMIN_PORT:-27126}
CLOSED_PORT=${CLOSED_PORT:-27999}
DATE=${DATE:-$(date +%F)}

for t in jq ss openssl curl; do command -v "$t" >/dev/null || apt-get install -y "$t" >/dev/null; done
require_free_ports "$MX_PORT" "$MX_ADMIN_PORT" "$CLOSED_PORT"

# On the disk, not a tmpfs /tmp: the fdatasync must be real.
WORK=$(mktemp -d "${WORK_PARENT:-/var/tmp}/mxring-latency.XXXXXX")
RAW="$RESULTS_DIR/$DATE-latency-raw"
rm -rf "$RAW"
mkdir -p "$RAW"
cleanup() {
    local rc=$?
    set +e
    [[ -n ${MX_PID:-} ]] && stop_pid "$MX_PID" 10
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

snapshot_binaries "$WORK"
make_cert "$WORK"

# run TAG NICE [RATE]: one mxring run with an empty spool; appends a line to runs.jsonl.
run() {
    local tag=$1 niceness=$2 rate=${3:-}
    rm -rf "$WORK/spool"
    write_mxring_config "$WORK/mxring.toml" "$MX_PORT" "$WORK/spool" "$CLOSED_PORT" 0 \
        "127.0.0.1:$MX_ADMIN_PORT"
    start_mxring "$WORK/mxring.toml" "$MX_PORT" "$RAW/$tag.log"
    "$PY" "$PERF_DIR/schedstat.py" snap "$MX_PID" "$WORK/sched-before.json"
    local args=(load --json --quiet --target "127.0.0.1:$MX_PORT" --connections "$CONNECTIONS"
        --duration "$DURATION" --size 1024)
    [[ -n $rate ]] && args+=(--rate "$rate")
    nice -n "$niceness" "$BENCH" "${args[@]}" >"$RAW/$tag.load.json" 2>"$RAW/$tag.load.err" || true
    [[ -s $RAW/$tag.load.json ]] || { cat "$RAW/$tag.load.err" >&2; die "no load report ($tag)"; }
    "$PY" "$PERF_DIR/schedstat.py" diff "$MX_PID" "$WORK/sched-before.json" >"$RAW/$tag.sched.json"
    curl -s --max-time 30 "http://127.0.0.1:$MX_ADMIN_PORT/metrics.json" | jq -c .store >"$RAW/$tag.store.json"
    stop_pid "$MX_PID" 20 || true
    MX_PID=
    gzip -f "$RAW/$tag.log"
    jq -n -c --arg tag "$tag" --argjson nice "$niceness" --argjson rate "${rate:-null}" \
        --slurpfile load "$RAW/$tag.load.json" --slurpfile sched "$RAW/$tag.sched.json" \
        --slurpfile store "$RAW/$tag.store.json" \
        '{tag:$tag, nice:$nice, offered_rate:$rate, load:$load[0], sched:$sched[0], store:$store[0]}' \
        >>"$RAW/runs.jsonl"
    log "$tag: $(jq '.messages_per_s|floor' "$RAW/$tag.load.json") msg/s, p99 $(jq .data_latency_ms.p99 "$RAW/$tag.load.json") ms"
}

"$PY" "$PERF_DIR/fsync_probe.py" "$WORK" 500 >"$RAW/fsync-before.json"
for ((r = 1; r <= ROUNDS; r++)); do run "peak.r$r" 0; done
peak=$(jq -s '[.[] | select(.offered_rate == null) | .load.messages_per_s] | sort | .[length/2|floor]' "$RAW/runs.jsonl")
half=$(awk -v p="$peak" 'BEGIN { printf "%.0f", p / 2 }')
log "median peak $peak msg/s: half-peak runs at $half msg/s"
for ((r = 1; r <= ROUNDS; r++)); do
    run "half.r$r" 0 "$half"
    run "half-nice.r$r" 19 "$half"
done
"$PY" "$PERF_DIR/fsync_probe.py" "$WORK" 500 >"$RAW/fsync-after.json"
jq -n --arg date "$DATE" --arg rev "$GIT_REV" --argjson peak "$peak" --argjson half "$half" \
    --argjson conns "$CONNECTIONS" --argjson duration "$DURATION" --argjson ncpu "$(nproc)" \
    --slurpfile before "$RAW/fsync-before.json" --slurpfile after "$RAW/fsync-after.json" \
    '{date:$date, git_rev:$rev, peak:$peak, half:$half, connections:$conns, duration_s:$duration,
      ncpu:$ncpu, fsync_before:$before[0], fsync_after:$after[0]}' >"$RAW/meta.json"
"$PY" "$PERF_DIR/latency_report.py" "$RAW" "$RESULTS_DIR/$DATE-latency.md"
log "wrote $RESULTS_DIR/$DATE-latency.md"
archive_raw "$RAW"
