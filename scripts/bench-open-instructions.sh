#!/usr/bin/env bash
# Instructions per request and per tenant open under the Zipf load (issue 6), counted by
# callgrind: this VM exposes no hardware counters to `perf stat`, and requests/s move by a third
# between runs, so a change worth a few percent shows only as instruction counts.
#
# Provisions N tenants × 1,000 rows once, then for each binary given (default: the release
# build): a fresh copy of that data, the server under callgrind (pinned to CPU 0, instrumentation
# off), one Zipf loadtest (mix read 80 / list 10 / write 10, 16 connections, on CPU 1) of
# WARM + MEASURE seconds, instrumentation on for the last MEASURE seconds only. One loadtest
# run, because each loadtest start mints API keys, which moves the catalog generation and
# clears the server's caches. Prints instructions per tenant lookup (≈ per request), the miss
# share, the inclusive instructions of `TenantStore::get` per miss (the cost of an open), and the
# usage flush's (`limits::flush_usage`) share of all instructions.
#   flock /tmp/tenantd-cargo.lock scripts/bench-open-instructions.sh [BIN …]
#   env: TENANTS (10000), WARM (40 s), MEASURE (38 s), KEEP (a dir to keep the last binary's callgrind profiles in)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/callgrind-common.sh
n=${TENANTS:-10000}
warm=${WARM:-40}
measure=${MEASURE:-38}
if [ $# -eq 0 ]; then
  cargo build --release -q
  set -- "$PWD/target/release/tenantd"
fi
cg_setup 18953
# Provision once, with the first binary (the data layout is the same for all).
cg_provision "$1" "$n"
echo "machine: $(nproc) cpus, $(uname -r); $n tenants; warm-up ${warm}s, counted ${measure}s"

for bin in "$@"; do
  cg_fresh_data
  out="$dir/callgrind.out"
  taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$bin" --data-dir "$dir/data" serve --listen "127.0.0.1:$port" 2>"$dir/valgrind.err" &
  pid=$!
  ready
  taskset -c 1 "$bin" --data-dir "$dir/data" loadtest --url "$base" --plan bench --rows 1000 --tenants "$n" \
    --distribution zipf --concurrency 16 --duration "$((warm + measure + 2))s" --json >/dev/null 2>"$dir/lt.err" &
  lt=$!
  while kill -0 $lt 2>/dev/null && ! grep -q "loadtest: running" "$dir/lt.err"; do sleep 0.05; done
  sleep "$warm"
  h0=$(metric tenantd_tenant_lru_hits_total); m0=$(metric tenantd_tenant_lru_misses_total)
  callgrind_control -i on $pid >/dev/null 2>&1
  sleep "$measure"
  callgrind_control -i off $pid >/dev/null 2>&1
  h1=$(metric tenantd_tenant_lru_hits_total); m1=$(metric tenantd_tenant_lru_misses_total)
  wait $lt || true
  kill $pid; wait $pid 2>/dev/null || true; pid=
  total=$(awk '/^totals:/ {print $2}' "$out")
  get=$(cg_inclusive "$out" tenantd::store::TenantStore::get)
  flush=$(cg_inclusive "$out" tenantd::limits::flush_usage)
  python3 - "$bin" "$total" "$get" "$((h1 - h0))" "$((m1 - m0))" "$flush" <<'PY'
import sys
bin, total, get, hits, misses, flush = sys.argv[1], *map(int, sys.argv[2:7])
lookups = max(1, hits + misses)
print(f"{bin}: {lookups} lookups, {misses / lookups:.2f} missed; {total / lookups / 1e3:.0f}k instructions per "
      f"lookup; TenantStore::get {get / max(1, misses) / 1e3:.0f}k per miss; usage flush {100 * flush / total:.1f}% "
      f"of all instructions")
PY
done
