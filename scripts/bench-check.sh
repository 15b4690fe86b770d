#!/usr/bin/env bash
# How long `tenantd check` takes on a data dir of many tenants (docs/testing.md): TENANTS
# tenants made by `tenantd loadtest` (50 rows each), then the whole command timed, ROUNDS times.
#   TENANTS=1000 ROUNDS=3 scripts/bench-check.sh [target/release/tenantd]
set -euo pipefail
bin=$(realpath "${1:-target/release/tenantd}")
tenants=${TENANTS:-1000}
rounds=${ROUNDS:-3}
port=${PORT:-18931}
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export TENANTD_LOG=quiet
"$bin" --data-dir "$dir/d" init >/dev/null
"$bin" --data-dir "$dir/d" serve --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" --data-dir "$dir/d" loadtest --url "http://127.0.0.1:$port" --tenants "$tenants" --rows 50 \
  --duration 500ms --concurrency 2 --json >/dev/null
kill -TERM $pid; wait $pid; pid=""
echo "data dir: $(ls "$dir/d/tenants" | wc -l) tenants, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
for r in $(seq 1 "$rounds"); do
  t0=$(date +%s%N)
  out=$("$bin" --data-dir "$dir/d" check --quiet)
  t1=$(date +%s%N)
  echo "round $r: $(( (t1 - t0) / 1000000 )) ms for the whole command; $(grep 'check result' <<<"$out")"
done
