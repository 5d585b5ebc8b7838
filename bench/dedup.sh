#!/usr/bin/env bash
# Benchmark `tamis dedup` (automatic configuration: no settings file) against Splink and
# recordlinkage on Febrl 1-3 (../shared/bench/dedup/: export_febrl.py, run_splink.py,
# run_recordlinkage.py, score_pairs.py), and against Splink on the near duplicates that
# gen_customers.py plants (bench/run_splink_customers.py, scored by
# bench/score_customers_dedup.py against the generator's --truth file). Every tool runs in
# the same alternating timeit.py rounds; the outputs of the last round are scored. Writes its
# own section of bench/RESULTS.md, between <!-- dedup:begin --> and <!-- dedup:end -->.
#
#   bench/dedup.sh                 # febrl1 febrl2 febrl3 1m 10m
#   bench/dedup.sh febrl3 1m       # what to run: febrlN, or a customers size (Splink runs on
#                                  # sizes up to 1m; larger ones are tamis alone)
#   RUNS=5 WARMUP=1 bench/dedup.sh # rounds (default 3 after 1 warm-up)
#
# TAMIS=/path/to/tamis skips the build; TAMIS_BENCH_RESULTS=F.md writes elsewhere.
set -euo pipefail

NAME=dedup
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[ $# -gt 0 ] || SIZES=(febrl1 febrl2 febrl3 1m 10m)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-dedup-bench.XXXXXX")"
SEC="$WORK/section.md"
trap 'rm -rf "$WORK"' EXIT
q() { printf '%q' "$1"; }

for s in "${SIZES[@]}"; do
  [[ "$s" =~ ^febrl[123]$|^[0-9]+[km]?$ ]] || { log "bad size '$s': febrl1..3 or 1m, 10m, ..."; exit 2; }
done

prepare   # PY, TAMIS, COMMIT

{
  section_head 'import splink, recordlinkage, sys; print(f"splink {splink.__version__}, recordlinkage {recordlinkage.__version__}, python {sys.version.split()[0]}")'
  echo "Targets (issue: duplicates): with automatic configuration (no settings file), F1 at"
  echo "least Splink's on Febrl 1-3 (the kit's anchors: 1.0000 / 0.9997 / 0.9995) in ≤ 0.1× its"
  echo "wall time; on the customers file, near-duplicate F1 ≥ 0.98 and 10m rows in under 2"
  echo "minutes with peak RSS ≤ 4 GiB. Every tool is one process per run, timed whole (start-up,"
  echo "imports, reading and writing included); F1 is pairwise on the last round's output."
  echo "tamis's pairs are those with match probability ≥ 0.5, as Splink's and recordlinkage's."
} > "$SEC"

: > "$WORK/cmds.txt"
for s in "${SIZES[@]}"; do
  O="$WORK/$s"; mkdir -p "$O"
  if [[ "$s" == febrl* ]]; then
    n="${s#febrl}"
    F="$D/febrl/febrl$n.csv"; T="$D/febrl/febrl${n}_truth.csv"
    [ -s "$F" ] && [ -s "$T" ] || { log "exporting Febrl"; "$PY" "$BENCH/dedup/export_febrl.py" "$D/febrl" >&2; }
    log "$s: timing splink, recordlinkage, tamis"
    python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n splink -n recordlinkage -n tamis --json \
      "$(q "$PY") $(q "$BENCH/dedup/run_splink.py") $(q "$F") $(q "$O/splink.csv") > $(q "$O/splink.json")" \
      "$(q "$PY") $(q "$BENCH/dedup/run_recordlinkage.py") $(q "$F") $(q "$O/rl.csv") > $(q "$O/rl.json")" \
      "$(q "$TAMIS") dedup $(q "$F") -o $(q "$O/tamis.csv") --json > $(q "$O/tamis.json")" \
      > "$O/timeit.txt"
    for tool in splink rl tamis; do
      "$PY" "$BENCH/dedup/score_pairs.py" "$O/$tool.csv" "$T" > "$O/score_$tool.json"
    done
    {
      echo "# $s"
      echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n splink -n recordlinkage -n tamis --json \\"
      echo "  \"\$PY ../shared/bench/dedup/run_splink.py \$D/febrl/febrl$n.csv \$O/splink.csv\" \\"
      echo "  \"\$PY ../shared/bench/dedup/run_recordlinkage.py \$D/febrl/febrl$n.csv \$O/rl.csv\" \\"
      echo "  \"target/release/tamis dedup \$D/febrl/febrl$n.csv -o \$O/tamis.csv --json\""
      echo "\$PY ../shared/bench/dedup/score_pairs.py \$O/TOOL.csv \$D/febrl/febrl${n}_truth.csv"
    } >> "$WORK/cmds.txt"
  else
    data "$s"   # F, META, bytes
    T="$D/customers_${s}_truth.csv"
    if [ ! -s "$T" ]; then
      log "writing the truth of $F (regenerating it with --truth; the CSV is byte-identical)"
      "$PY" "$BENCH/gen_customers.py" "$s" "$WORK/regen.csv" --seed 42 --truth "$T.tmp" >&2
      cmp -s "$WORK/regen.csv" "$F" || { log "regenerated $s differs from $F"; exit 1; }
      rm -f "$WORK/regen.csv"; mv "$T.tmp" "$T"
    fi
    rows=$(( $(wc -l < "$F") - 1 ))
    cmd_tamis="$(q "$TAMIS") dedup $(q "$F") -o $(q "$O/tamis.parquet") --json > $(q "$O/tamis.json")"
    if [ "$rows" -le 1000000 ]; then
      log "$s: timing splink, tamis"
      python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n splink -n tamis --json \
        "$(q "$PY") $(q "$ROOT/bench/run_splink_customers.py") $(q "$F") $(q "$O/splink.csv") > $(q "$O/splink.json")" \
        "$cmd_tamis" > "$O/timeit.txt"
      "$PY" "$ROOT/bench/score_customers_dedup.py" "$O/splink.csv" "$T" > "$O/score_splink.json"
    else
      log "$s: timing tamis"
      python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n tamis --json "$cmd_tamis" > "$O/timeit.txt"
    fi
    "$PY" "$ROOT/bench/score_customers_dedup.py" "$O/tamis.parquet" "$T" > "$O/score_tamis.json"
    {
      echo "# customers $s"
      echo "\$PY ../shared/bench/gen_customers.py $s \$D/customers_$s.csv --seed 42 --truth \$D/customers_${s}_truth.csv"
      echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP $([ "$rows" -le 1000000 ] && echo '-n splink ')-n tamis --json \\"
      [ "$rows" -le 1000000 ] && echo "  \"\$PY bench/run_splink_customers.py \$D/customers_$s.csv \$O/splink.csv\" \\"
      echo "  \"target/release/tamis dedup \$D/customers_$s.csv -o \$O/tamis.parquet --json\""
      echo "\$PY bench/score_customers_dedup.py \$O/TOOL.{csv,parquet} \$D/customers_${s}_truth.csv"
    } >> "$WORK/cmds.txt"
  fi
  "$PY" "$ROOT/bench/compare_dedup.py" "$s" "$O" >> "$SEC" || log "$s: some targets not met (see $OUT)"
done

commands_block "$WORK/cmds.txt" "\$PY ../shared/bench/dedup/export_febrl.py \$D/febrl"
write_section
