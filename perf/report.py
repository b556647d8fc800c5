#!/usr/bin/env python3
"""Turns perf/compare.sh's raw results into a Markdown report and an SVG plot.

  report.py RAW_DIR OUT.md OUT.svg [ARCHIVE]

RAW_DIR may hold only the smtp-source part (RAW_DIR/smtp-source.md, written by
smtp_source_report.py), only the mxring-bench part (runs.jsonl), or both. ARCHIVE is the
name of the raw archive the report points to.

Standard library only; the SVG is written by hand.
"""
import math
import os
import sys

from mdreport import jload, jsonl, med, table

MTAS = ("mxring", "postfix")
ALL_MTAS = ("mxring", "postfix", "postfix-hold")
NAMES = {"mxring": "mxring", "postfix": "Postfix", "postfix-hold": "Postfix, hold queue"}


def is_relay(run):
    return run["sink"] is not None


def rate(run):
    """Messages/s: at the load generator for accept-only, at the sink for relay."""
    if is_relay(run):
        return run["sink"]["messages_per_s"]
    return run["load"]["messages_per_s"]


def msgs(run):
    return run["sink"]["messages"] if is_relay(run) else run["load"]["messages_ok"]


def cpu_per_1000(run):
    n = msgs(run)
    return run["cpu_s"] / n * 1000 if n else float("nan")


def others_pct(run):
    """Share of the machine's CPU used by neither the MTA nor the load generator."""
    other = run["machine_busy_s"] - run["cpu_s"] - run["load_cpu_s"]
    return max(0.0, other) / run["machine_total_s"] * 100 if run["machine_total_s"] else 0.0


def mib(kib):
    return f"{kib / 1024:.0f} MiB" if kib >= 10 * 1024 else f"{kib / 1024:.1f} MiB"


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def problems(run):
    """Human-readable list of anything that went wrong in one run."""
    out = []
    ld = run["load"]
    if ld["messages_failed"]:
        out.append(f"{ld['messages_failed']} failed")
    for k, v in ld["errors"].items():
        ex = ld["error_examples"].get(k, "")
        out.append(f"error {k}×{v}" + (f" ({ex[:80]})" if ex else " (reply code at the load generator)"))
    if run["queued"] is not None and run["queued"] >= 0 and run["queued"] < ld["messages_ok"]:
        out.append(f"LOST: {ld['messages_ok'] - run['queued']} accepted but not in the queue")
    if run["queued"] is not None and run["queued"] < 0:
        out.append("queue count unavailable")
    if is_relay(run) and run["sink"]["messages"] < ld["messages_ok"]:
        out.append(f"only {run['sink']['messages']} of {ld['messages_ok']} delivered within the drain time")
    if run["log_problems"]:
        lines = "; ".join(f"`{x[:160]}`" for x in run.get("log_samples", []))
        out.append(f"{run['log_problems']} warning/error log lines, most frequent: {lines}")
    return out


def summarize(runs):
    s = {}
    for m in ALL_MTAS:
        rs = sorted((r for r in runs if r["mta"] == m), key=lambda r: r["round"])
        if not rs:
            continue
        rates = [rate(r) for r in rs]
        s[m] = {
            "runs": rs,
            "rate": med(rates),
            "min": min(rates),
            "max": max(rates),
            "p50": med(r["load"]["data_latency_ms"]["p50"] for r in rs),
            "p99": med(r["load"]["data_latency_ms"]["p99"] for r in rs),
            "p99max": max(r["load"]["data_latency_ms"]["p99"] for r in rs),
            "hs50": med(r["load"]["handshake_latency_ms"]["p50"] for r in rs)
            if rs[0]["load"]["handshake_latency_ms"]["count"] else None,
            "cpu1k": med(cpu_per_1000(r) for r in rs),
            "hwm": max(r["mem_end"]["hwm_kib"] for r in rs),
            "pss": max(max(r["mem_peak"]["pss_kib"], r["mem_end"]["pss_kib"]) for r in rs),
            "procs": max(max(r["mem_peak"]["procs"], r["mem_end"]["procs"]) for r in rs),
            "msgs": sum(msgs(r) for r in rs),
            "problems": [(r["round"], p) for r in rs for p in problems(r)],
            "others": med(others_pct(r) for r in rs),
            "loadavg": [r["loadavg"] for r in rs],
        }
    return s


def workload_section(name, desc, s, relay):
    L = [f"#### {name}: {desc}", ""]
    rows = []
    for m in ALL_MTAS:
        if m not in s:
            continue
        x = s[m]
        if m == "mxring":
            memtxt = f"{mib(x['hwm'])} (VmHWM)"
        else:
            memtxt = f"Σ PSS {mib(x['pss'])}; Σ VmHWM {mib(x['hwm'])} ({x['procs']} procs)"
        rows.append([NAMES[m], fmt_rate(x['rate']), f"{fmt_rate(x['min'])} – {fmt_rate(x['max'])}",
                     f"{x['p50']:.1f} / {x['p99']:.1f}", f"{x['cpu1k']:.2f}", memtxt, len(x['runs'])])
    L += table("lrrrrlr", ["MTA", "msg/s (median)", "min – max", "p50 / p99 DATA→250 (ms)",
                           "CPU s / 1000 msg", "peak memory", "runs"], rows)
    if "mxring" in s and "postfix" in s:
        L.append("")
        ratio = s["mxring"]["rate"] / s["postfix"]["rate"] if s["postfix"]["rate"] else float("inf")
        cpu_ratio = s["postfix"]["cpu1k"] / s["mxring"]["cpu1k"] if s["mxring"]["cpu1k"] else float("nan")
        L.append(f"Ratio mxring/Postfix: **{ratio:.2f}×** throughput; Postfix uses {cpu_ratio:.1f}× "
                 f"mxring's CPU per message.")
        if "postfix-hold" in s and s["postfix-hold"]["rate"]:
            L.append(f"Against Postfix with the hold queue (no queue-manager work): "
                     f"{s['mxring']['rate'] / s['postfix-hold']['rate']:.2f}× throughput.")
        hs = [f"{NAMES[m]} {s[m]['hs50']:.2f} ms" for m in MTAS if s[m]["hs50"] is not None]
        if hs:
            L.append(f"TLS handshake p50 (from STARTTLS): {', '.join(hs)}.")
        if relay:
            L.append("Throughput measured at the sink: messages delivered / (first MAIL to "
                     "last message); p99 is the inbound DATA→250 latency.")
    probs = [(m, rd, p) for m in ALL_MTAS if m in s for rd, p in s[m]["problems"]]
    L.append("")
    if probs:
        L.append("Problems: " + "; ".join(f"{NAMES[m]} round {rd}: {p}" for m, rd, p in probs) + ".")
    else:
        L.append("Problems: none (no failed messages, every accepted message queued or delivered, "
                 "no warnings in the logs).")
    per_round = ", ".join(
        f"{NAMES[m]} " + "/".join(fmt_rate(rate(r)) for r in s[m]["runs"]) for m in ALL_MTAS if m in s)
    L.append(f"Per round (msg/s): {per_round}.")
    L.append("")
    return L


def svg_plot(order, summaries, out):
    """Two log-scale bar charts: throughput, and p99 DATA→250 latency."""
    W, H = 1100, 440
    panel_w, top, bottom, left = 500, 50, 120, 70
    plot_h = H - top - bottom
    colors = {"mxring": "#1f77b4", "postfix": "#d62728"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>']

    def panel(x0, title, key, unit, lo_hi):
        lo, hi = lo_hi
        lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        if hi_e == lo_e:
            hi_e += 1

        def y(v):
            v = max(v, 10 ** lo_e)
            return top + plot_h - (math.log10(v) - lo_e) / (hi_e - lo_e) * plot_h

        parts.append(f'<text x="{x0 + panel_w / 2}" y="25" text-anchor="middle" font-size="14" '
                     f'font-weight="bold">{title}</text>')
        for e in range(lo_e, hi_e + 1):
            yy = y(10 ** e)
            parts.append(f'<line x1="{x0}" x2="{x0 + panel_w - left}" y1="{yy:.1f}" y2="{yy:.1f}" '
                         f'stroke="#ddd"/>')
            parts.append(f'<text x="{x0 - 5}" y="{yy + 4:.1f}" text-anchor="end">'
                         f'{10 ** e:g}</text>')
        parts.append(f'<text x="{x0 - 50}" y="{top + plot_h / 2}" transform="rotate(-90 {x0 - 50} '
                     f'{top + plot_h / 2})" text-anchor="middle">{unit} (log scale)</text>')
        n = len(order)
        group_w = (panel_w - left) / n
        bar_w = group_w * 0.35
        for i, wl in enumerate(order):
            s = summaries[wl]
            gx = x0 + i * group_w + group_w * 0.15
            for j, m in enumerate(MTAS):
                if m not in s:
                    continue
                v = s[m][key]
                bx = gx + j * bar_w
                parts.append(f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bar_w:.1f}" '
                             f'height="{top + plot_h - y(v):.1f}" fill="{colors[m]}"/>')
                if key == "rate":  # min-max whisker
                    cx = bx + bar_w / 2
                    parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(s[m]["min"]):.1f}" '
                                 f'y2="{y(s[m]["max"]):.1f}" stroke="black"/>')
                ly = min(y(v), y(s[m]["max"])) if key == "rate" else y(v)
                label = f"{v:,.0f}" if v >= 10 else f"{v:.1f}"
                parts.append(f'<text x="{bx + bar_w / 2:.1f}" y="{ly - 4:.1f}" text-anchor="middle" '
                             f'font-size="9">{label}</text>')
            lx, ly = gx + bar_w, top + plot_h + 10
            parts.append(f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" '
                         f'transform="rotate(-40 {lx:.1f} {ly})">{wl}</text>')
        parts.append(f'<line x1="{x0}" x2="{x0 + panel_w - left}" y1="{top + plot_h}" '
                     f'y2="{top + plot_h}" stroke="black"/>')

    def span(key):
        vals = [summaries[w][m][key] for w in order for m in MTAS if m in summaries[w]]
        vals += [summaries[w][m]["max"] for w in order for m in MTAS if m in summaries[w] and key == "rate"]
        vals = [v for v in vals if v > 0]
        return min(vals), max(vals)

    panel(left, "Throughput (median, min–max whiskers)", "rate", "messages/s", span("rate"))
    panel(left + panel_w + 40, "p99 DATA→250 latency (median of rounds)", "p99", "ms", span("p99"))
    lx = W - 170
    for j, m in enumerate(MTAS):
        parts.append(f'<rect x="{lx}" y="{H - 40 + j * 16}" width="12" height="12" fill="{colors[m]}"/>')
        parts.append(f'<text x="{lx + 18}" y="{H - 30 + j * 16}">{NAMES[m]}</text>')
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    raw, out_md, out_svg = sys.argv[1:4]
    archive = sys.argv[4] if len(sys.argv) > 4 else None
    runs = jsonl(raw, "runs.jsonl")
    meta = jload(raw, "meta.json") or {}
    main_runs = [r for r in runs if r["kind"] == "main"]
    order, descs = [], {}
    for r in main_runs:
        if r["workload"] not in descs:
            order.append(r["workload"])
            descs[r["workload"]] = r["desc"]
    summaries = {w: summarize([r for r in main_runs if r["workload"] == w]) for w in order}

    L = [f"# mxring vs Postfix, {meta.get('date', '')}", ""]
    if meta.get("command"):
        L.append(f"Reproduce: `{meta['command']}` (parts: {meta.get('workloads')}).")
        L.append("")
    L.append(f"Generated by `perf/compare.sh` (ROUNDS={meta.get('rounds')}, {meta.get('duration_s')} s "
             f"per mxring-bench run, {meta.get('connections')} connections unless stated). mxring {meta.get('git_rev')} "
             f"(binary built {meta.get('binary_built')}), Postfix {meta.get('postfix_version')}. "
             f"{meta.get('ncpu')} × {meta.get('cpu')}, kernel {meta.get('kernel')}, spools on "
             f"{meta.get('spool_fs')}. Wall time {meta.get('wall_s')} s.")
    L.append("")
    L.append(f"Machine load: load average {meta.get('loadavg_start')} at the start, "
             f"{meta.get('loadavg_end')} at the end; {meta.get('quiet_wait_s', 0)} s spent waiting for a "
             f"quieter machine. Every load generator runs on the same 2 cores as the server under test.")
    L.append("")
    frag = os.path.join(raw, "smtp-source.md")
    if os.path.exists(frag):
        with open(frag) as f:
            L += f.read().rstrip("\n").split("\n")
        L.append("")
    if not runs:
        L += raw_line(raw, out_md, archive)
        with open(out_md, "w") as f:
            f.write("\n".join(L) + "\n")
        return
    L.append("## mxring-bench workloads (accept-only and relay, perf/compare.sh WORKLOADS=bench)")
    L.append("")
    las = [r["loadavg"] for r in runs]
    oth = [others_pct(r) for r in runs]
    L.append(f"Machine load during these runs: 1-min load average at the start of each run "
             f"{min(las):.2f}–{max(las):.2f}. CPU used by other jobs (not the MTA, not the load "
             f"generator) during the runs: median {med(oth):.0f}%, max {max(oth):.0f}% of the machine.")
    L.append("")

    # summary
    L.append("### Summary")
    L.append("")
    rows = []
    for w in order:
        s = summaries[w]
        if "mxring" not in s or "postfix" not in s:
            continue
        a, b = s["mxring"], s["postfix"]
        rows.append([w, fmt_rate(a['rate']), fmt_rate(b['rate']), f"{a['rate'] / b['rate']:.2f}×",
                     f"{a['p99']:.1f}", f"{b['p99']:.1f}", f"{a['cpu1k']:.2f}", f"{b['cpu1k']:.2f}"])
    L += table("lrrrrrrr", ["workload", "mxring msg/s", "Postfix msg/s", "ratio", "mxring p99 ms",
                            "Postfix p99 ms", "mxring CPU s/1k", "Postfix CPU s/1k"], rows)
    L.append("")

    # flags: anything that went wrong, gathered from every run
    flags = []
    for w in order:
        for m in ALL_MTAS:
            x = summaries[w].get(m)
            if not x:
                continue
            failed = sum(r["load"]["messages_failed"] for r in x["runs"])
            tried = failed + sum(r["load"]["messages_ok"] for r in x["runs"])
            if failed:
                codes = {}
                for r in x["runs"]:
                    for k, v in r["load"]["errors"].items():
                        codes[k] = codes.get(k, 0) + v
                flags.append(f"{NAMES[m]} {w}: {failed} of {tried} messages refused or failed "
                             f"({', '.join(f'{k}×{v}' for k, v in codes.items())}) over {len(x['runs'])} runs.")
            lost = sum(max(0, r["load"]["messages_ok"] - r["queued"]) for r in x["runs"]
                       if r["queued"] is not None and r["queued"] >= 0)
            if lost:
                flags.append(f"{NAMES[m]} {w}: {lost} messages acknowledged with 250 but missing from the queue.")
            undelivered = sum(max(0, r["load"]["messages_ok"] - r["sink"]["messages"]) for r in x["runs"] if is_relay(r))
            if undelivered:
                flags.append(f"{NAMES[m]} {w}: {undelivered} accepted messages had not reached the sink "
                             f"after the drain time.")
            logs = sum(r["log_problems"] for r in x["runs"])
            if logs:
                top = next((r["log_samples"][0] for r in x["runs"] if r.get("log_samples")), "")
                flags.append(f"{NAMES[m]} {w}: {logs} warning/error log lines; most frequent: `{top[:200]}`.")
    L.append("### Flags")
    L.append("")
    L += [f"- {f}" for f in flags] if flags else ["- none: no failed or lost messages, no warnings in the logs."]
    L.append("")

    # ceiling
    c1 = jload(raw, "ceiling-smtp-sink.json")
    c2 = jload(raw, "ceiling-bench-sink.load.json")
    if c1 or c2:
        L.append("### Ceiling (no MTA: load generator straight into a sink, plaintext 1 KiB, 50 sessions)")
        L.append("")
        mx = summaries.get("accept-1k", {}).get("mxring", {}).get("rate", float("nan"))
        pf = summaries.get("accept-1k", {}).get("postfix", {}).get("rate", float("nan"))
        paths = []
        if c1:
            paths.append((f"smtp-source -s 50 -l 1024 -d → smtp-sink ({c1['messages']} msgs)", c1))
        if c2:
            paths.append(("mxring-bench load → mxring-bench sink", c2))
        L += table("lrrr", ["path", "msg/s", "mxring accept-1k as %", "Postfix accept-1k as %"],
                   [[path, fmt_rate(c['messages_per_s']), f"{mx / c['messages_per_s'] * 100:.0f}%",
                     f"{pf / c['messages_per_s'] * 100:.0f}%"] for path, c in paths])
        L.append("")
        L.append("The sinks neither parse much nor write anything to disk; the MTAs fsync every message "
                 "before their 250. smtp-source sends one message per transaction without waiting "
                 "between sessions; mxring-bench pipelines MAIL/RCPT/DATA.")
        L.append("")
        pairs = jsonl(raw, "ceiling-pairs.jsonl")
        if pairs:
            L.append("With the same generator on both sides (`smtp-source -s 50 -l 1024 -d`, the same "
                     "message count, smtp-sink and mxring accept-only alternating):")
            L.append("")
            shares, rows = [], []
            for i, p in enumerate(pairs, 1):
                share = p["mxring_per_s"] / p["sink_per_s"] * 100
                shares.append(share)
                rows.append([i, fmt_rate(p['sink_per_s']), fmt_rate(p['mxring_per_s']), f"{share:.0f}%",
                             f"{p['mxring_queued']:,} of {p['messages']:,}"])
            L += table("lrrrr", ["pair", "smtp-source → smtp-sink msg/s", "smtp-source → mxring msg/s",
                                 "mxring as %", "queued in mxring"], rows)
            L.append("")
            L.append(f"Median share: **{sorted(shares)[len(shares) // 2]:.0f}%** of the ceiling.")
            L.append("")

    # half peak
    hp = jload(raw, "halfpeak.json")
    if hp and "mxring_peak" in hp:
        L += half_peak_section(hp, [r for r in runs if r["kind"] in ("halfpeak", "halfpeak-same")])

    L.append("### Per workload")
    L.append("")
    for w in order:
        L += workload_section(w, descs[w], summaries[w], w.startswith("relay"))

    L.append("### How this was measured")
    L.append("")
    L += METHOD.format(accept=ACCEPT).strip("\n").split("\n")
    L.append("")
    L += raw_line(raw, out_md, archive)
    with open(out_md, "w") as f:
        f.write("\n".join(L) + "\n")
    svg_plot(order, summaries, out_svg)


def raw_line(raw, out_md, archive):
    if archive:
        return [f"Raw data: `{archive}` (`tar xzf` it, then `perf/smtp_source_report.py DIR >DIR/smtp-source.md` "
                "and `perf/report.py DIR OUT.md OUT.svg` regenerate this report; one JSON line per run in `ss-runs.jsonl`, `ss-bench.jsonl` and `runs.jsonl`, every "
                "load generator and sink report, every mxring log and Postfix maillog, gzipped)."]
    return [f"Raw data: `{os.path.relpath(raw, os.path.dirname(out_md))}/`."]


def half_peak_section(hp, hp_runs):
    """p99 at half of each MTA's peak rate, offered open-loop, with mxring's own breakdown."""
    L = ["### p99 at half of the peak rate (accept-1k, plaintext)", ""]
    L.append(f"`mxring-bench load --rate R --connections {hp['connections']}`: the load is offered at a "
             f"fixed rate (open loop), spread evenly over as many connections as the peak runs used. "
             f"mxring's median peak was {fmt_rate(hp['mxring_peak'])} msg/s, so R = "
             f"{fmt_rate(hp['mxring_peak'] / 2)}; Postfix's was {fmt_rate(hp['postfix_peak'])}, so R = "
             f"{fmt_rate(hp['postfix_peak'] / 2)}. Postfix also ran once at mxring's R (the same "
             f"offered load, above its peak).")
    L.append("")
    rows = []
    for r in sorted(hp_runs, key=lambda r: (r["mta"] != "mxring", r["kind"], r["round"])):
        d = r["load"]["data_latency_ms"]
        offered = r.get("offered_rate")
        rows.append([NAMES[r['mta']], fmt_rate(offered) if offered else '—', fmt_rate(rate(r)),
                     f"{d['p50']:.2f}", f"{d['p90']:.2f}", f"{d['p99']:.2f}", f"{d['p999']:.2f}"])
    L += table("lrrrrrr", ["MTA", "offered msg/s", "achieved msg/s", "p50 ms", "p90 ms", "p99 ms",
                           "p99.9 ms"], rows)
    L.append("")
    mx = [r for r in hp_runs if r["mta"] == "mxring" and r.get("store_metrics")]
    if mx:
        L.append("Where mxring's time went, from its own counters (`GET /metrics`, `store`; "
                 "quantiles are bucket bounds, within 19 %):")
        L.append("")
        def ms(h, q):
            return f"{h[q] / 1000:.2f}"
        rows = []
        for r in sorted(mx, key=lambda r: r["round"]):
            s = r["store_metrics"]
            rows.append([f"round {r['round']}",
                         f"{ms(s['data_to_reply'], 'p50_us_below')} / {ms(s['data_to_reply'], 'p99_us_below')}",
                         ms(s['commit_wait'], 'p99_us_below'), ms(s['commit'], 'p99_us_below'),
                         ms(s['commit_flush'], 'p99_us_below'), ms(s['commit_sync'], 'p99_us_below'),
                         f"{s['mean_batch']:.1f}"])
        L += table("lrrrrrr", ["run", "DATA→250 written, p50 / p99 ms", "commit wait p99", "commit p99",
                               "sled flush p99", "fdatasync p99", "messages per commit"], rows)
        L.append("")
    L += fsync_probe_lines(hp)
    L.append("")
    return L


def fsync_probe_lines(meta):
    """The spool device's idle fdatasync latency before and after the runs, if probed."""
    L = []
    for when in ("before", "after"):
        f = meta.get(f"fsync_{when}")
        if f:
            a, o = f["append_fdatasync_ms"], f["overwrite_fdatasync_ms"]
            L.append(f"- Spool device {when} the runs, idle (`perf/fsync_probe.py`): fdatasync after a "
                     f"4 KiB append p50 {a['p50']:.2f} / p99 {a['p99']:.2f} / max {a['max']:.2f} ms; "
                     f"after an overwrite p50 {o['p50']:.2f} / p99 {o['p99']:.2f} ms.")
    return L


ACCEPT = (
    "Accept-only: both MTAs get the same next hop, a loopback port where nothing listens "
    "(mxring: `[[route]] next_hop`, Postfix: `relayhost`). Both accept, write the message "
    "durably (fsync before 250), try the next hop, get ECONNREFUSED and keep the message queued "
    "for a retry: the same work on both sides (Postfix then marks the destination dead and defers "
    "the rest through its error and defer services, which is what it really does when a next hop "
    "is down). Rejected alternatives: relayhost at a live sink (Postfix would also pay for "
    "delivery, mxring not); `defer_transports = smtp` (still a queue-manager pass and a defer-log "
    "entry per message). As a second Postfix figure, accept-1k also runs with every message put "
    "on the hold queue (`smtpd_data_restrictions = check_client_access static:HOLD`): Postfix's "
    "bare ingest path (smtpd → cleanup → fsync), less work than mxring does. After each "
    "accept-only run the queue is counted (mxring: admin API; Postfix: queue files) to check that "
    "every accepted message is there."
)

METHOD = """
- Same machine, same run, same load generator (`mxring-bench load`, pipelining on, messages to
  one recipient), same ECDSA P-256 certificate (openssl), TLS 1.3 negotiated on both sides.
  The load generator shares one rustls client config across connections, so with a new
  connection per message both servers resume sessions (both issue TLS 1.3 tickets; checked with
  `openssl s_client -sess_out/-sess_in`: "Reused, TLSv1.3" on both): an ECDHE handshake without
  a certificate signature.
  Runs alternate A/B (the order flips with every workload and round); each MTA is restarted with
  an empty queue for every run, so peak memory is per run.
- mxring: `shards = 0` (one per core), spool on the same file system as Postfix's queue, RUST_LOG=warn
  (no log line per message; Postfix writes ~5 per message to its maillog through postlogd).
  Every 250 follows a group-committed fdatasync.
- Postfix: private instance from its own config dir (`postfix -c DIR`), chroot off, fsync as
  always, `in_flow_delay = 0`, `default_process_limit = 200` and smtpd limit 200, anvil limits off,
  `smtpd_tls_security_level = may` with the shared cert, `mydestination =`, `mynetworks =
  127.0.0.0/8`, `default_destination_concurrency_limit = 40` (= mxring's 20 per host × 2 shards),
  `defer_transports =` (nothing deferred on purpose), `smtp_tls_security_level = may` like mxring's
  `default_tls = "may"` (the sink offers no STARTTLS, so relay legs are plaintext on both).
- {accept}
- Relay: the next hop is `mxring-bench sink` (plaintext). The load runs for the usual duration;
  then the script waits until the sink has as many messages as were accepted (up to DRAIN_MAX s).
  Throughput = messages at the sink / (first MAIL to last message), from the sink's JSON.
- msg/s: messages accepted (250) / elapsed, from the load generator's JSON (relay: at the sink).
  p50/p99: end of DATA (final `.` written) to the reply, median over the rounds.
- CPU s / 1000 msg: utime+stime from /proc/PID/stat before and after the run, summed over the
  whole process tree (Postfix: master plus every child alive at the end, plus master's
  cutime/cstime, which holds the children that exited meanwhile); the "after" reading waits until
  the tree's CPU stops growing, so deferred work (queue manager, delivery attempts) is included.
- Peak memory: mxring is one process, VmHWM. Postfix is ~100–200 processes sharing libraries:
  summed VmHWM counts shared pages once per process, so the peak of the summed PSS
  (proportional set size, /proc/PID/smaps_rollup, sampled every 0.25 s) is given as well; compare
  mxring's VmHWM with Postfix's Σ PSS.
- The 2 cores are shared by the server, the load generator (one thread per connection) and any
  other job on the machine; the load section above says how busy it was.
"""

if __name__ == "__main__":
    main()
