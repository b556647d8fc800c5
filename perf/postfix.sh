# A private Postfix instance on a high loopback port, run from its own config
# directory (postfix -c DIR) with the helpers the interop checks use
# (tests/interop/postfix_instance.sh). Sourced by perf/compare.sh, not run.
#
# The instance's queue is fsynced as always (Postfix has no switch to turn that off);
# in_flow_delay = 0 so smtpd is not throttled against a busy queue manager; process
# limits raised to 200 so 50 concurrent sessions plus cleanup/smtp processes fit.

source "$PERF_DIR/../tests/interop/postfix_instance.sh"

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
    pf_main "$dir" postfix.bench.localhost
    cat >>"$dir/main.cf" <<EOF
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
relay_domains =
relayhost = [127.0.0.1]:$next
# Nothing is deferred on purpose: every message goes to relayhost at once.
defer_transports =
message_size_limit = 52428800
smtpd_recipient_limit = 1000
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
append_dot_mydomain = no
readme_directory = no
EOF
    # One smtpd on the benchmark port (200 processes); no other inet listener.
    pf_master "$dir" "127.0.0.1:$port inet n - n - 200 smtpd"
}

# postfix_start DIR PORT: a fresh, empty queue each time; sets PF_PID (the master).
postfix_start() {
    local dir=$1 port=$2
    rm -rf "$dir/queue"
    mkdir -p "$dir/queue"
    pf_start "$dir" "$port" || die "postfix did not start on port $port"
    PF_PID=$(pf_master_pid "$dir" || true)
    [[ -n $PF_PID ]] || die "no postfix master pid"
}

postfix_stop() { pf_stop "$1"; }

# Messages in the instance's queue (all queues a message can be in after acceptance).
postfix_queued() {
    local dir=$1
    find "$dir/queue/incoming" "$dir/queue/active" "$dir/queue/deferred" \
        "$dir/queue/hold" "$dir/queue/maildrop" -type f 2>/dev/null | wc -l
}
