#!/usr/bin/env python3
"""Turn one timeit.py run of the three clean jobs, and their outputs, into a RESULTS.md section.

usage: compare_clean.py --timeit T.txt --out-duckdb D.parquet --out-polars P.parquet
                        --out-tamis T.parquet --same-tamis S1.json --same-polars S2.json
                        [--sidecar-bytes N] [--meta M.json] --title S

- Timing: per-round ratios tamis/DuckDB and tamis/Polars (wall and CPU), medians over
  rounds, and the issue's targets (tamis CPU ≤ 0.5× DuckDB's, peak RSS ≤ 1 GiB).
- Rows: same_rows.py's JSON lines (S1: tamis against DuckDB, S2: Polars against DuckDB),
  rows in each output (from the Parquet footers), the generator's rows after exact dedup.
- Provenance: the size of tamis's sidecar directory T.parquet.tamis (N = `du -sb`), and the
  files in it.
The timeit.py output names the commands duckdb, polars and tamis. Prints Markdown on
stdout. Exit status 1 if tamis's output does not hold the same rows as DuckDB's.
"""
import argparse
import json
import os
import sys

from benchlib import (commands, heading, mark, plain_rows, ratio_head, ratio_row, rss_row,
                      timeit_details, timeit_doc, timing_table, tool_names)


def same_rows(path):
    """same_rows.py's JSON line, or None when it wrote none (it crashed)."""
    try:
        lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def parquet_rows(path):
    try:
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # missing or unreadable: reported as "?"
        return None


def fmt_int(n):
    return "?" if n is None else f"{n:,}"


def fmt_size(n):
    if n is None:
        return "?"
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k:
            return f"{n:,} bytes ({n / k:.1f} {unit})"
    return f"{n:,} bytes"


def describe_same(s, who):
    if s is None:
        return "same_rows.py failed (no JSON line)"
    if "rows_a" not in s:
        return f"different columns: {s.get('columns_a')} vs {s.get('columns_b')}"
    if s["same"]:
        return f"same {s['rows_a']:,} rows ✓"
    return (f"**differ** ✗: {s['rows_a']:,} vs {s['rows_b']:,} rows, {s['only_in_a']:,} only in "
            f"{who}'s, {s['only_in_b']:,} only in DuckDB's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeit", required=True)
    ap.add_argument("--out-duckdb", required=True)
    ap.add_argument("--out-polars", required=True)
    ap.add_argument("--out-tamis", required=True)
    ap.add_argument("--same-tamis", required=True, help="same_rows.py TAMIS DUCKDB output")
    ap.add_argument("--same-polars", required=True, help="same_rows.py POLARS DUCKDB output")
    ap.add_argument("--sidecar-bytes", type=int, help="du -sb of OUT_TAMIS.tamis")
    ap.add_argument("--out-plain", help="tamis_plain's output, when timed")
    ap.add_argument("--meta")
    ap.add_argument("--title", required=True)
    a = ap.parse_args()

    table, doc = timeit_doc(a.timeit)
    cmds = commands(doc)
    outs = {"duckdb": a.out_duckdb, "polars": a.out_polars, "tamis": a.out_tamis}
    if a.out_plain:
        outs["tamis_plain"] = a.out_plain
    rows = {n: parquet_rows(p) for n, p in outs.items()}
    size = {n: (os.path.getsize(p) if os.path.isfile(p) else None) for n, p in outs.items()}
    meta = json.load(open(a.meta)) if a.meta else {}
    s_tamis, s_polars = same_rows(a.same_tamis), same_rows(a.same_polars)
    same = bool(s_tamis and s_tamis.get("same"))

    out = heading(a.title, doc)
    out += timing_table(cmds, tool_names(cmds, ("duckdb", "polars", "tamis")),
                        ("rows out", "output bytes"),
                        lambda n: (fmt_int(rows[n]), fmt_int(size[n])))
    out += ratio_head()
    out.append(ratio_row(doc, "duckdb", "cpu_s", 0.5))
    out.append(rss_row(cmds, 1024))
    out += plain_rows(doc, cmds, (("duckdb", "cpu_s", 0.5),), 1024)
    out.append(f"| tamis rows = DuckDB rows (same_rows.py) | {'yes' if same else 'no'} | "
               f"same: {mark(same)} |")
    out.append(ratio_row(doc, "duckdb", "wall_s"))
    out.append(ratio_row(doc, "polars", "wall_s"))
    out.append(ratio_row(doc, "polars", "cpu_s"))
    out.append("")
    out.append("Rows (`same_rows.py`: the same multiset of rows, order ignored, columns by name):\n")
    out.append(f"- tamis against DuckDB: {describe_same(s_tamis, 'tamis')}")
    out.append(f"- Polars against DuckDB: {describe_same(s_polars, 'Polars')}")
    if meta:
        want = meta.get("rows_after_exact_dedup")
        ok = {n: rows[n] == want for n in rows}
        out.append(f"- generator: {meta.get('rows', 0):,} rows, {fmt_int(want)} after exact dedup; "
                   + ", ".join(f"{n} {'✓' if ok[n] else '✗ ' + fmt_int(rows[n])}" for n in rows))
    sidecar = a.out_tamis + ".tamis"
    out.append(f"\nProvenance sidecar `{os.path.basename(sidecar)}/` (provenance, audit log, "
               f"lineage): {fmt_size(a.sidecar_bytes) if a.sidecar_bytes is not None else '**missing**'}"
               + (f", {100 * a.sidecar_bytes / size['tamis']:.2f} % of tamis's Parquet output"
                  if a.sidecar_bytes is not None and size["tamis"] else "") + ".")
    if os.path.isdir(sidecar):
        files = []
        for d, _, names in os.walk(sidecar):
            for f in names:
                p = os.path.join(d, f)
                files.append((os.path.relpath(p, sidecar), os.path.getsize(p)))
        if files:
            out.append("")
            out.append("| sidecar file | bytes |")
            out.append("|---|---|")
            out += [f"| {p} | {n:,} |" for p, n in sorted(files)]
    out += timeit_details(table)
    print("\n".join(out))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
