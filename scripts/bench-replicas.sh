#!/usr/bin/env bash
# Issue 22's replica measurements, side by side in one run on this machine:
#   1. create throughput with 2 replicas against replicas off (closed loop, 16 clients, 100
#      tenants), alternated ROUNDS times;
#   2. replica lag (commit to applied on the mirror) at 1,000 writes/s over 100 tenants (open
#      loop, 70 s), p50/p99/max of the last 65,536 commits as the server's replicator measured them;
#   3. point reads answered by a replica against the same reads on the primary, alternated.
# Each measurement runs `tenantd loadtest` against a server started for it and stopped after.
# Usage: scripts/bench-replicas.sh   (ROUNDS=3 SECS=10 LAG_SECS=70 RATE=1000 TENANTS=100 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
secs=${SECS:-10}
rate=${RATE:-1000}
tenants=${TENANTS:-100}
port=${PORT:-18931}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
printf '[limits]\nenabled = false\n' > "$dir/off.toml"
printf '[limits]\nenabled = false\n[replicas]\ncount = 2\nread_policy = "replica"\nmax_lag_ms = 1000\n' > "$dir/on.toml"
printf '[limits]\nenabled = false\n[replicas]\ncount = 2\nread_policy = "primary"\n' > "$dir/primary.toml"
for d in off on; do TENANTD_CONFIG="$dir/$d.toml" $bin --data-dir "$dir/$d" init >/dev/null; done

# loadtest against the running server; prints "<req/s> <p50 ms> <p99 ms>" of the one operation.
load() { # data dir, config, loadtest options…
  local d=$1 c=$2
  shift 2
  TENANTD_CONFIG="$c" $bin --data-dir "$d" loadtest --url "http://127.0.0.1:$port" --tenants "$tenants" \
    --rows 1000 --json "$@" >"$dir/out.json" || true
  python3 - "$dir/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f'{r["rps"]:.0f} req/s  p50 {r["p50_ms"]:.2f} ms  p99 {r["p99_ms"]:.2f} ms  errors {r["errors"]}')
PY
}

echo "+ seeding $tenants tenants in each data dir"
for d in off on; do
  serve "$dir/$d" "$dir/$d.toml"
  load "$dir/$d" "$dir/$d.toml" --duration 1s --mix read=100 >/dev/null
  stop
done

echo "+ creates, closed loop, 16 clients, ${secs}s each, alternated $rounds times (req/s p50 p99)"
for i in $(seq 1 "$rounds"); do
  for d in off on; do
    serve "$dir/$d" "$dir/$d.toml"
    echo "round $i replicas $d: $(load "$dir/$d" "$dir/$d.toml" --duration "${secs}s" --mix write=100)"
    stop
  done
done

# The percentiles are over the last 65,536 commits the server applied: a run of 70 s at 1,000/s
# leaves out its first seconds, when each tenant's first commit opens its mirrors.
lag_secs=${LAG_SECS:-70}
echo "+ replica lag at $rate writes/s over $tenants tenants (open loop, ${lag_secs}s; percentiles of the last 65,536 commits)"
serve "$dir/on" "$dir/on.toml"
echo "load: $(load "$dir/on" "$dir/on.toml" --duration "${lag_secs}s" --mix write=100 --rate "$rate")"
sleep 3 # the replicator writes its counters every 2 s
TENANTD_CONFIG="$dir/on.toml" $bin --data-dir "$dir/on" replica status
TENANTD_CONFIG="$dir/on.toml" $bin --data-dir "$dir/on" replica verify | tail -1
stop

echo "+ point reads, closed loop, ${secs}s each, alternated $rounds times (req/s p50 p99)"
for i in $(seq 1 "$rounds"); do
  for c in primary on; do
    serve "$dir/on" "$dir/$c.toml"
    echo "round $i reads from $([ $c = on ] && echo replica || echo primary): $(load "$dir/on" "$dir/$c.toml" --duration "${secs}s" --mix read=100)"
    stop
  done
done
