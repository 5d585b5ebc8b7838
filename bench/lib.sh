# Shared by bench/profile.sh, bench/clean.sh and bench/pii.sh, which set NAME (profile, clean,
# pii: the tamis command, the section of bench/RESULTS.md and the prefix of log lines) and then
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"   # the sizes to run
#
# This sets ROOT, BENCH, D, RUNS, WARMUP, SIZES and OUT, and defines the helpers below. The
# caller makes WORK (a temporary directory) and SEC (its section, built in $WORK).
#
# Overrides, for trying a script out (defaults unchanged without them):
#   TAMIS=/path/to/tamis      use this binary instead of building target/release/tamis
#   TAMIS_BENCH_RESULTS=F.md  write the section into F.md instead of bench/RESULTS.md
#   TAMIS_PGO=1               time the profile-guided build of scripts/build-pgo.sh as tamis,
#                             and the plain release build (TAMIS, or built) as tamis_plain in
#                             the same alternating rounds (profile.sh and clean.sh)
#   TAMIS_PLAIN=/path/to/tamis  with TAMIS: time this binary as tamis_plain too (no PGO build)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$(cd "$ROOT/../shared/bench" && pwd)"
D="${TAMIS_BENCH_DATA:-$HOME/.cache/tamis-bench/data}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-1}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1m 10m)
OUT="${TAMIS_BENCH_RESULTS:-$ROOT/bench/RESULTS.md}"

log() { echo "$NAME.sh: $*" >&2; }

# The kit's Python (PY), the data directory, a release build of tamis (TAMIS; or the binary
# the caller's TAMIS names, not built) and the commit (COMMIT), read before RESULTS.md is
# rewritten (it is tracked, so rewriting it dirties the tree).
prepare() {
  PY="$(bash "$BENCH/setup.sh")"
  mkdir -p "$D"

  if [ -n "${TAMIS:-}" ]; then
    log "using TAMIS=$TAMIS (not building)"
  else
    log "building tamis (release)"
    (cd "$ROOT" && cargo build --release --locked -p tamis-cli >&2)
    TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    TAMIS="$TARGET_DIR/release/tamis"
  fi
  if [ "${TAMIS_PGO:-0}" = 1 ] && [ -z "${TAMIS_PLAIN:-}" ]; then
    log "building the profile-guided binary (scripts/build-pgo.sh)"
    TAMIS_PLAIN="$TAMIS"
    TAMIS="$("$ROOT/scripts/build-pgo.sh")"
  fi
  "$TAMIS" --version >&2
  [ -z "${TAMIS_PLAIN:-}" ] || log "also timing TAMIS_PLAIN=$TAMIS_PLAIN as tamis_plain"

  COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  (cd "$ROOT" && git diff --quiet -- . ':!bench/RESULTS.md' 2>/dev/null) || COMMIT="$COMMIT (with uncommitted changes)"
}

# section_head [PYCODE]: the head of the section on stdout: title, how it was written, date,
# commit, machine, tools (PYCODE, run by the kit's Python, prints the reference tools'
# versions; default DuckDB's and Polars'), load average; then a blank line, for the caller's
# targets.
section_head() {
  local tools_py="${1:-}"
  [ -n "$tools_py" ] || tools_py='import duckdb, polars, sys; print(f"duckdb {duckdb.__version__}, polars {polars.__version__}, python {sys.version.split()[0]}")'
  echo "# Benchmark results: \`tamis $NAME\`"
  echo
  echo "Written by \`bench/$NAME.sh ${SIZES[*]}\` (RUNS=$RUNS, WARMUP=$WARMUP)."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $COMMIT"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- tools: $("$TAMIS" --version), $("$PY" -c "$tools_py")"
  if [ "${TAMIS_PGO:-0}" = 1 ]; then
    echo "- builds: **tamis** is the profile-guided build of \`scripts/build-pgo.sh\` (trained on its"
    echo "  own data, not this benchmark's); **tamis_plain** is \`cargo build --release\` of the same"
    echo "  commit, timed in the same alternating rounds"
  elif [ -n "${TAMIS_PLAIN:-}" ]; then
    echo "- builds: **tamis** is \`$TAMIS\`, **tamis_plain** is \`$TAMIS_PLAIN\`, timed in the same"
    echo "  alternating rounds"
  fi
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
}

# data SIZE: the customers table of SIZE rows (gen_customers.py notation) in $D, generated once
# (seed 42, shared by the scripts). Sets F (the CSV), META (the generator's facts) and bytes.
data() {
  F="$D/customers_${1}.csv"
  META="$D/customers_${1}_meta.json"
  if [ ! -s "$F" ]; then
    log "generating $F"
    "$PY" "$BENCH/gen_customers.py" "$1" "$F" --seed 42 --meta "$META" >&2
  fi
  bytes=$(stat -c %s "$F")
}

# time_size SIZE NAME1 NAME2 CMD1 CMD2 CMD3 [CMD4]: one alternating timeit.py run of the three
# commands (the third is tamis) into $WORK/timeit_SIZE.txt. With TAMIS_PLAIN, a fourth,
# tamis_plain: CMD4, or CMD3 with the plain binary.
time_size() {
  log "timing $1 ($bytes bytes)"
  local names=(-n "$2" -n "$3" -n tamis) cmds=("$4" "$5" "$6")
  if [ -n "${TAMIS_PLAIN:-}" ]; then
    names+=(-n tamis_plain)
    cmds+=("${7:-${6//"$TAMIS"/"$TAMIS_PLAIN"}}")
  fi
  python3 "$BENCH/timeit.py" -r "$RUNS" -w "$WARMUP" "${names[@]}" --json \
    "${cmds[@]}" > "$WORK/timeit_$1.txt"
}

# The start of the section's "Commands" block on stdout: the kit's Python and the data, then
# the caller's timeit.py line for the tools NAME1 NAME2 (and tamis), and its commands.
commands_head() {
  echo
  echo "## Commands"
  echo
  echo '```bash'
  echo "PY=\$(bash ../shared/bench/setup.sh)"
  echo "\$PY ../shared/bench/gen_customers.py SIZE \$D/customers_SIZE.csv --seed 42"
  if [ -n "${TAMIS_PLAIN:-}" ]; then
    echo "# TAMIS_PGO=1 (or TAMIS=A TAMIS_PLAIN=B): the tamis command below runs the profile-guided"
    echo "# build (A), and the same command with target/release/tamis (B; in clean.sh writing"
    echo "# \$O/OUT_plain.parquet) is timed after it as -n tamis_plain"
  fi
  echo "python3 ../shared/bench/timeit.py -r $RUNS -w $WARMUP -n $1 -n $2 -n tamis --json \\"
}

# commands_block CMDS [LINE...]: the section's "Commands" block, appended to $SEC: the kit's
# Python and the data directory, the LINEs (set-up commands), then the file CMDS.
commands_block() {
  local cmds="$1"; shift
  {
    echo
    echo "## Commands"
    echo
    echo '```bash'
    echo "PY=\$(bash ../shared/bench/setup.sh)"
    echo "D=\${TAMIS_BENCH_DATA:-\$HOME/.cache/tamis-bench/data} O=\$(mktemp -d)"
    local l
    for l in "$@"; do echo "$l"; done
    sed 's/ *$//' "$cmds"
    echo '```'
  } >> "$SEC"
}

# Ends the section (load average at end) and splices it into $OUT in place of the old one.
write_section() {
  {
    echo
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >> "$SEC"
  "$PY" "$ROOT/bench/results_section.py" "$OUT" "$NAME" < "$SEC"
  log "wrote the $NAME section of $OUT"
}
