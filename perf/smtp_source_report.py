#!/usr/bin/env python3
"""The smtp-source part of perf/compare.sh's report, as Markdown on stdout.

  smtp_source_report.py RAW_DIR

Reads ss-runs.jsonl (one line per smtp-source run), ss-bench.jsonl (mxring-bench runs
for the half-peak p99), disk-bw-*.json and ss-fsync-after.json. Standard library only.
"""
import os
import sys

from mdreport import jload, jsonl, med, table

TARGETS = ("sink", "mxring", "postfix")
NAMES = {"sink": "smtp-sink", "mxring": "mxring", "postfix": "Postfix"}
KIB = 1024
MIB = 1024 * 1024


def rate(x):
    return "–" if x != x else f"{x:,.0f}"


def others_pct(run):
    """CPU used by everything but the MTA, the generator, the sink and the kernel's own
    threads (journal, writeback: work done for whoever writes), % of the machine."""
    own = run["cpu_s"] + run["gen_cpu_s"] + (run["sink_cpu_s"] if run["target"] != "sink" else 0)
    own += run.get("kthreads_cpu_s", 0)
    if run["machine_total_s"] <= 0:
        return 0.0
    return max(0.0, (run["machine_busy_s"] - own) / run["machine_total_s"] * 100)


def per_msg(run, key):
    return run[key] / run["messages"]


def fmt(x, spec):
    """A number, or a dash when there is none (no valid run: NaN)."""
    return "–" if x is None or x != x else format(x, spec)


def verdict(ok, x=0.0):
    if x != x:
        return "no valid run"
    return "**met**" if ok else "**not met**"


# The main.cf settings that differ from a stock instance for performance, and why each
# is fair; the rest of `postconf -n` only makes a private instance on a high port.
TUNING = [
    ("in_flow_delay", "smtpd would otherwise sleep up to 1 s per message whenever the queue "
     "manager lags: a throttle, not durability, and mxring has none"),
    ("default_process_limit", "50 sessions from one client plus cleanup and smtp processes fit"),
    ("smtpd_client_connection_count_limit", "anvil's per-client limits off: all load comes from 127.0.0.1"),
    ("smtpd_client_connection_rate_limit", None),
    ("smtpd_client_message_rate_limit", None),
    ("default_destination_concurrency_limit", "parallel deliveries to the one next hop, as many as "
     "mxring's (20 per destination per shard, 2 shards)"),
    ("initial_destination_concurrency", "that concurrency from the first message, no slow start"),
    ("relayhost", "the same smtp-sink as mxring's route"),
]


def postfix_section(raw):
    p = os.path.join(raw, "postfix-main.cf")
    if not os.path.exists(p):
        return []
    conf = {}
    with open(p) as f:
        for line in f:
            if "=" in line:
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
    L = ["### How the Postfix instance is tuned", ""]
    L.append("A private instance (`postfix -c DIR`, perf/postfix.sh), chroot off, on the same file system "
             "as mxring's spool. It is durable as a stock Postfix is: cleanup fsyncs each queue file before "
             "smtpd answers 250 (Postfix has no switch to turn that off), and it logs every message to its "
             "maillog as it does by default. Set for performance, and why that is fair:")
    L.append("")
    for key, why in TUNING:
        if key in conf:
            L.append(f"- `{key} = {conf[key]}`" + (f": {why}." if why else "."))
    L.append("")
    L.append("The whole `postconf -n` and master.cf are in the raw archive (`postfix-main.cf`, "
             "`postfix-master.cf`).")
    L.append("")
    return L


def main():
    raw = sys.argv[1]
    # A run marked superseded was redone because other jobs loaded the machine; only the
    # retry counts (the raw archive keeps both).
    everything = jsonl(raw, "ss-runs.jsonl")
    redone = [r for r in everything if r.get("superseded")]
    all_runs = [r for r in everything if not r.get("superseded")]
    runs = [r for r in all_runs if not r.get("next_hop_down")]
    down = [r for r in all_runs if r.get("next_hop_down")]
    if not runs:
        return
    bench = jsonl(raw, "ss-bench.jsonl")
    order = []
    for r in runs:
        if r["workload"] not in order:
            order.append(r["workload"])
    # A run counts only when smtp-source finished cleanly and the sink got every message;
    # the others are listed under Problems and left out of every median.
    good = [r for r in runs if r.get("valid", r["delivered"] == r["messages"])]
    by = {(w, t): [r for r in good if r["workload"] == w and r["target"] == t] for w in order for t in TARGETS}
    first = {w: next(r for r in runs if r["workload"] == w) for w in order}
    rounds = max(r["round"] for r in runs)
    L = []
    out = L.append

    out("## smtp-source: relaying into smtp-sink")
    out("")
    out(f"Postfix's own load tool, one message in flight per session as real senders do: "
        f"`smtp-source -s {first[order[0]]['sessions']} -l SIZE -m N [-d]` (-d: reuse the connection), "
        f"into mxring and into Postfix, both relaying to the same `smtp-sink` on loopback (mxring's "
        f"`[[route]] next_hop` and Postfix's `relayhost`), and straight into that smtp-sink: the ceiling, "
        f"no MTA at all. {rounds} round(s); per round and workload the three targets get the same message "
        f"count, smtp-sink first, then the MTAs in an order that flips every time. Medians over the rounds.")
    out("")
    others = [others_pct(r) for r in runs]
    loaded = max(others) > 15
    out(f"Machine: CPU used by other jobs during these runs median {med(others):.0f}%, max {max(others):.0f}% "
        f"of the machine; 1-min load average at the start of a run {min(r['loadavg'] for r in runs):.2f}–"
        f"{max(r['loadavg'] for r in runs):.2f}.")
    if redone:
        out("")
        out(f"{len(redone)} run(s) were redone because other jobs took more of the machine during them than "
            "SS_MAX_OTHERS allows (25% unless set): " + ", ".join(f"{r['workload']} {NAMES[r['target']]} round {r['round']} "
                                             f"({others_pct(r):.0f}%)" for r in redone) + ".")
    if loaded:
        out("")
        out("**Other jobs took more than 15% of the machine during at least one run: treat these figures as "
            "a loaded machine's, not as claims.**")
    out("")

    out("### Throughput: durable 250s per second")
    out("")
    S, rows = {}, []
    for w in order:
        s = {t: med([r["accept_per_s"] for r in by[(w, t)]]) for t in TARGETS}
        e = {t: med([r["e2e_per_s"] for r in by[(w, t)]]) for t in TARGETS}
        S[w] = (s, e)
        rows.append([first[w]['desc'], f"{first[w]['messages']:,}", rate(s['sink']), rate(s['mxring']),
                     rate(s['postfix']), f"{fmt(s['mxring'] / s['postfix'], '.2f')}×",
                     f"{fmt(s['mxring'] / s['sink'] * 100, '.0f')}%", rate(e['mxring']), rate(e['postfix']),
                     f"{fmt(e['mxring'] / e['postfix'], '.2f')}×"])
    L += table("lrrrrrrrrr", ["workload", "messages", "smtp-sink (ceiling)", "mxring", "Postfix",
                              "mxring / Postfix", "mxring / ceiling", "end to end: mxring", "Postfix",
                              "ratio"], rows)
    out("")
    out("msg/s = messages / smtp-source's wall time (connect to the last 250; every 250 of both MTAs "
        "follows an fsync). End to end = messages counted by smtp-sink / (smtp-source's start to the last "
        "message at the sink): an MTA that accepts faster than it relays shows it here.")
    out("")
    out("Per round (accepted msg/s): " + "; ".join(
        f"{w}: " + ", ".join(f"{NAMES[t]} {'/'.join(rate(r['accept_per_s']) for r in by[(w, t)])}" for t in TARGETS)
        for w in order) + ".")
    out("")

    out("### Disk bytes written per message")
    out("")
    B, rows = {}, []
    for w in order:
        size = first[w]["size"]
        mx = med([per_msg(r, "disk_write_bytes") for r in by[(w, "mxring")]])
        pf = med([per_msg(r, "disk_write_bytes") for r in by[(w, "postfix")]])
        pf_log = med([per_msg(r, "log_bytes") for r in by[(w, "postfix")]])
        dmx = med([per_msg(r, "device_write_bytes") for r in by[(w, "mxring")]])
        dpf = med([per_msg(r, "device_write_bytes") for r in by[(w, "postfix")]])
        bound = 1.3 * size + 4 * KIB
        B[w] = (mx, bound)
        rows.append([w, f"{size:,}", fmt(mx, ',.0f'), f"{fmt(mx / size, '.1f')}×", fmt(pf, ',.0f'),
                     fmt(pf_log, ',.0f'), f"{fmt(pf / size, '.1f')}×",
                     f"{bound:,.0f}: {verdict(mx <= bound, mx).strip('*')}", fmt(dmx, ',.0f'), fmt(dpf, ',.0f')])
    L += table("lrrrrrrrrr", ["workload", "body", "mxring", "mxring / body", "Postfix",
                              "of which Postfix's maillog", "Postfix / body", "target (≤ 1.3 × body + 4 KiB)",
                              "device, mxring run", "device, Postfix run"], rows)
    out("")
    out("Bytes = write_bytes − cancelled_write_bytes from /proc/PID/io, summed over the MTA's process tree, "
        "after the run minus before it (Postfix: the master and every child alive, plus the master's own "
        "counters, which hold every child it reaped: smtpd, cleanup, qmgr, smtp, postlogd). The kernel "
        "charges a page when a process dirties it, so this is what the MTA made the file system write, "
        "without the ext4 journal (jbd2's writes belong to no process). Postfix's count includes its "
        "maillog (~5 lines per message, shown apart); mxring runs with RUST_LOG=warn and logs nothing per "
        "message. The device columns are /sys/class/block/DEV/stat's sectors written during the run: "
        "journal and metadata included, but also anything other jobs wrote meanwhile, so read them as an "
        "upper bound. cgroup v2's io.stat would charge writeback to each MTA's cgroup, but this kernel "
        "runs the hybrid hierarchy with blkio on cgroup v1 (no io controller on v2), and v1 blkio charges "
        "buffered writeback to the flusher, not the writer.")
    out("")

    bws = [b for b in (jload(raw, "disk-bw-before.json"), jload(raw, "disk-bw-after.json")) if b]
    bw = max((b["mib_per_s"] for b in bws), default=None)
    mx100 = S.get("ss-100k", ({}, {}))[0].get("mxring")
    if mx100 is not None and mx100 != mx100:  # no valid run: NaN
        mx100 = None
    if bws:
        out("### The disk: fdatasync'd sequential write bandwidth, same run")
        out("")
        out("`perf/disk_bw.py`: in the spool's file system, sequential writes of one block size, each followed "
            "by fdatasync, up to 256 MiB or 5 s per pass; *append* grows a fresh file (each sync also commits the "
            "new size), *overwrite* rewrites it in place (no metadata). Random data. Measured before and after "
            "the rounds.")
        out("")
        rows = []
        for i, blk in enumerate(bws[0]["blocks"]):
            cells = []
            for b in bws:
                x = b["blocks"][i]
                cells += [f"{x['append']['mib_per_s']:,.0f} MiB/s", f"{x['overwrite']['mib_per_s']:,.0f} MiB/s"]
            while len(cells) < 4:
                cells.append("–")
            sm = blk["overwrite"]["sync_ms"]
            rows.append([f"{blk['block_bytes'] // KIB:,} KiB"] + cells + [f"{sm['p50']} / {sm['p99']}"])
        L += table("rrrrrr", ["block", "append, before", "overwrite, before", "append, after",
                              "overwrite, after", "sync p50 / p99 ms (overwrite, before)"], rows)
        out("")
        if mx100 and bw:
            size = first["ss-100k"]["size"]
            mibs = mx100 * size / MIB

            def best(pred):
                xs = [max(x["append"]["mib_per_s"], x["overwrite"]["mib_per_s"])
                      for b in bws for x in b["blocks"] if pred(x["block_bytes"])]
                return max(xs) if xs else None
            one = best(lambda n: n <= size)
            # With one message in flight per session, a group commit holds at most one
            # message per session: the largest batch mxring can ever sync at once.
            batch = first["ss-100k"]["sessions"] * size
            reach = best(lambda n: n <= batch)
            out(f"The disk's bandwidth is taken as the best pass: **{bw:,.0f} MiB/s**. mxring's durable 100 KiB "
                f"rate ({rate(mx100)} msg/s × 100 KiB = {mibs:,.1f} MiB/s of bodies) is **{mibs / bw * 100:.1f}%** "
                f"of it (target ≥ 60%).")
            if reach:
                out(f"For scale: with {first['ss-100k']['sessions']} sessions and one message in flight each, "
                    f"no group commit can hold more than {batch // KIB:,} KiB; the best pass with blocks up to "
                    f"that size reached {reach:,.0f} MiB/s (mxring: {mibs / reach * 100:.0f}% of it)"
                    + (f", and one write + fdatasync per message-sized block {one:,.0f} MiB/s." if one else "."))
            out("")

    hp = [b for b in bench if b["kind"] in ("halfpeak", "halfpeak-same")]
    p99_mx = None
    if hp:
        peaks = {b["target"]: b["load"]["messages_per_s"] for b in bench if b["kind"] == "peak"}
        out("### p99 DATA→250 at half of the peak (open loop)")
        out("")
        out(f"`mxring-bench load --rate R --connections {first[order[0]]['sessions']} --size 1024`, relaying into "
            f"the same smtp-sink. The peak is the higher of the MTA's median smtp-source rate at 1 KiB over reused "
            f"connections and one closed-loop `mxring-bench load` run in the same set-up (mxring-bench: "
            + ", ".join(f"{NAMES[t]} {rate(v)} msg/s" for t, v in peaks.items())
            + "); R is half of it. Postfix also runs once at mxring's R, the same offered load. DATA→250 is "
            "the final dot written to the reply read, at the load generator; a connection that falls behind "
            "sends its overdue messages back to back, each timed from its own slot.")
        out("")
        mx_p99, rows = [], []
        for b in sorted(hp, key=lambda b: (b["target"] != "mxring", b["kind"], b["round"])):
            d = b["load"]["data_latency_ms"]
            own = "–"
            m = b.get("store_metrics") or {}
            if isinstance(m, dict) and "data_to_reply" in m:
                own = f"{m['data_to_reply']['p99_us_below'] / 1000:.2f}"
            label = NAMES[b["target"]] + (" (at mxring's R)" if b["kind"] == "halfpeak-same" else "")
            rows.append([label, rate(b['offered_rate']), rate(b['load']['messages_per_s']), f"{b['delivered']:,}",
                         f"{d['p50']:.2f}", f"{d['p90']:.2f}", f"{d['p99']:.2f}", f"{d['p999']:.2f}", own])
            if b["target"] == "mxring" and b["kind"] == "halfpeak":
                mx_p99.append(d["p99"])
        L += table("lrrrrrrrr", ["MTA", "offered msg/s", "achieved msg/s", "delivered", "p50 ms", "p90 ms",
                                 "p99 ms", "p99.9 ms", "mxring's own DATA→250 written, p99 ms"], rows)
        p99_mx = med(mx_p99)
        out("")
        fs = jload(raw, "ss-fsync-after.json")
        if fs:
            a, o = fs["append_fdatasync_ms"], fs["overwrite_fdatasync_ms"]
            out(f"The spool device's own fdatasync latency after these runs (`perf/fsync_probe.py`, 4 KiB): "
                f"after an append p50 {a['p50']} / p99 {a['p99']} ms, after an overwrite p50 {o['p50']} / p99 "
                f"{o['p99']} ms: a durable p99 cannot be below it.")
            out("")

    out("### CPU")
    out("")
    rows = []
    for w in order:
        c = {t: med([r["cpu_s"] / r["messages"] * 1000 for r in by[(w, t)]]) for t in TARGETS}
        g = med([r["gen_cpu_s"] / r["messages"] * 1000 for r in by[(w, "mxring")]])
        k = {t: med([r["kthreads_cpu_s"] / r["messages"] * 1000 for r in by[(w, t)] if "kthreads_cpu_s" in r])
             for t in TARGETS}
        rows.append([w, fmt(c['mxring'], '.2f'), fmt(c['postfix'], '.2f'), fmt(c['sink'], '.2f'), fmt(g, '.2f'),
                     fmt(k['mxring'], '.2f'), fmt(k['postfix'], '.2f')])
    L += table("lrrrrrr", ["workload", "mxring CPU s / 1000 msg", "Postfix CPU s / 1000 msg", "smtp-sink",
                           "smtp-source (into mxring)", "kernel threads, mxring run",
                           "kernel threads, Postfix run"], rows)
    out("")
    out("CPU: utime + stime of the process tree (Postfix with its reaped children), until it stops growing "
        "after the run, so queue-manager and delivery work is in. Kernel threads: the CPU of every kernel "
        "thread (jbd2's journal commits, writeback kworkers) during the run, which works for whoever writes "
        "files; it is not charged to either MTA above and not counted as other jobs' load. Postfix creates, "
        "renames and deletes a queue file per message, so its runs cost the journal more. On 2 cores, an MTA "
        "that needs C ms of CPU per message cannot exceed 2000 / C messages per second end to end, less what "
        "the generator, the sink and other jobs take.")
    out("")

    # Targets from the issue, as measured here.
    out("### Targets")
    out("")
    goals = []  # (target, measured, verdict)

    def ratio(w):
        s = S[w][0]
        return s["mxring"] / s["postfix"]
    if "ss-100k" in S:
        x = ratio('ss-100k')
        goals.append(("100 KiB reused: ≥ 3× Postfix", f"{fmt(x, '.2f')}×", verdict(x >= 3, x)))
        share = mx100 * first["ss-100k"]["size"] / MIB / bw * 100 if (mx100 and bw) else float("nan")
        goals.append(("100 KiB reused: ≥ 60% of the disk's fdatasync'd bandwidth", f"{fmt(share, '.1f')}%",
                      verdict(share >= 60, share)))
    if "ss-1k" in S:
        x = ratio('ss-1k')
        goals.append(("1 KiB reused: ≥ 10× Postfix", f"{fmt(x, '.2f')}×", verdict(x >= 10, x)))
    if "ss-newconn-1k" in S:
        x = ratio('ss-newconn-1k')
        goals.append(("1 KiB, new connection per message: ≥ 4× Postfix", f"{fmt(x, '.2f')}×", verdict(x >= 4, x)))
    for w in order:
        mx, bound = B[w]
        goals.append((f"{w}: bytes written ≤ 1.3 × body + 4 KiB", f"{fmt(mx, ',.0f')} B (bound {bound:,.0f})",
                      verdict(mx <= bound, mx)))
    if p99_mx is not None:
        goals.append(("p99 DATA→250 ≤ 2 ms at half of peak", f"{fmt(p99_mx, '.2f')} ms (median of the runs)",
                      verdict(p99_mx <= 2, p99_mx)))
    for w in order:
        s = S[w][0]
        share = s["mxring"] / s["sink"] * 100
        goals.append((f"{w}: smtp-source into mxring ≥ 50% of into smtp-sink", f"{fmt(share, '.0f')}%",
                      verdict(share >= 50, share)))
    L += table("lll", ["target", "measured", ""], goals)
    out("")

    if down:
        out("### The peer check: the next hop down")
        out("")
        out("The 1 KiB reused workload once more on each MTA with its next hop at a closed port, as in the "
            "mxring-bench part's accept-only workloads: every message is accepted (fsync, 250), tried once and "
            "kept queued. Postfix then marks the destination dead and hands every further message to its "
            "retry/defer services, which append a defer log per message and move the queue file to deferred/: "
            "more work than relaying it, which is why accept-only figures understate Postfix.")
        out("")
        rows = []
        for r in down:
            w, t = r["workload"], r["target"]
            rel = by.get((w, t), [])
            rows.append([NAMES[t], rate(r['accept_per_s']), rate(med([x['accept_per_s'] for x in rel])),
                         f"{r['cpu_s'] / r['messages'] * 1000:.2f}",
                         fmt(med([x['cpu_s'] / x['messages'] * 1000 for x in rel]), '.2f'),
                         f"{r['disk_write_bytes'] / r['messages']:,.0f}",
                         fmt(med([per_msg(x, 'disk_write_bytes') for x in rel]), ',.0f'),
                         f"{r['queued_after']:,} of {r['messages']:,}"])
        L += table("lrrrrrrr", ["MTA", "msg/s, next hop down", "msg/s relaying (median above)",
                                "CPU s / 1000 msg, down", "relaying", "bytes written / msg, down", "relaying",
                                "queued after"], rows)
        out("")

    L += postfix_section(raw)

    flags = []
    for r in runs:
        tag = f"{r['workload']} {NAMES[r['target']]} round {r['round']}"
        if r["delivered"] != r["messages"]:
            flags.append(f"{tag}: smtp-sink counted {r['delivered']:,} of {r['messages']:,} messages.")
        if r["queued_after"] not in (None, 0):
            flags.append(f"{tag}: {r['queued_after']} messages still queued after the run.")
        if r["log_problems"]:
            flags.append(f"{tag}: {r['log_problems']} warning/error lines in the MTA's log.")
        if r["generator_error_lines"]:
            flags.append(f"{tag}: smtp-source printed {r['generator_error_lines']} error lines.")
        code = r.get("generator_exit", 0)
        if code:
            why = {141: " (SIGPIPE: it wrote to a connection the server had closed)",
                   124: " (stopped: it ran longer than SS_RUN_MAX)"}.get(code, "")
            flags.append(f"{tag}: smtp-source exited with status {code}{why}.")
        if not r.get("valid", r["delivered"] == r["messages"]):
            flags.append(f"{tag}: left out of the medians.")
    for r in down:
        tag = f"{r['workload']} {NAMES[r['target']]}, next hop down"
        if not r.get("valid", True):
            flags.append(f"{tag}: {r['queued_after']} of {r['messages']:,} messages queued after the run "
                         f"(smtp-source exit status {r.get('generator_exit')}).")
    for b in bench:
        if b["delivered"] < b["load"]["messages_ok"]:
            flags.append(f"mxring-bench {b['kind']} {NAMES[b['target']]}: {b['delivered']:,} of "
                         f"{b['load']['messages_ok']:,} accepted messages reached the sink.")
        if b["load"]["messages_failed"]:
            flags.append(f"mxring-bench {b['kind']} {NAMES[b['target']]}: {b['load']['messages_failed']} messages failed.")
    out("Problems:" + (" none (every message reached the sink, nothing left queued, no warnings)." if not flags else ""))
    if flags:
        out("")
    for f in flags[:30]:
        out(f"- {f}")
    if len(flags) > 30:
        out(f"- … and {len(flags) - 30} more (see the raw archive).")
    out("")
    print("\n".join(L))


if __name__ == "__main__":
    main()
