#!/usr/bin/env bash
# Builds a profile-guided (PGO) release binary of tamis and prints its path on stdout.
#
#   scripts/build-pgo.sh                       # -> $TAMIS_PGO_DIR/use/release/tamis
#   TAMIS=$(scripts/build-pgo.sh) bench/profile.sh 1m 10m
#
# Three steps, as rustc's own PGO guide gives them
# (https://doc.rust-lang.org/rustc/profile-guided-optimization.html):
#   1. an instrumented release build (-Cprofile-generate), in its own target directory;
#   2. a training run: the jobs tamis is for (profile, suggest, clean with provenance,
#      contract check, pii scan, dedup) on a training set that is NOT the benchmark's: a
#      300,000-row customers table from the kit's generator with seed 7 (the benchmarks use
#      seed 42 at 1M and 10M rows), the committed examples/, and JSON Lines and Parquet
#      copies of the training table (so the other readers are trained too);
#   3. an optimised release build (-Cprofile-use) with the merged profile.
# The plain `cargo build --release` stays what the README and the tests use; this build
# only changes how the same code is laid out and inlined, never what it computes.
#
# Needs llvm-profdata of the LLVM major version rustc was built with (`rustc -vV`); when it
# is missing, the Debian package llvm-<major> is installed (apt-get, as root or via sudo).
# Each build is a full release build in its own target directory (33 and 28 minutes on the
# 2-core benchmark machine); TAMIS_PGO_DIR (default ~/.cache/tamis-pgo) keeps them between runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$(cd "$ROOT/../shared/bench" && pwd)"
BASE="${TAMIS_PGO_DIR:-$HOME/.cache/tamis-pgo}"
log() { echo "build-pgo.sh: $*" >&2; }

major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[ -n "$major" ] || { log "cannot read rustc's LLVM version from 'rustc -vV'"; exit 1; }
PROFDATA="$(command -v "llvm-profdata-$major" || true)"
if [ -z "$PROFDATA" ]; then
  log "installing llvm-$major for llvm-profdata-$major"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get install -y -q "llvm-$major" >&2 \
    || { $sudo_ apt-get update -q >&2 && $sudo_ apt-get install -y -q "llvm-$major" >&2; }
  PROFDATA="$(command -v "llvm-profdata-$major")"
fi

RAW="$BASE/raw"
TRAIN="$BASE/train"
rm -rf "$RAW"
mkdir -p "$RAW" "$TRAIN"

log "1/3 instrumented build (target $BASE/gen)"
(cd "$ROOT" && CARGO_TARGET_DIR="$BASE/gen" RUSTFLAGS="-Cprofile-generate=$RAW" \
  cargo build --release --locked -p tamis-cli >&2)
GEN="$BASE/gen/release/tamis"

log "2/3 training run (data in $TRAIN)"
PY="$(bash "$BENCH/setup.sh")"
T="$TRAIN/customers_300k.csv"
if [ ! -s "$T" ]; then
  "$PY" "$BENCH/gen_customers.py" 300000 "$T" --seed 7 >&2
fi
if [ ! -s "$TRAIN/customers_300k.parquet" ]; then
  "$PY" - "$T" "$TRAIN/customers_300k.jsonl" "$TRAIN/customers_300k.parquet" <<'EOF'
import sys, polars as pl
src, jsonl, parquet = sys.argv[1:]
df = pl.read_csv(src, infer_schema_length=0)
df.write_ndjson(jsonl)
df.write_parquet(parquet)
EOF
fi
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
for f in "$T" "$TRAIN/customers_300k.jsonl" "$TRAIN/customers_300k.parquet" "$ROOT/examples/customers.csv"; do
  "$GEN" profile "$f" --json --no-progress > /dev/null
done
"$GEN" profile "$ROOT/examples/customers.csv" --html "$W/report.html" --no-progress > /dev/null
"$GEN" suggest "$T" > "$W/plan.yaml"
"$GEN" clean "$T" --plan "$W/plan.yaml" -o "$W/clean.parquet" --no-progress > /dev/null
"$GEN" clean "$T" --plan "$W/plan.yaml" -o "$W/clean.csv" --no-progress > /dev/null
"$GEN" contract infer "$T" -o "$W/contract.yaml" > /dev/null
# A contract check exits 4 when a rule fails, which the messy table's rows do.
rc=0
"$GEN" check "$T" --contract "$W/contract.yaml" -o "$W/failures.parquet" > /dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || { log "training: tamis check exited $rc"; exit 1; }
"$GEN" pii scan "$T" --json > /dev/null
"$GEN" dedup "$ROOT/examples/customers.csv" -o "$W/pairs.csv" --json > /dev/null
ls "$RAW"/*.profraw > /dev/null

log "merging $(ls "$RAW" | wc -l) profiles with $PROFDATA"
"$PROFDATA" merge -o "$BASE/merged.profdata" "$RAW"

log "3/3 optimised build (target $BASE/use)"
(cd "$ROOT" && CARGO_TARGET_DIR="$BASE/use" RUSTFLAGS="-Cprofile-use=$BASE/merged.profdata" \
  cargo build --release --locked -p tamis-cli >&2)
echo "$BASE/use/release/tamis"
