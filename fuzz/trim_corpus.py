#!/usr/bin/env python3
"""Shrink fuzz/corpus/<target>/ to at most N inputs that keep the most coverage.

    python3 fuzz/trim_corpus.py TARGET [N]      (default N = 40)

libFuzzer's merge (what `cargo fuzz cmin` runs) keeps every input that adds a
feature, which is hundreds of files; the committed corpus should be a few dozen.
This runs every input alone through a merge to read the edges and features it
covers, then keeps the hand-written seeds (seed-*) and the reproducers of fixed bugs
(regress-*) and greedily adds the inputs that add
the most coverage edges not yet covered, then the most features, up to N. The dropped inputs are moved to a
scratch directory whose path is printed.
"""
import glob
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
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    built = subprocess.run(["cargo", "fuzz", "build", target], cwd=here, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    binaries = glob.glob(os.path.join(here, "target", "*", "release", target))
    if not binaries:
        sys.exit(f"no {target} binary: `cargo fuzz build {target}` failed")
    if built.returncode != 0:
        print(f"warning: build failed, using the {target} binary built before",
              file=sys.stderr)
    binary = binaries[0]

    # A merge's control file lists, per input, only the coverage no earlier input of
    # that merge had; merging each input alone gives its whole coverage.
    files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
    count = len(files)
    features = {}
    edges = {}
    for i, path in enumerate(files):
        one = os.path.join(scratch, "one")
        shutil.rmtree(one, ignore_errors=True)
        os.makedirs(os.path.join(one, "in"))
        os.makedirs(os.path.join(one, "out"))
        shutil.copy(path, os.path.join(one, "in"))
        control = os.path.join(one, "control")
        subprocess.run([binary, "-merge=1", f"-merge_control_file={control}",
                        "-rss_limit_mb=2048", os.path.join(one, "out"), os.path.join(one, "in")],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with open(control) as f:
                for line in f:
                    parts = line.split()
                    if parts and parts[0] in ("FT", "COV"):
                        table = features if parts[0] == "FT" else edges
                        table[i] = set(map(int, parts[2:]))
        except FileNotFoundError:
            pass  # the input crashed or hung: it has no coverage to offer here

    def name(i):
        return os.path.basename(files[i])

    keep = [i for i in sorted(range(count), key=name)
            if name(i).startswith(("seed-", "regress-"))]
    candidates = [i for i in range(count) if i not in keep]

    def greedy(table):
        """Add inputs by most new entries of `table` until none adds any."""
        covered = set().union(set(), *(table.get(i, set()) for i in keep))
        while len(keep) < limit and candidates:
            best = max(candidates, key=lambda i: (len(table.get(i, set()) - covered),
                                                  -os.path.getsize(files[i])))
            gain = table.get(best, set()) - covered
            if not gain:
                break
            keep.append(best)
            covered |= gain
            candidates.remove(best)

    # Edges first (what the code reaches), then finer features with what is left.
    greedy(edges)
    greedy(features)

    def covered_of(table):
        return len(set().union(set(), *(table.get(i, set()) for i in keep)))

    def total_of(table):
        return len(set().union(set(), *table.values()))

    dropped = os.path.join(scratch, "dropped")
    os.makedirs(dropped)
    kept_paths = {os.path.realpath(files[i]) for i in keep}
    for entry in os.listdir(corpus):
        path = os.path.join(corpus, entry)
        if os.path.realpath(path) not in kept_paths:
            shutil.move(path, os.path.join(dropped, entry))
    print(f"{target}: kept {len(keep)} of {count} inputs, "
          f"{covered_of(edges)} of {total_of(edges)} edges, "
          f"{covered_of(features)} of {total_of(features)} features; dropped inputs in {dropped}")


if __name__ == "__main__":
    main()
