#!/usr/bin/env python3
"""One size's part of the dedup_incremental section of bench/RESULTS.md.

usage: compare_dedup_incremental.py SIZE DIR NEW
  DIR  timeit.txt (timeit.py --json), incr_1.json, incr_NEW.json, full.json (tamis dedup
       --json), clusters_NEW.parquet and clusters_full.parquet (tamis dedup --clusters)
Prints Markdown; exits 1 when a target is not met.
"""
import json
import os
import sys

import pyarrow.parquet as pq

from benchlib import commands, heading, mark, per_round, timeit_doc, timing_table


def load(path):
    with open(path) as fh:
        return json.load(fh)


def partition(path):
    """Row id → the frozenset of row ids in its cluster."""
    t = pq.read_table(path, columns=["row_id", "cluster_id"]).to_pydict()
    members = {}
    for r, c in zip(t["row_id"], t["cluster_id"]):
        members.setdefault(c, []).append(r)
    out = {}
    for rows in members.values():
        s = frozenset(rows)
        for r in rows:
            out[r] = s
    return out


def main():
    size, d, new = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _, doc = timeit_doc(os.path.join(d, "timeit.txt"))
    cmds = commands(doc)
    one, many, full = load(os.path.join(d, "incr_1.json")), load(os.path.join(d, f"incr_{new}.json")), load(os.path.join(d, "full.json"))
    out, ok = heading(f"customers {size}: {full['rows']:,} rows ({full['rows'] - new:,} base + {new:,} new)", doc), True
    names = ["incremental_1", f"incremental_{new}", "full_rerun"]
    matching = {"incremental_1": one["incremental"]["seconds_matching"],
                f"incremental_{new}": many["incremental"]["seconds_matching"]}
    out += timing_table(cmds, names, ("seconds matching the new records",),
                        lambda n: (f"{matching[n]:.4f}" if n in matching else "(all rows)",))
    a, b = partition(os.path.join(d, f"clusters_{new}.parquet")), partition(os.path.join(d, "clusters_full.parquet"))
    same = sum(1 for r in b if a.get(r) == b[r])
    out += ["", "| check | value | target |", "|---|---|---|"]
    t1 = matching["incremental_1"]
    ok &= t1 <= 0.1
    out.append(f"| 1 new record: seconds matching | {t1:.4f} | ≤ 0.1: {mark(t1 <= 0.1)} |")
    tn = matching[f"incremental_{new}"]
    ok &= tn <= 1.0
    out.append(f"| {new:,} new records: seconds matching | {tn:.4f} | ≤ 1: {mark(tn <= 1.0)} |")
    good = same == len(b) and len(a) == len(b)
    ok &= good
    out.append(f"| rows whose cluster equals the full rerun's | {same:,} of {len(b):,} | all: {mark(good)} |")
    out.append(f"| new records' candidate pairs / matches ({new:,} records) | "
               f"{many['incremental']['candidate_pairs']:,} / {many['incremental']['matched_pairs']:,} | |")
    r = per_round(doc, f"incremental_{new}", "full_rerun", "wall_s")
    out.append(f"| incremental ({new:,}) wall / full rerun wall, whole commands | {r:.2f} | |")
    print("\n".join(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
