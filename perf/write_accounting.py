#!/usr/bin/env python3
"""What /proc/PID/io's write_bytes says against what reaches the device, for the
two ways a log segment can be written: appends into a zero-filled file (mxring's
reused segments: overwrites) and appends into a file only reserved with fallocate.
Each writes 800 KiB batches, each followed by fdatasync, as a shard's group commit
does. Run it on the spool's file system (the first argument: a directory there),
on an otherwise quiet machine: the device counter is the whole disk's.

    python3 perf/write_accounting.py /var/spool/mxring
"""
import os
import sys
import time

MIB = 1 << 20


def write_bytes():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes"):
                return int(line.split()[1])
    return 0


def device_of(path):
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    for name in os.listdir("/sys/block"):
        for dev in [name] + [p for p in os.listdir(f"/sys/block/{name}") if p.startswith(name)]:
            base = f"/sys/block/{name}" if dev == name else f"/sys/block/{name}/{dev}"
            try:
                with open(f"{base}/dev") as f:
                    if f.read().strip() == f"{major}:{minor}":
                        return f"/sys/block/{name}/stat"
            except OSError:
                pass
    return None


def device_written(stat):
    if stat is None:
        return 0
    with open(stat) as f:
        return int(f.read().split()[6]) * 512


def run(directory, mode, size=256 * MIB, batch=800 * 1024 + 123, batches=300):
    path = os.path.join(directory, f"write-accounting-{os.getpid()}.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if mode == "zero-filled":
            chunk = b"\0" * MIB
            for _ in range(size // MIB):
                os.write(fd, chunk)
        else:
            os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
        time.sleep(0.5)
        stat = device_of(directory)
        w0, d0, t0 = write_bytes(), device_written(stat), time.time()
        data = b"x" * batch
        pos = 0
        for _ in range(batches):
            os.pwrite(fd, data, pos)
            pos += batch
            os.fdatasync(fd)
        took = time.time() - t0
        w1, d1 = write_bytes(), device_written(stat)
        dev = f"{(d1 - d0) / pos:.2f}x" if stat else "n/a"
        print(
            f"{mode:12} write_bytes {(w1 - w0) / pos:.2f}x of the data, device {dev}, "
            f"{pos / took / 1e6:.0f} MB/s with an fdatasync per batch"
        )
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else "."
    for mode in ["zero-filled", "fallocated", "zero-filled", "fallocated"]:
        run(where, mode)
