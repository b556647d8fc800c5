# Shared helpers for perf/compare.sh and perf/memory.sh. Sourced, not run.
# Everything here stays on 127.0.0.1.

PERF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$PERF_DIR/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$PERF_DIR/results}
PY=${PY:-$(command -v /usr/bin/python3 || command -v python3)}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Builds the workspace (unless SKIP_BUILD=1) and copies both binaries into $1, so that
# a colleague rebuilding target/ mid-run cannot swap the binary under the benchmark.
# A failed build (someone else's half-finished edit) falls back to the last good binaries.
snapshot_binaries() {
    local dest=$1
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release --workspace"
        if ! (cd "$REPO_DIR" && cargo build --release --workspace >"$dest/build.log" 2>&1); then
            log "build failed (see $dest/build.log); using the existing target/release binaries"
        fi
    fi
    for b in mxring mxring-bench; do
        [[ -x $REPO_DIR/target/release/$b ]] || die "target/release/$b missing: build first"
        cp "$REPO_DIR/target/release/$b" "$dest/$b"
    done
    MXRING="$dest/mxring"
    BENCH="$dest/mxring-bench"
    GIT_REV=$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(cd "$REPO_DIR" && git status --porcelain -- src Cargo.toml benches 2>/dev/null) ]]; then
        GIT_REV="$GIT_REV+uncommitted"
    fi
    BIN_DATE=$(date -r "$REPO_DIR/target/release/mxring" '+%Y-%m-%d %H:%M')
}

# One ECDSA P-256 key and self-signed certificate, used by every server in a run.
make_cert() {
    local dir=$1
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key.ec.pem" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$dir/key.ec.pem" -out "$dir/key.pem"
    openssl req -new -x509 -key "$dir/key.pem" -out "$dir/cert.pem" -days 30 \
        -subj "/CN=bench.localhost" \
        -addext "subjectAltName=DNS:bench.localhost,DNS:localhost,IP:127.0.0.1" 2>/dev/null
    chmod 644 "$dir/cert.pem" "$dir/key.pem"
    CERT="$dir/cert.pem"
    KEY="$dir/key.pem"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 tries=${2:-100}
    for ((i = 0; i < tries; i++)); do
        port_open "$port" && return 0
        sleep 0.1
    done
    return 1
}

# Fails if something already listens on one of the given ports.
require_free_ports() {
    local p
    for p in "$@"; do
        if ss -Htln "sport = :$p" | grep -q .; then
            die "port $p is already in use (set the *_PORT variables to free ports)"
        fi
    done
}

# write_mxring_config FILE PORT SPOOL NEXT_HOP_PORT [SHARDS] [ADMIN_ADDR] [MAX_CONN_PER_SHARD]
#                     [EXTRA_SERVER_KEYS]
write_mxring_config() {
    local file=$1 port=$2 spool=$3 next=$4 shards=${5:-0} admin=${6:-} maxconn=${7:-10000}
    local extra=${8:-}
    cat >"$file" <<EOF
[server]
hostname = "mxring.bench.localhost"
shards = $shards
spool = "$spool"
max_message_size = "50MiB"
max_connections_per_shard = $maxconn
$extra

[[listener]]
name = "mx"
address = "127.0.0.1:$port"
tls = "starttls"

[tls]
certificate = "$CERT"
private_key = "$KEY"

[relay]
networks = ["127.0.0.0/8"]
domains = []

[[route]]
domains = ["*"]
next_hop = "[127.0.0.1]:$next"

[outbound]
default_tls = "may"

[admin]
address = "$admin"
EOF
}

# start_mxring CONFIG PORT LOGFILE: sets MX_PID.
start_mxring() {
    local config=$1 port=$2 logfile=$3
    RUST_LOG=${MXRING_LOG:-warn} "$MXRING" serve --config "$config" >"$logfile" 2>&1 &
    MX_PID=$!
    if ! wait_port "$port" 150; then
        tail -20 "$logfile" >&2
        die "mxring did not open port $port"
    fi
}

# stop_pid PID [SECONDS]: SIGTERM, wait, SIGKILL as a last resort. Returns 1 if killed.
stop_pid() {
    local pid=$1 secs=${2:-20}
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

# archive_raw DIR: packs a results directory of raw files into DIR.tar.gz next to it and
# removes the directory (one file per run in the repository, not hundreds).
archive_raw() {
    local dir=$1
    [[ -d $dir ]] || return 0
    tar -C "$(dirname "$dir")" -czf "$dir.tar.gz" "$(basename "$dir")" && rm -rf "$dir"
    log "raw files: $dir.tar.gz"
}
