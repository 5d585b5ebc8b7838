#!/usr/bin/env python3
"""Turn one timeit.py run and one tamis/Polars profile pair into a RESULTS.md section.

usage: compare_profile.py --timeit T.txt --tamis P.json --polars PREFIX [--meta M.json] --title S

- Timing: per-round ratios tamis/Polars and tamis/DuckDB (wall and CPU), medians over
  rounds, and the issue's targets checked at 10M rows.
- Accuracy: tamis's exact statistics against Polars' exact ones (describe + null_count +
  n_unique), column by column: rows, nulls, min, max, mean, std, quartiles, distinct.
  Distinct counts above tamis's exact limit are HyperLogLog estimates, and so are the
  quartiles of those columns (t-digest): their relative error is shown. The quartiles of a
  column tamis counts exactly are exact and must equal Polars' (describe(): nearest rank).
Prints Markdown on stdout. Exit status 1 if an exact statistic disagrees.
"""
import argparse
import csv
import json
import sys

from benchlib import (commands, heading, plain_rows, ratio_head, ratio_row, rss_row,
                      timeit_details, timeit_doc, timing_table, tool_names)


def load_polars(prefix):
    stats = {}
    for name in ("_describe.csv", "_extra.csv"):
        with open(prefix + name) as f:
            for row in csv.DictReader(f):
                st = row.pop("statistic")
                for col, v in row.items():
                    stats.setdefault(col, {})[st] = v
    return stats


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def close(a, b, rel=1e-9):
    return a is not None and b is not None and abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeit", required=True)
    ap.add_argument("--tamis", required=True)
    ap.add_argument("--polars", required=True)
    ap.add_argument("--meta")
    ap.add_argument("--title", required=True)
    a = ap.parse_args()

    table, doc = timeit_doc(a.timeit)
    cmds = commands(doc)
    out = heading(a.title, doc)
    out += timing_table(cmds, tool_names(cmds, ("polars", "duckdb", "tamis")))
    out += ratio_head()
    out.append(ratio_row(doc, "polars", "cpu_s", 0.5))
    out.append(ratio_row(doc, "duckdb", "wall_s", 0.6))
    out.append(rss_row(cmds, 512))
    out += plain_rows(doc, cmds, (("polars", "cpu_s", 0.5), ("duckdb", "wall_s", 0.6)), 512)
    out.append(ratio_row(doc, "polars", "wall_s"))
    out.append(ratio_row(doc, "duckdb", "cpu_s"))
    out += timeit_details(table)

    prof = json.load(open(a.tamis))
    pol = load_polars(a.polars)
    meta = json.load(open(a.meta)) if a.meta else {}
    rows = prof["dataset"]["rows"]
    bad = 0
    out.append("Accuracy against Polars' exact statistics (✓ equal; numbers are relative errors):\n")
    out.append("| column | nulls tamis / Polars | min | max | mean | std | p25 / p50 / p75 | distinct tamis / Polars (rel. error) |")
    out.append("|---|---|---|---|---|---|---|---|")
    for c in prof["columns"]:
        p = pol.get(c["name"])
        if p is None:
            out.append(f"| {c['name']} | not in Polars output | | | | | | |")
            bad += 1
            continue
        p_nulls = int(float(p["null_count"]))
        cells = [c["name"], f"{c['nulls']} / {p_nulls}" + (" ✓" if c["nulls"] == p_nulls else " ✗")]
        bad += c["nulls"] != p_nulls
        n = c.get("numeric")
        if n and num(p.get("mean")) is not None:
            for key, pkey, rel in (("min", "min", 0), ("max", "max", 0), ("mean", "mean", 1e-9), ("std", "std", 1e-6)):
                pv, tv = num(p.get(pkey)), n.get(key)
                ok = close(tv, pv, rel) if rel else (tv == pv)
                bad += not ok
                cells.append("✓" if ok else f"✗ {tv} vs {pv}")
            qs = [(n["quantiles"][k], num(p.get(pk))) for k, pk in (("p25", "25%"), ("p50", "50%"), ("p75", "75%"))]
            if c["distinct_exact"]:
                ok = all(tv == pv for tv, pv in qs)
                bad += not ok
                cells.append("✓ exact" if ok else "✗ " + ", ".join(f"{tv} vs {pv}" for tv, pv in qs))
            else:
                err = max(abs(tv - pv) / max(abs(pv), 1e-12) for tv, pv in qs if pv is not None)
                cells.append(f"t-digest, ≤ {100 * err:.2f} %")
        else:
            cells += ["", "", "", "", ""]
        # Polars counts NULL as one value; tamis counts distinct non-missing values.
        p_uniq = int(float(p["n_unique"])) - (1 if p_nulls > 0 else 0)
        rel = abs(c["distinct"] - p_uniq) / max(p_uniq, 1)
        if c["distinct_exact"]:
            ok = c["distinct"] == p_uniq
            # tamis counts empty strings and null tokens (`nan`, `NA`, … any case) as
            # missing, Polars as values: each spelling of them is one value fewer here.
            tokens = c["empty"] + c["null_tokens"]
            explained = not ok and tokens > 0 and 0 < p_uniq - c["distinct"] <= tokens
            bad += not (ok or explained)
            cells.append(f"{c['distinct']} / {p_uniq} " + (
                "✓ exact" if ok else
                f"✓ exact (Polars also counts the {tokens} empty / null-token cells, e.g. `nAn`, as values)"
                if explained else "✗"))
        else:
            cells.append(f"{c['distinct']} / {p_uniq} (HLL, {100 * rel:.2f} %)")
        out.append("| " + " | ".join(cells) + " |")
    p_rows = int(float(pol[prof["columns"][0]["name"]]["count"])) + int(float(pol[prof["columns"][0]["name"]]["null_count"]))
    out.append(f"\nRows: tamis {rows:,} (+{prof['dataset']['quarantine']['rows']} quarantined), Polars {p_rows:,}.")
    out.append(f"Exact duplicate rows found by tamis: {prof['duplicates']['rows']:,}"
               + (f" (generator: rows after exact dedup {meta['rows_after_exact_dedup']:,}, so "
                  f"{meta['rows'] - meta['rows_after_exact_dedup']:,} duplicates)" if meta else "") + ".")
    if meta:
        mism = {k: (v, next((c["nulls"] for c in prof["columns"] if c["name"] == k), None))
                for k, v in meta.get("nulls_per_column", {}).items()}
        diff = {k: v for k, v in mism.items() if v[0] != v[1]}
        out.append("NULLs per column equal the generator's in every column." if not diff
                   else f"NULLs differing from the generator's (generator, tamis): {diff}")
        bad += len(diff)
    bad += rows != p_rows
    out.append(f"Quality score {prof['quality']['score']:.3f}; {len(prof['issues'])} issues.\n")
    print("\n".join(out))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
