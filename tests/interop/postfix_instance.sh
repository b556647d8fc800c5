# A private Postfix instance: its own config directory (postfix -c DIR) holding
# main.cf, master.cf, the queue, the data directory and the log file, listening on
# loopback only. Sourced (not run) by tests/interop/run.sh, auth.sh, dane.sh and
# perf/postfix.sh; needs root (Postfix's master runs as root and drops to `postfix`).
#
#   pf_main DIR HOSTNAME [no-dns]  main.cf with what every instance shares (no-dns:
#                              and no DNS at all); append the instance's own
#                              settings to DIR/main.cf afterwards
#   pf_master DIR LISTENER...  master.cf: the given inet lines, then the services
#   pf_start DIR [HOST:]PORT...  start it and wait for each listener (HOST 127.0.0.1)
#   pf_stop DIR                stop it, waiting for the master to exit
#   pf_abort DIR               the same at once (cleanup on exit)
#   pf_master_pid DIR          the master's pid, when it runs

PF_POSTFIX=${PF_POSTFIX:-/usr/sbin/postfix}

# Nothing is local (no mydestination, aliases or local recipients), no chroot (the
# queue is not under /var/spool/postfix), the log is DIR/maillog, and smtpd does not
# throttle itself against a busy queue manager (in_flow_delay = 0). With no-dns the
# next hops are literal addresses and clients are not looked up (the test instances;
# the benchmark keeps Postfix's defaults).
pf_main() {
    local dir=$1 hostname=$2 dns=${3:-}
    mkdir -p "$dir/queue" "$dir/data"
    chown postfix "$dir/data"
    cat >"$dir/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $hostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
in_flow_delay = 0
biff = no
EOF
    if [[ $dns == no-dns ]]; then
        printf '%s\n' "smtp_dns_support_level = disabled" "smtpd_peername_lookup = no" >>"$dir/main.cf"
    fi
}

# Each LISTENER is a whole master.cf line (or lines) for an inet service, e.g.
# "127.0.0.1:2525 inet n - n - - smtpd"; the Debian unix services follow, chroot off.
pf_master() {
    local dir=$1
    shift
    {
        printf '%s\n' "$@"
        cat <<'EOF'
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
virtual    unix  - n n -  - virtual
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    } >"$dir/master.cf"
}

pf_master_pid() {
    local f=$1/queue/pid/master.pid
    [[ -s $f ]] && tr -dc 0-9 <"$f"
}

pf_listening() { # pf_listening HOST PORT
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Starts the instance and waits up to 15 s for every listener. On failure it says why
# on stderr (postfix's own words and the end of the maillog) and returns 1. The output
# of `postfix start` is in DIR/start.log.
pf_start() {
    local dir=$1 addr host port i
    shift
    if ! "$PF_POSTFIX" -c "$dir" start >"$dir/start.log" 2>&1; then
        echo "postfix -c $dir start failed:" >&2
        sed 's/^/  | /' "$dir/start.log" "$dir/maillog" >&2 2>/dev/null || true
        return 1
    fi
    for addr in "$@"; do
        host=127.0.0.1 port=$addr
        [[ $addr == *:* ]] && host=${addr%:*} port=${addr##*:}
        for ((i = 0; i < 150; i++)); do
            pf_listening "$host" "$port" && continue 2
            sleep 0.1
        done
        echo "postfix ($dir) is not listening on $host:$port after 15 s:" >&2
        tail -20 "$dir/maillog" 2>/dev/null | sed 's/^/  | /' >&2
        return 1
    done
}

# pf_wait_gone PID TENTHS: whether PID exited within TENTHS tenths of a second.
pf_wait_gone() {
    local i
    [[ -n $1 ]] || return 0
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# A clean stop (20 s at most), then abort and SIGKILL to the master.
pf_stop() {
    local dir=$1 pid
    pid=$(pf_master_pid "$dir" || true)
    "$PF_POSTFIX" -c "$dir" stop >/dev/null 2>&1 || true
    pf_wait_gone "$pid" 200 && return 0
    echo "postfix master $pid ($dir) still running: abort, then SIGKILL" >&2
    "$PF_POSTFIX" -c "$dir" abort >/dev/null 2>&1 || true
    pf_wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
}

# Abort (no clean shutdown: the instance is thrown away) and wait 5 s for the master.
pf_abort() {
    local dir=$1 pid
    pid=$(pf_master_pid "$dir" || true)
    "$PF_POSTFIX" -c "$dir" abort >/dev/null 2>&1 || true
    pf_wait_gone "$pid" 50 || true
}
