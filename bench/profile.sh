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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$(cd "$ROOT/../shared/bench" && pwd)"
D="${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1m 10m)
OUT="$ROOT/bench/RESULTS.md"
WORK="$(mktemp -d)"
SEC="$WORK/section.md"   # this script's section, spliced into $OUT at the end
trap 'rm -rf "$WORK"' EXIT

log() { echo "profile.sh: $*" >&2; }

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
  echo "# Benchmark results: \`tamis profile\`"
  echo
  echo "Written by \`bench/profile.sh ${SIZES[*]}\` (RUNS=$RUNS, WARMUP=$WARMUP)."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $COMMIT"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- tools: $("$TAMIS" --version), $("$PY" -c 'import duckdb, polars, sys; print(f"duckdb {duckdb.__version__}, polars {polars.__version__}, python {sys.version.split()[0]}")')"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Targets (issue 2, at 10M rows): tamis CPU-seconds ≤ 0.5× Polars', wall ≤ 0.6× DuckDB's,"
  echo "peak RSS ≤ 512 MiB. Ratios are medians over rounds of per-round ratios (the commands"
  echo "alternate, so machine load hits them alike); only the ratios are comparable across runs."
} > "$SEC"

for size in "${SIZES[@]}"; do
  F="$D/customers_$size.csv"
  if [ ! -s "$F" ]; then
    log "generating $F"
    "$PY" "$BENCH/gen_customers.py" "$size" "$F" --seed 42 --meta "$D/customers_${size}_meta.json" >&2
  fi
  bytes=$(stat -c %s "$F")
  cmd_polars="$PY $BENCH/profile/polars_profile.py $F"
  cmd_duckdb="$PY $BENCH/profile/duckdb_summarize.py $F"
  cmd_tamis="$TAMIS profile $F --json --no-progress > /dev/null"
  log "timing $size ($bytes bytes)"
  python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n polars -n duckdb -n tamis --json \
    "$cmd_polars" "$cmd_duckdb" "$cmd_tamis" > "$WORK/timeit_$size.txt"

  log "accuracy check $size"
  "$TAMIS" profile "$F" --json --no-progress > "$WORK/tamis_$size.json"
  "$PY" "$BENCH/profile/polars_profile.py" "$F" --out "$WORK/polars_$size" > /dev/null
  "$PY" "$ROOT/bench/compare_profile.py" \
    --timeit "$WORK/timeit_$size.txt" \
    --tamis "$WORK/tamis_$size.json" \
    --polars "$WORK/polars_$size" \
    --meta "$D/customers_${size}_meta.json" \
    --title "$size rows ($(numfmt --grouping "$bytes") bytes)" >> "$SEC" \
    || log "$size: some exact statistics disagree with Polars (see $OUT)"
done

{
  echo
  echo "## Commands"
  echo
  echo '```bash'
  echo "PY=\$(bash ../shared/bench/setup.sh)"
  echo "\$PY ../shared/bench/gen_customers.py SIZE \$D/customers_SIZE.csv --seed 42"
  echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n polars -n duckdb -n tamis --json \\"
  echo "  '\$PY ../shared/bench/profile/polars_profile.py \$F' \\"
  echo "  '\$PY ../shared/bench/profile/duckdb_summarize.py \$F' \\"
  echo "  'target/release/tamis profile \$F --json --no-progress > /dev/null'"
  echo '```'
  echo
  echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >> "$SEC"
"$PY" "$ROOT/bench/results_section.py" "$OUT" profile < "$SEC"
log "wrote the profile section of $OUT"
