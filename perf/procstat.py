#!/usr/bin/env python3
"""CPU time and memory of a process tree, from /proc. Standard library only.

  procstat.py cpu ROOT        CPU seconds used so far by ROOT and its descendants
  procstat.py mem ROOT        JSON: VmHWM/VmRSS/Pss summed over the tree, process count
  procstat.py sample ROOT OUT sample mem every 0.25 s until SIGTERM; write the peaks to OUT
  procstat.py io ROOT         JSON: bytes written to storage so far by ROOT and its descendants
  procstat.py kcpu FILE       CPU seconds of kernel threads since FILE was written (then
                              rewrites FILE); without an existing FILE, writes it, prints 0

CPU: utime+stime of every live process in the tree, plus ROOT's cutime+cstime, which
holds the time of children that already exited and were reaped (Postfix's master reaps
its smtpd/cleanup/smtp processes). Take `cpu` before and after and subtract.

Memory: for one process (mxring) VmHWM is its peak RSS. For Postfix, a tree of
processes sharing libraries, the sum of VmHWM counts shared pages once per process, so
the peak of the summed Pss (proportional set size, shared pages divided among sharers)
is reported too; it is the fairer figure for a multi-process server.

Disk writes: write_bytes and cancelled_write_bytes of /proc/PID/io, summed over the live
tree. The kernel counts a page when a process dirties it (or submits it with O_DIRECT),
so it is what that process made the file system write, without the journal (jbd2's own
writes belong to no process). A reaped child's counters are added to its parent's, as
for CPU time (wait_task_zombie), and /proc/PID/io of a thread-group leader includes all
its threads (io_uring's io-wq workers too), so summing the live tree counts every
process the tree ever had exactly once. cancelled_write_bytes are dirty pages of files
truncated or deleted before they reached the disk (a queue file's last update, deleted
after delivery): written minus cancelled is what reached the device.
"""
import json
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        ppid = int(rest[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # fields after "pid (comm)": state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
    return s[s.rindex(")") + 2:].split()


def cpu(root):
    total = 0
    for pid in tree(root):
        try:
            f = stat_fields(pid)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
        if pid == root:
            total += int(f[13]) + int(f[14])
    return total / TICK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem(root):
    hwm = rss = pss = n = 0
    for pid in tree(root):
        try:
            hwm += status_kib(pid, "VmHWM")
            rss += status_kib(pid, "VmRSS")
            pss += pss_kib(pid)
            n += 1
        except OSError:
            continue
    return {"hwm_kib": hwm, "rss_kib": rss, "pss_kib": pss, "procs": n}


def sample(root, out):
    peak = {"hwm_kib": 0, "rss_kib": 0, "pss_kib": 0, "procs": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def write():
        with open(out, "w") as f:
            json.dump(peak, f)

    while not stop:
        try:
            m = mem(root)
        except Exception:  # the tree changed under us; try again next tick
            m = None
        if m:
            for k in peak:
                peak[k] = max(peak[k], m[k])
            write()
        time.sleep(0.25)
    write()


def io(root):
    written = cancelled = n = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/io") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:  # exited between the listing and the read: counted in its parent
            continue
        written += int(fields["write_bytes"])
        cancelled += int(fields["cancelled_write_bytes"])
        n += 1
    return {"write_bytes": written, "cancelled_write_bytes": cancelled, "procs": n}


def kthread_ticks():
    """utime+stime of each kernel thread (kthreadd, pid 2, and its children)."""
    out = {}
    for pid in tree(2):
        try:
            f = stat_fields(pid)
        except OSError:
            continue
        out[str(pid)] = int(f[11]) + int(f[12])
    return out


def kcpu(path):
    """Kernel threads are not reaped into kthreadd's cutime, and kworkers come and go, so
    a sum over the live tree can shrink. Per thread instead: the growth of each one alive
    at both readings, plus all of one born since. Time of one that exited meanwhile is
    missed (an underestimate)."""
    now = kthread_ticks()
    before = None
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
    with open(path, "w") as f:
        json.dump(now, f)
    if before is None:
        return 0.0
    return sum(max(0, t - before.get(pid, 0)) for pid, t in now.items()) / TICK


def main():
    if sys.argv[1] == "kcpu":
        print(f"{kcpu(sys.argv[2]):.2f}")
        return
    cmd, root = sys.argv[1], int(sys.argv[2])
    if cmd == "cpu":
        print(f"{cpu(root):.2f}")
    elif cmd == "mem":
        print(json.dumps(mem(root)))
    elif cmd == "io":
        print(json.dumps(io(root)))
    elif cmd == "sample":
        sample(root, sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
