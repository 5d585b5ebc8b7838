#!/usr/bin/env bash
# Benchmark incremental matching (`tamis dedup BASE --model M --add NEW --clusters-in C`):
# the customers file split into a base (every row but the last 1,000) and new records (one,
# and the last 1,000). The base is matched once with --save-model and --clusters (not timed);
# then, in the same alternating timeit.py rounds, the two incremental runs and a full rerun
# of base + new with the same model. Reports the seconds spent matching the new records
# (from the --json summary: interning, blocking lookups, scoring, clustering), the whole
# commands' wall times (they include reading the base and its cluster table), and whether
# the incremental clusters are the full rerun's. Writes its own section of bench/RESULTS.md,
# between <!-- dedup_incremental:begin --> and <!-- dedup_incremental:end -->.
#
#   bench/dedup_incremental.sh         # 1m
#   bench/dedup_incremental.sh 10m     # another customers size
#   RUNS=5 WARMUP=1 bench/dedup_incremental.sh
#
# TAMIS=/path/to/tamis skips the build; TAMIS_BENCH_RESULTS=F.md writes elsewhere.
set -euo pipefail

NAME=dedup_incremental
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[ $# -gt 0 ] || SIZES=(1m)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-dedup-incr-bench.XXXXXX")"
SEC="$WORK/section.md"
trap 'rm -rf "$WORK"' EXIT
q() { printf '%q' "$1"; }
NEW=1000

prepare   # PY, TAMIS, COMMIT

{
  section_head 'import sys; print(f"python {sys.version.split()[0]}")'
  echo "Target (issue: duplicates): match one new record (or a small batch) against a saved"
  echo "model and cluster table in well under a second, with the clusters a full rerun gives."
  echo "Checked here: one record matched in ≤ 0.1 s and $NEW records in ≤ 1 s (the"
  echo "\`seconds_matching\` of the --json summary), and every row's cluster equal to the full"
  echo "rerun's. The commands' wall times also include reading the base file and its cluster"
  echo "table, which a long-running server does once."
} > "$SEC"

: > "$WORK/cmds.txt"
for s in "${SIZES[@]}"; do
  [[ "$s" =~ ^[0-9]+[km]?$ ]] || { log "bad size '$s'"; exit 2; }
  data "$s"   # F, META, bytes
  O="$WORK/$s"; mkdir -p "$O"
  rows=$(( $(wc -l < "$F") - 1 ))
  head -n $(( rows + 1 - NEW )) "$F" > "$O/base.csv"
  { head -n 1 "$F"; tail -n "$NEW" "$F"; } > "$O/new$NEW.csv"
  { head -n 1 "$F"; sed -n "$(( rows + 2 - NEW ))p" "$F"; } > "$O/new1.csv"
  log "$s: matching the base once (model and cluster table)"
  "$TAMIS" dedup "$O/base.csv" -o "$O/base_pairs.parquet" --clusters "$O/base_clusters.parquet" \
    --save-model "$O/model.json" --json > "$O/base.json"
  incr() {  # N: the incremental command for new$N.csv
    echo "$(q "$TAMIS") dedup $(q "$O/base.csv") --model $(q "$O/model.json") --add $(q "$O/new$1.csv") --clusters-in $(q "$O/base_clusters.parquet") --clusters $(q "$O/clusters_$1.parquet") -o $(q "$O/pairs_$1.parquet") --json > $(q "$O/incr_$1.json")"
  }
  # The full rerun reads base + the same new records, in the same order.
  cat "$O/base.csv" <(tail -n "$NEW" "$F") > "$O/all.csv"
  log "$s: timing incremental (1 and $NEW records) and the full rerun"
  python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n incremental_1 -n "incremental_$NEW" -n full_rerun --json \
    "$(incr 1)" "$(incr "$NEW")" \
    "$(q "$TAMIS") dedup $(q "$O/all.csv") --model $(q "$O/model.json") --clusters $(q "$O/clusters_full.parquet") -o $(q "$O/pairs_full.parquet") --json > $(q "$O/full.json")" \
    > "$O/timeit.txt"
  {
    echo "# customers $s: base = all but the last $NEW rows; new = the last 1 / $NEW rows"
    echo "target/release/tamis dedup \$O/base.csv -o \$O/base_pairs.parquet --clusters \$O/base_clusters.parquet --save-model \$O/model.json"
    echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n incremental_1 -n incremental_$NEW -n full_rerun --json \\"
    echo "  \"target/release/tamis dedup \$O/base.csv --model \$O/model.json --add \$O/new1.csv --clusters-in \$O/base_clusters.parquet --clusters \$O/clusters_1.parquet -o \$O/pairs_1.parquet --json\" \\"
    echo "  \"target/release/tamis dedup \$O/base.csv --model \$O/model.json --add \$O/new$NEW.csv --clusters-in \$O/base_clusters.parquet --clusters \$O/clusters_$NEW.parquet -o \$O/pairs_$NEW.parquet --json\" \\"
    echo "  \"target/release/tamis dedup \$O/all.csv --model \$O/model.json --clusters \$O/clusters_full.parquet -o \$O/pairs_full.parquet --json\""
    echo "\$PY bench/compare_dedup_incremental.py $s \$O $NEW"
  } >> "$WORK/cmds.txt"
  "$PY" "$ROOT/bench/compare_dedup_incremental.py" "$s" "$O" "$NEW" >> "$SEC" || log "$s: some targets not met (see $OUT)"
done

commands_block "$WORK/cmds.txt" "\$PY ../shared/bench/gen_customers.py SIZE \$D/customers_SIZE.csv --seed 42"
write_section
