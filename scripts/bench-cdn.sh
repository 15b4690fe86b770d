#!/usr/bin/env bash
# Issue 22's CDN measurement: a 10 KB asset served by an edge (hits), and the same requests
# with If-None-Match (304s), side by side in one run, ROUNDS times. The server is pinned to
# CPU 0 and wrk (16 connections, 1 thread) to CPU 1. Targets: hits >= 20,000 req/s, 304s faster.
# Usage: scripts/bench-cdn.sh [seconds]   (ROUNDS=3; installs wrk with apt-get if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
bin=$PWD/target/release/tenantd
dir=$(mktemp -d)
port=${PORT:-18961}
pw='bench-password-2026'
export TENANTD_LOG=quiet
printf '[cdn]\nedges = ["eu-west", "us-east"]\n' > "$dir/tenantd.toml"
export TENANTD_CONFIG="$dir/tenantd.toml"
$bin --data-dir "$dir/data" init >/dev/null
$bin --data-dir "$dir/data" tenant create bench --name Bench >/dev/null
$bin --data-dir "$dir/data" user create owner@bench.test --password "$pw" --tenant bench --role owner >/dev/null
taskset -c 0 "$bin" --data-dir "$dir/data" serve --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"owner@bench.test\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
head -c 10240 /dev/urandom | base64 -w 76 | head -c 10240 > "$dir/asset.txt"
url=$(curl -fsS "$base/api/v1/t/bench/assets" -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' \
  --data-binary @"$dir/asset.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
etag=$(curl -fsS -D - -o /dev/null "$base$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
echo "asset: $url ($(wc -c <"$dir/asset.txt") bytes), ETag $etag"
curl -fsS -D - -o /dev/null "$base$url" | grep -i '^tenantd-cdn'
nproc
grep -m1 'model name' /proc/cpuinfo || true
for i in $(seq 1 "$rounds"); do
  hit=$(taskset -c 1 wrk -t1 -c16 -d"${secs}s" "$base$url" | awk '/Requests\/sec/{print $2}')
  nm=$(taskset -c 1 wrk -t1 -c16 -d"${secs}s" -H "If-None-Match: $etag" "$base$url" | awk '/Requests\/sec/{print $2}')
  echo "round $i: edge hits ${hit} req/s, 304s ${nm} req/s"
done
