#!/usr/bin/env bash
# Memory per idle connection: mxring (2 shards) holding 10,000 idle SMTP connections,
# half plaintext (after EHLO), half after STARTTLS (TLS 1.3 handshake and a second EHLO).
#
#   perf/memory.sh                    # about a minute
#   CONNECTIONS=2000 perf/memory.sh   # smaller
#
# VmRSS of mxring is read before and after each half; the halves are opened in both
# orders (two mxring runs) so the plain and TLS estimates do not depend on which came first.
# Writes perf/results/<date>-memory.md (raw JSON in <date>-memory-raw.tar.gz).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNECTIONS=${CONNECTIONS:-10000}
SETTLE=${SETTLE:-3}            # seconds between opening connections and reading VmRSS
MX_PORT=${MX_PORT:-27425}
CLOSED_PORT=${CLOSED_PORT:-27999}
DATE=${DATE:-$(date +%F)}
TARGET_TLS_KIB=32
HALF=$((CONNECTIONS / 2))

# Each side of 10,000 loopback connections needs a descriptor; mxring also needs a few
# dozen for itself. Raise the soft limit as far as the hard limit allows.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FDS=$(ulimit -n)
((FDS >= CONNECTIONS + 200)) || die "fd limit $FDS is too low for $CONNECTIONS connections (raise the hard limit)"
if (($(sysctl -n net.core.somaxconn) < 4096)); then
    sysctl -qw net.core.somaxconn=4096 || log "could not raise net.core.somaxconn"
fi
read -r PORT_LO PORT_HI < <(sysctl -n net.ipv4.ip_local_port_range)
((PORT_HI - PORT_LO > CONNECTIONS + 1000)) || die "ephemeral port range $PORT_LO-$PORT_HI too small"
require_free_ports "$MX_PORT"

WORK=$(mktemp -d /tmp/mxring-mem.XXXXXX)
RAW="$RESULTS_DIR/$DATE-memory-raw"
rm -rf "$RAW"
mkdir -p "$RAW"
HELPER_PID=
cleanup() {
    local rc=$?
    set +e
    [[ -n $HELPER_PID ]] && kill -TERM "$HELPER_PID" 2>/dev/null && wait "$HELPER_PID" 2>/dev/null
    [[ -n ${MX_PID:-} ]] && stop_pid "$MX_PID" 20
    [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

snapshot_binaries "$WORK"
make_cert "$WORK"

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
established() { ss -Htn state established "sport = :$MX_PORT" | wc -l; }
tcp_mem_pages() { awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
snap() { # JSON snapshot of mxring's memory
    jq -n --argjson rss "$(status_kib "$MX_PID" VmRSS)" --argjson anon "$(status_kib "$MX_PID" RssAnon)" \
        --argjson file "$(status_kib "$MX_PID" RssFile)" --argjson hwm "$(status_kib "$MX_PID" VmHWM)" \
        --argjson threads "$(status_kib "$MX_PID" Threads)" --argjson est "$(established)" \
        --argjson tcp_mem_pages "$(tcp_mem_pages)" \
        '{rss_kib:$rss, anon_kib:$anon, file_kib:$file, hwm_kib:$hwm, threads:$threads,
          established:$est, kernel_tcp_mem_pages:$tcp_mem_pages}'
}

# helper CMD: sends one command to idle_conns.py and returns its answer line.
helper() {
    echo "$1" >&"${HELPER[1]}"
    local line
    IFS= read -r -t 600 line <&"${HELPER[0]}" || die "helper did not answer '$1'"
    echo "$line"
}

# run_order FIRST SECOND: one mxring, connections opened FIRST half then SECOND half.
run_order() {
    local first=$1 second=$2 tag="$1-first"
    rm -rf "$WORK/spool"
    write_mxring_config "$WORK/mxring.toml" "$MX_PORT" "$WORK/spool" "$CLOSED_PORT" 2 "" 20000 \
        "max_connections_per_ip = 0  # every test connection comes from 127.0.0.1"
    start_mxring "$WORK/mxring.toml" "$MX_PORT" "$RAW/$tag.log"
    coproc HELPER { exec "$PY" "$PERF_DIR/idle_conns.py" "127.0.0.1:$MX_PORT"; }
    HELPER_PID=$HELPER_PID
    # Warm-up: the first TLS session builds tables and pools that are not per-connection.
    local warm s0 s1 s2 s3 a1 a2 c1 c2
    warm=$(helper "plain 50"); warm=$(helper "tls 50"); helper close >/dev/null
    sleep "$SETTLE"
    s0=$(snap)
    a1=$(helper "$first $HALF")
    sleep "$SETTLE"
    c1=$(helper check)
    s1=$(snap)
    a2=$(helper "$second $HALF")
    sleep "$SETTLE"
    c2=$(helper check)
    s2=$(snap)
    helper close >/dev/null
    sleep "$SETTLE"
    s3=$(snap)
    # Open the same number again: if RSS grows again, memory leaks per connection;
    # if it stays put, the first round's growth is held by the allocator for reuse.
    local r1 r2 s4 s5
    r1=$(helper "$first $HALF"); r2=$(helper "$second $HALF")
    sleep "$SETTLE"
    s4=$(snap)
    helper close >/dev/null
    sleep "$SETTLE"
    s5=$(snap)
    helper quit >/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
    HELPER_PID=
    stop_pid "$MX_PID" 20
    MX_PID=
    jq -n --arg first "$first" --arg second "$second" --argjson half "$HALF" \
        --arg warm "$warm" --arg a1 "$a1" --arg a2 "$a2" --arg c1 "$c1" --arg c2 "$c2" \
        --argjson s0 "$s0" --argjson s1 "$s1" --argjson s2 "$s2" --argjson s3 "$s3" \
        --argjson s4 "$s4" --argjson s5 "$s5" --arg r2 "$r2" \
        --argjson problems "$(grep -cE ' (WARN|ERROR) |panicked' "$RAW/$tag.log" || true)" \
        '{first:$first, second:$second, half:$half, warmup:$warm, open1:$a1, check1:$c1,
          open2:$a2, check2:$c2, baseline:$s0, after_first:$s1, after_both:$s2,
          after_close:$s3, reopened:$s4, reopen_answer:$r2, after_close2:$s5, log_problems:$problems}' >"$RAW/$tag.json"
    log "$tag: baseline $(jq .rss_kib <<<"$s0") KiB, +$first $(jq .rss_kib <<<"$s1"), +$second $(jq .rss_kib <<<"$s2"), closed $(jq .rss_kib <<<"$s3"), reopened $(jq .rss_kib <<<"$s4"), closed $(jq .rss_kib <<<"$s5"); $c2"
}

log "fd limit $FDS; $CONNECTIONS connections, mxring with 2 shards"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
run_order plain tls
run_order tls plain
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------
"$PY" - "$RAW" "$RESULTS_DIR/$DATE-memory.md" "$CONNECTIONS" "$TARGET_TLS_KIB" \
    "$GIT_REV" "$BIN_DATE" "$FDS" "$LOAD_START" "$LOAD_END" "$DATE" <<'EOF'
import json, os, statistics, sys
raw, out, n, target, rev, bindate, fds, l0, l1, date = sys.argv[1:]
n, target = int(n), int(target)
runs = {o: json.load(open(os.path.join(raw, f"{o}-first.json"))) for o in ("plain", "tls")}
page = os.sysconf("SC_PAGE_SIZE")

def per(run, a, b, key="rss_kib"):
    return (run[b][key] - run[a][key]) * 1024 / run["half"]

est = {"plain": [], "tls": []}
rows = []
for o, r in runs.items():
    first, second = r["first"], r["second"]
    p1 = per(r, "baseline", "after_first")
    p2 = per(r, "after_first", "after_both")
    est[first].append(p1)
    est[second].append(p2)
    overall = (r["after_both"]["rss_kib"] - r["baseline"]["rss_kib"]) * 1024 / (2 * r["half"])
    rows.append((o, r, p1, p2, overall))

def kib(b):
    return f"{b / 1024:.1f} KiB"

L = [f"# mxring memory per idle connection, {date}", ""]
L.append(f"Generated by `perf/memory.sh`: mxring {rev} (binary built {bindate}), 2 shards, "
         f"{n:,} idle connections to one listener, half plaintext (banner + EHLO), half after "
         f"STARTTLS (TLS 1.3 handshake with an ECDSA P-256 certificate, then EHLO again). "
         f"`max_connections_per_shard = 20000`, `max_connections_per_ip = 0`; fd limit {fds}. Load average {l0} at the start, "
         f"{l1} at the end.")
L.append("")
L.append("## Result")
L.append("")
tls_med = statistics.mean(est["tls"])
plain_med = statistics.mean(est["plain"])
overall = statistics.mean(x[4] for x in rows)
verdict = "meets" if tls_med / 1024 <= target else "misses"
L.append("| | per connection (VmRSS growth / connections) |")
L.append("|---|---:|")
L.append(f"| all {n:,} (half plain, half TLS) | **{kib(overall)}** |")
L.append(f"| plaintext idle connection | **{kib(plain_med)}** (runs: {', '.join(kib(x) for x in est['plain'])}) |")
L.append(f"| TLS idle connection | **{kib(tls_med)}** (runs: {', '.join(kib(x) for x in est['tls'])}) |")
L.append("")
L.append(f"Target ≤ {target} KiB per idle TLS connection: mxring **{verdict}** it "
         f"({kib(tls_med)}).")
L.append("")
L.append("## Runs")
L.append("")
L.append("| order | baseline RSS | after 1st half | after 2nd half | after closing all | 1st half / conn | 2nd half / conn | established | threads | log problems |")
L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for o, r, p1, p2, ov in rows:
    b, a1, a2, c = r["baseline"], r["after_first"], r["after_both"], r["after_close"]
    L.append(f"| {r['first']} then {r['second']} | {b['rss_kib'] / 1024:.1f} MiB | {a1['rss_kib'] / 1024:.1f} MiB "
             f"| {a2['rss_kib'] / 1024:.1f} MiB | {c['rss_kib'] / 1024:.1f} MiB | {r['first']} {kib(p1)} "
             f"| {r['second']} {kib(p2)} | {a2['established']:,} | {a2['threads']} | {r['log_problems']} |")
L.append("")
L.append("Reuse after closing: the same connections opened again after all were closed "
         "(a leak would grow RSS again by about the same amount):")
for o, r, *_ in rows:
    grow = (r["reopened"]["rss_kib"] - r["after_close"]["rss_kib"]) * 1024 / (2 * r["half"])
    L.append(f"- {r['first']} first: after closing {r['after_close']['rss_kib'] / 1024:.1f} MiB → "
             f"{2 * r['half']:,} open again {r['reopened']['rss_kib'] / 1024:.1f} MiB ({kib(grow)} per "
             f"connection) → closed again {r['after_close2']['rss_kib'] / 1024:.1f} MiB. Helper: `{r['reopen_answer']}`.")
L.append("")
L.append("Anonymous vs file-backed RSS growth per connection (the whole run, both halves):")
for o, r, *_ in rows:
    anon = (r["after_both"]["anon_kib"] - r["baseline"]["anon_kib"]) * 1024 / (2 * r["half"])
    fil = (r["after_both"]["file_kib"] - r["baseline"]["file_kib"]) * 1024 / (2 * r["half"])
    kern = (r["after_both"]["kernel_tcp_mem_pages"] - r["baseline"]["kernel_tcp_mem_pages"]) * page / (2 * r["half"])
    L.append(f"- {r['first']} first: RssAnon {kib(anon)}, RssFile {kib(fil)}; kernel TCP buffer "
             f"memory (machine-wide, both ends of each loopback connection, not in RSS) {kib(kern)}.")
L.append("")
L.append("Helper answers (connections held, failures, seconds to open; `check` drops those the "
         "server closed):")
for o, r, *_ in rows:
    L.append(f"- {r['first']} first: `{r['open1']}` / `{r['check1']}`; then `{r['open2']}` / `{r['check2']}`")
L.append("")
L.append("## Method")
L.append("")
L.append("- `perf/idle_conns.py` (Python, standard library, one non-blocking selector, at most 400 "
         "handshakes in flight) opens the connections and holds them without sending anything "
         "more. A warm-up of 50 plain and 50 TLS connections, closed again, comes first so that "
         "one-time allocations (TLS tables, buffer pools) are in the baseline.")
L.append(f"- VmRSS of the mxring process (/proc/PID/status) is read {os.environ.get('SETTLE', '3')} s after "
         "each half is open; per-connection figure = RSS growth / connections in that half. Two "
         "mxring runs open the halves in opposite orders; the plain and TLS figures are the mean "
         "of the two runs.")
L.append("- RSS counts touched pages: allocator arenas that grew for these connections and are "
         "not returned after closing show in the 'after closing all' column.")
L.append("")
L.append(f"Raw data: `{os.path.basename(raw)}.tar.gz`.")
open(out, "w").write("\n".join(L) + "\n")
print(f"TLS {kib(tls_med)}, plain {kib(plain_med)}, overall {kib(overall)} per connection")
EOF
log "wrote $RESULTS_DIR/$DATE-memory.md"
archive_raw "$RAW"
