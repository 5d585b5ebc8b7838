#!/usr/bin/env bash
# Benchmark `tamis clean` (the plan bench/clean_plan.yaml, provenance on) against the DuckDB
# and Polars clean jobs (../shared/bench/profile/duckdb_clean.py --zstd, polars_clean.py) on
# the messy customers table, in one alternating timeit.py run per size; then check with
# same_rows.py that tamis's output holds exactly DuckDB's rows (and Polars' too), and measure
# tamis's provenance sidecar (OUT.parquet.tamis/). Writes its own section of
# bench/RESULTS.md (machine, date, commands, figures, ratios), between the lines
# <!-- clean:begin --> and <!-- clean:end -->; other sections (bench/profile.sh's) are kept.
#
#   bench/clean.sh                 # 1m and 10m rows, 3 timed rounds after 1 warm-up
#   bench/clean.sh 1m              # sizes to run (gen_customers.py notation)
#   RUNS=5 bench/clean.sh 1m       # more rounds
#   KEEP=1 bench/clean.sh 1m       # keep the outputs (the path is printed at the end)
#
# Data goes to ${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data} (10m is 1.2 GB; generated
# once, seed 42, shared with bench/profile.sh). Outputs go to a temporary directory under
# ${TMPDIR:-/tmp} (about 1.5 GB at 10m, deleted after each size unless KEEP=1). Needs
# Python >= 3.11 for the kit's venv (created by its setup.sh).
set -euo pipefail

NAME=clean
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"   # ROOT, BENCH, D, RUNS, WARMUP, SIZES, OUT, helpers
KEEP="${KEEP:-0}"
PLAN="$ROOT/bench/clean_plan.yaml"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-clean-bench.XXXXXX")"
SEC="$WORK/section.md"   # this script's section, spliced into $OUT at the end
cleanup() {
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

q() { printf '%q' "$1"; }   # quote a path for the sh -c command lines timeit.py runs

prepare   # PY, TAMIS, COMMIT

{
  section_head
  echo "Targets (issue 3, at 10M rows): tamis CPU-seconds ≤ 0.5× DuckDB's, peak RSS ≤ 1 GiB,"
  echo "same rows as DuckDB's. The job: drop exact duplicate rows, fill NULL age / income with"
  echo "the median of the deduplicated data, trim + lowercase status, trim + uppercase state,"
  echo "write zstd Parquet (tamis: the plan bench/clean_plan.yaml, with its provenance sidecar)."
  echo "Each timed command first deletes its previous output (included in its time: milliseconds)."
  echo "Ratios are medians over rounds of per-round ratios (the commands alternate, so machine"
  echo "load hits them alike); only the ratios are comparable across runs."
} > "$SEC"

for size in "${SIZES[@]}"; do
  data "$size"   # F, META, bytes
  O="$WORK/$size"
  mkdir -p "$O"
  duck="$O/OUT_duck.parquet"
  pola="$O/OUT_polars.parquet"
  tams="$O/OUT_tamis.parquet"
  cmd_duckdb="rm -f $(q "$duck") && $(q "$PY") $(q "$BENCH/profile/duckdb_clean.py") $(q "$F") $(q "$duck") --zstd"
  cmd_polars="rm -f $(q "$pola") && $(q "$PY") $(q "$BENCH/profile/polars_clean.py") $(q "$F") $(q "$pola")"
  cmd_tamis="rm -rf $(q "$tams") $(q "$tams.tamis") && $(q "$TAMIS") clean $(q "$F") --plan $(q "$PLAN") -o $(q "$tams") --no-progress"
  # With TAMIS_PLAIN, the plain build writes its own output, compared with tamis's below.
  plain="$O/OUT_plain.parquet"
  cmd_plain="rm -rf $(q "$plain") $(q "$plain.tamis") && $(q "${TAMIS_PLAIN:-}") clean $(q "$F") --plan $(q "$PLAN") -o $(q "$plain") --no-progress"
  time_size "$size" duckdb polars "$cmd_duckdb" "$cmd_polars" "$cmd_tamis" "$cmd_plain"

  # The outputs of the last round are left in place: compare them.
  log "same-rows check $size"
  "$PY" "$BENCH/profile/same_rows.py" "$tams" "$duck" > "$O/same_tamis.json" \
    || log "$size: tamis's rows differ from DuckDB's: $(cat "$O/same_tamis.json")"
  "$PY" "$BENCH/profile/same_rows.py" "$pola" "$duck" > "$O/same_polars.json" \
    || log "$size: Polars' rows differ from DuckDB's: $(cat "$O/same_polars.json")"
  sidecar=()
  if [ -d "$tams.tamis" ]; then
    sidecar=(--sidecar-bytes "$(du -sb "$tams.tamis" | cut -f1)")
  else
    log "$size: no provenance sidecar at $tams.tamis"
  fi
  meta=()
  [ -s "$META" ] && meta=(--meta "$META")
  plain_arg=()
  [ -z "${TAMIS_PLAIN:-}" ] || plain_arg=(--out-plain "$plain")
  "$PY" "$ROOT/bench/compare_clean.py" \
    --timeit "$WORK/timeit_$size.txt" \
    --out-duckdb "$duck" --out-polars "$pola" --out-tamis "$tams" \
    --same-tamis "$O/same_tamis.json" --same-polars "$O/same_polars.json" \
    "${sidecar[@]}" "${meta[@]}" "${plain_arg[@]}" \
    --title "$size rows ($(numfmt --grouping "$bytes") bytes)" >> "$SEC" \
    || log "$size: tamis's output does not hold DuckDB's rows (see $OUT)"
  if [ -n "${TAMIS_PLAIN:-}" ]; then
    # The last round's outputs of the two builds: the same code must write the same bytes.
    if cmp -s "$tams" "$plain"; then same_bytes="yes"; else same_bytes="**no** ✗"; fi
    echo "tamis and tamis_plain write the same Parquet bytes: $same_bytes." >> "$SEC"
  fi
  [ "$KEEP" = 1 ] || rm -rf "$O"   # up to 1.5 GB of Parquet at 10m
done

{
  commands_head duckdb polars
  echo "  'rm -f \$O/OUT_duck.parquet && \$PY ../shared/bench/profile/duckdb_clean.py \$F \$O/OUT_duck.parquet --zstd' \\"
  echo "  'rm -f \$O/OUT_polars.parquet && \$PY ../shared/bench/profile/polars_clean.py \$F \$O/OUT_polars.parquet' \\"
  echo "  'rm -rf \$O/OUT_tamis.parquet \$O/OUT_tamis.parquet.tamis && target/release/tamis clean \$F --plan bench/clean_plan.yaml -o \$O/OUT_tamis.parquet --no-progress'"
  echo "\$PY ../shared/bench/profile/same_rows.py \$O/OUT_tamis.parquet \$O/OUT_duck.parquet"
  echo "\$PY ../shared/bench/profile/same_rows.py \$O/OUT_polars.parquet \$O/OUT_duck.parquet"
  echo "du -sb \$O/OUT_tamis.parquet.tamis"
  echo '```'
  echo
  echo "<details><summary>bench/clean_plan.yaml</summary>"
  echo
  echo '```yaml'
  cat "$PLAN"
  echo '```'
  echo "</details>"
} >> "$SEC"
write_section
