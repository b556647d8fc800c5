#!/usr/bin/env bash
# Side-by-side benchmark: mxring vs a private Postfix instance, same machine, same run,
# same certificate, same load generators (Postfix's smtp-source and mxring-bench load).
# See perf/README.md.
#
#   sudo perf/compare.sh                          # everything, ROUNDS=3
#   sudo WORKLOADS=smtp-source perf/compare.sh    # only the smtp-source workloads
#   ROUNDS=1 DURATION=5 perf/compare.sh           # quick look
#
# Writes perf/results/<date>.md, <date>.svg and every raw file in one archive,
# perf/results/<date>-raw.tar.gz.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$PERF_DIR/postfix.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}          # seconds of load per run
CONNECTIONS=${CONNECTIONS:-50}
DRAIN_MAX=${DRAIN_MAX:-60}        # relay: longest wait for the sink to see every message
QUIET_BUDGET=${QUIET_BUDGET:-60}  # total seconds we may wait for other jobs to calm down
QUIET_PCT=${QUIET_PCT:-35}        # "quiet" = machine-wide CPU busy below this, over 1 s
HALF_PEAK=${HALF_PEAK:-1}         # p99 at half of the peak rate (mxring-bench load --rate)
# Also run Postfix accept-1k with every message put on the hold queue (no queue-manager
# work at all), as a second Postfix figure next to the like-for-like one.
POSTFIX_HOLD_EXTRA=${POSTFIX_HOLD_EXTRA:-1}
MX_PORT=${MX_PORT:-27125}
MX_ADMIN_PORT=${MX_ADMIN_PORT:-27126}
PF_PORT=${PF_PORT:-27025}
SINK_PORT=${SINK_PORT:-27225}
CEIL_PORT=${CEIL_PORT:-27325}
CLOSED_PORT=${CLOSED_PORT:-27999}
DATE=${DATE:-$(date +%F)}
# Which parts run, comma-separated: smtp-source (smtp-source into both MTAs relaying to
# smtp-sink, disk bytes, disk bandwidth, half-peak p99), bench (the mxring-bench
# workloads with their ceilings and half-peak p99), backends (perf/backends.sh).
WORKLOADS=${WORKLOADS:-smtp-source,bench,backends}
WORK_PARENT=${WORK_PARENT:-/var/tmp}  # spools and queues live here: a real disk, never tmpfs
want() { [[ ",$WORKLOADS," == *",$1,"* ]]; }
for part in ${WORKLOADS//,/ }; do
    [[ $part == smtp-source || $part == bench || $part == backends ]] ||
        die "WORKLOADS: unknown part '$part' (known: smtp-source, bench, backends)"
done
source "$PERF_DIR/smtp_source.sh"  # its settings default to the ones above

[[ $(id -u) == 0 ]] || die "run as root (Postfix's instance and smtp-sink -u nobody need it)"
for t in jq ss openssl; do command -v "$t" >/dev/null || apt-get install -y "$t" >/dev/null; done
install_postfix
require_free_ports "$MX_PORT" "$MX_ADMIN_PORT" "$PF_PORT" "$SINK_PORT" "$CEIL_PORT" "$CLOSED_PORT" "$SS_SINK_PORT"

WORK=$(mktemp -d "$WORK_PARENT/mxring-perf.XXXXXX")
chmod 755 "$WORK"
[[ $(df --output=fstype "$WORK" | tail -1) != tmpfs ]] || die "$WORK_PARENT is a tmpfs: set WORK_PARENT to a directory on disk"
# Raw files are collected here and archived into one file at the end (also on failure).
RAW="$WORK/raw/$DATE-raw"
ARCHIVE="$RESULTS_DIR/$DATE-raw.tar.gz"
mkdir -p "$RAW"
PFDIR="$WORK/postfix"

BG_PIDS=()
cleanup() {
    local rc=$?
    set +e
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [[ -n ${MX_PID:-} ]] && stop_pid "$MX_PID" 10
    [[ -d $PFDIR ]] && postfix_stop "$PFDIR"
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ -d $RAW && ! -e $WORK/archived ]]; then
        ((rc == 0)) || echo "the run stopped early (exit status $rc)" >"$RAW/INCOMPLETE"
        tar -C "$WORK/raw" -czf "$ARCHIVE" "$DATE-raw" && log "raw files: $ARCHIVE"
    fi
    if [[ ${KEEP_WORK:-0} != 1 ]]; then rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The command that reproduces this run, for the report: every setting given explicitly.
REPRODUCE="sudo"
for v in WORKLOADS ROUNDS DURATION CONNECTIONS SS_N_100K SS_N_1K SS_N_NEWCONN SS_HALF_PEAK_ROUNDS DISK_BW_MIB HALF_PEAK_ROUNDS CEILING_ROUNDS; do
    [[ -n ${!v:-} ]] && REPRODUCE+=" $v=${!v}"
done
REPRODUCE+=" perf/compare.sh"

snapshot_binaries "$WORK"
make_cert "$WORK"
postfix_setup "$PFDIR" "$PF_PORT" "$CLOSED_PORT"
START_TS=$(date +%s)
echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RAW/loadavg-start"

# ---------------------------------------------------------------------------------
# arithmetic with a leading zero (bc prints ".5", which is not JSON)
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }

# machine-wide CPU: busy and total jiffies from /proc/stat
cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }

QUIET_SPENT=0
BUSY_PCT=0
# Waits (within QUIET_BUDGET overall) until other jobs leave the machine mostly idle;
# BUSY_PCT = machine-wide busy percentage over the last second.
wait_quiet() {
    local b0 t0 b1 t1 pct
    while :; do
        read -r b0 t0 < <(cpu_jiffies); sleep 1; read -r b1 t1 < <(cpu_jiffies)
        pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
        if (( pct < QUIET_PCT || QUIET_SPENT >= QUIET_BUDGET )); then
            BUSY_PCT=$pct
            return
        fi
        QUIET_SPENT=$((QUIET_SPENT + 2))
        sleep 1
    done
}

# CPU seconds of a process tree; waits until it stops growing (deferred work such as
# Postfix's queue manager or mxring's delivery attempts finishes after the load).
cpu_settled() {
    local root=$1 prev cur
    prev=$("$PY" "$PERF_DIR/procstat.py" cpu "$root")
    for ((i = 0; i < 20; i++)); do
        sleep 0.5
        cur=$("$PY" "$PERF_DIR/procstat.py" cpu "$root")
        if awk -v a="$prev" -v b="$cur" 'BEGIN{exit !(b - a < 0.03)}'; then break; fi
        prev=$cur
    done
    echo "$cur"
}

mx_queued() {
    curl -s --max-time 30 "http://127.0.0.1:$MX_ADMIN_PORT/queue" | jq 'length' 2>/dev/null || echo -1
}

# Counts log lines that look like trouble.
mx_log_problems() { grep -cE ' (WARN|ERROR) |panicked' "$1" || true; }
pf_log_problems() {
    grep -E 'postfix/[a-z-]+\[[0-9]+\]: (warning|error|fatal|panic):' "$1" |
        grep -vcE 'not owned by root|group or other writable' || true
}

# start_mta MTA NEXT_PORT TAG: sets ROOT_PID and MTA_PORT.
start_mta() {
    local mta=$1 next=$2 tag=$3
    if [[ $mta == mxring ]]; then
        rm -rf "$WORK/spool"
        write_mxring_config "$WORK/mxring.toml" "$MX_PORT" "$WORK/spool" "$next" 0 \
            "127.0.0.1:$MX_ADMIN_PORT"
        start_mxring "$WORK/mxring.toml" "$MX_PORT" "$RAW/$tag.log"
        ROOT_PID=$MX_PID
        MTA_PORT=$MX_PORT
    else
        postconf -c "$PFDIR" -e "relayhost = [127.0.0.1]:$next"
        if [[ $mta == postfix-hold ]]; then
            postconf -c "$PFDIR" -e "smtpd_data_restrictions = check_client_access static:HOLD"
        else
            postconf -c "$PFDIR" -e "smtpd_data_restrictions ="
        fi
        : >"$PFDIR/maillog"
        postfix_start "$PFDIR" "$PF_PORT"
        ROOT_PID=$PF_PID
        MTA_PORT=$PF_PORT
    fi
}

stop_mta() {
    local mta=$1 tag=$2
    if [[ $mta == mxring ]]; then
        stop_pid "$MX_PID" 20 || echo "killed" >"$RAW/$tag.killed"
        MX_PID=
        rm -rf "$WORK/spool"
    else
        postfix_stop "$PFDIR"
        cp "$PFDIR/maillog" "$RAW/$tag.log"
    fi
}

# run_load TAG ARGS...: mxring-bench load --json into $RAW/TAG.load.json; the load
# generator's own CPU seconds into LOAD_CPU.
run_load() {
    local tag=$1
    shift
    local out="$RAW/$tag.load.json" t
    t=$( { "$BENCH" load --json --quiet "$@" >"$out" 2>"$RAW/$tag.load.err" || true; times; } | tail -1)
    # `times` second line: children's user and system time, e.g. "0m1.230s 0m0.400s"
    LOAD_CPU=$(awk '{ s=0; for (i=1;i<=2;i++){ split($i,a,/[ms]/); s+=a[1]*60+a[2] } printf "%.2f", s }' <<<"$t")
    [[ -s $out ]] || { cat "$RAW/$tag.load.err" >&2; die "load produced no report ($tag)"; }
}

# workload table: name|size|tls|new connection per message|relay|description
BENCH_WORKLOADS=(
    "accept-1k|1024|none|0|0|accept-only, 1 KiB, plaintext, 50 reused connections"
    "accept-100k|100k|none|0|0|accept-only, 100 KiB, plaintext, 50 reused connections"
    "accept-tls-1k|1024|starttls|0|0|accept-only, 1 KiB, STARTTLS, 50 reused connections"
    "accept-tls-100k|100k|starttls|0|0|accept-only, 100 KiB, STARTTLS, 50 reused connections"
    "newconn-tls-1k|1024|starttls|1|0|accept-only, 1 KiB, STARTTLS, new connection per message"
    "relay-1k|1024|none|0|1|relay end to end into mxring-bench sink, 1 KiB, plaintext"
)

# run_one MTA WORKLOAD ROUND [CONNECTIONS] [DURATION] [KIND] [RATE]
run_one() {
    local mta=$1 wl=$2 round=$3 conns=${4:-$CONNECTIONS} dur=${5:-$DURATION} kind=${6:-main}
    local offered=${7:-}
    local name size tls newconn relay desc
    IFS='|' read -r name size tls newconn relay desc <<<"$wl"
    local tag="$name.$mta.r$round"
    [[ $kind == main ]] || tag="$kind.$name.$mta.r$round.c$conns${offered:+.at${offered%.*}}"
    local next=$CLOSED_PORT sink_pid=
    ((relay)) && next=$SINK_PORT

    start_mta "$mta" "$next" "$tag"
    if ((relay)); then
        "$BENCH" sink --listen "127.0.0.1:$SINK_PORT" --duration $((dur + DRAIN_MAX + 30)) \
            --progress --json >"$RAW/$tag.sink.json" 2>"$RAW/$tag.sink.err" &
        sink_pid=$!
        BG_PIDS+=("$sink_pid")
        wait_port "$SINK_PORT" 100 || die "sink did not start"
    fi
    "$PY" "$PERF_DIR/procstat.py" sample "$ROOT_PID" "$RAW/$tag.mem.json" &
    local sampler=$!
    BG_PIDS+=("$sampler")

    local quiet loadavg b0 t0 b1 t1 c0 c1
    wait_quiet
    quiet=$BUSY_PCT
    loadavg=$(cut -d' ' -f1 /proc/loadavg)
    read -r b0 t0 < <(cpu_jiffies)
    c0=$("$PY" "$PERF_DIR/procstat.py" cpu "$ROOT_PID")
    local args=(--target "127.0.0.1:$MTA_PORT" --connections "$conns" --duration "$dur"
        --size "$size" --tls "$tls")
    ((newconn)) && args+=(--new-connection-per-message)
    [[ -n $offered ]] && args+=(--rate "$offered")
    run_load "$tag" "${args[@]}"
    local ok
    ok=$(jq '.messages_ok' "$RAW/$tag.load.json")

    local delivered=null sink_s=null drained=true
    if ((relay)); then
        # Wait until the sink has every accepted message (or DRAIN_MAX), then stop it.
        local n=0
        for ((i = 0; i < DRAIN_MAX * 5; i++)); do
            n=$(grep -oE '\] [0-9]+ messages' "$RAW/$tag.sink.err" | tail -1 | grep -oE '[0-9]+' || echo 0)
            ((n >= ok)) && break
            sleep 0.2
        done
        ((n >= ok)) || drained=false
        sleep 1.2
        kill -INT "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    c1=$(cpu_settled "$ROOT_PID")
    read -r b1 t1 < <(cpu_jiffies)
    local mem_end queued
    mem_end=$("$PY" "$PERF_DIR/procstat.py" mem "$ROOT_PID")
    kill -TERM "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local metrics=null
    if [[ $mta == mxring ]]; then
        # mxring's own view of where the DATA→250 time went (commit, flush, fsync, wait)
        metrics=$(curl -s --max-time 30 "http://127.0.0.1:$MX_ADMIN_PORT/metrics.json" | jq -c '.store' 2>/dev/null || echo null)
        [[ -n $metrics ]] || metrics=null
    fi
    if ((relay)); then
        queued=null
    elif [[ $mta == mxring ]]; then
        queued=$(mx_queued)
    else
        queued=$(postfix_queued "$PFDIR")
    fi
    stop_mta "$mta" "$tag"
    local problems samples
    if [[ $mta == mxring ]]; then
        problems=$(mx_log_problems "$RAW/$tag.log")
        samples=$(grep -E ' (WARN|ERROR) |panicked' "$RAW/$tag.log" || true)
    else
        problems=$(pf_log_problems "$RAW/$tag.log")
        samples=$(grep -E 'postfix/[a-z-]+\[[0-9]+\]: (warning|error|fatal|panic):' "$RAW/$tag.log" |
            grep -vE 'not owned by root|group or other writable' || true)
    fi
    # the three most frequent problem lines, with ids, numbers and timestamps blanked
    samples=$(sed -E 's/^[0-9T:.Z-]+ +//; s/^[A-Z][a-z]{2} +[0-9]+ [0-9:]+ //; s/\[[0-9]+\]/[N]/g; s/(id|batch)=[0-9A-Fa-f]+/\1=N/g; s/\b[0-9A-F]{10,}\b/ID/g' <<<"$samples" |
        { grep . || true; } | sort | uniq -c | sort -rn | head -3 |
        sed -E 's/^ *([0-9]+) (.*)/\1× \2/' | jq -R . | jq -s -c .)

    gzip -f "$RAW/$tag.log"   # a Postfix maillog is ~5 lines per message
    local hz; hz=$(getconf CLK_TCK)
    jq -n -c \
        --arg mta "$mta" --arg workload "$name" --arg desc "$desc" --arg kind "$kind" \
        --argjson round "$round" --argjson conns "$conns" \
        --slurpfile load "$RAW/$tag.load.json" \
        --argjson sink "$( ((relay)) && jq -c . "$RAW/$tag.sink.json" 2>/dev/null || echo null)" \
        --argjson cpu "$(calc "$c1 - $c0")" \
        --argjson machine_busy "$(calc "($b1 - $b0) / $hz")" \
        --argjson machine_total "$(calc "($t1 - $t0) / $hz")" \
        --argjson load_cpu "$LOAD_CPU" \
        --slurpfile mem "$RAW/$tag.mem.json" --argjson mem_end "$mem_end" \
        --argjson queued "$queued" --argjson drained "$drained" --argjson metrics "$metrics" \
        --argjson offered "${offered:-null}" \
        --argjson problems "$problems" --argjson samples "$samples" --argjson quiet "$quiet" --argjson loadavg "$loadavg" \
        '{mta:$mta, workload:$workload, desc:$desc, kind:$kind, round:$round, connections:$conns,
          load:$load[0], sink:$sink, cpu_s:$cpu, machine_busy_s:$machine_busy, machine_total_s:$machine_total, load_cpu_s:$load_cpu,
          mem_peak:$mem[0], mem_end:$mem_end, queued:$queued, drained:$drained,
          offered_rate:$offered, store_metrics:$metrics,
          log_problems:$problems, log_samples:$samples, busy_pct_before:$quiet, loadavg:$loadavg}' \
        >>"$RAW/runs.jsonl"
    local rate
    if ((relay)); then rate=$(jq '.messages_per_s|floor' "$RAW/$tag.sink.json" 2>/dev/null || echo "?"); else rate=$(jq '.messages_per_s|floor' "$RAW/$tag.load.json"); fi
    log "$tag: $rate msg/s, ok $ok, queued $queued, p99 $(jq '.data_latency_ms.p99' "$RAW/$tag.load.json") ms, cpu $(calc "$c1 - $c0") s, load avg $loadavg"
}

# ---------------------------------------------------------------------------------
run_bench_rounds() {
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((w = 0; w < ${#BENCH_WORKLOADS[@]}; w++)); do
            # A/B alternation: the order flips with every workload and every round.
            if (((r + w) % 2)); then order=(postfix mxring); else order=(mxring postfix); fi
            for mta in "${order[@]}"; do run_one "$mta" "${BENCH_WORKLOADS[w]}" "$r"; done
            if ((w == 0 && POSTFIX_HOLD_EXTRA)); then run_one postfix-hold "${BENCH_WORKLOADS[w]}" "$r"; fi
        done
    done
}


# The ceiling: Postfix's own smtp-source into smtp-sink, plaintext 1 KiB, 50 sessions.
# "mxring as a share of the ceiling" is also measured with the same generator:
# smtp-source into mxring (accept-only), alternating with the sink, CEILING_ROUNDS times.
# smtp_source PORT N: runs smtp-source, prints the elapsed seconds.
smtp_source() {
    local t0 t1
    t0=$(date +%s.%N)
    smtp-source -s 50 -l 1024 -m "$2" -d -t bench@example.com "127.0.0.1:$1"
    t1=$(date +%s.%N)
    calc "$t1 - $t0"
}
ceiling_smtp_sink() {
    smtp-sink -u nobody -c "127.0.0.1:$CEIL_PORT" 1024 >/dev/null 2>&1 &
    local pid=$!
    BG_PIDS+=("$pid")
    wait_port "$CEIL_PORT" || die "smtp-sink did not start"
    local n=2000 s rate
    # calibrate, then size the real runs to about DURATION seconds
    s=$(smtp_source "$CEIL_PORT" "$n")
    rate=$(calc "$n / $s")
    n=$(printf '%.0f' "$(calc "$rate * $DURATION")")
    ((n < 2000)) && n=2000
    : >"$RAW/ceiling-pairs.jsonl"
    local r sink_s mx_s queued
    for ((r = 1; r <= ${CEILING_ROUNDS:-3}; r++)); do
        wait_quiet
        sink_s=$(smtp_source "$CEIL_PORT" "$n")
        start_mta mxring "$CLOSED_PORT" "ceiling-mxring.r$r"
        wait_quiet
        mx_s=$(smtp_source "$MX_PORT" "$n")
        queued=$(mx_queued)
        stop_mta mxring "ceiling-mxring.r$r"
        gzip -f "$RAW/ceiling-mxring.r$r.log"
        jq -n -c --argjson n "$n" --argjson sink "$sink_s" --argjson mx "$mx_s" --argjson queued "$queued" \
            '{messages:$n, sink_s:$sink, mxring_s:$mx, mxring_queued:$queued,
              sink_per_s:($n/$sink), mxring_per_s:($n/$mx)}' >>"$RAW/ceiling-pairs.jsonl"
        log "smtp-source -> smtp-sink $(calc "$n / $sink_s") msg/s, -> mxring $(calc "$n / $mx_s") msg/s ($queued queued of $n)"
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    jq -s '{tool:"smtp-source -s 50 -l 1024 -d -> smtp-sink", messages:.[0].messages,
            messages_per_s:([.[].sink_per_s] | sort | .[length/2|floor])}' \
        "$RAW/ceiling-pairs.jsonl" >"$RAW/ceiling-smtp-sink.json"
    log "ceiling smtp-source -> smtp-sink: $(jq '.messages_per_s|floor' "$RAW/ceiling-smtp-sink.json") msg/s (median)"
}
# The same with our own tools: mxring-bench load into mxring-bench sink.
ceiling_bench_sink() {
    "$BENCH" sink --listen "127.0.0.1:$CEIL_PORT" --duration $((DURATION + 30)) --json \
        >"$RAW/ceiling-bench-sink.sink.json" 2>/dev/null &
    local pid=$!
    BG_PIDS+=("$pid")
    wait_port "$CEIL_PORT" || die "sink did not start"
    run_load ceiling-bench-sink --target "127.0.0.1:$CEIL_PORT" --connections "$CONNECTIONS" \
        --duration "$DURATION" --size 1024
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "ceiling mxring-bench load -> sink: $(jq '.messages_per_s|floor' "$RAW/ceiling-bench-sink.load.json") msg/s"
}
# The ceilings and the half-peak p99 of the mxring-bench workloads.
run_bench_tail() {
    wait_quiet
    ceiling_smtp_sink
    wait_quiet
    ceiling_bench_sink

    # p99 at half of the peak rate (accept-1k, the same connection count as the peak runs),
    # offered open-loop by `mxring-bench load --rate`. Postfix runs at half of its own peak,
    # and at mxring's half-peak rate (where it saturates) for the same offered load.
    # Each is run HALF_PEAK_ROUNDS times; the spool device's fdatasync latency is probed
    # before and after, since the p99 cannot be below what the disk takes.
    if [[ $HALF_PEAK == 1 ]]; then
        median_peak() {
            jq -s --arg m "$1" '[.[] | select(.mta==$m and .workload=="accept-1k" and .kind=="main") | .load.messages_per_s] | sort | .[length/2|floor]' "$RAW/runs.jsonl"
        }
        mx_peak=$(median_peak mxring)
        pf_peak=$(median_peak postfix)
        mx_half=$(calc "$mx_peak / 2")
        pf_half=$(calc "$pf_peak / 2")
        log "half peak: mxring $mx_half msg/s, Postfix $pf_half msg/s (offered, $CONNECTIONS connections)"
        "$PY" "$PERF_DIR/fsync_probe.py" "$WORK" 500 >"$RAW/fsync-before.json"
        for ((r = 1; r <= ${HALF_PEAK_ROUNDS:-3}; r++)); do
            wait_quiet
            run_one mxring "${BENCH_WORKLOADS[0]}" "$r" "$CONNECTIONS" "$DURATION" halfpeak "$mx_half"
            run_one postfix "${BENCH_WORKLOADS[0]}" "$r" "$CONNECTIONS" "$DURATION" halfpeak "$pf_half"
        done
        run_one postfix "${BENCH_WORKLOADS[0]}" 0 "$CONNECTIONS" "$DURATION" halfpeak-same "$mx_half"
        "$PY" "$PERF_DIR/fsync_probe.py" "$WORK" 500 >"$RAW/fsync-after.json"
        jq -n --argjson mx "$mx_peak" --argjson pf "$pf_peak" --argjson conns "$CONNECTIONS" \
            --slurpfile before "$RAW/fsync-before.json" --slurpfile after "$RAW/fsync-after.json" \
            '{mxring_peak:$mx, postfix_peak:$pf, connections:$conns, fsync_before:$before[0], fsync_after:$after[0]}' \
            >"$RAW/halfpeak.json"
    fi
}

log "work dir $WORK, raw results $ARCHIVE, $ROUNDS round(s), parts: $WORKLOADS"
want smtp-source && run_smtp_source_workloads
if want bench; then
    run_bench_rounds
    run_bench_tail
fi

END_TS=$(date +%s)
cut -d' ' -f1-3 /proc/loadavg >"$RAW/loadavg-end"
jq -n \
    --arg date "$DATE" --arg rev "$GIT_REV" --arg bin_date "$BIN_DATE" \
    --argjson rounds "$ROUNDS" --argjson duration "$DURATION" --argjson conns "$CONNECTIONS" \
    --arg postfix_version "$(postconf -d -h mail_version 2>/dev/null)" \
    --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
    --argjson ncpu "$(nproc)" --arg kernel "$(uname -r)" \
    --arg load_start "$(cat "$RAW/loadavg-start")" --arg load_end "$(cat "$RAW/loadavg-end")" \
    --argjson wall "$((END_TS - START_TS))" --argjson quiet_spent "$QUIET_SPENT" \
    --arg fs "$(df -T "$WORK" | awk 'NR==2{print $2" on "$1}')" \
    --arg workloads "$WORKLOADS" --arg command "$REPRODUCE" \
    '{date:$date, workloads:$workloads, command:$command, git_rev:$rev, binary_built:$bin_date, rounds:$rounds, duration_s:$duration,
      connections:$conns, postfix_version:$postfix_version,
      cpu:$cpu, ncpu:$ncpu, kernel:$kernel, loadavg_start:$load_start, loadavg_end:$load_end,
      wall_s:$wall, quiet_wait_s:$quiet_spent, spool_fs:$fs}' >"$RAW/meta.json"

if want smtp-source; then "$PY" "$PERF_DIR/smtp_source_report.py" "$RAW" >"$RAW/smtp-source.md"; fi
"$PY" "$PERF_DIR/report.py" "$RAW" "$RESULTS_DIR/$DATE.md" "$RESULTS_DIR/$DATE.svg" "$(basename "$ARCHIVE")"
log "wrote $RESULTS_DIR/$DATE.md in $((END_TS - START_TS)) s"

# The two I/O back ends side by side (1 KiB and 100 KiB, smtp-source and mxring-bench,
# with a profile of the 100 KiB case): perf/results/<date>-backends.md, its raw files
# in this run's archive.
if want backends && [[ ${BACKENDS:-1} == 1 ]]; then
    SKIP_BUILD=1 DATE=$DATE PROFILE=${PROFILE:-1} BACKENDS_RAW="$RAW/backends" bash "$PERF_DIR/backends.sh"
fi
