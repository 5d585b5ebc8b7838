#!/usr/bin/env python3
"""Turn one PII table's Presidio and tamis runs, scored by eval_pii.py, into a RESULTS.md section.

usage: compare_pii.py --truth TRUTH.csv --presidio-eval PE.json --tamis-eval TE.json
                      [--tamis-eval-all TA.json] --presidio-run PR.txt
                      [--presidio-timeit PT.txt] --tamis-timeit TT.txt --scan SCAN.json
                      [--sample N] --title S

- PE / TE: eval_pii.py's JSON for Presidio's and tamis's PRED.csv on the same cells (the
  same --sample N, or all rows); TA: tamis on all rows, when the others are a sample.
- PR: run_presidio.py's output (its last line is JSON: cells, s_per_1k_cells_cpu, ...);
  PT: the timeit.py run of run_presidio.py (whole process, one round).
- TT: the timeit.py run of `tamis pii scan` on the whole table (named tamis); its CPU
  median divided by the table's non-empty cells (TA's, else TE's, cells_scored) is tamis's
  CPU per cell, start-up and CSV reading included.
- SCAN: tamis's `pii scan --json` output: its own column calls (columns[].pii_type).
Targets (the issue): column classification 19/19; cell F1 ≥ 0.99 on EMAIL_ADDRESS,
PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, URL; ≥ 0.95 on PERSON and
STREET_ADDRESS; ≤ 0.05 ms CPU per cell. They are checked on tamis's figures over all rows
(TA when given). Prints Markdown on stdout. Exit status 1 when a target is not met.
"""
import argparse
import csv
import json
import sys

from benchlib import mark, timeit_doc

STRUCTURED = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS",
              "IBAN_CODE", "URL"]
F1_TARGET = {**{t: 0.99 for t in STRUCTURED}, "PERSON": 0.95, "STREET_ADDRESS": 0.95}
MS_PER_CELL_TARGET = 0.05
# names tamis might use in SCAN.json for the truth file's types
ALIASES = {"EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "SSN": "US_SSN",
           "IP": "IP_ADDRESS", "IBAN": "IBAN_CODE", "ADDRESS": "STREET_ADDRESS",
           "DOB": "DATE_OF_BIRTH", "NAME": "PERSON", "CARD": "CREDIT_CARD"}


def load_json(path):
    with open(path) as f:
        return json.load(f)


def last_json_line(path):
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def scan_type(t):
    if t is None or t == "":
        return "NONE"
    t = str(t).upper()
    return ALIASES.get(t, t)


def prf(v):
    return f"{v['precision']:.3f} / {v['recall']:.3f} / {v['f1']:.3f}" if v else "—"


def fmt_ms(x, nd=4):
    return "?" if x is None else f"{x:.{nd}f}"


def details(summary, table):
    """timeit.py's own table, folded."""
    return [f"\n<details><summary>{summary}</summary>\n\n```", table.strip(), "```\n</details>\n"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--presidio-eval", required=True)
    ap.add_argument("--tamis-eval", required=True)
    ap.add_argument("--tamis-eval-all")
    ap.add_argument("--presidio-run", required=True)
    ap.add_argument("--presidio-timeit")
    ap.add_argument("--tamis-timeit", required=True)
    ap.add_argument("--scan", required=True)
    ap.add_argument("--sample", type=int)
    ap.add_argument("--title", required=True)
    a = ap.parse_args()

    with open(a.truth, newline="") as f:
        truth = [(r["column"], r["true_type"]) for r in csv.DictReader(f)]
    pe, te = load_json(a.presidio_eval), load_json(a.tamis_eval)
    ta = load_json(a.tamis_eval_all) if a.tamis_eval_all else None
    tgt = ta or te                    # the targets are checked on tamis over all rows
    prun = last_json_line(a.presidio_run)
    try:
        scan = load_json(a.scan)
    except (OSError, ValueError) as e:
        scan = {}
        print(f"compare_pii.py: {a.scan}: {e}", file=sys.stderr)
    ttable, tdoc = timeit_doc(a.tamis_timeit)
    tcmd = {c["name"]: c for c in tdoc["commands"]}["tamis"]
    ptable = pdoc = None
    if a.presidio_timeit:
        ptable, pdoc = timeit_doc(a.presidio_timeit)

    cells_all = tgt["cells_scored"]   # non-empty cells of the scored rows (all rows for tgt)
    t_ms_cpu = 1000 * tcmd["cpu_median_s"] / cells_all if cells_all else None
    t_ms_wall = 1000 * tcmd["wall_median_s"] / cells_all if cells_all else None
    p_cells = prun.get("cells")
    p_ms_cpu = prun.get("s_per_1k_cells_cpu")
    p_ms_wall = prun.get("s_per_1k_cells_wall")
    p_proc_cpu = p_proc_wall = None
    if pdoc and p_cells:
        pc = {c["name"]: c for c in pdoc["commands"]}["presidio"]
        p_proc_cpu = 1000 * pc["cpu_median_s"] / p_cells
        p_proc_wall = 1000 * pc["wall_median_s"] / p_cells

    ok_all = True
    out = [f"\n## {a.title}\n"]
    scope = (f"the {a.sample:,} sampled rows (`--sample {a.sample}`, {pe['cells_scored']:,} non-empty "
             f"cells; tamis labelled the whole table, eval_pii.py ignored the other rows)"
             if a.sample else f"all {pe['rows_scored']:,} rows ({pe['cells_scored']:,} non-empty cells)")
    out.append(f"Presidio and tamis scored by `eval_pii.py` on {scope}."
               + (f" Targets are checked on tamis over all {ta['rows_scored']:,} rows "
                  f"({ta['cells_scored']:,} cells)." if ta else "") + "\n")

    # ---- per-type cell scores ----
    head = ["true type", "cells", "Presidio P / R / F1", "tamis P / R / F1"]
    if ta:
        head.append("tamis P / R / F1, all rows")
    head.append("target: tamis F1")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for t, v in te["per_type"].items():
        row = [t, f"{v['cells']:,}", prf(pe["per_type"].get(t)), prf(v)]
        if ta:
            row.append(prf(ta["per_type"].get(t)))
        if t in F1_TARGET:
            f1 = tgt["per_type"].get(t, {}).get("f1", 0.0)
            ok = f1 >= F1_TARGET[t]
            ok_all &= ok
            row.append(f"≥ {F1_TARGET[t]:.2f}: {mark(ok)}")
        else:
            row.append("")
        out.append("| " + " | ".join(row) + " |")
    row = ["macro F1", "", f"{pe['macro_f1']:.3f}", f"{te['macro_f1']:.3f}"]
    if ta:
        row.append(f"{ta['macro_f1']:.3f}")
    row.append("")
    out.append("| " + " | ".join(row) + " |")

    # ---- the other figures ----
    scan_cols = {c.get("name"): c for c in scan.get("columns", [])} if isinstance(scan, dict) else {}
    scan_ok = sum(1 for c, t in truth if c in scan_cols and scan_type(scan_cols[c].get("pii_type")) == t)
    cols_ok = tgt["columns_correct"] == f"{len(truth)}/{len(truth)}"
    scan_all_ok = scan_ok == len(truth)
    ms_ok = t_ms_cpu is not None and t_ms_cpu <= MS_PER_CELL_TARGET
    ok_all &= cols_ok and scan_all_ok and ms_ok

    def other_labels(e):
        o = e.get("labels_outside_truth_types") or {}
        return ", ".join(f"{k} {v:,}" for k, v in o.items()) or "none"

    out += ["", "| figure | Presidio (pattern-only) | tamis | target |", "|---|---|---|---|"]
    tcols = te["columns_correct"] + (f" (all rows: {ta['columns_correct']})" if ta else "")
    out.append(f"| columns called right (eval_pii.py, rule50) | {pe['columns_correct']} | {tcols} | "
               f"{len(truth)}/{len(truth)}: {mark(cols_ok)} |")
    out.append(f"| columns called right (tamis's own call, SCAN.json `pii_type`) | — | "
               f"{scan_ok}/{len(truth)} | {len(truth)}/{len(truth)}: {mark(scan_all_ok)} |")
    out.append(f"| distractor cells labelled | {pe['distractor_cells_labelled']:,} of {pe['distractor_cells']:,} | "
               f"{te['distractor_cells_labelled']:,} of {te['distractor_cells']:,}"
               + (f" (all rows: {ta['distractor_cells_labelled']:,} of {ta['distractor_cells']:,})" if ta else "")
               + " | |")
    out.append(f"| labels outside the truth types | {other_labels(pe)} | {other_labels(te)} | |")
    out.append(f"| ms CPU per cell | {fmt_ms(p_ms_cpu, 3)} (analysis only, run_presidio.py's "
               f"`s_per_1k_cells_cpu`, {p_cells or 0:,} cells)"
               + (f"; {fmt_ms(p_proc_cpu, 3)} whole process" if p_proc_cpu is not None else "")
               + f" | {fmt_ms(t_ms_cpu)} (whole process: median CPU {tcmd['cpu_median_s']:.3f} s "
               f"/ {cells_all:,} non-empty cells) | ≤ {MS_PER_CELL_TARGET}: {mark(ms_ok)} |")
    out.append(f"| ms wall per cell | {fmt_ms(p_ms_wall, 3)} (analysis only)"
               + (f"; {fmt_ms(p_proc_wall, 3)} whole process" if p_proc_wall is not None else "")
               + f" | {fmt_ms(t_ms_wall)} (whole process, median) | |")
    if t_ms_cpu and p_ms_cpu:
        out.append(f"| Presidio CPU per cell / tamis CPU per cell | | {p_ms_cpu / t_ms_cpu:.1f}× | |")
    out.append(f"| tamis peak RSS | | {tcmd['peak_rss_median_mib']:.0f} MiB | |")
    if isinstance(scan, dict) and "cells" in scan:
        note = "✓" if scan["cells"] == cells_all else f"≠ {cells_all:,} non-empty cells"
        out.append(f"| cells tamis reports scanning (SCAN.json `cells`) | | {scan['cells']:,} {note} | |")

    # ---- columns ----
    out += ["", "Columns (rule50: the label of ≥ 50 % of the column's scored cells; share in "
            "brackets; ✗ = not the true type):", "",
            "| column | truth | Presidio | tamis | tamis SCAN.json: pii_type (confidence, hit rate) |",
            "|---|---|---|---|---|"]

    def called(e, c, t):
        v = e["columns"].get(c)
        if not v:
            return "?"
        s = f"{v['called']} ({v['share']})"
        return s if v["correct"] else f"**{s}** ✗"

    for c, t in truth:
        sc = scan_cols.get(c)
        if sc is None:
            s = "**missing** ✗"
        else:
            st = scan_type(sc.get("pii_type"))
            conf, hit = sc.get("confidence"), sc.get("hit_rate")
            extra = ", ".join(f"{x:.3g}" if isinstance(x, (int, float)) else str(x)
                              for x in (conf, hit) if x is not None)
            s = f"{st}" + (f" ({extra})" if extra else "")
            if st != t:
                s = f"**{s}** ✗"
        out.append(f"| {c} | {t} | {called(pe, c, t)} | {called(tgt, c, t)} | {s} |")
    if ta:
        out.append("\n(tamis's rule50 calls above are over all rows.)")

    # ---- timings ----
    out.append(f"\ntamis: {tdoc['runs']} timed rounds after {tdoc['warmup']} warm-up on the whole table; "
               f"load average {tdoc['loadavg_start'][0]:.2f} → {tdoc['loadavg_end'][0]:.2f}. "
               + (f"Presidio: one run, load average {pdoc['loadavg_start'][0]:.2f} → "
                  f"{pdoc['loadavg_end'][0]:.2f}, engine load {prun.get('engine_load_s', '?')} s, "
                  f"{prun.get('seconds', '?')} s from process start." if pdoc else ""))
    out += details("timeit.py table, tamis", ttable)
    if ptable:
        out += details("timeit.py table, Presidio", ptable)
    print("\n".join(out))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
