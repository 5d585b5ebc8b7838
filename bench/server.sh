#!/usr/bin/env bash
# Benchmark `tamis serve` on this machine (SQLite default, one in-process worker), with wrk
# (Debian `wrk`, installed here when missing) on the same cores:
#
#   - GET /api/v1/jobs/{id} with a session token: requests/s and p99 (target ≥ 5,000 req/s,
#     p99 < 10 ms);
#   - 100 concurrent clients reading a dataset's profile: p95 (target < 50 ms);
#   - a 100 MB upload: seconds from its last byte to the 202 (target < 1 s);
#   - live logs: latency from a line's write to its arrival over the WebSocket (target < 100 ms).
#
# Writes its section of bench/RESULTS.md between <!-- server:begin --> and <!-- server:end -->.
#
#   bench/server.sh
#   DURATION=30 bench/server.sh
#
# TAMIS=/path/to/tamis skips the build; TAMIS_BENCH_RESULTS=F.md writes elsewhere.
set -euo pipefail

NAME=server
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" 1m
DURATION="${DURATION:-20}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tamis-server-bench.XXXXXX")"
SEC="$WORK/section.md"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

prepare   # PY, TAMIS, COMMIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
log "starting tamis serve on $ADDR"
"$TAMIS" serve --demo --addr "$ADDR" --data-dir "$WORK/data" --database-url "sqlite://$WORK/meta/tamis.db" \
  --user-tier unlimited > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -fs "http://$ADDR/ready" >/dev/null 2>&1 && break; sleep 0.2; done

TOKEN=$(curl -fs -X POST "http://$ADDR/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"admin@demo.tamis","password":"tamis-demo-admin"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
auth=(-H "Authorization: Bearer $TOKEN")
for _ in $(seq 300); do
  JOBS=$(curl -fs "${auth[@]}" "http://$ADDR/api/v1/jobs?kind=profile")
  [ "$(echo "$JOBS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["state"])')" = succeeded ] && break
  sleep 0.2
done
JOB=$(echo "$JOBS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["id"])')
DS=$(echo "$JOBS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["dataset_id"])')

# wrk's report, as one JSON line: requests/s, latency percentiles (ms), non-2xx, errors.
cat > "$WORK/report.lua" <<'EOF'
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status >= 300 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "rps": %.1f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "socket_errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout))
end
EOF
# (wrk runs `response` per thread; non-2xx answers are checked separately below.)

log "wrk: GET /api/v1/jobs/{id}"
wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/report.lua" "${auth[@]}" "http://$ADDR/api/v1/jobs/$JOB" > "$WORK/jobs.txt"
log "wrk: 100 clients reading the profile"
wrk -t2 -c100 -d"${DURATION}s" -s "$WORK/report.lua" "${auth[@]}" "http://$ADDR/api/v1/datasets/$DS/profile" > "$WORK/profile.txt"
STATUS_JOB=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "http://$ADDR/api/v1/jobs/$JOB")
STATUS_PROFILE=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "http://$ADDR/api/v1/datasets/$DS/profile")

log "a 100 MB upload"
data 1m   # F
head -c 100000000 "$F" > "$WORK/upload.csv"
python3 "$ROOT/bench/server_probe.py" upload "$ADDR" "$TOKEN" "$WORK/upload.csv" upload100mb > "$WORK/upload.json"

BIG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["answer"]["dataset_id"])' "$WORK/upload.json")
log "live log latency (3 profile jobs of the 100 MB upload: progress lines each second)"
python3 "$ROOT/bench/server_probe.py" live "$ADDR" "$TOKEN" "$BIG" 3 > "$WORK/live.json"

PROFILE_BYTES=$(curl -s "${auth[@]}" "http://$ADDR/api/v1/datasets/$DS/profile" | wc -c)
{
  section_head 'import sys; print(f"python {sys.version.split()[0]}")'
  echo "wrk: $(wrk --version 2>&1 | head -1)"
  echo
  echo "Targets (issue: platform): \`GET /api/v1/jobs/{id}\` ≥ 5,000 req/s with p99 < 10 ms; 100"
  echo "concurrent clients reading profiles p95 < 50 ms; a 100 MB upload acknowledged < 1 s after"
  echo "its last byte; live log latency < 100 ms. The server (SQLite, one worker, JSON request"
  echo "logs to a file) and wrk share this machine's $(nproc) cores."
  echo
  "$PY" - "$WORK" "$STATUS_JOB" "$STATUS_PROFILE" "$PROFILE_BYTES" <<'EOF'
import json, sys
w, sj, sp, pbytes = sys.argv[1:5]
jobs = json.loads(open(f"{w}/jobs.txt").read().strip().splitlines()[-1])
prof = json.loads(open(f"{w}/profile.txt").read().strip().splitlines()[-1])
up = json.loads(open(f"{w}/upload.json").read())
live = json.loads(open(f"{w}/live.json").read())
ok = lambda b: "met" if b else "**not met**"
print("| measure | result | target | |")
print("|---|---|---|---|")
print(f"| GET /api/v1/jobs/{{id}} (32 connections; answers {sj}) | {jobs['rps']:,.0f} req/s, p50 {jobs['p50_ms']:.2f} ms, p99 {jobs['p99_ms']:.2f} ms, {jobs['socket_errors']} socket errors | ≥ 5,000 req/s, p99 < 10 ms | {ok(jobs['rps'] >= 5000 and jobs['p99_ms'] < 10)} |")
print(f"| GET /api/v1/datasets/{{id}}/profile, 100 connections ({int(pbytes):,} bytes each; answers {sp}) | {prof['rps']:,.0f} req/s, p95 {prof['p95_ms']:.2f} ms, p99 {prof['p99_ms']:.2f} ms | p95 < 50 ms | {ok(prof['p95_ms'] < 50)} |")
print(f"| 100 MB upload ({up['bytes']:,} bytes, HTTP {up['status']}) | answered {up['ack_after_last_byte_s']*1000:.0f} ms after the last byte (whole upload {up['upload_s']:.2f} s) | < 1 s | {ok(up['status'] == 202 and up['ack_after_last_byte_s'] < 1)} |")
print(f"| live log lines over WebSocket ({live['lines']} lines of 3 profile jobs of the 100 MB file) | p50 {live['p50_ms']:.1f} ms, p95 {live['p95_ms']:.1f} ms, max {live['max_ms']:.1f} ms | < 100 ms | {ok(live['lines'] > 0 and live['p95_ms'] < 100)} |")
EOF
} > "$SEC"

cat > "$WORK/cmds.txt" <<EOF
target/release/tamis serve --demo --addr 127.0.0.1:PORT --data-dir \$O/data --database-url sqlite://\$O/meta/tamis.db --user-tier unlimited 2> \$O/serve.log &
TOKEN=\$(curl -s -X POST http://127.0.0.1:PORT/api/v1/auth/login -H 'Content-Type: application/json' -d '{"email":"admin@demo.tamis","password":"tamis-demo-admin"}' | jq -r .token)
wrk -t2 -c32 -d${DURATION}s -s report.lua -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:PORT/api/v1/jobs/JOB
wrk -t2 -c100 -d${DURATION}s -s report.lua -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:PORT/api/v1/datasets/DS/profile
head -c 100000000 \$D/customers_1m.csv > \$O/upload.csv
python3 bench/server_probe.py upload 127.0.0.1:PORT \$TOKEN \$O/upload.csv upload100mb
python3 bench/server_probe.py live 127.0.0.1:PORT \$TOKEN BIG_DS 3   # BIG_DS: the upload's dataset
EOF
commands_block "$WORK/cmds.txt" "# report.lua: the Lua reporter in bench/server.sh (requests/s and latency percentiles)"
write_section
