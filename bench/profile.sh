#!/usr/bin/env bash
# Benchmark `tamis profile --json` against DuckDB SUMMARIZE and the Polars profile
# (../shared/bench/profile/) on the messy customers table, in one alternating timeit.py
# run per size, then check tamis's numbers against Polars' exact ones. Writes its own
# section of bench/RESULTS.md (machine, date, commands, figures, ratios), between the lines
# <!-- profile:begin --> and <!-- profile:end -->; other sections (bench/clean.sh's) are kept.
#
#   bench/profile.sh               # 1m and 10m rows, 3 timed rounds after 1 warm-up
#   bench/profile.sh 1m            # sizes to run (gen_customers.py notation)
#   RUNS=5 bench/profile.sh 1m     # more rounds
#
# Data goes to ${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data} (10m is 1.2 GB; generated
# once, seed 42). Needs Python >= 3.11 for the kit's venv (created by its setup.sh).
set -euo pipefail

NAME=profile
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"   # ROOT, BENCH, D, RUNS, WARMUP, SIZES, OUT, helpers
WORK="$(mktemp -d)"
SEC="$WORK/section.md"   # this script's section, spliced into $OUT at the end
trap 'rm -rf "$WORK"' EXIT

prepare   # PY, TAMIS, COMMIT

{
  section_head
  echo "Targets (issue 2, at 10M rows): tamis CPU-seconds ≤ 0.5× Polars', wall ≤ 0.6× DuckDB's,"
  echo "peak RSS ≤ 512 MiB. Ratios are medians over rounds of per-round ratios (the commands"
  echo "alternate, so machine load hits them alike); only the ratios are comparable across runs."
} > "$SEC"

for size in "${SIZES[@]}"; do
  data "$size"   # F, META, bytes
  cmd_polars="$PY $BENCH/profile/polars_profile.py $F"
  cmd_duckdb="$PY $BENCH/profile/duckdb_summarize.py $F"
  cmd_tamis="$TAMIS profile $F --json --no-progress > /dev/null"
  time_size "$size" polars duckdb "$cmd_polars" "$cmd_duckdb" "$cmd_tamis"

  log "accuracy check $size"
  "$TAMIS" profile "$F" --json --no-progress > "$WORK/tamis_$size.json"
  "$PY" "$BENCH/profile/polars_profile.py" "$F" --out "$WORK/polars_$size" > /dev/null
  "$PY" "$ROOT/bench/compare_profile.py" \
    --timeit "$WORK/timeit_$size.txt" \
    --tamis "$WORK/tamis_$size.json" \
    --polars "$WORK/polars_$size" \
    --meta "$META" \
    --title "$size rows ($(numfmt --grouping "$bytes") bytes)" >> "$SEC" \
    || log "$size: some exact statistics disagree with Polars (see $OUT)"
done

{
  commands_head polars duckdb
  echo "  '\$PY ../shared/bench/profile/polars_profile.py \$F' \\"
  echo "  '\$PY ../shared/bench/profile/duckdb_summarize.py \$F' \\"
  echo "  'target/release/tamis profile \$F --json --no-progress > /dev/null'"
  echo '```'
} >> "$SEC"
write_section
