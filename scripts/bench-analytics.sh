#!/usr/bin/env bash
# Issue 21's analytics benchmarks: a year of realistic hourly history for TENANTS tenants
# (default 10,000; `tenantd bench analytics-history`), then
#   1. the downsampling job's first run over that history (the catch-up), and the next day's run;
#   2. p50/p99 of the tenant overview and trends API, the peer benchmark, the tenant dashboard
#      page, the platform revenue, overview, trends and health API, and the platform dashboard
#      and console pages (the first read after a start, then read again), over HTTP on a real
#      socket.
# Usage: scripts/bench-analytics.sh            (TENANTS=1000 DAYS=365 N=200 DIR=… to change;
#        a DIR that already holds the history is reused, downsampled or not)
set -euo pipefail
cd "$(dirname "$0")/.."
tenants=${TENANTS:-10000}
days=${DAYS:-365}
n=${N:-200}
dir=${DIR:-$(mktemp -d)}
port=${PORT:-18921}
pw='bench-password-2026'
export TENANTD_LOG=quiet
# The analytics' own cost: the rate limiter would turn a fast loop of reads into 429s.
printf '[limits]\nenabled = false\n' > "${TMPDIR:-/tmp}/bench-analytics.toml"
export TENANTD_CONFIG="${TMPDIR:-/tmp}/bench-analytics.toml"
echo "+ cargo build --release"
cargo build --release -q
bin=$PWD/target/release/tenantd
# Wall time of a command (no /usr/bin/time on a fresh machine).
timed() {
  local label=$1 t0=$EPOCHREALTIME
  shift
  "$@"
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$label" 'BEGIN { printf "%s: %.1f s\n", l, b - a }'
}
nproc; grep -m1 'model name' /proc/cpuinfo || true
if [ ! -f "$dir/data/catalog.db" ]; then
  $bin --data-dir "$dir/data" init >/dev/null
  echo "+ tenantd bench analytics-history --tenants $tenants --days $days"
  timed "history written in" $bin --data-dir "$dir/data" bench analytics-history --tenants "$tenants" --days "$days"
fi
du -sh "$dir/data/catalog.db"
echo "+ tenantd analytics downsample (first run over the history)"
timed "downsample" $bin --data-dir "$dir/data" analytics downsample
du -sh "$dir/data/catalog.db"
tomorrow=$(date -u -d '+1 day' +%Y-%m-%dT00:30:00Z)
echo "+ tenantd analytics downsample --as-of $tomorrow (the next day's run)"
timed "downsample" $bin --data-dir "$dir/data" analytics downsample --as-of "$tomorrow"
# Users: a platform admin, and an owner of the first 50 tenants.
owned=$(( tenants < 50 ? tenants : 50 ))
if ! $bin --data-dir "$dir/data" user list 2>/dev/null | grep -q root@bench.test; then
  $bin --data-dir "$dir/data" user create root@bench.test --password "$pw" --platform-admin >/dev/null
  $bin --data-dir "$dir/data" user create owner@bench.test --password "$pw" --tenant t000000 --role owner >/dev/null
  for i in $(seq 1 $(( owned - 1 ))); do
    $bin --data-dir "$dir/data" user add-to-tenant owner@bench.test "$(printf 't%06d' "$i")" --role owner >/dev/null
  done
fi
$bin --data-dir "$dir/data" serve --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; [ -n "${DIR:-}" ] || rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
python3 scripts/bench-analytics.py "http://127.0.0.1:$port" "$pw" "$n" "$owned"
