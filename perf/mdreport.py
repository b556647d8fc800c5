"""What perf/report.py and perf/smtp_source_report.py share: reading the raw files
of a run and writing Markdown tables. Standard library only."""
import json
import math
import os
import statistics


def jsonl(raw, name):
    """The JSON lines of RAW/NAME, or none when the file is not there."""
    p = os.path.join(raw, name)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(line) for line in f if line.strip()]


def jload(raw, name):
    """The JSON document RAW/NAME, or None when the file is not there."""
    p = os.path.join(raw, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def med(xs):
    """The median of the numbers given, leaving out None and NaN (no value); NaN if none."""
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def row(cells):
    """One table row: `| a | b |`; an empty cell is `| |`."""
    return "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"


def table(align, head, rows):
    """A Markdown table as lines. `align` has one letter per column: l (left) or r
    (right, for numbers); `head` the titles; `rows` lists of cells (str() each)."""
    assert len(align) == len(head), (align, head)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return [row(head), rule] + [row([str(c) for c in r]) for r in rows]
