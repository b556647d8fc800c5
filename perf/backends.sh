#!/usr/bin/env bash
# mxring on its two I/O back ends side by side (io_uring and epoll, MXRING_IO), same
# run, alternating rounds: 1 KiB and 100 KiB over reused plaintext connections, driven
# by Postfix's smtp-source (one message in flight per session) and by mxring-bench.
# Mail is routed to a closed port, so it stays queued: this is the accept path (read,
# parse, store, 250). With PROFILE=1 it also records a cpu-clock profile of each back
# end at 100 KiB (perf record -F 999 -g) and keeps the top symbols.
#
#   sudo perf/backends.sh             # ROUNDS=3, about 4 minutes
#   ROUNDS=1 PROFILE=1 perf/backends.sh
#
# Writes perf/results/<date>-backends.md and the raw files in <date>-backends-raw.tar.gz.
# perf/compare.sh runs it at its end when BACKENDS=1.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
SESSIONS=${SESSIONS:-20}
PROFILE=${PROFILE:-0}
MX_PORT=${MX_PORT:-27425}
CLOSED_PORT=${CLOSED_PORT:-27999}
DATE=${DATE:-$(date +%F)}

command -v smtp-source >/dev/null || die "smtp-source is missing (apt-get install postfix)"
command -v jq >/dev/null || die "jq is missing"
require_free_ports "$MX_PORT" "$CLOSED_PORT"
WORK=$(mktemp -d "${WORK_PARENT:-/var/tmp}/mxring-backends.XXXXXX")
# Raw files: into BACKENDS_RAW when compare.sh runs us (its archive takes them), else
# into one archive of our own, <date>-backends-raw.tar.gz.
RAW=${BACKENDS_RAW:-$WORK/$DATE-backends-raw}
mkdir -p "$RAW"
cleanup() {
    [[ -n ${MX_PID:-} ]] && stop_pid "$MX_PID" 10
    if [[ -z ${BACKENDS_RAW:-} ]]; then
        tar -C "$WORK" -czf "$RESULTS_DIR/$DATE-backends-raw.tar.gz" "$DATE-backends-raw"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

snapshot_binaries "$WORK"
make_cert "$WORK"

# run BACKEND SIZE TOOL ROUND: one measured run on a fresh spool; prints msg/s.
run() {
    local backend=$1 size=$2 tool=$3 round=$4 tag="$1.$2.$3.r$4" rate
    rm -rf "$WORK/spool"
    write_mxring_config "$WORK/mx.toml" "$MX_PORT" "$WORK/spool" "$CLOSED_PORT" 0 ""
    MXRING_IO=$backend start_mxring "$WORK/mx.toml" "$MX_PORT" "$RAW/$tag.log"
    local bytes=$((size == 1 ? 1024 : 102400))
    case $tool in
        smtp-source)
            local n=$((size == 1 ? 20000 : 4000)) t0 t1
            t0=$(date +%s.%N)
            smtp-source -s "$SESSIONS" -l "$bytes" -m "$n" -d -t bench@example.com "127.0.0.1:$MX_PORT"
            t1=$(date +%s.%N)
            rate=$(awk "BEGIN { printf \"%.0f\", $n / ($t1 - $t0) }")
            ;;
        mxring-bench)
            "$BENCH" load --json --quiet --target "127.0.0.1:$MX_PORT" --connections "$SESSIONS" \
                --duration "$DURATION" --size "$bytes" >"$RAW/$tag.json" 2>"$RAW/$tag.err"
            rate=$(jq -r '.messages_per_s | floor' "$RAW/$tag.json")
            ;;
    esac
    stop_pid "$MX_PID" 20
    MX_PID=
    echo "$rate"
}

declare -A RATES
REPORT="$RESULTS_DIR/$DATE-backends.md"
# ROUNDS=0 PROFILE=1: only the profiles, appended to an existing report.
for ((r = 1; r <= ROUNDS; r++)); do
    for size in 1 100; do
        for tool in smtp-source mxring-bench; do
            for backend in uring epoll; do
                rate=$(run "$backend" "$size" "$tool" "$r")
                log "round $r: ${size} KiB, $tool, $backend: $rate msg/s"
                RATES[$backend.$size.$tool]+="$rate "
            done
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
((ROUNDS > 0)) && {
    echo "# mxring's I/O back ends side by side ($DATE)"
    echo
    echo "\`ROUNDS=$ROUNDS SESSIONS=$SESSIONS DURATION=$DURATION perf/backends.sh\`: mxring alone (one shard per"
    echo "core, plaintext, mail held for a closed next hop), a fresh spool per run, back ends"
    echo "alternating. Medians of $ROUNDS rounds, msg/s (every round in brackets)."
    echo
    echo "| body | load | io_uring | epoll | io_uring / epoll |"
    echo "|---|---|---|---|---|"
    for size in 1 100; do
        for tool in smtp-source mxring-bench; do
            u=$(median <<<"${RATES[uring.$size.$tool]}")
            e=$(median <<<"${RATES[epoll.$size.$tool]}")
            ratio=$(awk "BEGIN { printf \"%.2f\", $u / $e }")
            echo "| $size KiB | $tool | $u (${RATES[uring.$size.$tool]% }) | $e (${RATES[epoll.$size.$tool]% }) | $ratio |"
        done
    done
} >"$REPORT"

if [[ $PROFILE == 1 ]] && command -v perf >/dev/null; then
    for backend in uring epoll; do
        rm -rf "$WORK/spool"
        write_mxring_config "$WORK/mx.toml" "$MX_PORT" "$WORK/spool" "$CLOSED_PORT" 0 ""
        MXRING_IO=$backend start_mxring "$WORK/mx.toml" "$MX_PORT" "$RAW/profile.$backend.log"
        perf record -F 999 -g -o "$WORK/perf.$backend.data" -p "$MX_PID" -- sleep "$DURATION" \
            >/dev/null 2>&1 &
        prof=$!
        "$BENCH" load --json --quiet --target "127.0.0.1:$MX_PORT" --connections "$SESSIONS" \
            --duration "$DURATION" --size 102400 >"$RAW/profile.$backend.json" 2>/dev/null
        wait "$prof" || true
        perf report -i "$WORK/perf.$backend.data" --no-children --sort sym --stdio 2>/dev/null |
            awk '/^ +[0-9.]+%/ && n++ < 25' >"$RAW/profile.$backend.top.txt"
        stop_pid "$MX_PID" 20
        MX_PID=
    done
    {
        echo
        echo "## Where the time goes at 100 KiB (perf record -F 999 -g, cpu-clock, self time)"
        for backend in uring epoll; do
            echo
            echo "### $backend"
            echo
            echo '```'
            cat "$RAW/profile.$backend.top.txt"
            echo '```'
        done
    } >>"$REPORT"
fi
log "wrote $REPORT"
