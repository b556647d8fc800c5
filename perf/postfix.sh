# A private Postfix instance on a high loopback port, run from its own config
# directory (postfix -c DIR). Sourced by perf/compare.sh, not run.
#
# The instance's queue is fsynced as always (Postfix has no switch to turn that off);
# in_flow_delay = 0 so smtpd is not throttled against a busy queue manager; process
# limits raised to 200 so 50 concurrent sessions plus cleanup/smtp processes fit.

install_postfix() {
    if ! command -v postfix >/dev/null || ! command -v smtp-source >/dev/null; then
        log "installing postfix"
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >/dev/null
    fi
    # The package may have started a system instance (it does not with "No configuration").
}

# postfix_setup DIR PORT NEXT_HOP_PORT: writes main.cf/master.cf and the directories.
postfix_setup() {
    local dir=$1 port=$2 next=$3
    mkdir -p "$dir/queue" "$dir/data"
    chown postfix:postfix "$dir/data"
    cat >"$dir/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.localhost
mydomain = bench.localhost
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$next
# Nothing is deferred on purpose: every message goes to relayhost at once.
defer_transports =
message_size_limit = 52428800
smtpd_recipient_limit = 1000
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
# Parallel deliveries to the one next hop: mxring allows 20 per shard, 2 shards here.
default_destination_concurrency_limit = 40
initial_destination_concurrency = 40
smtpd_tls_security_level = may
smtpd_tls_chain_files = $KEY, $CERT
smtpd_tls_loglevel = 0
smtp_tls_security_level = may
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
append_dot_mydomain = no
readme_directory = no
EOF
    # The Debian services, chroot off (the queue is not under /var/spool/postfix), and
    # one smtpd on the benchmark port; no other inet listener.
    cat >"$dir/master.cf" <<EOF
127.0.0.1:$port inet n - n - 200 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

postfix_master_pid() {
    local f="$1/queue/pid/master.pid"
    [[ -s $f ]] && tr -d ' \n' <"$f"
}

# postfix_start DIR PORT: a fresh, empty queue each time; sets PF_PID (the master).
postfix_start() {
    local dir=$1 port=$2
    rm -rf "$dir/queue"
    mkdir -p "$dir/queue"
    postfix -c "$dir" start >>"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; die "postfix start failed"; }
    wait_port "$port" 150 || { tail -20 "$dir/maillog" >&2; die "postfix did not open port $port"; }
    PF_PID=$(postfix_master_pid "$dir")
    [[ -n $PF_PID ]] || die "no postfix master pid"
}

postfix_stop() {
    local dir=$1 pid
    pid=$(postfix_master_pid "$dir" || true)
    postfix -c "$dir" stop >/dev/null 2>&1 || true
    if [[ -n ${pid:-} ]]; then
        for ((i = 0; i < 200; i++)); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        log "postfix master $pid still running: SIGKILL to its tree"
        postfix -c "$dir" abort >/dev/null 2>&1 || true
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# Messages in the instance's queue (all queues a message can be in after acceptance).
postfix_queued() {
    local dir=$1
    find "$dir/queue/incoming" "$dir/queue/active" "$dir/queue/deferred" \
        "$dir/queue/hold" "$dir/queue/maildrop" -type f 2>/dev/null | wc -l
}
