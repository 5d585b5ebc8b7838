#!/usr/bin/env python3
"""Near-duplicate reference on the customers file: Splink (DuckDB backend), unsupervised.

usage: run_splink_customers.py IN.csv PRED.csv [--u-max-pairs 1e6] [--seed 42]
                               [--threshold 0.5]

IN.csv as written by ../shared/bench/gen_customers.py. The file has no unique id (exact
copies repeat customer_id), so every row gets `row` = its 0-based data-row index, and PRED.csv
is row_id_l,row_id_r,score (match probability >= --threshold), scored by
bench/score_customers_dedup.py.

Splink is given the same normalisation tamis applies before comparing (it cannot infer it):
names, city, state and status trimmed and lower-cased; e-mail lower-cased without spaces;
phone reduced to its last 10 digits. Model (fixed before any run, not tuned on the truth):
  first_name, last_name  NameComparison (exact / Jaro-Winkler 0.92, 0.88, 0.7), TF
  email                  EmailComparison
  phone                  ExactMatch
  age, income, score     ExactMatch
  city (TF), state       ExactMatch
  signup_date            ExactMatch
Prediction blocking (the rules tamis's auto-configuration picks on the 1m file): phone;
email; first_name + last_name + city; swapped first/last name.
Training as in Splink's examples: lambda from deterministic rules (phone + first_name;
email + last_name) with recall 0.9; u by random sampling; m by EM blocked on phone, then on email, at
most 10 iterations each (see MAX_EM_ITERATIONS). On this file Splink 5's second EM run can
stop with "m_probability value ... is below the minimum allowed value of 1e-300" (an exact
field that duplicates never disagree on); the run then keeps the first run's m, and the
summary's phases.second_em says so.
The JSON summary is the only line on stdout (rows, candidate pairs, pairs written, seconds
from process start to PRED.csv written, per-phase times).
"""
import time

T0 = time.perf_counter()
import argparse
import json

import duckdb
import splink
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on


# Splink's EM drives the m of levels that duplicates never reach (an exact field that
# differs) towards 0 and raises once one falls below 1e-300; capping the iterations stops it
# first (the parameters have long converged by then: the largest change is < 1e-3 after 5).
MAX_EM_ITERATIONS = 10


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("pred")
    ap.add_argument("--u-max-pairs", type=float, default=1e6)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threshold", type=float, default=0.5)
    a = ap.parse_args()
    phases = {"imports": round(time.perf_counter() - T0, 3)}

    def mark(name):
        phases[name] = round(time.perf_counter() - T0, 3)

    con = duckdb.connect()
    con.execute(f"""
        create table raw as select (row_number() over ()) - 1 as row, *
        from read_csv('{a.csv}', all_varchar = true, header = true)""")
    df = con.execute("""
        select row,
          nullif(lower(trim(first_name)), '') as first_name,
          nullif(lower(trim(last_name)), '') as last_name,
          nullif(lower(replace(email, ' ', '')), '') as email,
          nullif(right(regexp_replace(phone, '[^0-9]', '', 'g'), 10), '') as phone,
          nullif(trim(age), '') as age,
          nullif(trim(income), '') as income,
          nullif(lower(trim(city)), '') as city,
          nullif(lower(trim(state)), '') as state,
          nullif(trim(signup_date), '') as signup_date,
          nullif(trim(score), '') as score
        from raw order by row""").df()
    mark("load_csv")

    db_api = DuckDBAPI()
    sdf = db_api.register(df)
    settings = SettingsCreator(
        unique_id_column_name="row",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("phone"),
            block_on("email"),
            block_on("first_name", "last_name", "city"),
            "l.first_name = r.last_name and l.last_name = r.first_name",
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("age"),
            cl.ExactMatch("income"),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.ExactMatch("state"),
            cl.ExactMatch("signup_date"),
            cl.ExactMatch("score"),
        ],
        retain_intermediate_calculation_columns=False,
        max_iterations=MAX_EM_ITERATIONS,
    )
    linker = Linker(sdf, settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("phone", "first_name"), block_on("email", "last_name")], recall=0.9)
    mark("lambda")
    linker.training.estimate_u_using_random_sampling(max_pairs=a.u_max_pairs, seed=a.seed)
    mark("u_random_sampling")
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("phone"), estimate_without_term_frequencies=True)
    try:
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("email"), estimate_without_term_frequencies=True)
        phases["second_em"] = "ok"
    except ValueError as e:  # Splink 5 rejects an m that underflows (see the docstring)
        phases["second_em"] = f"failed: {e}"[:200]
    mark("m_em")
    pred = linker.inference.predict(threshold_match_probability=a.threshold)
    pdf = pred.as_pandas_dataframe()
    mark("predict")
    out = pdf[["row_l", "row_r", "match_probability"]].rename(
        columns={"row_l": "row_id_l", "row_r": "row_id_r", "match_probability": "score"})
    out.to_csv(a.pred, index=False)
    mark("write")
    print(json.dumps({
        "job": "splink-customers", "input": a.csv, "output": a.pred, "rows": len(df),
        "pairs_written": len(out), "threshold": a.threshold,
        "seconds": round(time.perf_counter() - T0, 3), "phases": phases,
        "u_max_pairs": a.u_max_pairs, "seed": a.seed, "splink": splink.__version__,
    }))


if __name__ == "__main__":
    main()
