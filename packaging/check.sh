#!/usr/bin/env bash
# Builds the Debian package and checks it without installing it on this machine:
# unpacked with `dpkg -x` into a throwaway root, its layout, its config and unit,
# and that its binary binds port 25 as an unprivileged user holding only
# CAP_NET_BIND_SERVICE, as the unit runs it. Needs root (for the user switch),
# cargo-deb (installed when missing) and a release build.
#
# Usage: bash packaging/check.sh       prints PASS/FAIL lines; exit 1 on any FAIL.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
T=$(mktemp -d)
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
failed=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1: $2"; failed=1; }

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
[[ -x target/release/mxring ]] || cargo build --release --bin mxring
cargo deb --no-build --strip --fast --output "$T/mxring.deb" >"$T/deb.log" 2>&1 || {
    cat "$T/deb.log"
    echo "FAIL  cargo deb"
    exit 1
}
pass "cargo deb built $(basename "$(ls "$T"/*.deb)")"

dpkg-deb --info "$T/mxring.deb" >"$T/info"
grep -q "^ Package: mxring" "$T/info" && grep -q "Depends:.*adduser" "$T/info" &&
    pass "control: package mxring, depends on adduser" || fail "control" "$(cat "$T/info")"
dpkg -x "$T/mxring.deb" "$T/root"
dpkg-deb --ctrl-tarfile "$T/mxring.deb" | tar -x -C "$T" ./postinst ./conffiles 2>/dev/null || true
unit=$(cd "$T/root" && ls usr/lib/systemd/system/mxring.service lib/systemd/system/mxring.service 2>/dev/null | head -1 || true)
[[ -n $unit ]] && pass "layout: /$unit" || fail "layout" "no mxring.service under /usr/lib/systemd/system or /lib/systemd/system"
unit=$T/root/${unit:-lib/systemd/system/mxring.service}
for f in usr/bin/mxring etc/mxring/mxring.toml usr/share/doc/mxring/README.md; do
    [[ -e $T/root/$f ]] && pass "layout: /$f" || fail "layout" "/$f missing"
done
grep -qx "/etc/mxring/mxring.toml" "$T/conffiles" 2>/dev/null &&
    pass "the config is a conffile (kept on upgrade)" || fail "conffiles" "$(cat "$T/conffiles" 2>/dev/null)"
grep -q "adduser --system" "$T/postinst" && grep -q "/var/spool/mxring" "$T/postinst" &&
    pass "postinst creates the mxring user and its spool" || fail "postinst" "no user or spool"

for want in "Type=notify" "User=mxring" "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
    "ProtectSystem=strict" "ReadWritePaths=/var/spool/mxring" "LimitNOFILE=262144" \
    "ExecStart=/usr/bin/mxring serve --config /etc/mxring/mxring.toml"; do
    grep -qx -- "$want" "$unit" && pass "unit: $want" || fail "unit" "no line $want"
done
# systemd's own reading of the unit, against the unpacked root. Lines about what a
# bare root lacks (its targets, /bin/kill) are not the unit's faults.
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --root="$T/root" "$unit" 2>&1 |
        grep -vE "sysinit.target not found|/bin/kill is not executable" >"$T/verify" || true
    [[ ! -s $T/verify ]] && pass "systemd-analyze verify" || fail "systemd-analyze verify" "$(cat "$T/verify")"
else
    echo "SKIP  systemd-analyze verify: systemd-analyze is not installed"
fi

"$T/root/usr/bin/mxring" config check --config "$T/root/etc/mxring/mxring.toml" >"$T/check" 2>&1 &&
    pass "the packaged config passes config check" || fail "config check" "$(cat "$T/check")"

# Port 25 as an unprivileged user with only CAP_NET_BIND_SERVICE (the unit's
# AmbientCapabilities), on loopback, with the packaged binary.
if [[ $(id -u) != 0 ]]; then
    fail "port 25" "needs root to switch to an unprivileged user"
elif (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null; then
    fail "port 25" "something already listens on 127.0.0.1:25"
else
    mkdir -p "$T/spool"
    chown nobody "$T/spool"
    sed -e "s#^spool = .*#spool = \"$T/spool\"#" -e 's#^address = "0.0.0.0:25"#address = "127.0.0.1:25"#' \
        -e 's#^address = "127.0.0.1:9725"#address = ""#' \
        "$T/root/etc/mxring/mxring.toml" >"$T/port25.toml"
    chmod 755 "$T"
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
        "$T/root/usr/bin/mxring" serve --config "$T/port25.toml" >"$T/serve.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        grep -q "listening" "$T/serve.log" && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    banner=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/25; read -r -t 5 line <&3; printf "%s" "${line%$'"'"'\r'"'"'}"' 2>/dev/null || true)
    if [[ $banner == 220* ]]; then
        pass "port 25 bound as nobody with CAP_NET_BIND_SERVICE: $banner"
    else
        fail "port 25" "no banner; log: $(tr '\n' ' ' <"$T/serve.log")"
    fi
    kill "$PID" && wait "$PID" 2>/dev/null || true
    PID=
fi
((failed == 0)) && echo "package checks passed" || exit 1
