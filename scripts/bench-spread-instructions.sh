#!/usr/bin/env bash
# Instructions per request with every tenant open (issue 6): what spreading the same load over
# more tenants costs when no tenant file is ever opened, counted by callgrind (this VM exposes no
# hardware counters to `perf stat`; requests/s move by a third between runs).
#
# Provisions OPEN tenants × 1,000 rows once. For each binary given (default: the release build):
# a fresh copy of that data, the server under callgrind with its cache simulation (pinned to
# CPU 0, instrumentation off, `max_open_tenants = OPEN`), a uniform warm-up run that opens all
# OPEN tenants, then for each K in SPREAD a Zipf run over the first K tenants (mix read 80 /
# list 10 / write 10, 16 connections, on CPU 1), counted for MEASURE seconds after WARM seconds.
# Prints per request: instructions, L1 data and last-level cache misses, and the inclusive
# instructions of the usage flush (`limits::flush_usage`), whose work grows with the number of
# tenants active per second.
#   flock /tmp/tenantd-cargo.lock scripts/bench-spread-instructions.sh [BIN …]
#   env: OPEN (2000), SPREAD ("1 2000"), WARM (20 s), MEASURE (30 s), KEEP (a dir to keep the last binary's callgrind profiles in)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/callgrind-common.sh
open=${OPEN:-2000}
spread=${SPREAD:-"1 $open"}
warm=${WARM:-20}
measure=${MEASURE:-30}
if [ $# -eq 0 ]; then
  cargo build --release -q
  set -- "$PWD/target/release/tenantd"
fi
[ "$(ulimit -n)" -gt $((open * 5 + 128)) ] || { echo "OPEN=$open needs more than $((open * 5 + 128)) descriptors (ulimit -n)" >&2; exit 2; }
cg_setup 18954
export TENANTD_MAX_OPEN_TENANTS=$open
lt() { taskset -c 1 "$bin" --data-dir "$dir/data" loadtest --url "$base" --plan bench --rows 1000 --concurrency 16 \
  --json "$@"; }
cg_provision "$1" "$open"
echo "machine: $(nproc) cpus, $(uname -r); $open tenants open; Zipf over $spread; warm-up ${warm}s, counted ${measure}s"

for bin in "$@"; do
  cg_fresh_data
  out="$dir/callgrind.out"
  rm -f "$out"*
  taskset -c 0 valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --callgrind-out-file="$out" \
    "$bin" --data-dir "$dir/data" serve --listen "127.0.0.1:$port" 2>"$dir/valgrind.err" &
  pid=$!
  ready
  lt --tenants "$open" --duration 90s >/dev/null 2>&1 || true
  for k in $spread; do
    lt --tenants "$k" --distribution zipf --duration "$((warm + measure + 3))s" >/dev/null 2>"$dir/lt.err" &
    ltp=$!
    while kill -0 $ltp 2>/dev/null && ! grep -q "loadtest: running" "$dir/lt.err"; do sleep 0.05; done
    sleep "$warm"
    h0=$(metric tenantd_tenant_lru_hits_total); m0=$(metric tenantd_tenant_lru_misses_total)
    callgrind_control -z $pid >/dev/null 2>&1; callgrind_control -i on $pid >/dev/null 2>&1
    sleep "$measure"
    callgrind_control -i off $pid >/dev/null 2>&1; callgrind_control -d "k$k" $pid >/dev/null 2>&1
    h1=$(metric tenantd_tenant_lru_hits_total); m1=$(metric tenantd_tenant_lru_misses_total)
    wait $ltp || true
    f=$(ls -t "$out".* | head -1)
    flush=$(cg_inclusive "$f" tenantd::limits::flush_usage)
    python3 - "$bin" "$k" "$f" "$((h1 - h0))" "$((m1 - m0))" "$flush" <<'PY'
import sys
bin, k, f, hits, misses, flush = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
events = totals = None
for line in open(f):
    if line.startswith("events:"):
        events = line.split()[1:]
    if line.startswith(("totals:", "summary:")):
        totals = [int(x) for x in line.split()[1:]]
d = dict(zip(events, totals))
n = max(1, hits + misses)
print(f"{bin}: Zipf over {k} open: {n} requests, {misses} misses; per request {d['Ir'] / n / 1e3:.0f}k instructions, "
      f"usage flush {flush / n / 1e3:.1f}k, L1d misses {(d['D1mr'] + d['D1mw']) / n:.0f}, "
      f"last-level misses {(d['DLmr'] + d['DLmw'] + d['ILmr']) / n:.0f}, L1i misses {d['I1mr'] / n:.0f}")
PY
  done
  kill $pid; wait $pid 2>/dev/null || true; pid=
done
