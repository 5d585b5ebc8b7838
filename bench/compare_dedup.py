#!/usr/bin/env python3
"""One dataset's part of the dedup section of bench/RESULTS.md, from bench/dedup.sh's files.

usage: compare_dedup.py NAME DIR
  NAME  febrl1..3, or a customers size (1m, 10m)
  DIR   timeit.txt (timeit.py --json), score_TOOL.json, tamis.json (tamis dedup --json)
Prints Markdown; exits 1 when a target is not met.
"""
import json
import os
import sys

from benchlib import commands, heading, mark, per_round, timeit_doc, timing_table

SPLINK_ANCHOR = {"febrl1": 1.0, "febrl2": 0.9997, "febrl3": 0.9995}


def load(path):
    with open(path) as fh:
        return json.load(fh)


def main():
    name, d = sys.argv[1], sys.argv[2]
    _, doc = timeit_doc(os.path.join(d, "timeit.txt"))
    cmds = commands(doc)
    tools = [n for n in ("splink", "recordlinkage", "tamis") if n in cmds]
    files = {"splink": "splink", "recordlinkage": "rl", "tamis": "tamis"}
    scores = {t: load(os.path.join(d, f"score_{files[t]}.json")) for t in tools}
    summary = load(os.path.join(d, "tamis.json"))
    out, ok = [], True
    febrl = name.startswith("febrl")
    title = f"Febrl {name[-1]}" if febrl else f"customers {name} (gen_customers.py, seed 42)"
    out += heading(f"{title}: {summary['rows']:,} rows", doc)

    if febrl:
        head = ("precision", "recall", "F1", "pairs predicted")
        cell = lambda t: (f"{scores[t]['precision']:.4f}", f"{scores[t]['recall']:.4f}",
                          f"**{scores[t]['f1']:.4f}**", f"{scores[t]['predicted_pairs']:,}")
    else:
        head = ("near P / R", "near F1", "all-pairs F1", "pairs predicted")
        cell = lambda t: (f"{scores[t]['near']['precision']:.4f} / {scores[t]['near']['recall']:.4f}",
                          f"**{scores[t]['near']['f1']:.4f}**", f"{scores[t]['all']['f1']:.4f}",
                          f"{scores[t]['all']['predicted_pairs']:,}")
    out += timing_table(cmds, tools, head, cell)
    out += ["", "| check | value | target |", "|---|---|---|"]
    tf1 = scores["tamis"]["f1"] if febrl else scores["tamis"]["near"]["f1"]
    if "splink" in cmds:
        sf1 = scores["splink"]["f1"] if febrl else scores["splink"]["near"]["f1"]
        r = per_round(doc, "tamis", "splink", "wall_s")
        if febrl:
            # The anchors are printed to 4 decimals: compare at that precision.
            good = tf1 >= sf1 and round(tf1, 4) >= SPLINK_ANCHOR[name]
            ok &= good
            out.append(f"| tamis F1 vs Splink F1 (this run; kit anchor {SPLINK_ANCHOR[name]:.4f}) "
                       f"| {tf1:.4f} vs {sf1:.4f} | ≥ both: {mark(good)} |")
            ok &= r <= 0.1
            out.append(f"| tamis wall / Splink wall (median of per-round ratios) | {r:.3f} "
                       f"| ≤ 0.1: {mark(r <= 0.1)} |")
        else:
            out.append(f"| tamis near F1 vs Splink near F1 (this run) | {tf1:.4f} vs {sf1:.4f} | |")
            out.append(f"| tamis wall / Splink wall (median of per-round ratios) | {r:.3f} | |")
        rc = per_round(doc, "tamis", "splink", "cpu_s")
        out.append(f"| tamis CPU / Splink CPU | {rc:.3f} | |")
    if "recordlinkage" in cmds:
        r = per_round(doc, "tamis", "recordlinkage", "wall_s")
        out.append(f"| tamis wall / recordlinkage wall | {r:.3f} | |")
    if not febrl:
        good = tf1 >= 0.98
        ok &= good
        out.append(f"| tamis near-duplicate F1 | {tf1:.4f} | ≥ 0.98: {mark(good)} |")
        if summary["rows"] >= 10_000_000:
            t = cmds["tamis"]
            w, m = t["wall_median_s"], t["peak_rss_median_mib"]
            ok &= w < 120 and m <= 4096
            out.append(f"| tamis wall, 10m rows | {w:.1f} s | < 120 s: {mark(w < 120)} |")
            out.append(f"| tamis peak RSS | {m:.0f} MiB | ≤ 4096 MiB: {mark(m <= 4096)} |")
    # What auto-configuration chose.
    sec = summary["seconds"]
    out += ["", "tamis chose (automatic, no settings file): "
            + "; ".join(f"`{b['rule']}` ({b['comparisons']:,} comparisons, {b['new_comparisons']:,} new)"
                        for b in summary["blocking"])
            + f" → {summary['candidate_pairs']:,} candidate pairs, "
            f"{summary['matched_pairs']:,} matched; compared columns: "
            + ", ".join(f"{c['column']} ({c['role']})" for c in summary["config"]["comparisons"])
            + f". Phases (s, last round): load {sec['load']:.2f}, blocking {sec['blocking']:.2f}, "
            f"training {sec['training']:.2f}, scoring {sec['scoring']:.2f}, "
            f"clustering {sec['clustering']:.2f}."]
    if "splink" in cmds and not febrl:
        sj = load(os.path.join(d, "splink.json"))
        if str(sj["phases"].get("second_em", "ok")).startswith("failed"):
            out.append("\nSplink's second EM run failed on this file (m underflow; see "
                       "run_splink_customers.py) and it kept the first run's m.")
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
