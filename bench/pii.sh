#!/usr/bin/env bash
# Benchmark `tamis pii scan` against pattern-only Presidio (../shared/bench/pii/run_presidio.py)
# on the kit's Faker PII table (pii/make_table.py) and on tables of other Faker locales
# (bench/pii_locale_table.py): both tools label every non-empty cell (PRED.csv:
# row,column,entity_type), eval_pii.py scores both on the same cells (per-type precision /
# recall / F1, column accuracy, distractor cells labelled), and CPU time per cell is measured
# (tamis: timeit.py on the whole table, whole process; Presidio: run_presidio.py's own
# analysis-only figure, and its whole process in one timeit.py round). Writes its own section
# of bench/RESULTS.md, between the lines <!-- pii:begin --> and <!-- pii:end -->; other
# sections (bench/profile.sh's, bench/clean.sh's) are kept.
#
#   bench/pii.sh          # en_US:20000:2000 de_DE:5000 fr_FR:5000, RUNS=3 after WARMUP=1
#   bench/pii.sh de_DE:5000 fr_FR:2000            # tables to run
#   RUNS=5 bench/pii.sh en_US:20000               # more rounds of tamis
#   KEEP=1 bench/pii.sh                           # keep predictions, scores, SCAN.json
#
# A table is LOCALE:ROWS[:SAMPLE]. en_US is the kit's own table (make_table.py: names 80%
# en_US, its phone / IBAN mixes; with 20000 rows and the default seed it is the table of the
# README's anchor figures); any other Faker locale is pii_locale_table.py --locale LOCALE.
# SAMPLE N runs Presidio on run_presidio.py --sample N only (about 0.6 ms of CPU per cell: the
# whole 20,000-row table is about 4 minutes of one core) and scores both tools with
# eval_pii.py --sample N, on the same rows; tamis still labels (and is timed on) the whole
# table, and is also scored on all rows, where the issue's targets are checked. Without SAMPLE
# both run on the whole table.
#
# Tables go to ${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data} (pii_LOCALE_ROWS.csv and
# pii_LOCALE_ROWS_truth.csv, seed 20240607, generated once). TAMIS=/path/to/tamis skips the
# build, TAMIS_BENCH_RESULTS=F.md writes the section elsewhere (see bench/lib.sh). Needs
# Python >= 3.11 for the kit's venv (created by its setup.sh).
set -euo pipefail

NAME=pii
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"   # ROOT, BENCH, D, RUNS, WARMUP, SIZES, OUT, helpers
[ $# -gt 0 ] || SIZES=(en_US:20000:2000 de_DE:5000 fr_FR:5000)
KEEP="${KEEP:-0}"
SEED=20240607   # make_table.py's default: the anchor table
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-pii-bench.XXXXXX")"
SEC="$WORK/section.md"   # this script's section, spliced into $OUT at the end
CMDS="$WORK/commands.txt"   # the commands run, for the section's Commands block
cleanup() {
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

q() { printf '%q' "$1"; }   # quote a path for the sh -c command lines timeit.py runs

for spec in "${SIZES[@]}"; do   # check the table specs before building anything
  [[ "$spec" =~ ^[A-Za-z]{2,3}(_[A-Za-z]{2})?:[1-9][0-9]*(:[1-9][0-9]*)?$ ]] \
    || { log "bad table '$spec': want LOCALE:ROWS[:SAMPLE], e.g. en_US:20000:2000 or de_DE:5000"; exit 2; }
  IFS=: read -r _ r s <<< "$spec"
  [ -z "$s" ] || [ "$s" -le "$r" ] || { log "bad table '$spec': SAMPLE > ROWS"; exit 2; }
done

prepare   # PY, TAMIS, COMMIT

# pii_data LOCALE ROWS: the table and its truth in $D, generated once. Sets T, TR and GEN (the
# generating command, for the Commands block, with $D for the data directory).
pii_data() {
  T="$D/pii_${1}_${2}.csv"
  TR="$D/pii_${1}_${2}_truth.csv"
  if [ "$1" = en_US ]; then
    GEN="\$PY ../shared/bench/pii/make_table.py \$D/pii_${1}_${2}.csv \$D/pii_${1}_${2}_truth.csv --rows $2 --seed $SEED"
  else
    GEN="\$PY bench/pii_locale_table.py \$D/pii_${1}_${2}.csv \$D/pii_${1}_${2}_truth.csv --locale $1 --rows $2 --seed $SEED"
  fi
  if [ ! -s "$T" ] || [ ! -s "$TR" ]; then
    log "generating $T"
    if [ "$1" = en_US ]; then
      "$PY" "$BENCH/pii/make_table.py" "$T.tmp" "$TR" --rows "$2" --seed "$SEED" >&2
    else
      "$PY" "$ROOT/bench/pii_locale_table.py" "$T.tmp" "$TR" --locale "$1" --rows "$2" --seed "$SEED" >&2
    fi
    mv "$T.tmp" "$T"   # a half-written table is never reused
  fi
}

{
  section_head 'import importlib.metadata as m, sys; p, f = m.version("presidio-analyzer"), m.version("faker"); print(f"presidio-analyzer {p} (pattern recognizers only), faker {f}, python {sys.version.split()[0]}")'
  echo "Targets (issue: PII detection): column classification 19/19; cell F1 ≥ 0.99 on every"
  echo "structured type (EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE,"
  echo "URL) and ≥ 0.95 on PERSON and STREET_ADDRESS; ≤ 0.05 ms CPU per cell (pattern-only"
  echo "Presidio: 0.56). Every non-empty cell gets at most one label (\`row,column,entity_type\`),"
  echo "scored by the kit's eval_pii.py against the column's true type (distractor columns: NONE);"
  echo "column calls are eval_pii.py's rule50 (the label of ≥ 50 % of a column's cells) and, for"
  echo "tamis, its own \`pii_type\` in SCAN.json. tamis's CPU per cell is the whole process"
  echo "(start-up and CSV reading included) over the table's non-empty cells, median of the"
  echo "timed rounds; Presidio's is run_presidio.py's own figure (analysis only: engine start-up"
  echo "and CSV reading excluded), its whole process given beside it. The targets are the"
  echo "issue's for the kit's table; they are marked on the other locales' tables too."
} > "$SEC"

: > "$CMDS"
for spec in "${SIZES[@]}"; do
  IFS=: read -r loc rows sample <<< "$spec"
  pii_data "$loc" "$rows"   # T, TR, GEN
  O="$WORK/${loc}_${rows}"
  mkdir -p "$O"
  samp=()
  [ -z "$sample" ] || samp=(--sample "$sample")

  # tamis first: it takes seconds, Presidio minutes
  log "$spec: tamis ($RUNS rounds after $WARMUP warm-up)"
  cmd_tamis="$(q "$TAMIS") pii scan $(q "$T") --cells $(q "$O/tamis.csv") --json > $(q "$O/scan.json")"
  python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" -n tamis --json "$cmd_tamis" > "$O/timeit_tamis.txt"

  log "$spec: Presidio (one run${sample:+, --sample $sample})"
  cmd_presidio="$(q "$PY") $(q "$BENCH/pii/run_presidio.py") $(q "$T") $(q "$O/presidio.csv") ${samp[*]} > $(q "$O/presidio_run.txt")"
  python3 "$BENCH/timeit.py" -r 1 -w 0 -n presidio --json "$cmd_presidio" > "$O/timeit_presidio.txt"

  # The outputs of the last round are left in place: score them.
  log "$spec: scoring"
  "$PY" "$BENCH/pii/eval_pii.py" "$T" "$TR" "$O/presidio.csv" "${samp[@]}" > "$O/eval_presidio.json"
  if [ "$loc" = en_US ]; then
    title="The kit's table (make_table.py): $(numfmt --grouping "$rows") rows"
  else
    title="$loc table (pii_locale_table.py --locale $loc): $(numfmt --grouping "$rows") rows"
  fi
  all=()
  [ -z "$sample" ] || all=(--tamis-eval-all "$O/eval_tamis_all.json")
  if ! { "$PY" "$BENCH/pii/eval_pii.py" "$T" "$TR" "$O/tamis.csv" "${samp[@]}" > "$O/eval_tamis.json" \
         && { [ -z "$sample" ] || "$PY" "$BENCH/pii/eval_pii.py" "$T" "$TR" "$O/tamis.csv" > "$O/eval_tamis_all.json"; }
       } 2> "$O/eval_tamis.err"; then
    log "$spec: eval_pii.py rejected tamis's PRED.csv: $(tail -n1 "$O/eval_tamis.err")"
    printf '\n## %s\n\n**eval_pii.py rejected tamis'"'"'s PRED.csv:** `%s`\n' "$title" "$(tail -n1 "$O/eval_tamis.err")" >> "$SEC"
    continue
  fi
  "$PY" "$ROOT/bench/compare_pii.py" \
    --truth "$TR" \
    --presidio-eval "$O/eval_presidio.json" --tamis-eval "$O/eval_tamis.json" "${all[@]}" \
    --presidio-run "$O/presidio_run.txt" --presidio-timeit "$O/timeit_presidio.txt" \
    --tamis-timeit "$O/timeit_tamis.txt" --scan "$O/scan.json" \
    "${samp[@]}" --title "$title" >> "$SEC" \
    || log "$spec: some targets not met (see $OUT)"

  {
    echo "# $spec"
    echo "$GEN"
    echo "T=\$D/pii_${loc}_${rows}.csv TR=\$D/pii_${loc}_${rows}_truth.csv"
    echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n tamis --json \\"
    echo "  \"target/release/tamis pii scan \$T --cells \$O/tamis.csv --json > \$O/scan.json\""
    echo "python3 ../shared/bench/timeit.py -r 1 -w 0 -n presidio --json \\"
    echo "  \"\$PY ../shared/bench/pii/run_presidio.py \$T \$O/presidio.csv ${samp[*]}${samp[*]:+ }> \$O/presidio_run.txt\""
    echo "\$PY ../shared/bench/pii/eval_pii.py \$T \$TR \$O/presidio.csv ${samp[*]}"
    echo "\$PY ../shared/bench/pii/eval_pii.py \$T \$TR \$O/tamis.csv ${samp[*]}"
    [ -z "$sample" ] || echo "\$PY ../shared/bench/pii/eval_pii.py \$T \$TR \$O/tamis.csv   # all rows"
  } >> "$CMDS"
done

commands_block "$CMDS"
write_section
