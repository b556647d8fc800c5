#!/usr/bin/env python3
"""Per-thread scheduler statistics of one process, from /proc/PID/task/*/schedstat:
time on a CPU, time spent runnable but waiting for one (run-queue wait), and time
slices. Threads are grouped by name without trailing digits (mxring-shard0 and
mxring-shard1 are one group). Standard library only.

  schedstat.py snap PID OUT       write a snapshot of every thread to OUT (JSON)
  schedstat.py diff PID BEFORE    JSON per group: cpu_s, runq_wait_s, slices, since BEFORE
"""
import json
import os
import sys


def snapshot(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                on_cpu, waiting, slices = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        threads[tid] = {"name": name, "on_cpu_ns": on_cpu, "wait_ns": waiting, "slices": slices}
    return threads


def diff(pid, before):
    groups = {}
    for tid, now in snapshot(pid).items():
        was = before.get(tid, {"on_cpu_ns": 0, "wait_ns": 0, "slices": 0})
        g = groups.setdefault(now["name"].rstrip("0123456789-") or now["name"],
                              {"threads": 0, "cpu_s": 0.0, "runq_wait_s": 0.0, "slices": 0})
        g["threads"] += 1
        g["cpu_s"] += (now["on_cpu_ns"] - was["on_cpu_ns"]) / 1e9
        g["runq_wait_s"] += (now["wait_ns"] - was["wait_ns"]) / 1e9
        g["slices"] += now["slices"] - was["slices"]
    for g in groups.values():
        g["cpu_s"] = round(g["cpu_s"], 3)
        g["runq_wait_s"] = round(g["runq_wait_s"], 3)
    return groups


def main():
    cmd, pid = sys.argv[1], int(sys.argv[2])
    if cmd == "snap":
        with open(sys.argv[3], "w") as f:
            json.dump(snapshot(pid), f)
    elif cmd == "diff":
        with open(sys.argv[3]) as f:
            print(json.dumps(diff(pid, json.load(f)), sort_keys=True))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
