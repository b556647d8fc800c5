#!/usr/bin/env python3
"""Turns perf/latency.sh's raw directory into a markdown report.

    latency_report.py RAW_DIR OUT.md
"""
import json
import os
import statistics
import sys

from report import fsync_probe_lines


def load(raw):
    with open(os.path.join(raw, "runs.jsonl")) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(raw, "meta.json")) as f:
        meta = json.load(f)
    return runs, meta


def ms(us):
    return f"{us / 1000:.2f}"


def runq_per_message(run, group):
    g = run["sched"].get(group)
    ok = run["load"]["messages_ok"]
    if not g or not ok:
        return None
    return g["runq_wait_s"] / ok * 1e6, g["cpu_s"] / ok * 1e6


def main():
    raw, out = sys.argv[1], sys.argv[2]
    runs, meta = load(raw)
    peaks = [r for r in runs if r["offered_rate"] is None]
    half = [r for r in runs if r["offered_rate"] is not None]
    L = [f"# mxring: what bounds DATA→250 at half of the peak rate, {meta['date']}", ""]
    L.append(f"`perf/latency.sh` at {meta['git_rev']}: accept-only, 1 KiB, plaintext, "
             f"{meta['connections']} reused connections, {meta['duration_s']} s runs, mxring alone on "
             f"{meta['ncpu']} CPUs with the load generator. Median peak "
             f"{meta['peak']:,.0f} msg/s (runs: "
             + ", ".join(f"{r['load']['messages_per_s']:,.0f}" for r in peaks)
             + f"); half-peak runs offered {meta['half']:,} msg/s open-loop (`--rate`).")
    L.append("")
    L.append("## Client-side latency (mxring-bench: final dot written → reply read)")
    L.append("")
    L.append("| run | load generator | achieved msg/s | p50 ms | p90 ms | p99 ms | p99.9 ms |")
    L.append("|---|---|---:|---:|---:|---:|---:|")
    for r in runs:
        d = r["load"]["data_latency_ms"]
        who = "nice 19" if r["nice"] else "normal"
        L.append(f"| {r['tag']} | {who} | {r['load']['messages_per_s']:,.0f} | {d['p50']:.2f} | "
                 f"{d['p90']:.2f} | {d['p99']:.2f} | {d['p999']:.2f} |")
    L.append("")
    for nice in (0, 19):
        p99s = [r["load"]["data_latency_ms"]["p99"] for r in half if r["nice"] == nice]
        if p99s:
            L.append(f"- Half peak, generator {'at nice 19' if nice else 'at normal priority'}: "
                     f"median p99 **{statistics.median(p99s):.2f} ms**.")
    L.append("")
    L.append("## mxring's own counters (GET /metrics, `store`), half-peak runs")
    L.append("")
    L.append("Quantiles are bucket bounds (within a quarter octave).")
    L.append("")
    L.append("| run | DATA→250 written p50 / p99 ms | commit wait p50 / p99 | commit p50 / p99 | "
             "sled flush p99 | fdatasync p99 | write into sled p99 | msgs per commit |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in half:
        s = r["store"]
        pair = lambda h: f"{ms(s[h]['p50_us_below'])} / {ms(s[h]['p99_us_below'])}"
        L.append(f"| {r['tag']} | {pair('data_to_reply')} | {pair('commit_wait')} | {pair('commit')} | "
                 f"{ms(s['commit_flush']['p99_us_below'])} | {ms(s['commit_sync']['p99_us_below'])} | "
                 f"{ms(s['write']['p99_us_below'])} | {s['mean_batch']:.1f} |")
    L.append("")
    L.append("## Run-queue wait of mxring's threads (/proc/PID/task/*/schedstat)")
    L.append("")
    L.append("Time a thread was runnable but had no CPU, per accepted message, next to its CPU time "
             "per message. A shard thread waiting on the run queue delays every session it owns.")
    L.append("")
    groups = sorted({g for r in half for g in r["sched"]})
    L.append("| run | " + " | ".join(f"{g}: wait / CPU µs per msg" for g in groups) + " |")
    L.append("|---|" + "---:|" * len(groups))
    for r in half:
        cells = []
        for g in groups:
            v = runq_per_message(r, g)
            cells.append("—" if v is None else f"{v[0]:.0f} / {v[1]:.0f}")
        L.append(f"| {r['tag']} | " + " | ".join(cells) + " |")
    L.append("")
    L += fsync_probe_lines(meta)
    L.append("")
    L.append(f"Raw data: `{os.path.relpath(raw, os.path.dirname(out))}.tar.gz`.")
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
