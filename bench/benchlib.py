"""Helpers shared by bench/compare_profile.py, compare_clean.py and compare_pii.py: reading one
timeit.py run (its table, then its --json document) and the Markdown pieces the sections share.

The compare scripts import it from their own directory (run as `python bench/compare_x.py`,
which puts bench/ first on sys.path). Standard library only.
"""
import json
import statistics

NAMES = {"duckdb": "DuckDB", "polars": "Polars", "cpu_s": "CPU", "wall_s": "wall"}


def timeit_doc(path):
    """timeit.py's output: (the table it prints first, the JSON document after it)."""
    text = open(path).read()
    start = text.index("\n{\n") + 1
    return text[:start], json.loads(text[start:])


def commands(doc):
    """The timed commands by name."""
    return {c["name"]: c for c in doc["commands"]}


def per_round(doc, a, b, key):
    """The median over rounds of a's key / b's key in the same round (NaN without rounds)."""
    cmds = commands(doc)
    xs = [s1[key] / s2[key] for s1, s2 in zip(cmds[a]["samples"], cmds[b]["samples"]) if s2[key] > 0]
    return statistics.median(xs) if xs else float("nan")


def mark(ok):
    return "met" if ok else "**not met**"


def heading(title, doc):
    """The section's title and the line on how the rounds ran."""
    return [f"\n## {title}\n",
            f"{doc['runs']} timed rounds after {doc['warmup']} warm-up, alternating; "
            f"load average {doc['loadavg_start'][0]:.2f} → {doc['loadavg_end'][0]:.2f}.\n"]


def timing_table(cmds, names, extra_head=(), extra=lambda name: ()):
    """One row a tool, in the order of names: wall and CPU medians, peak RSS, then the cells
    extra(name) under the columns extra_head."""
    head = ["tool", "wall median s", "CPU median s", "peak RSS MiB", *extra_head]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        c = cmds[n]
        cells = [n, f"{c['wall_median_s']:.2f}", f"{c['cpu_median_s']:.2f}",
                 f"{c['peak_rss_median_mib']:.0f}", *extra(n)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratio_head():
    return ["", "| ratio (median of per-round ratios) | value | target |", "|---|---|---|"]


def ratio_row(doc, other, key, target=None, who="tamis"):
    """who's key (cpu_s, wall_s) over other's, the median of per-round ratios; checked
    against target (at most) when there is one."""
    v = per_round(doc, who, other, key)
    k = NAMES[key]
    checked = f" ≤ {target:.2f}: {mark(v <= target)} " if target is not None else " "
    return f"| {who} {k} / {NAMES.get(other, other)} {k} | {v:.2f} |{checked}|"


def rss_row(cmds, limit_mib, who="tamis"):
    rss = cmds[who]["peak_rss_median_mib"]
    return f"| {who} peak RSS | {rss:.0f} MiB | ≤ {limit_mib} MiB: {mark(rss <= limit_mib)} |"


def plain_rows(doc, cmds, targets, rss_mib):
    """With a tamis_plain command in the run (bench/lib.sh, TAMIS_PGO or TAMIS_PLAIN): the
    plain release build's rows for the same targets ((other, key, target) each), its peak RSS,
    and the profile-guided build's CPU over the plain one's. Nothing without it."""
    if "tamis_plain" not in cmds:
        return []
    rows = [ratio_row(doc, o, k, t, who="tamis_plain") for o, k, t in targets]
    rows.append(rss_row(cmds, rss_mib, who="tamis_plain"))
    rows.append(ratio_row(doc, "tamis_plain", "cpu_s"))
    return rows


def tool_names(cmds, names):
    """names, then tamis_plain when the run timed it."""
    return (*names, "tamis_plain") if "tamis_plain" in cmds else tuple(names)


def timeit_details(table):
    """timeit.py's own table, folded."""
    return ["\n<details><summary>timeit.py table</summary>\n\n```", table.strip(), "```\n</details>\n"]
