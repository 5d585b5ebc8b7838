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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$(cd "$ROOT/../shared/bench" && pwd)"
D="${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
KEEP="${KEEP:-0}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1m 10m)
OUT="$ROOT/bench/RESULTS.md"
PLAN="$ROOT/bench/clean_plan.yaml"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-clean-bench.XXXXXX")"
SEC="$WORK/section.md"   # this script's section, spliced into $OUT at the end
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "clean.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { echo "clean.sh: $*" >&2; }
q() { printf '%q' "$1"; }   # quote a path for the sh -c command lines timeit.py runs

PY="$(bash "$BENCH/setup.sh")"
mkdir -p "$D"

log "building tamis (release)"
(cd "$ROOT" && cargo build --release --locked -p tamis-cli >&2)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
TAMIS="$TARGET_DIR/release/tamis"
"$TAMIS" --version >&2

# Read before RESULTS.md is rewritten (it is tracked, so rewriting it dirties the tree).
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
(cd "$ROOT" && git diff --quiet -- . ':!bench/RESULTS.md' 2>/dev/null) || COMMIT="$COMMIT (with uncommitted changes)"

{
  echo "# Benchmark results: \`tamis clean\`"
  echo
  echo "Written by \`bench/clean.sh ${SIZES[*]}\` (RUNS=$RUNS, WARMUP=$WARMUP)."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $COMMIT"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- tools: $("$TAMIS" --version), $("$PY" -c 'import duckdb, polars, sys; print(f"duckdb {duckdb.__version__}, polars {polars.__version__}, python {sys.version.split()[0]}")')"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Targets (issue 3, at 10M rows): tamis CPU-seconds ≤ 0.5× DuckDB's, peak RSS ≤ 1 GiB,"
  echo "same rows as DuckDB's. The job: drop exact duplicate rows, fill NULL age / income with"
  echo "the median of the deduplicated data, trim + lowercase status, trim + uppercase state,"
  echo "write zstd Parquet (tamis: the plan bench/clean_plan.yaml, with its provenance sidecar)."
  echo "Each timed command first deletes its previous output (included in its time: milliseconds)."
  echo "Ratios are medians over rounds of per-round ratios (the commands alternate, so machine"
  echo "load hits them alike); only the ratios are comparable across runs."
} > "$SEC"

for size in "${SIZES[@]}"; do
  F="$D/customers_$size.csv"
  META="$D/customers_${size}_meta.json"
  if [ ! -s "$F" ]; then
    log "generating $F"
    "$PY" "$BENCH/gen_customers.py" "$size" "$F" --seed 42 --meta "$META" >&2
  fi
  bytes=$(stat -c %s "$F")
  O="$WORK/$size"
  mkdir -p "$O"
  duck="$O/OUT_duck.parquet"
  pola="$O/OUT_polars.parquet"
  tams="$O/OUT_tamis.parquet"
  cmd_duckdb="rm -f $(q "$duck") && $(q "$PY") $(q "$BENCH/profile/duckdb_clean.py") $(q "$F") $(q "$duck") --zstd"
  cmd_polars="rm -f $(q "$pola") && $(q "$PY") $(q "$BENCH/profile/polars_clean.py") $(q "$F") $(q "$pola")"
  cmd_tamis="rm -rf $(q "$tams") $(q "$tams.tamis") && $(q "$TAMIS") clean $(q "$F") --plan $(q "$PLAN") -o $(q "$tams") --no-progress"
  log "timing $size ($bytes bytes)"
  python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n duckdb -n polars -n tamis --json \
    "$cmd_duckdb" "$cmd_polars" "$cmd_tamis" > "$WORK/timeit_$size.txt"

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
  "$PY" "$ROOT/bench/compare_clean.py" \
    --timeit "$WORK/timeit_$size.txt" \
    --out-duckdb "$duck" --out-polars "$pola" --out-tamis "$tams" \
    --same-tamis "$O/same_tamis.json" --same-polars "$O/same_polars.json" \
    "${sidecar[@]}" "${meta[@]}" \
    --title "$size rows ($(numfmt --grouping "$bytes") bytes)" >> "$SEC" \
    || log "$size: tamis's output does not hold DuckDB's rows (see $OUT)"
  [ "$KEEP" = 1 ] || rm -rf "$O"   # up to 1.5 GB of Parquet at 10m
done

{
  echo
  echo "## Commands"
  echo
  echo '```bash'
  echo "PY=\$(bash ../shared/bench/setup.sh)"
  echo "\$PY ../shared/bench/gen_customers.py SIZE \$D/customers_SIZE.csv --seed 42"
  echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n duckdb -n polars -n tamis --json \\"
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
  echo
  echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >> "$SEC"
"$PY" "$ROOT/bench/results_section.py" "$OUT" clean < "$SEC"
log "wrote the clean section of $OUT"
