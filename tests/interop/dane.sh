#!/usr/bin/env bash
# DANE interop (RFC 7672) over a real DNSSEC chain on loopback, with programs nobody
# here wrote: Knot DNS signs a zone, unbound validates it with that zone's key as its
# trust anchor, and mxring (`[dns] dnssec = "trust-ad"`, level dane-only) delivers to
# two private Postfix instances. The first one's certificate matches its `3 1 1` TLSA
# record: it must get the probe. The second one's record does not match: it must get
# nothing, and mxring must keep the message deferred with 4.7.5. A third zone is
# signed by a key unbound does not trust (bogus): mail to it must be deferred, never
# sent without DANE.
#
# Usage: bash tests/interop/dane.sh
#   KEEP_TMP=1                  keep the temp dir (zone, configs, logs).
#   INTEROP_REQUIRE_DELIVERY=1  missing tools or a probe that does not arrive is a FAIL,
#                               never a SKIP (CI sets it).
#
# Everything runs on loopback (127.0.0.1 for DNS and mxring, 127.0.0.2 and 127.0.0.3 for
# the two Postfix instances), on free high ports, in a temp dir; everything started here
# is stopped on exit by its pid. The last line is "N passed, M failed"; exit status 1
# when any check failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MXRING=$ROOT/target/release/mxring
POSTFIX=/usr/sbin/postfix
source "$ROOT/tests/interop/postfix_instance.sh"
REQUIRE=${INTEROP_REQUIRE_DELIVERY:-0}

section() { printf '\n==== %s ====\n' "$*"; }
PASSED=0 FAILED=0 SKIPPED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS  $1"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL  $1: $2"
    if [[ -n ${3:-} && -s ${3:-} ]]; then
        echo "      --- last lines of $(basename "$3") ---"
        tail -n 20 "$3" | sed 's/^/      | /'
    fi
}
skip_or_fail() {
    if ((REQUIRE)); then fail "$1" "$2"; else SKIPPED=$((SKIPPED + 1)) && echo "SKIP  $1: $2"; fi
}
summary() {
    local s="$PASSED passed, $FAILED failed"
    ((SKIPPED)) && s+=", $SKIPPED skipped"
    echo
    echo "$s"
}

section "dane interop: tools"
missing=()
for tool in knotd kdig unbound unbound-checkconf openssl swaks python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -x $POSTFIX ]] || missing+=(postfix)
if ((${#missing[@]})); then
    skip_or_fail "dane interop" "missing tools: ${missing[*]} (Debian: knot knot-dnsutils unbound postfix swaks openssl)"
    summary
    ((FAILED == 0))
    exit
fi
if [[ ! -x $MXRING ]]; then
    (cd "$ROOT" && cargo build --release)
fi
echo "$(knotd -V 2>&1 | head -1); unbound $(unbound -V | awk 'NR==1{print $2}'); postfix $(postconf -d -h mail_version)"

T=$(mktemp -d /tmp/mxring-dane.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/logs"
PIDS=()
PF_DIRS=()
cleanup() {
    local rc=$?
    set +e
    local dir pid
    for dir in "${PF_DIRS[@]}"; do pf_abort "$dir"; done
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME CMD...: in the background from $T, output to $T/logs/NAME.log
    local name=$1
    shift
    (cd "$T" && exec "$@") </dev/null >"$T/logs/$name.log" 2>&1 &
    PIDS+=($!)
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
wait_port() { # wait_port HOST PORT: up to 10 s
    for _ in $(seq 100); do port_open "$1" "$2" && return 0; sleep 0.1; done
    return 1
}
read -r P_KNOT P_UNBOUND P_SMTP P_MX P_ADMIN < <(python3 - <<'EOF'
import random, socket
ports = []
for p in random.sample(range(20000, 30000), 500):
    ok = True
    for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind((host, p))
            except OSError:
                ok = False
            finally:
                s.close()
    if ok:
        ports.append(p)
    if len(ports) == 5:
        break
print(" ".join(map(str, ports)))
EOF
)
echo "knot $P_KNOT, unbound $P_UNBOUND, Postfix smtpd $P_SMTP (127.0.0.2 and .3), mxring $P_MX"

# ---------------------------------------------------------------------------------------
# Certificates: one per Postfix; the zone publishes the first one's SPKI hash, and for
# the second the hash of a key it does not have.
# ---------------------------------------------------------------------------------------
cert() { # cert NAME CN
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$2" -keyout "$T/$1.key" -out "$T/$1.pem" >/dev/null 2>&1
}
spki_sha256() { # spki_sha256 CERT.pem: the 3 1 1 data
    openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
        openssl dgst -sha256 -r | awk '{print $1}'
}
cert good mx-good.dane.test
cert bad mx-bad.dane.test
cert stranger mx-bad.dane.test
GOOD_HASH=$(spki_sha256 "$T/good.pem")
WRONG_HASH=$(spki_sha256 "$T/stranger.pem")

# ---------------------------------------------------------------------------------------
# Knot: the zone, signed on load (automatic keys, ECDSA P-256).
# ---------------------------------------------------------------------------------------
section "dane interop: knot signs the zone, unbound validates it"
mkdir -p "$T/knot/zones" "$T/knot/db"
cat >"$T/knot/zones/dane.test.zone" <<EOF
\$ORIGIN dane.test.
\$TTL 300
@                    SOA   ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 60
@                    NS    ns
ns                   A     127.0.0.1
@                    MX    10 mx-good
bad                  MX    10 mx-bad
mx-good              A     127.0.0.2
mx-bad               A     127.0.0.3
_$P_SMTP._tcp.mx-good TLSA 3 1 1 $GOOD_HASH
_$P_SMTP._tcp.mx-bad  TLSA 3 1 1 $WRONG_HASH
EOF
cat >"$T/knot/zones/bogus.test.zone" <<EOF
\$ORIGIN bogus.test.
\$TTL 300
@                    SOA   ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 60
@                    NS    ns.dane.test.
@                    MX    10 mx
mx                   A     127.0.0.2
_$P_SMTP._tcp.mx     TLSA  3 1 1 $GOOD_HASH
EOF
cat >"$T/knot/knot.conf" <<EOF
server:
    listen: 127.0.0.1@$P_KNOT
    rundir: $T/knot
database:
    storage: $T/knot/db
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: $T/knot/zones
zone:
  - domain: dane.test
    file: dane.test.zone
    dnssec-signing: on
  - domain: bogus.test
    file: bogus.test.zone
    dnssec-signing: on
EOF
start knot knotd -c "$T/knot/knot.conf"
KSK=""
for _ in $(seq 100); do
    KSK=$(kdig @127.0.0.1 -p "$P_KNOT" +short dane.test DNSKEY 2>/dev/null | awk '$1 == 257' | head -1 || true)
    [[ -n $KSK ]] && break
    sleep 0.1
done
name="D1 knot serves dane.test signed (DNSKEY and RRSIG)"
if [[ -z $KSK ]]; then
    fail "$name" "no DNSKEY 257 from knot in 10 s" "$T/logs/knot.log"
elif ! kdig @127.0.0.1 -p "$P_KNOT" +dnssec dane.test MX | grep -q RRSIG; then
    fail "$name" "the MX RRset has no RRSIG" "$T/logs/knot.log"
else
    pass "$name (KSK $(cut -c1-40 <<<"$KSK")...)"
fi

mkdir -p "$T/unbound"
cat >"$T/unbound/unbound.conf" <<EOF
server:
    interface: 127.0.0.1@$P_UNBOUND
    port: $P_UNBOUND
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$T/unbound"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    do-ip6: no
    module-config: "validator iterator"
    qname-minimisation: no
    # unbound answers .test itself (RFC 6761 default local zone) unless told not to.
    local-zone: "test." nodefault
    trust-anchor: "dane.test. 300 IN DNSKEY $KSK"
    # bogus.test is "anchored" with dane.test's key: its real signatures cannot
    # validate, so unbound answers SERVFAIL for it, as for any bogus data.
    trust-anchor: "bogus.test. 300 IN DNSKEY $KSK"
stub-zone:
    name: "dane.test"
    stub-addr: 127.0.0.1@$P_KNOT
stub-zone:
    name: "bogus.test"
    stub-addr: 127.0.0.1@$P_KNOT
remote-control:
    control-enable: no
EOF
name="D2 unbound validates dane.test with the zone's key as trust anchor (AD set)"
if ! unbound-checkconf "$T/unbound/unbound.conf" >"$T/logs/unbound-checkconf.log" 2>&1; then
    fail "$name" "unbound-checkconf refused the config" "$T/logs/unbound-checkconf.log"
else
    start unbound unbound -d -c "$T/unbound/unbound.conf"
    flags=""
    for _ in $(seq 50); do
        flags=$(kdig @127.0.0.1 -p "$P_UNBOUND" +dnssec "_$P_SMTP._tcp.mx-good.dane.test" TLSA 2>/dev/null |
            grep -E '^;; Flags:' || true)
        [[ -n $flags ]] && break
        sleep 0.2
    done
    if [[ $flags == *" ad"* ]]; then
        pass "$name ($flags)"
    else
        fail "$name" "flags of the TLSA answer: ${flags:-no answer}" "$T/logs/unbound.log"
    fi
fi

# ---------------------------------------------------------------------------------------
# Two private Postfix instances as the receiving MX hosts.
# ---------------------------------------------------------------------------------------
section "dane interop: two receiving Postfix instances"
postfix_receiver() { # postfix_receiver NAME IP CERT
    local dir=$T/postfix-$1
    pf_main "$dir" "$1.dane.test" no-dns
    install -m 644 "$T/$3.pem" "$dir/cert.pem"
    install -m 600 "$T/$3.key" "$dir/key.pem"
    # Postfix checks inet_interfaces (127.0.0.1) against the configured addresses
    # (127.0.0.2 is routed to lo, not configured on it); master.cf binds the smtpd to
    # $2 itself.
    cat >>"$dir/main.cf" <<EOF
relay_domains = dane.test, bad.dane.test, bogus.test
default_transport = discard
relay_transport = discard
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/cert.pem
smtpd_tls_key_file = $dir/key.pem
smtpd_tls_loglevel = 1
EOF
    pf_master "$dir" "$2:$P_SMTP inet n - n - - smtpd"
    PF_DIRS+=("$dir")
    pf_start "$dir" "$2:$P_SMTP" 2>"$T/logs/postfix-$1-start.log"
}
pf_up=1
postfix_receiver good 127.0.0.2 good || { pf_up=0; fail "D0 Postfix mx-good starts" "see log" "$T/logs/postfix-good-start.log"; }
postfix_receiver bad 127.0.0.3 bad || { pf_up=0; fail "D0 Postfix mx-bad starts" "see log" "$T/logs/postfix-bad-start.log"; }

# ---------------------------------------------------------------------------------------
# mxring with dnssec = trust-ad, dane-only for dane.test and its subdomains.
# ---------------------------------------------------------------------------------------
section "dane interop: mxring delivers under dane-only"
CFG=$T/mxring.toml
cat >"$CFG" <<EOF
[server]
hostname = "mx-sender.interop.test"
shards = 1
spool = "$T/spool"

[[listener]]
name = "mx"
address = "127.0.0.1:$P_MX"
tls = "none"

[relay]
networks = ["127.0.0.0/8"]

[admin]
address = "127.0.0.1:$P_ADMIN"

[dns]
nameservers = ["127.0.0.1:$P_UNBOUND"]
timeout = "3s"
dnssec = "trust-ad"

[outbound]
port = $P_SMTP

[[outbound_tls]]
domains = ["dane.test", ".dane.test"]
level = "dane-only"

# Under dane, a bogus answer taken for "insecure" would fall back to may and deliver.
[[outbound_tls]]
domains = ["bogus.test"]
level = "dane"

[queue]
retry = ["1h"]
EOF
start mxring env RUST_LOG=info "$MXRING" serve --config "$CFG"
MXLOG=$T/logs/mxring.log
if ! wait_port 127.0.0.1 "$P_MX"; then
    fail "D3 mxring starts with dnssec = trust-ad" "not listening on $P_MX" "$MXLOG"
fi

name="D3 check-tls: the MX of dane.test is DNSSEC secure and its certificate matches 3 1 1"
set +e
"$MXRING" check-tls dane.test --config "$CFG" --port "$P_SMTP" --level dane-only --timeout 10 \
    >"$T/logs/check-tls.txt" 2>&1
rc=$?
set -e
if ((rc == 0)) && grep -q "MX lookup of dane.test (DNSSEC secure)" "$T/logs/check-tls.txt" &&
    grep -q "DANE VERIFIED: DANE-EE TLSA 3 1 1" "$T/logs/check-tls.txt"; then
    pass "$name"
else
    fail "$name" "exit $rc" "$T/logs/check-tls.txt"
fi
name="D4 check-tls --level dane-only exits 1 for bad.dane.test (TLSA does not match)"
set +e
"$MXRING" check-tls bad.dane.test --config "$CFG" --port "$P_SMTP" --level dane-only --timeout 10 \
    >"$T/logs/check-tls-bad.txt" 2>&1
rc=$?
set -e
if ((rc == 1)) && grep -q "DANE NOT VERIFIED" "$T/logs/check-tls-bad.txt"; then
    pass "$name"
else
    fail "$name" "exit $rc" "$T/logs/check-tls-bad.txt"
fi

probe() { # probe RCPT MESSAGE-ID
    swaks --server 127.0.0.1 --port "$P_MX" --from sender@interop.test --to "$1" \
        --header "Message-Id: <$2>" --header "Subject: dane interop" \
        --body "DANE probe" >"$T/logs/swaks-$2.log" 2>&1
}
arrived() { grep -q "message-id=<$2>" "$1/maillog" 2>/dev/null; }
ID_GOOD=dane-good-$$@interop.test
ID_BAD=dane-bad-$$@interop.test
name="D5 mxring delivers to the Postfix whose certificate matches the 3 1 1 record"
if ((!pf_up)); then
    fail "$name" "a receiving Postfix did not start"
elif ! probe user@dane.test "$ID_GOOD"; then
    fail "$name" "mxring did not accept the probe" "$T/logs/swaks-$ID_GOOD.log"
else
    # Postfix logs the arrival before mxring has read its 250 and logged the
    # delivery, so wait for both.
    for _ in $(seq 150); do
        arrived "$T/postfix-good" "$ID_GOOD" && grep -q "DANE-EE TLSA 3 1 1" "$MXLOG" && break
        sleep 0.2
    done
    if ! arrived "$T/postfix-good" "$ID_GOOD"; then
        fail "$name" "the probe did not arrive in 30 s" "$MXLOG"
    elif ! grep -q "DANE-EE TLSA 3 1 1" "$MXLOG"; then
        fail "$name" "arrived, but mxring's delivery line does not name the DANE record" "$MXLOG"
    else
        pass "$name ($(grep -o 'DANE-EE TLSA 3 1 1[^"]*' "$MXLOG" | head -1))"
    fi
fi

name="D6 the Postfix whose record does not match gets nothing; mxring defers with 4.7.5"
if ((!pf_up)); then
    fail "$name" "a receiving Postfix did not start"
elif ! probe user@bad.dane.test "$ID_BAD"; then
    fail "$name" "mxring did not accept the probe" "$T/logs/swaks-$ID_BAD.log"
else
    reply=""
    for _ in $(seq 150); do
        reply=$("$MXRING" queue list --json --config "$CFG" 2>/dev/null | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    for r in m["recipients"]:
        if r["address"] == "user@bad.dane.test" and r["attempts"] >= 1:
            print(r.get("last_reply") or "")' 2>/dev/null || true)
        [[ -n $reply ]] && break
        sleep 0.2
    done
    if arrived "$T/postfix-bad" "$ID_BAD"; then
        fail "$name" "the mismatching Postfix received the message" "$T/postfix-bad/maillog"
    elif grep -q "TLS connection established from" "$T/postfix-bad/maillog" 2>/dev/null &&
        grep -q "message-id=<$ID_BAD>" "$T/postfix-bad/maillog" 2>/dev/null; then
        fail "$name" "mxring sent the message after the handshake" "$T/postfix-bad/maillog"
    elif [[ $reply != 4.7.5*TLSA*"did not match"* ]]; then
        fail "$name" "mxring's last reply: ${reply:-none within 30 s}" "$MXLOG"
    else
        pass "$name ($reply)"
    fi
fi

name="D7 a bogus zone (unbound: SERVFAIL) is deferred, and nothing is sent"
ID_BOGUS=dane-bogus-$$@interop.test
rcode=$(kdig @127.0.0.1 -p "$P_UNBOUND" +dnssec bogus.test MX 2>/dev/null | grep -oE 'status: [A-Z]+' || true)
if ((!pf_up)); then
    fail "$name" "a receiving Postfix did not start"
elif [[ $rcode != "status: SERVFAIL" ]]; then
    fail "$name" "unbound did not find bogus.test bogus (${rcode:-no answer})" "$T/logs/unbound.log"
elif ! probe user@bogus.test "$ID_BOGUS"; then
    fail "$name" "mxring did not accept the probe" "$T/logs/swaks-$ID_BOGUS.log"
else
    reply=""
    for _ in $(seq 150); do
        reply=$("$MXRING" queue list --json --config "$CFG" 2>/dev/null | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    for r in m["recipients"]:
        if r["address"] == "user@bogus.test" and r["attempts"] >= 1:
            print(r["state"], r.get("last_reply") or "")' 2>/dev/null || true)
        [[ -n $reply ]] && break
        sleep 0.2
    done
    if arrived "$T/postfix-good" "$ID_BOGUS"; then
        fail "$name" "the message to the bogus zone was delivered" "$T/postfix-good/maillog"
    elif [[ $reply != deferred*SERVFAIL* ]]; then
        fail "$name" "mxring's last reply: ${reply:-none within 30 s}" "$MXLOG"
    else
        pass "$name ($reply)"
    fi
fi

summary
((FAILED == 0))
