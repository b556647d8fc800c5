#!/usr/bin/env bash
# Interoperability of submission (SMTP AUTH) and certificates per SNI name, with
# programs nobody here wrote: swaks --auth PLAIN --tls, Python smtplib starttls() +
# login(), openssl s_client -servername, and a private Postfix whose SMTP client
# authenticates (smtp_sasl_auth_enable) and relays through mxring.
#
# Usage: bash tests/interop/auth.sh      (as root on Debian; installs what is missing)
#   KEEP_TMP=1  keep the temp dir (configs, spools, logs, transcripts).
# Everything runs on loopback, on free high ports, in a temp dir; everything started
# here is stopped on exit. Each check prints PASS or FAIL (with a reason); the last line
# is "N passed, M failed". Exit status 1 when any check failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MXRING=$ROOT/target/release/mxring
POSTFIX=/usr/sbin/postfix
SMTP_SINK=/usr/sbin/smtp-sink
source "$ROOT/tests/interop/postfix_instance.sh"

section() { printf '\n==== %s ====\n' "$*"; }

section "interop auth: tools"
missing=()
command -v swaks >/dev/null || missing+=(swaks)
perl -MNet::SSLeay -e 1 2>/dev/null || missing+=(libnet-ssleay-perl)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
# Postfix's SMTP client needs the Cyrus PLAIN/LOGIN plugins for smtp_sasl_auth_enable.
dpkg -s libsasl2-modules >/dev/null 2>&1 || missing+=(libsasl2-modules)
if ((${#missing[@]})) || [[ ! -x $POSTFIX || ! -x $SMTP_SINK ]]; then
    echo "installing from Debian: ${missing[*]} postfix"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${missing[@]}" postfix >/dev/null
fi
if [[ ! -x $MXRING ]]; then
    (cd "$ROOT" && cargo build --release --bin mxring)
fi

T=$(mktemp -d /tmp/mxring-interop-auth.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/logs"
PIDS=()
PF_DIRS=()
PASSED=0 FAILED=0

cleanup() {
    local rc=$? dir pid
    set +e
    for dir in "${PF_DIRS[@]}"; do pf_abort "$dir"; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS  $1"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL  $1: $2"
    if [[ -n ${3:-} && -s ${3:-} ]]; then
        echo "      --- last lines of $(basename "$3") ---"
        tail -n 20 "$3" | sed 's/^/      | /'
    fi
}
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
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.1; done
    return 1
}
wait_file_with() {
    for _ in $(seq $(($3 * 5))); do
        grep -rlqF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
dump_with() { grep -rlF -- "$2" "$1" 2>/dev/null | head -1; }
start() {
    local name=$1
    shift
    (cd "$T" && exec "$@") </dev/null >"$T/$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}
free_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
ports = []
for p in random.sample(range(20000, 32000), 2000):
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
print(" ".join(map(str, ports)))
EOF
}

# ---------------------------------------------------------------------------------------
section "interop auth: setup"
read -r P_SUB P_SMTPS P_SINK P_PF P_DEAD < <(free_ports 5)
PASSWORD='alice pw: 53cr3t!'
printf '%s\n' "$PASSWORD" | "$MXRING" auth hash >"$T/alice.hash"
printf 'alice@customer-a.test:%s:*@alice.test\n' "$(cat "$T/alice.hash")" >"$T/users"
mkdir -p "$T/certs"
for n in a.interop.test b.interop.test; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$n" -addext "subjectAltName=DNS:$n" \
        -keyout "$T/certs/$n.key" -out "$T/certs/$n.pem" >/dev/null 2>&1
done
CONF=$T/mxring.toml
cat >"$CONF" <<EOF
[server]
hostname = "mx.interop.test"
spool = "$T/spool"

[[listener]]
name = "submission"
address = "127.0.0.1:$P_SUB"
tls = "required"
auth = "required"

[[listener]]
name = "smtps"
address = "127.0.0.1:$P_SMTPS"
tls = "implicit"
auth = true

[auth]
users_file = "$T/users"

[tls]
certificate_dir = "$T/certs"

[relay]
networks = []
domains = []

[[route]]
domains = ["far.test"]
next_hop = "[127.0.0.1]:$P_SINK"

[dns]
nameservers = ["127.0.0.1:$P_DEAD"]
timeout = "1s"

[admin]
address = ""
EOF
mkdir -p "$T/sink"
chown nobody "$T/sink"
start smtp-sink "$SMTP_SINK" -u nobody -d "$T/sink/msg." "127.0.0.1:$P_SINK" 16
if ! "$MXRING" config check --config "$CONF" >"$T/logs/config-check.txt" 2>&1; then
    fail "config check" "$(cat "$T/logs/config-check.txt")"
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
start mxring "$MXRING" serve --config "$CONF"
PID_MX=$LAST_PID
if ! wait_port "$P_SUB" || ! wait_port "$P_SMTPS" || ! wait_port "$P_SINK"; then
    fail "start" "mxring or smtp-sink is not listening" "$T/mxring.log"
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
echo "mxring: submission $P_SUB (STARTTLS + AUTH required), smtps $P_SMTPS (pid $PID_MX); smtp-sink $P_SINK"
SWAKS=(timeout 60 swaks --timeout 20 --server 127.0.0.1 --ehlo laptop.interop.test)

# ---------------------------------------------------------------------------------------
section "interop auth: swaks"
name="A1 swaks --auth PLAIN --tls submits as alice; the message reaches the next hop with ESMTPSA"
mark="interop-a1-$RANDOM$RANDOM"
run a1 "${SWAKS[@]}" --port "$P_SUB" --tls --auth PLAIN --auth-user alice@customer-a.test \
    --auth-password "$PASSWORD" --from alice@customer-a.test --to bob@far.test \
    --header "X-Interop: $mark"
if ((RC != 0)) || ! has '<~  235 2\.7\.0' || ! has '<~  250 2\.0\.0 Ok: queued as'; then
    fail "$name" "swaks exit $RC" "$LOG"
elif ! wait_file_with "$T/sink" "$mark" 20; then
    fail "$name" "not at the sink in 20 s" "$T/mxring.log"
elif ! grep -q "with ESMTPSA" "$(dump_with "$T/sink" "$mark")"; then
    fail "$name" "the Received header does not say ESMTPSA" "$(dump_with "$T/sink" "$mark")"
elif grep -q "alice@customer-a.test)" "$(dump_with "$T/sink" "$mark")"; then
    fail "$name" "the login is shown in Received" "$(dump_with "$T/sink" "$mark")"
else
    pass "$name"
fi

name="A2 before STARTTLS no AUTH is offered, and AUTH gets 538 5.7.11"
run a2 bash -c "printf 'EHLO c\r\nAUTH PLAIN AGFAYgBj\r\nQUIT\r\n' | timeout 20 python3 -c '
import socket, sys
s = socket.create_connection((\"127.0.0.1\", $P_SUB), timeout=10)
f = s.makefile(\"rb\")
print(f.readline().decode().rstrip())
s.sendall(sys.stdin.buffer.read())
for line in f:
    print(line.decode().rstrip())
'"
if has 'AUTH PLAIN' || ! has '^538 5\.7\.11 Encryption required for requested authentication mechanism'; then
    fail "$name" "unexpected transcript" "$LOG"
else
    pass "$name"
fi

name="A3 swaks with a wrong password gets 535 5.7.8"
run a3 "${SWAKS[@]}" --port "$P_SUB" --tls --auth LOGIN --auth-user alice@customer-a.test \
    --auth-password wrong --from alice@customer-a.test --to bob@far.test
if has '<~\*? *535 5\.7\.8 Authentication credentials invalid'; then
    pass "$name"
else
    fail "$name" "swaks exit $RC" "$LOG"
fi

name="A4 swaks as alice with a sender she does not own gets 553 5.7.1"
run a4 "${SWAKS[@]}" --port "$P_SUB" --tls --auth PLAIN --auth-user alice@customer-a.test \
    --auth-password "$PASSWORD" --from ceo@bank.test --to bob@far.test
if has '553 5\.7\.1 <ceo@bank.test>: Sender address rejected: not owned by user alice@customer-a.test'; then
    pass "$name"
else
    fail "$name" "swaks exit $RC" "$LOG"
fi

name="A5 swaks without AUTH on the submission listener gets 530 5.7.0 Authentication required"
run a5 "${SWAKS[@]}" --port "$P_SUB" --tls --from alice@customer-a.test --to bob@far.test
if has '530 5\.7\.0 Authentication required'; then pass "$name"; else fail "$name" "swaks exit $RC" "$LOG"; fi

# ---------------------------------------------------------------------------------------
section "interop auth: Python smtplib"
name="A6 Python smtplib starttls() + login() + sendmail() submits; the message arrives"
mark="interop-a6-$RANDOM$RANDOM"
cat >"$T/smtplib_login.py" <<'EOF'
import smtplib, ssl, sys
port, password, mark = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, local_hostname="smtplib.interop.test", timeout=20) as s:
    s.starttls(context=ctx)
    code, resp = s.login("alice@customer-a.test", password)
    print("login", code, resp.decode())
    print("auth offered:", s.esmtp_features.get("auth"))
    refused = s.sendmail("sales@alice.test", ["carol@far.test"],
                         f"From: sales@alice.test\r\nTo: carol@far.test\r\nX-Interop: {mark}\r\n\r\nhi\r\n")
    print("refused:", refused)
EOF
run a6 timeout 60 python3 "$T/smtplib_login.py" "$P_SUB" "$PASSWORD" "$mark"
if ((RC != 0)) || ! has '^login 235'; then
    fail "$name" "python exit $RC" "$LOG"
elif ! wait_file_with "$T/sink" "$mark" 20; then
    fail "$name" "not at the sink in 20 s" "$T/mxring.log"
else
    pass "$name ($(grep -m1 'auth offered' <<<"$OUT"))"
fi

# ---------------------------------------------------------------------------------------
section "interop auth: certificates per SNI name"
"$MXRING" tls show --config "$CONF" >"$T/logs/tls-show.txt" 2>&1 || true
# served_subject PORT NAME [starttls]: the subject and SHA-256 fingerprint mxring serves.
served() {
    local extra=()
    [[ ${3:-} == starttls ]] && extra=(-starttls smtp)
    timeout 20 openssl s_client -connect "127.0.0.1:$1" ${2:+-servername "$2"} "${extra[@]}" \
        </dev/null 2>/dev/null | openssl x509 -noout -subject -fingerprint -sha256 2>/dev/null
}
for n in a.interop.test b.interop.test; do
    name="A7 openssl s_client -servername $n gets the certificate for $n"
    got=$(served "$P_SMTPS" "$n")
    fp=$(sed -n 's/^sha256 Fingerprint=//Ip' <<<"$got")
    if [[ $got != *"CN = $n"* && $got != *"CN=$n"* ]]; then
        fail "$name" "served: ${got:-nothing}"
    elif [[ -z $fp ]] || ! grep -qF "$fp" "$T/logs/tls-show.txt"; then
        fail "$name" "fingerprint $fp not in mxring tls show" "$T/logs/tls-show.txt"
    else
        pass "$name (sha256 $fp, as mxring tls show says)"
    fi
done
name="A8 openssl s_client -starttls smtp -servername b.interop.test on the submission port gets b's certificate"
got=$(served "$P_SUB" b.interop.test starttls)
if [[ $got == *"b.interop.test"* ]]; then pass "$name"; else fail "$name" "served: ${got:-nothing}"; fi
name="A9 an unknown name gets the self-signed default, the same across a restart"
got=$(served "$P_SMTPS" unknown.interop.test)
if [[ $got != *"mx.interop.test"* ]]; then
    fail "$name" "served: ${got:-nothing}"
else
    kill -TERM "$PID_MX"
    for _ in $(seq 100); do kill -0 "$PID_MX" 2>/dev/null || break; sleep 0.1; done
    start mxring2 "$MXRING" serve --config "$CONF"
    PID_MX=$LAST_PID
    if ! wait_port "$P_SMTPS" || ! wait_port "$P_SUB"; then
        fail "$name" "mxring did not come back" "$T/mxring2.log"
    elif [[ $(served "$P_SMTPS" "") != "$got" ]]; then
        fail "$name" "the fingerprint changed on restart: $got vs $(served "$P_SMTPS" "")"
    else
        pass "$name ($(sed -n 's/^sha256 Fingerprint=//Ip' <<<"$got"))"
    fi
fi

# ---------------------------------------------------------------------------------------
section "interop auth: Postfix as an authenticating client"
PF=$T/postfix
pf_main "$PF" pf-client.interop.test no-dns
printf '[127.0.0.1]:%s alice@customer-a.test:%s\n' "$P_SUB" "$PASSWORD" >"$PF/sasl_passwd"
chmod 600 "$PF/sasl_passwd"
cat >>"$PF/main.cf" <<EOF
relay_domains =
relayhost = [127.0.0.1]:$P_SUB
smtpd_tls_security_level = none
smtp_tls_security_level = encrypt
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:$PF/sasl_passwd
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
EOF
pf_master "$PF" "127.0.0.1:$P_PF inet n - n - - smtpd"
PF_DIRS+=("$PF")
name="A10 Postfix (smtp_sasl_auth_enable) relays through mxring's submission listener with AUTH"
if ! pf_start "$PF" "$P_PF" 2>"$T/logs/postfix-start.txt"; then
    fail "$name" "the private Postfix did not start" "$T/logs/postfix-start.txt"
else
    mark="interop-a10-$RANDOM$RANDOM"
    run a10 "${SWAKS[@]}" --port "$P_PF" --from alice@customer-a.test --to dave@far.test \
        --header "X-Interop: $mark"
    pfid=$(grep -oE 'queued as [A-Za-z0-9]+' <<<"$OUT" | head -1 | awk '{print $3}' || true)
    line=""
    for _ in $(seq 100); do
        line=$(grep -E "[: ]$pfid: to=<.*status=" "$PF/maillog" 2>/dev/null | tail -1 || true)
        [[ -n $line || -z $pfid ]] && break
        sleep 0.2
    done
    if [[ -z $pfid ]]; then
        fail "$name" "Postfix did not queue it (swaks exit $RC)" "$LOG"
    elif [[ $line != *"status=sent (250 2.0.0 Ok: queued as "* ]]; then
        fail "$name" "Postfix: ${line:-no status line in 20 s}" "$PF/maillog"
    elif ! wait_file_with "$T/sink" "$mark" 20; then
        fail "$name" "mxring queued it but it is not at the sink" "$T/mxring2.log"
    elif ! grep -q "with ESMTPSA" "$(dump_with "$T/sink" "$mark")"; then
        fail "$name" "the Received header does not say ESMTPSA" "$(dump_with "$T/sink" "$mark")"
    else
        pass "$name ($pfid: $(grep -oE 'status=sent.*' <<<"$line"))"
    fi
fi

section "interop auth: summary"
if ((FAILED)); then
    for f in "$T/mxring.log" "$T/mxring2.log" "$PF/maillog"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f ---"
        tail -n 30 "$f" | sed 's/^/  | /'
    done
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
