#!/usr/bin/env bash
# Data API throughput with wrk, as issue 3 asks: 10,000 rows in a table, the server pinned to
# CPU 0 with taskset, wrk (16 connections, 1 thread) pinned to CPU 1, bearer-token auth.
# Operations: point read by id, list of 20 with total, create. Prints wrk's summary for each;
# then the noisy neighbour, the tiny_http "hello" ceiling and the resource layer on/off
# alternated ROUNDS (default 3) times.
# Usage: scripts/bench-http.sh [seconds]   (installs wrk with apt-get if missing)
#        ONLY="point create" scripts/bench-http.sh 5   runs just those operations and stops;
#        ONLY=layer ROUNDS=10 scripts/bench-http.sh      only the layer on/off comparison;
#        ONLY=ceiling ROUNDS=10 scripts/bench-http.sh    only point reads against the hello ceiling
#          (the published tiny_http; HELLO_FORK=1 serves hello through tenantd's fork instead);
#        ONLY=billing ROUNDS=10 scripts/bench-http.sh    point reads with [billing] provider = "local"
#          (the tenant on a priced plan, with its subscription) against billing off, same data;
#        ONLY=versus OTHER=path/to/tenantd ROUNDS=10 scripts/bench-http.sh
#          point reads of this build against another build (say, the last commit's), same data;
#          LOAD_OP=create compares creates instead.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
bin=$PWD/target/release/tenantd
dir=$(mktemp -d)
port=18900
pw='bench-password-2026'
export TENANTD_LOG=quiet
plan=$(cat scripts/bench-plan.toml)
echo "$plan" > "$dir/on.toml"
printf '%s\n[limits]\nenabled = false\n' "$plan" > "$dir/off.toml"
printf '%s\n[cache]\nenabled = false\n' "$plan" > "$dir/nocache.toml"
printf '%s\n[cache]\nenabled = false\n[query_monitor]\nenabled = false\n' "$plan" > "$dir/nomonitor.toml"
printf 'audit_data_changes = false\n%s\n' "$plan" > "$dir/noaudit.toml"
printf '%s\nprice_monthly_cents = 1000\n[billing]\nprovider = "local"\n' "$plan" > "$dir/billing.toml"
export TENANTD_CONFIG="$dir/on.toml"
$bin --data-dir "$dir" init >/dev/null
$bin --data-dir "$dir" tenant create bench --name Bench --plan bench >/dev/null
$bin --data-dir "$dir" user create owner@bench.test --password "$pw" --tenant bench --role owner >/dev/null
db=$($bin --data-dir "$dir" tenant show bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["data_file"])')
python3 - "$db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executemany("INSERT INTO customers(name, email, company, status) VALUES (?, ?, ?, ?)",
              [(f"Customer {i}", f"c{i}@bench.test", f"Company {i % 50}", ("lead", "active", "churned")[i % 3]) for i in range(10000)])
c.commit()
PY
taskset -c 0 "$bin" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"owner@bench.test\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
lua=$(mktemp -d)
cat >"$lua/point.lua" <<'LUA'
math.randomseed(42)
request = function()
  return wrk.format("GET", "/api/v1/t/bench/customers/" .. math.random(1, 10000))
end
LUA
cat >"$lua/create.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name": "Created by wrk", "company": "Load", "status": "lead"}'
wrk.headers["Content-Type"] = "application/json"
LUA
# One wrk slice against a running server: point reads with the token (creates with
# LOAD_OP=create), or plain GETs of the hello server. Prints requests/s.
load() { # load NAME URL SECONDS
  if [ "$1" = hello ]; then
    taskset -c 1 wrk -t1 -c16 -d"$3s" "$2/"
  elif [ "${LOAD_OP:-point}" = create ]; then
    taskset -c 1 wrk -t1 -c16 -d"$3s" -H "Authorization: Bearer $token" -s "$lua/create.lua" "$2/api/v1/t/bench/customers"
  else
    taskset -c 1 wrk -t1 -c16 -d"$3s" -H "Authorization: Bearer $token" -s "$lua/point.lua" "$2"
  fi | awk '/Requests\/sec/ {print $2}'
}

# Two servers run at the same time (both on CPU 0; the idle one costs nothing) and are loaded in
# turn, ROUNDS (default 3) × SLICE (default 2) seconds each, so the VM's slow swings in speed hit
# both alike. Prints both series, their medians, and the median ratio of adjacent slices:
# KIND "cost" reads A as B plus a cost, "share" reads A as a share of B (against the 50%
# target), "versus" compares two builds.
interleave() { # interleave A URL_A B URL_B KIND
  local rounds=${ROUNDS:-3} slice=${SLICE:-2} out="$dir/interleave-$1-$3.txt"
  load "$1" "$2" 2 >/dev/null
  load "$3" "$4" 2 >/dev/null
  echo; echo "== $1 vs $3, loaded in turn, $rounds × ${slice}s slices each (req/s)"
  for _ in $(seq 1 "$rounds"); do
    echo "$1 $(load "$1" "$2" "$slice")" >> "$out"
    echo "$3 $(load "$3" "$4" "$slice")" >> "$out"
  done
  python3 - "$out" "$1" "$3" "$5" <<'PY'
import statistics, sys
path, a, b, kind = sys.argv[1:]
runs = {a: [], b: []}
for line in open(path):
    name, rps = line.split()
    runs[name].append(float(rps))
for name in (a, b):
    print(f"{name}: " + " ".join(f"{x:.0f}" for x in runs[name]))
ma, mb = statistics.median(runs[a]), statistics.median(runs[b])
pair = statistics.median(x / y for x, y in zip(runs[a], runs[b]))
if kind == "versus":
    print(f"median {a} {ma:.0f}, {b} {mb:.0f}: {a} at {100 * ma / mb:.1f}% of {b} "
          f"(median of the {len(runs[a])} adjacent pairs: {100 * pair:.1f}%)")
elif kind == "cost":
    print(f"median {a} {ma:.0f}, {b} {mb:.0f}: the layer costs {100 * (1 - ma / mb):.1f}% of point-read throughput "
          f"(median of the {len(runs[a])} adjacent pairs: {100 * (1 - pair):.1f}%)")
else:
    print(f"median {a} {ma:.0f}, {b} {mb:.0f}: {a} at {100 * ma / mb:.1f}% of {b} "
          f"(median of the {len(runs[a])} adjacent pairs: {100 * pair:.1f}%; target 50%)")
PY
}

wait_ready() { for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && break; sleep 0.1; done; }

# Starts the server under test (on.toml) and a second one (the command in "$@"), loads them in
# turn (see `interleave`), and stops both.
# pair LABEL_A LABEL_B B_URL B_READY_PATH KIND COMMAND...
pair() {
  local alabel=$1 blabel=$2 burl=$3 bready=$4 kind=$5
  shift 5
  taskset -c 0 "$bin" --config "$dir/on.toml" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
  on_pid=$!
  taskset -c 0 "$@" >/dev/null &
  off_pid=$!
  pid=$on_pid
  trap 'kill $on_pid $off_pid 2>/dev/null || true; rm -rf "$dir" "$dir-off"' EXIT
  wait_ready "$base/health/readiness"
  wait_ready "$burl$bready"
  interleave "$alabel" "$base" "$blabel" "$burl" "$kind"
  kill $on_pid $off_pid; wait $on_pid $off_pid 2>/dev/null || true
}

# The resource layer on and off, point reads. The off server gets a copy of the data dir (taken
# while no server runs), so the two processes share no file locks.
layer_rounds() {
  local oport=$((port + 2))
  rm -rf "$dir-off"; cp -a "$dir" "$dir-off"
  pair on off "http://127.0.0.1:$oport" /health/readiness cost \
    "$bin" --config "$dir/off.toml" --data-dir "$dir-off" serve --listen "127.0.0.1:$oport"
  rm -rf "$dir-off"
}

# Point reads against the ceiling: a plain tiny_http "hello" with one worker.
ceiling_rounds() {
  local hport=$((port + 1))
  pair point hello "http://127.0.0.1:$hport" / share "$bin" bench hello --listen "127.0.0.1:$hport" \
    ${HELLO_FORK:+--fork}
}

# Point reads with billing on (provider local, the tenant subscribed) against billing off, each
# server on its own copy of the data.
billing_rounds() {
  local bport=$((port + 4))
  rm -rf "$dir-off"; cp -a "$dir" "$dir-off"
  "$bin" --config "$dir/billing.toml" --data-dir "$dir-off" tenant create paid --name Paid --plan bench >/dev/null
  sqlite3 "$dir-off/catalog.db" "UPDATE billing_subscriptions SET tenant_id = (SELECT id FROM tenants WHERE slug = 'bench') WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'paid')" 2>/dev/null || \
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE billing_subscriptions SET tenant_id = (SELECT id FROM tenants WHERE slug = 'bench') WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'paid')\"); c.commit()" "$dir-off/catalog.db"
  pair off billing "http://127.0.0.1:$bport" /health/readiness versus \
    "$bin" --config "$dir/billing.toml" --data-dir "$dir-off" serve --listen "127.0.0.1:$bport"
  rm -rf "$dir-off"
}

# Point reads of this build against another one (OTHER), each on its own copy of the data.
versus_rounds() {
  local oport=$((port + 3))
  [ -x "${OTHER:-}" ] || { echo "ONLY=versus needs OTHER=path/to/another/tenantd" >&2; exit 2; }
  rm -rf "$dir-off"; cp -a "$dir" "$dir-off"
  pair this other "http://127.0.0.1:$oport" /health/readiness versus \
    "$OTHER" --config "$dir/on.toml" --data-dir "$dir-off" serve --listen "127.0.0.1:$oport"
  rm -rf "$dir-off"
}

echo "machine: $(nproc) cpus, $(uname -r); server on cpu 0, wrk on cpu 1; ${secs}s each"
# Warm the page cache and the server's caches first, so the first measured run is not the cold one.
taskset -c 1 wrk -t1 -c16 -d3s -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" >/dev/null
for op in ${ONLY:-point list create}; do
  [ "$op" = layer ] || [ "$op" = ceiling ] || [ "$op" = versus ] || [ "$op" = billing ] && continue
  echo; echo "== $op"
  case $op in
    point) taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" ;;
    list) taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/t/bench/customers?per_page=20&page=7" ;;
    create) taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/create.lua" "$base/api/v1/t/bench/customers" ;;
  esac | grep -E "Requests/sec|99%|50%|Non-2xx|Socket errors|requests in"
done
if [ -n "${ONLY:-}" ]; then
  if [[ " $ONLY " == *" layer "* ]]; then kill $pid; wait $pid 2>/dev/null || true; layer_rounds; rm -rf "$lua"; exit 0; fi
  if [[ " $ONLY " == *" ceiling "* ]]; then kill $pid; wait $pid 2>/dev/null || true; ceiling_rounds; rm -rf "$lua"; exit 0; fi
  if [[ " $ONLY " == *" versus "* ]]; then kill $pid; wait $pid 2>/dev/null || true; versus_rounds; rm -rf "$lua"; exit 0; fi
  if [[ " $ONLY " == *" billing "* ]]; then kill $pid; wait $pid 2>/dev/null || true; billing_rounds; rm -rf "$lua"; exit 0; fi
  echo "server: $(awk '{printf "utime %.1f s, stime %.1f s", $14/100, $15/100}' "/proc/$pid/stat")"
  curl -fsS "$base/metrics" | grep -E "busy|pool_wait" | grep -v "^#" || true
  exit 0
fi

# The resource layer side by side: the same point reads with limits switched off.
kill $pid; wait $pid 2>/dev/null || true
taskset -c 0 "$bin" --config "$dir/off.toml" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 1 wrk -t1 -c16 -d3s -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" >/dev/null
echo; echo "== point, resource layer OFF (compare with 'point' above)"
taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" \
  | grep -E "Requests/sec|99%|50%|Non-2xx|requests in"
kill $pid; wait $pid 2>/dev/null || true

# The query result cache and statement stats side by side: point reads and lists without the
# cache, then without the cache and the query monitor (compare with 'point' and 'list' above).
for cfg in nocache nomonitor; do
  taskset -c 0 "$bin" --config "$dir/$cfg.toml" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c16 -d3s -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" >/dev/null
  echo; echo "== point, $cfg"
  taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" \
    | grep -E "Requests/sec|99%|50%|Non-2xx|requests in"
  echo; echo "== list, $cfg"
  taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/t/bench/customers?per_page=20&page=7" \
    | grep -E "Requests/sec|99%|50%|Non-2xx|requests in"
  kill $pid; wait $pid 2>/dev/null || true
done

# Audit cost: the same creates without their audit entry.
taskset -c 0 "$bin" --config "$dir/noaudit.toml" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
echo; echo "== create, audit OFF (compare with 'create' above)"
taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/create.lua" "$base/api/v1/t/bench/customers" \
  | grep -E "Requests/sec|99%|50%|Non-2xx|requests in"
kill $pid; wait $pid 2>/dev/null || true

# Noisy neighbour: tenant "noisy" (free plan, 10 req/s) is flooded far past its limit while
# "bench" is measured; compare with bench's figures when noisy is idle.
taskset -c 0 "$bin" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
$bin --data-dir "$dir" tenant create noisy --name Noisy --plan free >/dev/null
$bin --data-dir "$dir" user create owner@noisy.test --password "$pw" --tenant noisy --role owner >/dev/null
sleep 1
ntoken=$(curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"owner@noisy.test\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
echo; echo "== bench alone (4 connections)"
taskset -c 1 wrk -t1 -c4 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" | grep -E "Requests/sec|99%|50%"
echo; echo "== bench while noisy is flooded (16 connections on noisy, mostly 429s)"
taskset -c 1 wrk -t1 -c16 -d"$((secs + 2))s" -H "Authorization: Bearer $ntoken" "$base/api/v1/t/noisy/customers" > "$dir/noisy.txt" &
flood=$!
sleep 1
taskset -c 1 wrk -t1 -c4 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s "$lua/point.lua" "$base" | grep -E "Requests/sec|99%|50%"
wait $flood
echo "noisy flood: $(grep -E 'Requests/sec' "$dir/noisy.txt") ($(grep -E 'Non-2xx' "$dir/noisy.txt" | xargs))"

# The ceiling (issue 6): a plain tiny_http server answering "hello" with one worker, same
# cores, same wrk; then the resource layer on/off alternated ROUNDS times (point reads), since a
# single pair of runs on this VM differs by more than the layer costs.
kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
hport=$((port + 1))
taskset -c 0 "$bin" bench hello --listen "127.0.0.1:$hport" >/dev/null &
hpid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$hport/" >/dev/null 2>&1 && break; sleep 0.1; done
echo; echo "== ceiling: tiny_http hello, one worker"
taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency "http://127.0.0.1:$hport/" | grep -E "Requests/sec|99%|50%"
kill $hpid; wait $hpid 2>/dev/null || true
layer_rounds
rm -rf "$lua"
