# The smtp-source workloads of perf/compare.sh (WORKLOADS=smtp-source). Sourced by
# compare.sh after its helpers (start_mta, stop_mta, wait_quiet, cpu_settled, run_load,
# calc, cpu_jiffies, mx_queued); not run on its own.
#
# Postfix's own load tool, one message in flight per session as every real sending MTA
# does, into both MTAs relaying to ONE smtp-sink on loopback (mxring's route and
# Postfix's relayhost point at the same port), and straight into that smtp-sink (the
# ceiling: no MTA at all). Per round and workload the three targets run with the same
# message count, the MTA order flipping every time. For every run: the rate of 250s
# (smtp-source's wall time), the end-to-end rate (until smtp-sink counted every message),
# the bytes the MTA's processes wrote to disk (/proc/PID/io over the process tree, see
# procstat.py), the device's own write counter for context, and CPU. Before and after
# the rounds, the disk's fdatasync'd sequential write bandwidth (disk_bw.py) in the
# spool's file system. Then the p99 DATA→250 at half of the peak, offered open-loop by
# `mxring-bench load --rate` with the peak's connection count, relaying into the same
# smtp-sink.

SS_SINK_PORT=${SS_SINK_PORT:-27525}
SS_SESSIONS=${SS_SESSIONS:-$CONNECTIONS}
# The same counts for every target; sized so that Postfix needs roughly 10 s for each.
SS_N_100K=${SS_N_100K:-3000}
SS_N_1K=${SS_N_1K:-20000}
SS_N_NEWCONN=${SS_N_NEWCONN:-5000}
SS_HALF_PEAK=${SS_HALF_PEAK:-1}
SS_PEER_CHECK=${SS_PEER_CHECK:-1}  # also ss-1k once per MTA with the next hop down
SS_HALF_PEAK_ROUNDS=${SS_HALF_PEAK_ROUNDS:-3}
SS_DRAIN_MAX=${SS_DRAIN_MAX:-120}  # longest wait for the sink to count every message
SS_RUN_MAX=${SS_RUN_MAX:-600}      # longest one smtp-source run may take (then: exit 124)
SS_MAX_OTHERS=${SS_MAX_OTHERS:-25} # % of the machine other jobs may take before a run is redone
# KiB per write + fdatasync: one 100 KiB message; 10 of them; 50 of them (the largest
# group commit 50 sessions with one message in flight each can make); the device's own
# bandwidth.
DISK_BW_BLOCKS=${DISK_BW_BLOCKS:-100,1024,5000,16384}
DISK_BW_MIB=${DISK_BW_MIB:-256}

# name|body bytes|reuse the connection|messages|description
SS_WORKLOADS=(
    "ss-100k|102400|1|$SS_N_100K|100 KiB, connection reused"
    "ss-1k|1024|1|$SS_N_1K|1 KiB, connection reused"
    "ss-newconn-1k|1024|0|$SS_N_NEWCONN|1 KiB, new connection per message"
)

SS_SINK_PID=
ss_sink_start() {
    # -c: a running count of messages on stdout ("\rsess=N quit=N mesg=N"); 1024 is the
    # listen backlog, so 50 new connections at once are never refused.
    smtp-sink -u nobody -c "127.0.0.1:$SS_SINK_PORT" 1024 >"$WORK/ss-sink.count" 2>"$RAW/ss-sink.err" &
    SS_SINK_PID=$!
    BG_PIDS+=("$SS_SINK_PID")
    wait_port "$SS_SINK_PORT" || die "smtp-sink did not open port $SS_SINK_PORT"
}

ss_sink_stop() {
    [[ -n $SS_SINK_PID ]] || return 0
    kill -TERM "$SS_SINK_PID" 2>/dev/null || true
    wait "$SS_SINK_PID" 2>/dev/null || true
    SS_SINK_PID=
}

# Messages smtp-sink has received since it started.
ss_sink_count() {
    local n
    n=$(tail -c 200 "$WORK/ss-sink.count" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -1 || true)
    echo "${n#mesg=}" | sed 's/^$/0/'
}

# ss_wait_count TARGET: polls (20 ms) until the sink's count reaches TARGET or
# SS_DRAIN_MAX seconds pass; prints the time it got there (or gave up).
ss_wait_count() {
    local target=$1 deadline n
    deadline=$(($(date +%s) + SS_DRAIN_MAX))
    while :; do
        n=$(ss_sink_count)
        ((n >= target || $(date +%s) >= deadline)) && break
        sleep 0.02
    done
    date +%s.%N
}

# Sectors written by the device under the spool (whole device: everyone's writes,
# and the file system's journal, which no process is charged for).
SPOOL_DEV=
disk_sectors_written() {
    if [[ -z $SPOOL_DEV ]]; then
        SPOOL_DEV=$(basename "$(df --output=source "$WORK" | tail -1)")
    fi
    awk '{print $7}' "/sys/class/block/$SPOOL_DEV/stat" 2>/dev/null || echo 0
}

# smtp_source_timed TAG PORT SIZE REUSE N: runs smtp-source; sets SS_T0/SS_T1,
# SS_GEN_CPU (its user+system seconds) and SS_EXIT (its exit status: 1 after one of its
# fatal errors, 141 when a write hit a connection the server had closed: SIGPIPE, with
# no message at all; 124 when it ran out of SS_RUN_MAX).
smtp_source_timed() {
    local tag=$1 port=$2 size=$3 reuse=$4 n=$5 t
    local args=(-s "$SS_SESSIONS" -l "$size" -m "$n" -f bench@load.test -t bench@example.com)
    ((reuse)) && args+=(-d)
    SS_T0=$(date +%s.%N)
    t=$( { timeout "$SS_RUN_MAX" smtp-source "${args[@]}" "127.0.0.1:$port" >"$RAW/$tag.ss.out" 2>"$RAW/$tag.ss.err"
           echo $? >"$WORK/ss.exit"; times; } | tail -1)
    SS_T1=$(date +%s.%N)
    SS_EXIT=$(cat "$WORK/ss.exit")
    SS_GEN_CPU=$(awk '{ s=0; for (i=1;i<=2;i++){ split($i,a,/[ms]/); s+=a[1]*60+a[2] } printf "%.2f", s }' <<<"$t")
}

# ss_run TARGET WORKLOAD ROUND [down] [retry]: one measured run; TARGET is sink, mxring
# or postfix. With "down" the MTA's next hop is a closed port (accept-only: every
# message is accepted, tried once and stays queued), and the run is valid when all are
# queued. A run during which other jobs took more than SS_MAX_OTHERS % of the machine is
# marked superseded and run once more (the retry counts, loaded or not).
ss_run() {
    local target=$1 wl=$2 round=$3 down=${4:-} retry=${5:-}
    local name size reuse n desc
    IFS='|' read -r name size reuse n desc <<<"$wl"
    local tag="$name.$target.r$round${down:+.down}${retry:+.retry}" port root
    if [[ $target == sink ]]; then
        port=$SS_SINK_PORT
        root=$SS_SINK_PID
    else
        start_mta "$target" "$([[ -n $down ]] && echo "$CLOSED_PORT" || echo "$SS_SINK_PORT")" "$tag"
        port=$MTA_PORT
        root=$ROOT_PID
    fi
    wait_quiet
    local quiet=$BUSY_PCT loadavg b0 t0 b1 t1 c0 c1 s0 s1 io0 io1 d0 d1 base
    loadavg=$(cut -d' ' -f1 /proc/loadavg)
    base=$(ss_sink_count)
    io0=$("$PY" "$PERF_DIR/procstat.py" io "$root")
    d0=$(disk_sectors_written)
    c0=$("$PY" "$PERF_DIR/procstat.py" cpu "$root")
    s0=$("$PY" "$PERF_DIR/procstat.py" cpu "$SS_SINK_PID")
    # Kernel threads (children of kthreadd, pid 2): the journal (jbd2) and writeback
    # kworkers work for whoever writes files, so this is counted apart from "others".
    rm -f "$WORK/kthreads.json"
    "$PY" "$PERF_DIR/procstat.py" kcpu "$WORK/kthreads.json" >/dev/null
    read -r b0 t0 < <(cpu_jiffies)

    smtp_source_timed "$tag" "$port" "$size" "$reuse" "$n"
    local t_done delivered
    if [[ -n $down ]]; then
        t_done=$SS_T1
        delivered=0
    else
        t_done=$(ss_wait_count $((base + n)))
        delivered=$(($(ss_sink_count) - base))
    fi

    c1=$(cpu_settled "$root")
    s1=$("$PY" "$PERF_DIR/procstat.py" cpu "$SS_SINK_PID")
    local kcpu
    kcpu=$("$PY" "$PERF_DIR/procstat.py" kcpu "$WORK/kthreads.json")
    read -r b1 t1 < <(cpu_jiffies)
    io1=$("$PY" "$PERF_DIR/procstat.py" io "$root")
    d1=$(disk_sectors_written)
    local metrics=null queued=null log_bytes=0
    case $target in
        mxring)
            metrics=$(curl -s --max-time 30 "http://127.0.0.1:$MX_ADMIN_PORT/metrics.json" | jq -c '.store' 2>/dev/null || echo null)
            [[ -n $metrics ]] || metrics=null
            queued=$(mx_queued)
            ;;
        postfix)
            queued=$(postfix_queued "$PFDIR")
            log_bytes=$(stat -c %s "$PFDIR/maillog" 2>/dev/null || echo 0)
            ;;
    esac
    [[ $target == sink ]] || stop_mta "$target" "$tag"
    local problems=0
    if [[ $target == mxring ]]; then
        problems=$(mx_log_problems "$RAW/$tag.log")
    elif [[ $target == postfix ]]; then
        problems=$(pf_log_problems "$RAW/$tag.log")
    fi
    [[ -f $RAW/$tag.log ]] && gzip -f "$RAW/$tag.log"
    local gen_errors
    gen_errors=$(grep -c . "$RAW/$tag.ss.err" || true)
    local hz
    hz=$(getconf CLK_TCK)
    jq -n -c --arg target "$target" --arg workload "$name" --arg desc "$desc" --arg down "$down" --arg retry "$retry" \
        --argjson round "$round" --argjson size "$size" --argjson reuse "$reuse" \
        --argjson messages "$n" --argjson sessions "$SS_SESSIONS" --argjson delivered "$delivered" \
        --argjson t0 "$SS_T0" --argjson t1 "$SS_T1" --argjson t_done "$t_done" \
        --argjson io0 "$io0" --argjson io1 "$io1" \
        --argjson dev_bytes "$(((d1 - d0) * 512))" --argjson log_bytes "$log_bytes" \
        --argjson cpu "$(calc "$c1 - $c0")" --argjson sink_cpu "$(calc "$s1 - $s0")" \
        --argjson gen_cpu "$SS_GEN_CPU" --argjson kthreads_cpu "$kcpu" \
        --argjson machine_busy "$(calc "($b1 - $b0) / $hz")" \
        --argjson machine_total "$(calc "($t1 - $t0) / $hz")" \
        --argjson queued "$queued" --argjson metrics "$metrics" --argjson problems "$problems" \
        --argjson gen_errors "$gen_errors" --argjson gen_exit "$SS_EXIT" --argjson quiet "$quiet" --argjson loadavg "$loadavg" \
        '{target:$target, workload:$workload, desc:$desc, round:$round, size:$size, reuse:($reuse==1),
          messages:$messages, sessions:$sessions, delivered:$delivered,
          accept_s:($t1-$t0), e2e_s:($t_done-$t0),
          accept_per_s:($messages/($t1-$t0)), e2e_per_s:($delivered/($t_done-$t0)),
          disk_write_bytes:(($io1.write_bytes-$io0.write_bytes)-($io1.cancelled_write_bytes-$io0.cancelled_write_bytes)),
          disk_write_bytes_gross:($io1.write_bytes-$io0.write_bytes),
          disk_cancelled_bytes:($io1.cancelled_write_bytes-$io0.cancelled_write_bytes),
          log_bytes:$log_bytes, device_write_bytes:$dev_bytes,
          cpu_s:$cpu, sink_cpu_s:$sink_cpu, gen_cpu_s:$gen_cpu, kthreads_cpu_s:$kthreads_cpu,
          machine_busy_s:$machine_busy, machine_total_s:$machine_total,
          queued_after:$queued, store_metrics:$metrics, log_problems:$problems,
          generator_error_lines:$gen_errors, generator_exit:$gen_exit,
          next_hop_down:($down != ""), retry:($retry != ""), superseded:false,
          valid:($gen_exit == 0 and (if $down != "" then $queued == $messages else $delivered == $messages end)),
          busy_pct_before:$quiet, loadavg:$loadavg}' \
        >>"$RAW/ss-runs.jsonl"
    local others
    others=$(jq -r '((.machine_busy_s - .cpu_s - .gen_cpu_s - .kthreads_cpu_s - (if .target == "sink" then 0 else .sink_cpu_s end)) / .machine_total_s * 100) | if . < 0 then 0 else floor end' <(tail -1 "$RAW/ss-runs.jsonl"))
    log "$tag: $(jq -r '"\(.accept_per_s|floor) msg/s accepted, \(.e2e_per_s|floor) end to end, \(.delivered) of \(.messages) delivered, \(.disk_write_bytes/.messages|floor) B written/msg, cpu \(.cpu_s) s"' <(tail -1 "$RAW/ss-runs.jsonl")), others ${others}%"
    if [[ -z $retry ]] && ((others > SS_MAX_OTHERS)); then
        log "$tag: other jobs took ${others}% of the machine (> SS_MAX_OTHERS=$SS_MAX_OTHERS): once more"
        { head -n -1 "$RAW/ss-runs.jsonl"; tail -1 "$RAW/ss-runs.jsonl" | jq -c '.superseded = true'; } >"$WORK/ss-runs.tmp"
        mv "$WORK/ss-runs.tmp" "$RAW/ss-runs.jsonl"
        ss_run "$target" "$wl" "$round" "$down" 1
    fi
}

# ss_bench TARGET ROUND KIND [RATE]: mxring-bench load, 1 KiB, SS_SESSIONS connections,
# into TARGET relaying to the same smtp-sink; closed loop without RATE (the harness's
# peak), open loop at RATE otherwise. One JSON line into ss-bench.jsonl.
ss_bench() {
    local target=$1 round=$2 kind=$3 rate=${4:-}
    local tag="ss-bench-$kind.$target.r$round${rate:+.at${rate%.*}}"
    start_mta "$target" "$SS_SINK_PORT" "$tag"
    wait_quiet
    local quiet=$BUSY_PCT base args
    base=$(ss_sink_count)
    args=(--target "127.0.0.1:$MTA_PORT" --connections "$SS_SESSIONS" --duration "$DURATION" --size 1024)
    [[ -n $rate ]] && args+=(--rate "$rate")
    run_load "$tag" "${args[@]}"
    local ok delivered
    ok=$(jq '.messages_ok' "$RAW/$tag.load.json")
    ss_wait_count $((base + ok)) >/dev/null
    delivered=$(($(ss_sink_count) - base))
    local metrics=null
    if [[ $target == mxring ]]; then
        metrics=$(curl -s --max-time 30 "http://127.0.0.1:$MX_ADMIN_PORT/metrics.json" | jq -c '.store' 2>/dev/null || echo null)
        [[ -n $metrics ]] || metrics=null
    fi
    stop_mta "$target" "$tag"
    [[ -f $RAW/$tag.log ]] && gzip -f "$RAW/$tag.log"
    jq -n -c --arg target "$target" --arg kind "$kind" --argjson round "$round" \
        --argjson offered "${rate:-null}" --slurpfile load "$RAW/$tag.load.json" \
        --argjson delivered "$delivered" --argjson metrics "$metrics" --argjson quiet "$quiet" \
        '{target:$target, kind:$kind, round:$round, offered_rate:$offered,
          load:($load[0] | del(.series)), delivered:$delivered, store_metrics:$metrics,
          busy_pct_before:$quiet}' >>"$RAW/ss-bench.jsonl"
    log "$tag: $(jq -r '"\(.messages_per_s|floor) msg/s, p99 DATA→250 \(.data_latency_ms.p99) ms"' "$RAW/$tag.load.json"), $delivered delivered"
}

ss_disk_bw() {
    local when=$1
    "$PY" "$PERF_DIR/disk_bw.py" "$WORK" "$DISK_BW_BLOCKS" "$DISK_BW_MIB" 5 >"$RAW/disk-bw-$when.json"
    log "disk, write + fdatasync ($when): $(jq -r '[.blocks[] | "\(.block_bytes/1024) KiB \([.append.mib_per_s, .overwrite.mib_per_s] | max) MiB/s"] | join(", ")' "$RAW/disk-bw-$when.json")"
}

# median of the accept rates of TARGET on WORKLOAD
ss_median_accept() {
    jq -s --arg t "$1" --arg w "$2" \
        '[.[] | select(.target==$t and .workload==$w) | .accept_per_s] | sort | if length == 0 then 0 else .[length/2|floor] end' \
        "$RAW/ss-runs.jsonl"
}

run_smtp_source_workloads() {
    command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null ||
        die "smtp-source/smtp-sink missing (Debian package postfix)"
    : >"$RAW/ss-runs.jsonl"
    : >"$RAW/ss-bench.jsonl"
    # The Postfix instance as it ran (relayhost is set per run), for the report.
    postconf -c "$PFDIR" -e "relayhost = [127.0.0.1]:$SS_SINK_PORT" "smtpd_data_restrictions ="
    postconf -c "$PFDIR" -n >"$RAW/postfix-main.cf"
    cp "$PFDIR/master.cf" "$RAW/postfix-master.cf"
    ss_sink_start
    wait_quiet
    ss_disk_bw before
    local r w order t
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((w = 0; w < ${#SS_WORKLOADS[@]}; w++)); do
            # The ceiling first, then the MTAs, their order flipping with every workload
            # and round.
            if (((r + w) % 2)); then order=(sink postfix mxring); else order=(sink mxring postfix); fi
            for t in "${order[@]}"; do ss_run "$t" "${SS_WORKLOADS[w]}" "$r"; done
        done
    done
    # The peer check: the same 1 KiB workload with each MTA's next hop down (a closed
    # port, as in the mxring-bench part's accept-only workloads), once each, to show
    # what that set-up costs each of them next to the relay figures above.
    if [[ $SS_PEER_CHECK == 1 ]]; then
        for t in postfix mxring; do ss_run "$t" "${SS_WORKLOADS[1]}" 1 down; done
    fi
    wait_quiet
    ss_disk_bw after

    if [[ $SS_HALF_PEAK == 1 ]]; then
        # The peak: the higher of smtp-source's median and mxring-bench's closed loop in
        # the same set-up (relay into smtp-sink, 1 KiB, SS_SESSIONS connections), so the
        # half-peak rate is never flattered by the slower generator.
        local mta peak half
        declare -A SS_HALF
        for mta in mxring postfix; do
            ss_bench "$mta" 0 peak
            peak=$(jq -s --arg t "$mta" '[.[] | select(.target==$t and .kind=="peak") | .load.messages_per_s] | max' "$RAW/ss-bench.jsonl")
            peak=$(awk -v a="$peak" -v b="$(ss_median_accept "$mta" ss-1k)" 'BEGIN{print (a > b ? a : b)}')
            half=$(calc "$peak / 2")
            SS_HALF[$mta]=$half
            log "$mta: peak $peak msg/s, half-peak rate $half msg/s"
        done
        for ((r = 1; r <= SS_HALF_PEAK_ROUNDS; r++)); do
            if ((r % 2)); then order=(mxring postfix); else order=(postfix mxring); fi
            for mta in "${order[@]}"; do ss_bench "$mta" "$r" halfpeak "${SS_HALF[$mta]}"; done
        done
        # Postfix once at mxring's half-peak rate too: the same offered load.
        ss_bench postfix 0 halfpeak-same "${SS_HALF[mxring]}"
        "$PY" "$PERF_DIR/fsync_probe.py" "$WORK" 500 >"$RAW/ss-fsync-after.json"
    fi
    ss_sink_stop
}
