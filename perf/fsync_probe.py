#!/usr/bin/env python3
"""The spool device's own durability latency, for reading a p99 against: N appends of
4 KiB to a fresh file in DIR, each followed by fdatasync (what a commit costs at least),
then N overwrites of those blocks (no file-size change). Prints JSON, in milliseconds.

    fsync_probe.py DIR [N]
"""
import json
import os
import sys
import tempfile
import time


def quantiles(samples):
    s = sorted(samples)
    n = len(s)
    pick = lambda q: round(s[min(n - 1, int(n * q))] * 1000, 3)
    return {"count": n, "p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99),
            "max": round(s[-1] * 1000, 3)}


def main():
    directory = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    block = b"x" * 4096
    fd, path = tempfile.mkstemp(prefix="fsync-probe.", dir=directory)
    try:
        append, overwrite = [], []
        for i in range(n):
            os.pwrite(fd, block, i * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            append.append(time.perf_counter() - t)
        for i in range(n):
            os.pwrite(fd, block, i * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            overwrite.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    print(json.dumps({"append_fdatasync_ms": quantiles(append),
                      "overwrite_fdatasync_ms": quantiles(overwrite)}))


if __name__ == "__main__":
    main()
