#!/usr/bin/env bash
# Interoperability checks: mxring against programs nobody here wrote (swaks, Python's
# smtplib, openssl s_client, Postfix's smtp-sink, a private Postfix instance).
#
# Usage: bash tests/interop/run.sh [--install-only]
#   As root on Debian: installs what it needs (swaks, Net::SSLeay, openssl, python3,
#   postfix) when missing; --install-only does just that and exits.
#   KEEP_TMP=1                  keep the temp dir (configs, spools, logs, transcripts).
#   INTEROP_REQUIRE_DELIVERY=1  a delivery probe that does not arrive is a FAIL, not SKIP.
#
# Everything runs on loopback, on free high ports, in a temp dir; everything started here
# is stopped on exit. Each check prints PASS, FAIL (with a reason) or SKIP; the last line
# is "N passed, M failed" (", K skipped" when some were skipped). Exit status: 1 when
# any check failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/interop
MXRING=$ROOT/target/release/mxring
BENCH=$ROOT/target/release/mxring-bench
POSTFIX=/usr/sbin/postfix
SMTP_SINK=/usr/sbin/smtp-sink

section() { printf '\n==== %s ====\n' "$*"; }

# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------
section "interop: tools"
missing=()
command -v swaks >/dev/null || missing+=(swaks)
perl -MNet::SSLeay -e 1 2>/dev/null || missing+=(libnet-ssleay-perl) # swaks' TLS
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
need_postfix=0
[[ -x $POSTFIX && -x $SMTP_SINK ]] || need_postfix=1
if ((${#missing[@]} || need_postfix)); then
    echo "installing from Debian: ${missing[*]} $( ((need_postfix)) && echo postfix)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ((${#missing[@]})); then
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ((need_postfix)); then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get install -y -qq postfix >/dev/null
    fi
fi
if [[ ${1:-} == --install-only ]]; then
    echo "interop tools installed"
    exit 0
fi
if [[ ! -x $MXRING || ! -x $BENCH ]]; then
    echo "building mxring and mxring-bench (cargo build --release --workspace)"
    (cd "$ROOT" && cargo build --release --workspace)
fi
echo "swaks $(swaks --version 2>/dev/null | awk 'NR==1{print $3}'); $(openssl version);" \
    "$(python3 --version); postfix $(postconf -d -h mail_version 2>/dev/null || echo '?')"

# ---------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------
T=$(mktemp -d /tmp/mxring-interop.XXXXXX)
chmod 755 "$T" # the postfix and nobody users must reach their directories inside
mkdir -p "$T/logs"
PIDS=()          # every process started here, stopped on exit by its pid
PF_DIR=""        # set when the private Postfix instance was started
PASSED=0 FAILED=0 SKIPPED=0

cleanup() {
    local rc=$?
    set +e
    if [[ -n $PF_DIR ]]; then
        local mpid
        mpid=$(tr -dc 0-9 <"$PF_DIR/queue/pid/master.pid" 2>/dev/null)
        "$POSTFIX" -c "$PF_DIR" abort >/dev/null 2>&1
        for _ in $(seq 50); do
            [[ -n $mpid ]] && kill -0 "$mpid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS  $1"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIP  $1: $2"; }
# fail NAME REASON [TRANSCRIPT_FILE]
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL  $1: $2"
    if [[ -n ${3:-} && -s ${3:-} ]]; then
        echo "      --- last lines of $(basename "$3") ---"
        tail -n 20 "$3" | sed 's/^/      | /'
    fi
}

# run NAME CMD...: runs CMD with stdin from /dev/null, output to $T/logs/NAME.txt;
# sets OUT (the output), RC (its exit status) and LOG (the file).
run() {
    local name=$1
    shift
    LOG=$T/logs/$name.txt
    set +e
    "$@" </dev/null >"$LOG" 2>&1
    RC=$?
    set -e
    OUT=$(cat "$LOG")
}
has() { grep -qE -- "$1" <<<"$OUT"; }
queued_id() { grep -oE 'queued as [A-Za-z0-9]+' <<<"$OUT" | head -1 | awk '{print $3}' || true; }

# free_ports N: N distinct loopback ports, free right now, below the kernel's ephemeral
# range (so no client connection made during the run can be given one of them).
free_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
hi = min(low, 32768)
ports = []
for p in random.sample(range(max(1024, hi - 12000), hi), 2000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(p)
    if len(ports) == n:
        break
if len(ports) < n:
    sys.exit("free_ports: not enough free ports")
print(" ".join(map(str, ports)))
EOF
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ports PID LOGFILE WHAT PORT...: until every port accepts connections (10 s).
wait_ports() {
    local pid=$1 log=$2 what=$3
    shift 3
    local port
    for port in "$@"; do
        for _ in $(seq 100); do
            port_open "$port" && continue 2
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "$what exited before listening on $port; its log:"
                sed 's/^/  | /' "$log"
                return 1
            fi
            sleep 0.1
        done
        echo "$what is not listening on $port after 10 s; its log:"
        sed 's/^/  | /' "$log"
        return 1
    done
}

# start NAME CMD...: runs CMD in the background from $T, logging to $T/NAME.log.
start() {
    local name=$1
    shift
    (cd "$T" && exec "$@") </dev/null >"$T/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# queue_json CONFIG: the queue of the instance CONFIG describes, as JSON, on stdout.
queue_json() { "$MXRING" queue list --json --config "$1" 2>"$T/logs/queue-list.err"; }

# queue_entry CONFIG ID: prints "tls=<tls> states=<states> replies=<last replies>" for
# message ID; exit 1 when it is not in the queue.
queue_entry() {
    queue_json "$1" | python3 -c '
import json, sys
want = sys.argv[1]
for m in json.load(sys.stdin):
    if m.get("id") == want:
        rs = m.get("recipients", [])
        print("tls=%s states=%s replies=%s" % (
            m.get("tls"),
            ",".join(str(r.get("state")) for r in rs),
            " | ".join(str(r.get("last_reply")) for r in rs)))
        sys.exit(0)
sys.exit(1)' "$2"
}

# wait_file_with DIR TEXT SECONDS: until a file under DIR contains TEXT.
wait_file_with() {
    local dir=$1 text=$2 secs=$3
    for _ in $(seq $((secs * 5))); do
        grep -rlqF -- "$text" "$dir" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
read -r P_ST P_REQ P_IMP P_ADMIN P_DEAD P_B P_BADMIN P_CTL P_PROBE P_SMTPSINK P_PF \
    P_PFSINK < <(free_ports 12)
# P_DEAD: nothing listens there. Every domain used below has a route to loopback, and DNS
# points at P_DEAD too, so no test message or lookup can ever leave this machine.

A=$T/a.toml # the instance under test: three listeners, relays for loopback
cat >"$A" <<EOF
[server]
hostname = "mx.interop.test"
spool = "$T/spool-a"

[[listener]]
name = "starttls"
address = "127.0.0.1:$P_ST"
tls = "starttls"

[[listener]]
name = "required"
address = "127.0.0.1:$P_REQ"
tls = "required"

[[listener]]
name = "implicit"
address = "127.0.0.1:$P_IMP"
tls = "implicit"

[tls]
min_version = "1.2"

[relay]
networks = ["127.0.0.0/8"]
domains = []

[[route]]
domains = ["interop.test", "local.test", "elsewhere.test"]
next_hop = "[127.0.0.1]:$P_DEAD"

[[route]]
domains = ["probe.test"]
next_hop = "[127.0.0.1]:$P_PROBE"

[[route]]
domains = ["sink.test", "notls.test"]
next_hop = "[127.0.0.1]:$P_SMTPSINK"

[[route]]
domains = ["pf.test"]
next_hop = "[127.0.0.1]:$P_PF"

[[outbound_tls]]
domains = ["notls.test"]
level = "encrypt"

[outbound]
default_tls = "may"
connect_timeout = "5s"

[queue]
retry = ["30s"]

[dns]
nameservers = ["127.0.0.1:$P_DEAD"]
timeout = "1s"

[admin]
address = "127.0.0.1:$P_ADMIN"
EOF

B=$T/b.toml # relays for nobody; MX for local.test only
cat >"$B" <<EOF
[server]
hostname = "mx-b.interop.test"
spool = "$T/spool-b"

[[listener]]
name = "mx"
address = "127.0.0.1:$P_B"
tls = "starttls"

[relay]
networks = []
domains = ["local.test"]

[[route]]
domains = ["local.test", "interop.test", "elsewhere.test"]
next_hop = "[127.0.0.1]:$P_DEAD"

[queue]
retry = ["30s"]

[dns]
nameservers = ["127.0.0.1:$P_DEAD"]
timeout = "1s"

[admin]
address = "127.0.0.1:$P_BADMIN"
EOF

# A client OpenSSL configuration that still offers TLS 1.0/1.1 (Debian's default floor is
# TLS 1.2 with SECLEVEL 2): without it, "refuses TLSv1.1" would test our client, not mxring.
LEGACY_CNF=$T/openssl-legacy.cnf
cat >"$LEGACY_CNF" <<'EOF'
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT:@SECLEVEL=0
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=peer.interop.test \
    -keyout "$T/peer-key.pem" -out "$T/peer-cert.pem" >/dev/null 2>&1
chmod 644 "$T/peer-key.pem"

section "interop: start"
for cfg in "$A" "$B"; do
    if ! "$MXRING" config check --config "$cfg" >"$T/logs/config-check.txt" 2>&1; then
        echo "FAIL  config check $(basename "$cfg"):"
        sed 's/^/  | /' "$T/logs/config-check.txt"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
start mxring-a "$MXRING" serve --config "$A"
PID_A=$LAST_PID
start mxring-b "$MXRING" serve --config "$B"
PID_B=$LAST_PID
if ! wait_ports "$PID_A" "$T/mxring-a.log" "mxring (a)" "$P_ST" "$P_REQ" "$P_IMP" "$P_ADMIN" ||
    ! wait_ports "$PID_B" "$T/mxring-b.log" "mxring (b)" "$P_B" "$P_BADMIN"; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "mxring a: starttls $P_ST, required $P_REQ, implicit $P_IMP, admin $P_ADMIN (pid $PID_A)"
echo "mxring b: starttls $P_B, admin $P_BADMIN, relay.networks = [] (pid $PID_B)"

SWAKS=(timeout 60 swaks --timeout 20 --server 127.0.0.1 --ehlo client.interop.test
    --from sender@interop.test)

# ---------------------------------------------------------------------------------------
# Inbound checks
# ---------------------------------------------------------------------------------------
section "interop: inbound"

# 1. swaks --tls into the starttls listener; the message is in `mxring queue list`.
name="1 swaks --tls into the starttls listener is queued and listed"
run check1 "${SWAKS[@]}" --port "$P_ST" --tls --to rcpt1@interop.test \
    --header "Subject: interop check 1"
id=$(queued_id)
if ((RC != 0)); then
    fail "$name" "swaks exited $RC" "$LOG"
elif ! has '250 2\.0\.0 Ok: queued as' || [[ -z $id ]]; then
    fail "$name" "no '250 2.0.0 Ok: queued as ID' in the transcript" "$LOG"
elif ! entry=$(queue_entry "$A" "$id"); then
    queue_json "$A" >"$T/logs/check1-queue.txt" 2>&1 || true
    fail "$name" "queued as $id but 'mxring queue list --json' does not list it" \
        "$T/logs/check1-queue.txt"
elif [[ $entry != tls=TLSv1.3* ]]; then
    fail "$name" "queue list shows $id with $entry (expected tls=TLSv1.3 ...)"
else
    pass "$name ($id: $entry)"
fi


# 2. Python smtplib with starttls(), no certificate verification.
name="2 python smtplib starttls() is queued"
run check2 timeout 60 python3 "$HERE/smtplib_send.py" "$P_ST" sender@interop.test \
    rcpt2@interop.test
if ((RC == 0)) && has '^DATA-END 250 2\.0\.0 Ok: queued as [A-Za-z0-9]+'; then
    pass "$name ($(grep -E '^cipher' <<<"$OUT"); $(grep -oE 'queued as [A-Za-z0-9]+' <<<"$OUT"))"
else
    fail "$name" "exit $RC, no 'DATA-END 250 2.0.0 Ok: queued as ID'" "$LOG"
fi

# 3. openssl s_client -starttls smtp: TLS 1.3 with an AEAD suite.
name="3 openssl s_client -starttls smtp negotiates TLSv1.3 with AES-GCM or CHACHA20"
run check3 timeout 30 openssl s_client -starttls smtp -connect "127.0.0.1:$P_ST" -brief
suite=$(grep -oE 'Ciphersuite: [A-Z0-9_]+' <<<"$OUT" | awk '{print $2}' || true)
if ! has '^Protocol version: TLSv1\.3$'; then
    fail "$name" "no 'Protocol version: TLSv1.3' (exit $RC)" "$LOG"
elif [[ ! $suite =~ ^(TLS_AES_256_GCM_SHA384|TLS_AES_128_GCM_SHA256|TLS_CHACHA20_POLY1305_SHA256)$ ]]; then
    fail "$name" "cipher suite '${suite:-none}' is not AES-GCM or CHACHA20-POLY1305" "$LOG"
else
    pass "$name ($suite)"
fi

# 4. TLS 1.1 is refused. The control shows that this client really offers TLS 1.1 (it
#    completes a TLS 1.1 handshake with openssl s_server), so the refusal is mxring's.
start openssl-ctl env OPENSSL_CONF="$LEGACY_CNF" openssl s_server -accept "127.0.0.1:$P_CTL" \
    -cert "$T/peer-cert.pem" -key "$T/peer-key.pem" -tls1_1 -www
PID_CTL=$LAST_PID
for _ in $(seq 100); do grep -q '^ACCEPT' "$T/openssl-ctl.log" && break; sleep 0.1; done
name="4 control: the legacy client completes TLSv1.1 with openssl s_server"
run check4-control env OPENSSL_CONF="$LEGACY_CNF" timeout 30 openssl s_client \
    -connect "127.0.0.1:$P_CTL" -tls1_1 -brief
if has '^Protocol version: TLSv1\.1$'; then
    pass "$name"
else
    fail "$name" "the client could not speak TLSv1.1 even to openssl s_server (exit $RC)" "$LOG"
fi
name="4 openssl s_client -starttls smtp -tls1_1 gets no handshake"
run check4 env OPENSSL_CONF="$LEGACY_CNF" timeout 30 openssl s_client -starttls smtp \
    -connect "127.0.0.1:$P_ST" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -brief
if has 'CONNECTION ESTABLISHED|^Protocol version'; then
    fail "$name" "a TLSv1.1 handshake completed" "$LOG"
elif ! has 'alert'; then
    fail "$name" "no handshake, but no alert from the server either (exit $RC)" "$LOG"
else
    pass "$name ($(grep -oE '[a-z0-9 ]*alert [a-z ]+' <<<"$OUT" | head -1 | sed 's/^ *//'))"
fi

# 5. The `required` listener refuses MAIL before STARTTLS, and accepts it after.
name="5 required listener refuses MAIL without STARTTLS"
run check5a "${SWAKS[@]}" --port "$P_REQ" --to rcpt5@interop.test
if ((RC == 0)); then
    fail "$name" "swaks succeeded without TLS" "$LOG"
elif ! has '530 5\.7\.0 Must issue a STARTTLS command first'; then
    fail "$name" "no '530 5.7.0 Must issue a STARTTLS command first' (swaks exit $RC)" "$LOG"
elif has 'queued as'; then
    fail "$name" "message queued anyway" "$LOG"
else
    pass "$name"
fi
name="5 required listener queues with --tls"
run check5b "${SWAKS[@]}" --port "$P_REQ" --tls --to rcpt5@interop.test
if ((RC == 0)) && has '250 2\.0\.0 Ok: queued as'; then
    pass "$name ($(queued_id))"
else
    fail "$name" "swaks exit $RC, no '250 2.0.0 Ok: queued as'" "$LOG"
fi

# 6. Implicit TLS (port-465 style).
name="6 swaks --tlsc into the implicit listener is queued"
run check6 "${SWAKS[@]}" --port "$P_IMP" --tlsc --to rcpt6@interop.test
if ((RC == 0)) && has '250 2\.0\.0 Ok: queued as' && has 'TLS started with cipher TLSv1\.3'; then
    pass "$name ($(grep -oE 'TLS started with cipher [^ ]+' <<<"$OUT" | awk '{print $5}'); $(queued_id))"
else
    fail "$name" "swaks exit $RC; expected a TLSv1.3 session and '250 2.0.0 Ok: queued as'" "$LOG"
fi

# 7. Protocol floor through swaks: TLS 1.2 accepted, TLS 1.1 refused (with a control).
name="7 swaks --tls-protocol tlsv1_2 is queued"
run check7a "${SWAKS[@]}" --port "$P_ST" --tls --tls-protocol tlsv1_2 --to rcpt7@interop.test
if ((RC == 0)) && has 'TLS started with cipher TLSv1\.2:' && has '250 2\.0\.0 Ok: queued as'; then
    pass "$name ($(grep -oE 'TLS started with cipher [^ ]+' <<<"$OUT" | awk '{print $5}'))"
else
    fail "$name" "swaks exit $RC; expected 'TLS started with cipher TLSv1.2' and queued" "$LOG"
fi
name="7 control: swaks --tls-protocol tlsv1_1 completes TLSv1.1 with openssl s_server"
run check7-control timeout 30 swaks --server 127.0.0.1 --port "$P_CTL" --tlsc --timeout 2 \
    --tls-protocol tlsv1_1 --tls-cipher 'DEFAULT:@SECLEVEL=0' --to rcpt7@interop.test
if has 'TLS started with cipher TLSv1\.1:'; then
    pass "$name"
else
    fail "$name" "swaks could not speak TLSv1.1 even to openssl s_server" "$LOG"
fi
kill "$PID_CTL" 2>/dev/null || true
name="7 swaks --tls-protocol tlsv1_1 fails"
run check7b "${SWAKS[@]}" --port "$P_ST" --tls --tls-protocol tlsv1_1 \
    --tls-cipher 'DEFAULT:@SECLEVEL=0' --to rcpt7@interop.test
if ((RC == 0)) || has 'queued as|TLS started with'; then
    fail "$name" "a TLSv1.1 session was established or the message queued (exit $RC)" "$LOG"
elif ! has 'TLS startup failed.*alert'; then
    fail "$name" "swaks failed (exit $RC) but not with a TLS alert from the server" "$LOG"
else
    pass "$name ($(grep -oE 'alert [a-z ]+' <<<"$OUT" | head -1))"
fi

# 8. Relay control, on instance b: relay.networks = [], relay.domains = ["local.test"].
name="8 relay to a foreign domain is denied with 554 5.7.1"
run check8a "${SWAKS[@]}" --port "$P_B" --tls --to x@elsewhere.test
if ((RC == 0)) || has 'queued as'; then
    fail "$name" "the message was accepted: open relay" "$LOG"
elif ! has '554 5\.7\.1'; then
    fail "$name" "refused (swaks exit $RC) but not with '554 5.7.1'" "$LOG"
else
    pass "$name ($(grep -oE '554 5\.7\.1.*' <<<"$OUT" | head -1))"
fi
name="8 mail for a relay.domains domain is queued"
run check8b "${SWAKS[@]}" --port "$P_B" --tls --to x@local.test
id=$(queued_id)
if ((RC != 0)) || [[ -z $id ]]; then
    fail "$name" "swaks exit $RC, no '250 2.0.0 Ok: queued as'" "$LOG"
elif ! queue_entry "$B" "$id" >/dev/null; then
    fail "$name" "queued as $id but instance b's queue list does not show it"
else
    pass "$name ($id)"
fi

# ---------------------------------------------------------------------------------------
# Peers for delivery: Postfix's smtp-sink, and a private Postfix instance with STARTTLS
# that relays to an mxring-bench sink. The controls send to them directly with swaks, so
# a failure in the delivery checks below is mxring's, not the peers' set-up.
# ---------------------------------------------------------------------------------------
section "interop: delivery peers"

mkdir -p "$T/smtpsink"
chown nobody "$T/smtpsink" # smtp-sink drops to -u nobody before it writes its dumps
start smtp-sink "$SMTP_SINK" -u nobody -d "$T/smtpsink/msg." "127.0.0.1:$P_SMTPSINK" 64
PID_SMTPSINK=$LAST_PID
PEERS_OK=1
if wait_ports "$PID_SMTPSINK" "$T/smtp-sink.log" smtp-sink "$P_SMTPSINK"; then
    name="P1 control: swaks into Postfix smtp-sink is dumped"
    mark="interop-p1-$RANDOM$RANDOM"
    run checkP1 "${SWAKS[@]}" --port "$P_SMTPSINK" --to user@sink.test --header "X-Interop: $mark"
    if ((RC == 0)) && wait_file_with "$T/smtpsink" "$mark" 10; then
        pass "$name"
    else
        fail "$name" "swaks exit $RC; no dump with the message in 10 s" "$LOG"
        PEERS_OK=0
    fi
else
    fail "P1 smtp-sink start" "smtp-sink did not start"
    PEERS_OK=0
fi

# The private Postfix instance (DESIGN.md, "Real peers"): its own config directory, queue
# and data directories, log file; smtpd with STARTTLS on a high port; relays everything
# to an mxring-bench sink.
start pf-sink "$BENCH" sink --listen "127.0.0.1:$P_PFSINK" --duration 600 --dump-dir "$T/pfsink"
PID_PFSINK=$LAST_PID
PF=$T/postfix
mkdir -p "$PF/queue" "$PF/data"
chown postfix "$PF/data"
cp "$T/peer-cert.pem" "$PF/cert.pem"
install -m 600 "$T/peer-key.pem" "$PF/key.pem"
cat >"$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.interop.test
mydomain = interop.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$P_PFSINK
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
in_flow_delay = 0
biff = no
smtpd_tls_security_level = may
smtpd_tls_cert_file = $PF/cert.pem
smtpd_tls_key_file = $PF/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtp_tls_security_level = none
EOF
cat >"$PF/master.cf" <<EOF
127.0.0.1:$P_PF inet n - n - - smtpd
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
PF_DIR=$PF
pf_up=0
if ! wait_ports "$PID_PFSINK" "$T/pf-sink.log" "mxring-bench sink" "$P_PFSINK"; then
    :
elif ! "$POSTFIX" -c "$PF" start >"$T/logs/postfix-start.txt" 2>&1; then
    echo "postfix -c $PF start failed:"
    sed 's/^/  | /' "$T/logs/postfix-start.txt" "$PF/maillog" 2>/dev/null || true
else
    for _ in $(seq 100); do port_open "$P_PF" && { pf_up=1; break; }; sleep 0.1; done
    ((pf_up)) || { echo "postfix not listening on $P_PF:"; sed 's/^/  | /' "$PF/maillog" || true; }
fi
if ((pf_up)); then
    name="P2 control: swaks --tls into the private Postfix reaches its relayhost over STARTTLS"
    mark="interop-p2-$RANDOM$RANDOM"
    run checkP2 "${SWAKS[@]}" --port "$P_PF" --tls --to user@pf.test --header "X-Interop: $mark"
    if ((RC != 0)) || ! has '250 2\.0\.0 Ok: queued as'; then
        fail "$name" "Postfix did not queue it (swaks exit $RC)" "$LOG"
        PEERS_OK=0
    elif ! wait_file_with "$T/pfsink" "$mark" 20; then
        fail "$name" "queued by Postfix but not at the sink in 20 s" "$PF/maillog"
        PEERS_OK=0
    else
        pass "$name"
    fi
else
    fail "P2 private Postfix start" "see the log above"
    PEERS_OK=0
fi

# ---------------------------------------------------------------------------------------
# Delivery: mxring relays queued mail to [[route]] next hops.
# ---------------------------------------------------------------------------------------
section "interop: delivery"

# mxring_can_deliver: a message routed to an mxring-bench sink arrives there within 10 s.
mxring_can_deliver() {
    start probe-sink "$BENCH" sink --listen "127.0.0.1:$P_PROBE" --duration 600 \
        --dump-dir "$T/probe"
    wait_ports "$LAST_PID" "$T/probe-sink.log" "probe sink" "$P_PROBE" || return 1
    local mark="interop-probe-$RANDOM$RANDOM"
    run probe "${SWAKS[@]}" --port "$P_ST" --to probe@probe.test --header "X-Interop: $mark"
    ((RC == 0)) || return 1
    wait_file_with "$T/probe" "$mark" 10
}

# dump_with DIR TEXT: the file under DIR that contains TEXT.
dump_with() { grep -rlF -- "$2" "$1" 2>/dev/null | head -1; }

delivery_checks() {
    local name mark id f entry left

    # D1. Next hop Postfix smtp-sink (plain SMTP; the default level `may` goes without TLS).
    name="D1 delivery to a Postfix smtp-sink next hop"
    mark="interop-d1-$RANDOM$RANDOM"
    run checkD1 "${SWAKS[@]}" --port "$P_ST" --tls --to user@sink.test --header "X-Interop: $mark"
    id=$(queued_id)
    if ((RC != 0)) || [[ -z $id ]]; then
        fail "$name" "not queued (swaks exit $RC)" "$LOG"
    elif ! wait_file_with "$T/smtpsink" "$mark" 20; then
        fail "$name" "$id not at smtp-sink in 20 s; queue: $(queue_entry "$A" "$id" || echo gone)" \
            "$T/mxring-a.log"
    else
        pass "$name ($id)"
        name="D1 a delivered message leaves the queue"
        left=0
        for _ in $(seq 50); do queue_entry "$A" "$id" >/dev/null || { left=1; break; }; sleep 0.2; done
        if ((left)); then
            pass "$name"
        else
            fail "$name" "$id still listed 10 s after delivery: $(queue_entry "$A" "$id")"
        fi
    fi

    # D2. Next hop: the private Postfix with STARTTLS; mxring must use TLS (level `may`).
    name="D2 delivery to a private Postfix over STARTTLS"
    mark="interop-d2-$RANDOM$RANDOM"
    run checkD2 "${SWAKS[@]}" --port "$P_ST" --tls --to user@pf.test --header "X-Interop: $mark"
    id=$(queued_id)
    if ((RC != 0)) || [[ -z $id ]]; then
        fail "$name" "not queued (swaks exit $RC)" "$LOG"
    elif ! wait_file_with "$T/pfsink" "$mark" 30; then
        fail "$name" "$id not through Postfix in 30 s; queue: $(queue_entry "$A" "$id" || echo gone)" \
            "$PF/maillog"
    else
        f=$(dump_with "$T/pfsink" "$mark")
        # Postfix's own Received header (smtpd_tls_received_header) names the TLS session.
        if grep -qE '^Received: from mx\.interop\.test .*' "$f" &&
            tr -d '\r' <"$f" | awk '/^Received: from mx\.interop\.test/{p=1} p&&/^[^ \t]/&&!/^Received: from mx\.interop\.test/{exit} p' |
            grep -qE 'using TLSv1\.[23] with cipher'; then
            pass "$name ($id; $(tr -d '\r' <"$f" | grep -oE 'using TLSv1\.[23] with cipher [A-Z0-9_-]+' | head -1))"
        else
            fail "$name" "arrived, but Postfix's Received header shows no TLS session from mx.interop.test" "$f"
        fi
    fi

    # D3. Mandatory TLS (`encrypt`) to a next hop that does not offer STARTTLS: deferred
    # (4.7.4 in the log; the queue's last_reply carries the text), never sent in clear.
    name="D3 encrypt level to a next hop without STARTTLS defers"
    local notls="TLS is required, but was not offered by host"
    mark="interop-d3-$RANDOM$RANDOM"
    run checkD3 "${SWAKS[@]}" --port "$P_ST" --tls --to user@notls.test --header "X-Interop: $mark"
    id=$(queued_id)
    entry=""
    if ((RC != 0)) || [[ -z $id ]]; then
        fail "$name" "not queued (swaks exit $RC)" "$LOG"
    else
        for _ in $(seq 75); do
            entry=$(queue_entry "$A" "$id" || true)
            [[ $entry == *"$notls"* ]] && break
            sleep 0.2
        done
        if grep -rqF -- "$mark" "$T/smtpsink" 2>/dev/null; then
            fail "$name" "the message was sent without TLS"
        elif [[ $entry != *"$notls"* ]]; then
            fail "$name" "no '$notls' reply in the queue after 15 s: ${entry:-not listed}"
        elif [[ $entry != *states=TemporaryFailure* ]]; then
            fail "$name" "expected a temporary failure (deferral): $entry"
        else
            pass "$name (${entry#*replies=})"
        fi
    fi
}

DELIVERY_CHECKS=("D1 delivery to a Postfix smtp-sink next hop"
    "D1 a delivered message leaves the queue"
    "D2 delivery to a private Postfix over STARTTLS"
    "D3 encrypt level to a next hop without STARTTLS defers")
if ((!PEERS_OK)); then
    for c in "${DELIVERY_CHECKS[@]}"; do skip "$c" "the peers' controls failed"; done
elif mxring_can_deliver; then
    echo "delivery probe arrived: running the delivery checks"
    delivery_checks
elif [[ ${INTEROP_REQUIRE_DELIVERY:-0} == 1 ]]; then
    fail "delivery probe" "a message routed to an mxring-bench sink did not arrive in 10 s" \
        "$T/mxring-a.log"
else
    for c in "${DELIVERY_CHECKS[@]}"; do
        skip "$c" "delivery not built yet (a probe routed to an mxring-bench sink did not arrive in 10 s)"
    done
fi

# ---------------------------------------------------------------------------------------
section "interop: summary"
if ((FAILED)); then
    for f in "$T/mxring-a.log" "$T/mxring-b.log" "$PF/maillog"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f ---"
        tail -n 30 "$f" | sed 's/^/  | /'
    done
fi
summary="$PASSED passed, $FAILED failed"
((SKIPPED)) && summary+=", $SKIPPED skipped"
echo "$summary"
((FAILED == 0))
