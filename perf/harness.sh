#!/usr/bin/env bash
# The load generator measured as a tool (issue 16's targets), everything on 127.0.0.1:
#   1. 10,000 concurrent sessions against `mxring-bench sink`, two event-loop threads on
#      each side, every message accounted for;
#   2. 50 reused connections of 1 KiB against Postfix's smtp-sink: smtp-source and
#      mxring-bench alternating (ROUNDS times), rate and CPU per message of each;
#   3. a ramp against smtp-sink with an SLO on p99, plotted.
#
#   sudo perf/harness.sh               # about 3 minutes plus the build
#
# Writes perf/results/<date>-harness.md, <date>-harness-ramp.svg and the raw JSON under
# <date>-harness-raw.tar.gz.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
SESSIONS=${SESSIONS:-10000}
SESSIONS_DURATION=${SESSIONS_DURATION:-20}
CONNECTIONS=${CONNECTIONS:-50}
MESSAGES=${MESSAGES:-50000}
SINK_PORT=${SINK_PORT:-27425}
PF_SINK_PORT=${PF_SINK_PORT:-27426}
DATE=${DATE:-$(date +%F)}

[[ $(id -u) == 0 ]] || die "run as root (smtp-sink -u nobody and 10,000 descriptors need it)"
for t in jq smtp-source smtp-sink; do command -v "$t" >/dev/null || die "$t missing (apt-get install jq postfix)"; done
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install time)"
require_free_ports "$SINK_PORT" "$PF_SINK_PORT"

WORK=$(mktemp -d /tmp/mxring-harness.XXXXXX)
RAW="$RESULTS_DIR/$DATE-harness-raw"
rm -rf "$RAW"
mkdir -p "$RAW"
BG=()
cleanup() {
    local rc=$?
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
snapshot_binaries "$WORK"

# timed TAG CMD...: runs CMD, stdout into $RAW/TAG.out; prints "wall user sys".
timed() {
    local tag=$1; shift
    /usr/bin/time -f '%e %U %S' -o "$RAW/$tag.time" "$@" >"$RAW/$tag.out" 2>"$RAW/$tag.err" || true
    cat "$RAW/$tag.time"
}

# ---- 1. ten thousand sessions ----------------------------------------------------
log "1. $SESSIONS sessions against mxring-bench sink, 2 + 2 threads, ${SESSIONS_DURATION} s"
"$BENCH" sink --listen "127.0.0.1:$SINK_PORT" --threads 2 --duration $((SESSIONS_DURATION + 120)) --json \
    >"$RAW/sessions.sink.json" 2>"$RAW/sessions.sink.err" &
SINK_PID=$!
BG+=("$SINK_PID")
wait_port "$SINK_PORT" || die "mxring-bench sink did not start"
SESSIONS_CMD="mxring-bench load --target 127.0.0.1:$SINK_PORT --connections $SESSIONS --threads 2 --duration $SESSIONS_DURATION --size 1k --json --quiet"
read -r s_wall s_user s_sys < <(timed sessions.load "$BENCH" load --target "127.0.0.1:$SINK_PORT" \
    --connections "$SESSIONS" --threads 2 --duration "$SESSIONS_DURATION" --size 1k --json --quiet)
kill -INT "$SINK_PID"; wait "$SINK_PID" || true
L="$RAW/sessions.load.out"
S="$RAW/sessions.sink.json"
[[ $(jq .messages_ok "$L") == $(jq .accepted "$S") ]] || die "load and sink disagree: $(jq -c '{messages_ok,messages_failed}' "$L") vs $(jq -c '{messages,accepted}' "$S")"

# ---- 2. smtp-source and mxring-bench against smtp-sink ------------------------------
log "2. $CONNECTIONS connections x $MESSAGES messages of 1 KiB against smtp-sink, $ROUNDS alternating rounds"
smtp-sink -u nobody "127.0.0.1:$PF_SINK_PORT" 1024 >/dev/null 2>&1 &
PF_PID=$!
BG+=("$PF_PID")
wait_port "$PF_SINK_PORT" || die "smtp-sink did not start"
SOURCE_CMD="smtp-source -d -s $CONNECTIONS -m $MESSAGES -l 1024 -f bench@load.test -t user@example.com 127.0.0.1:$PF_SINK_PORT"
BENCH_CMD="mxring-bench load --target 127.0.0.1:$PF_SINK_PORT --connections $CONNECTIONS --messages $MESSAGES --size 1k --json --quiet"
rows=()
for ((r = 1; r <= ROUNDS; r++)); do
    for tool in source bench bench-nopipe bench-nopipe-1t; do
        case $tool in
        source) cmd=($SOURCE_CMD) ;;
        bench) cmd=("$BENCH" ${BENCH_CMD#mxring-bench }) ;;
        bench-nopipe) cmd=("$BENCH" ${BENCH_CMD#mxring-bench } --no-pipelining) ;;
        bench-nopipe-1t) cmd=("$BENCH" ${BENCH_CMD#mxring-bench } --no-pipelining --threads 1) ;;
        esac
        read -r wall user sys < <(timed "peer.$tool.$r" "${cmd[@]}")
        rows+=("$tool $r $wall $user $sys")
    done
done
printf '%s\n' "${rows[@]}" >"$RAW/peer-runs.txt"

# ---- 3. a ramp with an SLO, plotted --------------------------------------------------
log "3. ramp 2000:40000:20s against smtp-sink, SLO p99 20 ms"
RAMP_CMD="mxring-bench load --target 127.0.0.1:$PF_SINK_PORT --connections $CONNECTIONS --ramp 2000:40000:20s --slo-p99 20ms --size 1k --plot ramp.svg --csv ramp.csv --json --quiet"
"$BENCH" load --target "127.0.0.1:$PF_SINK_PORT" --connections "$CONNECTIONS" --ramp 2000:40000:20s \
    --slo-p99 20ms --size 1k --plot "$RESULTS_DIR/$DATE-harness-ramp.svg" --csv "$RAW/ramp.csv" \
    --json --quiet >"$RAW/ramp.json" 2>"$RAW/ramp.err" || true
kill "$PF_PID"; wait "$PF_PID" 2>/dev/null || true

# ---- report ------------------------------------------------------------------------
"$PY" - "$RAW" "$RESULTS_DIR/$DATE-harness.md" "$MESSAGES" "$ROUNDS" "$DATE" "$GIT_REV" \
    "$s_wall" "$s_user" "$s_sys" "$SESSIONS_CMD" "$SOURCE_CMD" "$BENCH_CMD" "$RAMP_CMD" <<'PY'
import json, statistics, sys, os
(raw, out, messages, rounds, date, rev, s_wall, s_user, s_sys,
 sessions_cmd, source_cmd, bench_cmd, ramp_cmd) = sys.argv[1:]
messages, rounds = int(messages), int(rounds)
L = json.load(open(f"{raw}/sessions.load.out"))
S = json.load(open(f"{raw}/sessions.sink.json"))
runs = {}
for line in open(f"{raw}/peer-runs.txt"):
    tool, r, wall, user, sys_ = line.split()
    runs.setdefault(tool, []).append((float(wall), float(user) + float(sys_)))
names = {
    "source": "smtp-source (one process, no pipelining)",
    "bench": "mxring-bench, pipelining, default threads",
    "bench-nopipe": "mxring-bench, no pipelining, default threads",
    "bench-nopipe-1t": "mxring-bench, no pipelining, --threads 1",
}
def fmt(x): return f"{x:,.0f}"
o = []
o.append(f"# mxring-bench as a load tool, {date}\n")
o.append(f"Binary {rev}; 2 cores shared with the server under test (and with other work on the machine). "
         "Produced by `perf/harness.sh`; raw reports in `" + os.path.basename(raw) + ".tar.gz`.\n")
o.append("## 10,000 sessions against mxring-bench sink\n")
o.append(f"`{sessions_cmd}` against `mxring-bench sink --threads 2`.\n")
o.append("| | |\n|---|---|")
o.append(f"| sessions open at once (load / sink) | {L['peak_open_sessions']:,} / {S['peak_connections']:,} |")
o.append(f"| threads of the load generator, at most | {L['process_threads_peak']} (2 event loops + main) |")
o.append(f"| open-files limit it set | {L['fd_limit']:,} |")
o.append(f"| messages accepted (load / sink) | {L['messages_ok']:,} / {S['accepted']:,} |")
o.append(f"| messages failed | {L['messages_failed']} |")
o.append(f"| throughput | {fmt(L['messages_per_s'])} msg/s |")
o.append(f"| message latency p50 / p99 | {L['phases_ms']['message']['p50']:.1f} / {L['phases_ms']['message']['p99']:.1f} ms |")
cpu = float(s_user) + float(s_sys)
o.append(f"| load generator CPU | {cpu:.2f} s ({cpu / max(L['messages_ok'],1) * 1e6:.1f} µs per message; wall {float(s_wall):.1f} s with warm-up and QUITs) |\n")
o.append(f"## 50 reused connections, 1 KiB, against Postfix's smtp-sink\n")
o.append(f"{rounds} rounds, the tools alternating within each; {messages:,} messages per run; rate = messages / "
         "wall-clock time of the process (the same measure for both); CPU = user + system time of the process.\n")
o.append(f"- smtp-source: `{source_cmd}`")
o.append(f"- mxring-bench: `{bench_cmd}` (plus `--no-pipelining`, `--threads 1` as named)\n")
o.append("| tool | median msg/s | best msg/s | CPU µs per message (median) |\n|---|---|---|---|")
for tool in ["source", "bench", "bench-nopipe", "bench-nopipe-1t"]:
    rs = runs.get(tool, [])
    if not rs: continue
    rates = [messages / w for w, _ in rs]
    cpus = [c / messages * 1e6 for _, c in rs]
    o.append(f"| {names[tool]} | {fmt(statistics.median(rates))} | {fmt(max(rates))} | {statistics.median(cpus):.1f} |")
o.append("")
try:
    R = json.load(open(f"{raw}/ramp.json"))
    slo = R.get("slo") or {}
    o.append("## A ramp against smtp-sink\n")
    o.append(f"`{ramp_cmd}`\n")
    if slo.get("crossed"):
        o.append(f"The p99 message latency first exceeded {slo['p99_ms']:.0f} ms at {slo['crossed_at_s']} s, "
                 f"offered {fmt(slo['offered_rate_at_crossing'])} msg/s, achieved {fmt(slo['achieved_rate_at_crossing'])} msg/s; "
                 f"the best second within the SLO reached {fmt(slo['best_rate_within_slo'] or 0)} msg/s.\n")
    else:
        o.append(f"The p99 stayed within {slo.get('p99_ms', 0):.0f} ms for the whole ramp; best second "
                 f"{fmt(slo.get('best_rate_within_slo') or 0)} msg/s.\n")
    o.append(f"![rate and p99 over the ramp]({date}-harness-ramp.svg)\n")
except (OSError, ValueError):
    o.append("(the ramp run left no report)\n")
open(out, "w").write("\n".join(o))
print(out)
PY
log "wrote $RESULTS_DIR/$DATE-harness.md"
archive_raw "$RAW"
