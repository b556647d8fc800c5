#!/usr/bin/env python3
"""Shrink fuzz/corpus/<target>/ to at most N inputs that keep the most coverage.

    python3 fuzz/trim_corpus.py TARGET [N]      (default N = 40)

libFuzzer's merge (what `cargo fuzz cmin` runs) keeps every input that adds a
feature, which is hundreds of files; the committed corpus should be a few dozen.
This runs one merge with a control file, reads the features each input covers,
then keeps the hand-written seeds (seed-*) and greedily adds the inputs that add
the most features not yet covered, up to N. The dropped inputs are moved to a
scratch directory whose path is printed. Run with MXRING_FUZZ_SKIP_KNOWN=1 while
known bugs are open, so their inputs do not stop the merge.
"""
import os
import shutil
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    target = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) == 3 else 40
    corpus = os.path.join(here, "corpus", target)
    scratch = tempfile.mkdtemp(prefix=f"trim-{target}-")
    control = os.path.join(scratch, "control")
    merged = os.path.join(scratch, "merged")
    os.makedirs(merged)
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    subprocess.run(
        ["cargo", "fuzz", "run", target, merged, corpus, "--",
         "-merge=1", f"-merge_control_file={control}", "-rss_limit_mb=2048"],
        cwd=here, env=env, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    with open(control) as f:
        lines = f.read().splitlines()
    count = int(lines[0])
    files = lines[2:2 + count]
    features = {}
    for line in lines[2 + count:]:
        parts = line.split()
        if parts and parts[0] == "FT":
            features[int(parts[1])] = set(map(int, parts[2:]))

    def name(i):
        return os.path.basename(files[i])

    covered = set()
    keep = []
    for i in sorted(range(count), key=name):
        if name(i).startswith("seed-"):
            keep.append(i)
            covered |= features.get(i, set())
    total = set().union(*features.values()) if features else set()
    candidates = [i for i in range(count) if i not in keep]
    while len(keep) < limit and candidates:
        # Most new features first; the smaller file on a tie.
        best = max(candidates, key=lambda i: (len(features.get(i, set()) - covered),
                                              -os.path.getsize(files[i])))
        gain = features.get(best, set()) - covered
        if not gain:
            break
        keep.append(best)
        covered |= gain
        candidates.remove(best)

    dropped = os.path.join(scratch, "dropped")
    os.makedirs(dropped)
    kept_paths = {os.path.realpath(files[i]) for i in keep}
    for entry in os.listdir(corpus):
        path = os.path.join(corpus, entry)
        if os.path.realpath(path) not in kept_paths:
            shutil.move(path, os.path.join(dropped, entry))
    print(f"{target}: kept {len(keep)} of {count} inputs, "
          f"{len(covered)} of {len(total)} features; dropped inputs in {dropped}")


if __name__ == "__main__":
    main()
