#!/usr/bin/env python3
"""Score predicted duplicate pairs on a gen_customers.py file against its --truth file.

usage: score_customers_dedup.py PRED TRUTH.csv

PRED: CSV or Parquet with row_id_l,row_id_r (0-based data-row indices; the customers file
has no unique id column: exact copies repeat customer_id). TRUTH.csv: gen_customers.py's
`row,kind,source_row,mutation` (one line per duplicate row).

An entity is a base row with its exact copies and near duplicates. Truth pairs are all
pairs of rows of one entity. Two scores, both pairwise (no transitive closure):
  all   every predicted pair against every truth pair;
  near  the near-duplicate task: pairs of two rows that are byte-identical copies (a base
        row and its exact copies) are left out of BOTH sides, since exact dedup finds them;
        every other predicted pair counts (a pair of unrelated rows is a false positive).
Prints one line of JSON.
"""
import json
import sys

import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq


def read_pred(path):
    if path.endswith(".parquet"):
        t = pq.read_table(path, columns=["row_id_l", "row_id_r"])
    else:
        t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            include_columns=["row_id_l", "row_id_r"]))
    a = t.column("row_id_l").to_pylist()
    b = t.column("row_id_r").to_pylist()
    return {(x, y) if x < y else (y, x) for x, y in zip(a, b) if x != y}, len(a)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    pred, rows_read = read_pred(sys.argv[1])
    t = pcsv.read_csv(sys.argv[2], convert_options=pcsv.ConvertOptions(
        column_types={"row": "int64", "source_row": "int64", "kind": "string"}))
    rows = t.column("row").to_pylist()
    kinds = t.column("kind").to_pylist()
    srcs = t.column("source_row").to_pylist()
    entity = {}   # row -> source (base) row
    exact_set = {}  # base row -> rows identical to it (base + exact copies)
    members = {}
    for r, k, s in zip(rows, kinds, srcs):
        entity[r] = s
        entity.setdefault(s, s)
        members.setdefault(s, {s}).add(r)
        if k == "exact":
            exact_set.setdefault(s, {s}).add(r)
    truth = set()
    for s, m in members.items():
        m = sorted(m)
        for i in range(len(m)):
            for j in range(i + 1, len(m)):
                truth.add((m[i], m[j]))

    def identical(p):
        a, b = p
        ea, eb = entity.get(a), entity.get(b)
        if ea is None or ea != eb:
            return False
        ex = exact_set.get(ea, {ea})
        return a in ex and b in ex

    def score(pred, truth):
        tp = len(pred & truth)
        p = tp / len(pred) if pred else 0.0
        r = tp / len(truth) if truth else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(p, 6), "recall": round(r, 6), "f1": round(f, 6),
                "tp": tp, "fp": len(pred) - tp, "fn": len(truth) - tp,
                "predicted_pairs": len(pred), "true_pairs": len(truth)}

    near_truth = {p for p in truth if not identical(p)}
    near_pred = {p for p in pred if not identical(p)}
    print(json.dumps({"all": score(pred, truth), "near": score(near_pred, near_truth),
                      "pred_rows_read": rows_read, "pred": sys.argv[1], "truth": sys.argv[2]}))


if __name__ == "__main__":
    main()
