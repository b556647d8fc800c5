#!/usr/bin/env python3
"""The disk's durable sequential write bandwidth, in the file system of DIR: writes of
BLOCK bytes, each followed by fdatasync, as a log that syncs every batch does. Per block
size, two passes over one file: "append" grows a fresh file (each sync also carries the new file
size, a journal commit on ext4) and "overwrite" rewrites the same blocks in place (no
metadata in the sync: a pre-allocated segment). Each pass stops after TOTAL bytes or
SECONDS, whichever comes first. The data is random, so no layer can compress it or
skip zeroes. Prints JSON: MiB/s per pass and block size, the sync latency quantiles, and
the best rate seen ("mib_per_s"). A sync costs about the same for small and large
writes on many disks, so the rate grows with the block size until the device's own
bandwidth caps it: the largest blocks give the bandwidth, the smallest show what a
message-sized batch can reach.

    disk_bw.py DIR [BLOCK_KIB,...=1024,4096,16384] [TOTAL_MIB=256] [SECONDS=5]
"""
import json
import os
import sys
import tempfile
import time

MIB = 1024 * 1024


def one_pass(fd, block, total, seconds):
    """Writes `block` sequentially from offset 0, fdatasync after each write."""
    syncs = []
    written = 0
    start = time.perf_counter()
    while written < total and time.perf_counter() - start < seconds:
        os.pwrite(fd, block, written)
        t = time.perf_counter()
        os.fdatasync(fd)
        syncs.append(time.perf_counter() - t)
        written += len(block)
    elapsed = time.perf_counter() - start
    syncs.sort()
    q = lambda x: round(syncs[min(len(syncs) - 1, int(len(syncs) * x))] * 1000, 3)
    return {"bytes": written, "seconds": round(elapsed, 3),
            "mib_per_s": round(written / MIB / elapsed, 1),
            "sync_ms": {"p50": q(0.5), "p99": q(0.99), "max": round(syncs[-1] * 1000, 3)}}


def main():
    directory = sys.argv[1]
    blocks_kib = [int(b) for b in (sys.argv[2] if len(sys.argv) > 2 else "1024,4096,16384").split(",")]
    total = (int(sys.argv[3]) if len(sys.argv) > 3 else 256) * MIB
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    passes = []
    for kib in blocks_kib:
        block = os.urandom(kib * 1024)
        fd, path = tempfile.mkstemp(prefix="disk-bw.", dir=directory)
        try:
            append = one_pass(fd, block, total, seconds)
            # The overwrite pass covers only what the append pass wrote, so it never
            # grows the file.
            overwrite = one_pass(fd, block, append["bytes"], seconds)
        finally:
            os.close(fd)
            os.unlink(path)
        passes.append({"block_bytes": len(block), "append": append, "overwrite": overwrite})
    best = max(max(p["append"]["mib_per_s"], p["overwrite"]["mib_per_s"]) for p in passes)
    print(json.dumps({"blocks": passes, "mib_per_s": best}))


if __name__ == "__main__":
    main()
