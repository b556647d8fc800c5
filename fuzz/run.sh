#!/usr/bin/env bash
# Run every mxring fuzz target for SECONDS each (default 60), one after another.
#
#   bash fuzz/run.sh [SECONDS]
#
# Exits non-zero when any target crashes (or fails to build); prints one summary line
# per target. Works on stable Rust through RUSTC_BOOTSTRAP=1 (cargo-fuzz passes
# nightly-only flags such as -Zsanitizer). New corpus entries go to a scratch
# directory, so fuzz/corpus/ (the committed seeds) is only read; set
# FUZZ_KEEP_CORPUS=1 to add them to fuzz/corpus/<target>/ instead. Crashing inputs
# land in fuzz/artifacts/<target>/. TARGETS="a b" runs only those targets.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install --locked cargo-fuzz
fi

all_targets="$(cargo fuzz list)"
targets="${TARGETS:-$all_targets}"

# Build everything first so the time budget is spent fuzzing.
cargo fuzz build >&2

logs="$(mktemp -d "${TMPDIR:-/tmp}/mxring-fuzz.XXXXXX")"
trap 'rm -rf "$logs"' EXIT

failed=0
summary=()
for t in $targets; do
    log="$logs/$t.log"
    mkdir -p "corpus/$t"
    if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
        dirs=("corpus/$t")
    else
        mkdir -p "$logs/new-$t"
        dirs=("$logs/new-$t" "corpus/$t")
    fi
    echo "=== $t: ${seconds}s" >&2
    start=$(date +%s)
    status=0
    cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))

    execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
    if [ -z "$execs" ]; then
        execs="$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
    fi
    execs="${execs:-?}"
    corpus="$(find "${dirs[@]}" -type f | wc -l | tr -d ' ')"

    if [ "$status" -eq 0 ]; then
        line="$t: ok, ${elapsed}s, $execs executions, corpus $corpus inputs"
    else
        failed=1
        panic="$(grep -a -m1 -A1 "panicked at" "$log" | tr '\n' ' ' | sed 's/^thread .* panicked at //' || true)"
        [ -n "$panic" ] || panic="$(grep -a -m1 -E "^==[0-9]+==ERROR|^SUMMARY:|deadly signal|ERROR: libFuzzer" "$log" || true)"
        [ -n "$panic" ] || panic="exit status $status (build failure?)"
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        line="$t: FAILED after ${elapsed}s, $execs executions: $panic${artifact:+ [input: $artifact]}"
        echo "--- last lines of the $t log:" >&2
        grep -a -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 40 >&2 || true
    fi
    echo "$line" >&2
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
