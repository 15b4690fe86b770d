#!/usr/bin/env bash
# Issue 23's measurements, on the three-node cluster of scripts/cluster-lib.sh (loopback ports,
# Litestream to a shared-directory store, nginx in front; limits off so every request does the
# full work):
#   1. nginx's routing overhead on point reads: loadtest straight at the node and through the
#      router, alternated ROUNDS times;
#   2. the write pause of a live move of a ~100 MB tenant under load (reads and writes through
#      nginx while it moves);
#   3. failover of a node holding 100 tenants: kill -9 of its tenantd and Litestream, then
#      `tenantd cluster failover` on a survivor, router included.
# Also `tenantd bench cluster-plan` (10,000 tenants, a fourth node joins).
# Usage: scripts/bench-cluster.sh PATH/TO/nginx [seconds-per-read-run]   (release binary built)
# Env: ROUNDS (3), BIG_ROWS (100000 rows of ~1 KB), FAILOVER_TENANTS (100), ONLY_READS (stop after 1).
set -euo pipefail
cd "$(dirname "$0")/.."
base_port=${PORT:-18860}
secs=${2:-10}
rounds=${ROUNDS:-3}
big_rows=${BIG_ROWS:-100000}
fail_tenants=${FAILOVER_TENANTS:-100}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
nginx_bin=${1:?usage: scripts/bench-cluster.sh PATH/TO/nginx [seconds]}
CLUSTER_TOML_EXTRA=$(printf '[limits]\nenabled = false')
nproc
grep -m1 'model name' /proc/cpuinfo || true
. scripts/cluster-lib.sh

td a bench cluster-plan --tenants 10000 --nodes 3

# A platform admin's token through the router, and tenants created through it on given nodes.
admin=$(curl -fsS -H 'Content-Type: application/json' -d '{"email":"root@example.com","password":"cluster-check-password-1"}' "$router/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
create() { # slug node
  curl -fsS -o /dev/null -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"slug\":\"$1\",\"name\":\"$1\",\"plan\":\"enterprise\",\"node\":\"$2\"}" "$router/api/v1/platform/tenants"
}
# An API key for tenant $1 (owner created on node $2), as loadtest credentials in $dir/$1.json.
creds() {
  td "$2" user create "owner@$1.test" --password 'bench-cluster-password' --tenant "$1" --role owner >/dev/null
  local tok key
  tok=$(curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"owner@$1.test\",\"password\":\"bench-cluster-password\"}" "$router/api/v1/t/$1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  key=$(curl -fsS -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d '{"name":"bench","scope":"write"}' "$router/api/v1/t/$1/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  printf '[{"slug": "%s", "token": "%s"}]' "$1" "$key" >"$dir/$1.json"
}
summary() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['rps']:.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  errors {r['errors_by_status']}")
PY
}

echo "+ 1. point reads, straight at node a and through nginx, ${secs}s each, alternated $rounds times"
create reads a
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf" --reload >/dev/null 2>&1
wait_routed reads tenantd_node_a
creds reads a
# 1,000 rows to read (ids 1..1000), written through the API.
python3 - "$router" "$dir/reads.json" <<'EOF'
import json, sys, urllib.request
router, creds = sys.argv[1], json.load(open(sys.argv[2]))[0]
for i in range(1000):
    req = urllib.request.Request(router + "/api/v1/t/reads/customers", method="POST", data=json.dumps({"name": f"r{i}"}).encode())
    req.add_header("Content-Type", "application/json"); req.add_header("Authorization", "Bearer " + creds["token"])
    urllib.request.urlopen(req).read()
EOF
# The same nginx as a plain proxy to node a (no maps): what the hop costs, apart from routing.
plain_port=$((base_port + 8))
cat >"$dir/nginx-extra-plain.conf" <<EOF
server {
    listen 127.0.0.1:$plain_port;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_pass http://tenantd_node_a;
    }
}
EOF
"$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -s reload
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$plain_port/health/liveness" 2>/dev/null && break; sleep 0.05; done
url_of() { case $1 in node) echo "http://127.0.0.1:$base_port" ;; plain) echo "http://127.0.0.1:$plain_port" ;; *) echo "$router" ;; esac; }
echo "closed loop, 16 connections (throughput; on 2 cores nginx takes CPU from tenantd and the client):"
for i in $(seq 1 "$rounds"); do
  for via in node plain router; do
    $bin loadtest --url "$(url_of $via)" --credentials "$dir/reads.json" --rows 1000 --mix read=100 --duration "${secs}s" --json >"$dir/lt.json" || true
    echo "round $i via $via: $(summary "$dir/lt.json")"
  done
done
echo "open loop at 5,000 req/s (latency at the same load):"
for i in $(seq 1 "$rounds"); do
  for via in node plain router; do
    $bin loadtest --url "$(url_of $via)" --credentials "$dir/reads.json" --rows 1000 --mix read=100 --rate 5000 --duration "${secs}s" --json >"$dir/lt.json" || true
    echo "round $i via $via: $(summary "$dir/lt.json")"
  done
done

[ -n "${ONLY_READS:-}" ] && exit 0
echo "+ 2. live move of a ~100 MB tenant under load"
create big b
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf" --reload >/dev/null 2>&1
wait_routed big tenantd_node_b
creds big b
big_id=$(td b tenant show big --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# The rows go straight into the file (an outside writer, as a bulk import would), then Litestream
# copies the file to the store before the move starts.
sqlite3 "$dir/b/data/tenants/$big_id/data.db" "PRAGMA busy_timeout=10000;
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $big_rows)
  INSERT INTO customers (name, email, company) SELECT 'big ' || i, 'big' || i || '@x.test', hex(randomblob(480)) FROM n;" >/dev/null
ls -l "$dir/b/data/tenants/$big_id/data.db" | awk '{printf "tenant file: %.1f MB\n", $5 / 1e6}'
sleep 3 # Litestream: a sync every second
$bin loadtest --url "$router" --credentials "$dir/big.json" --rows 1000 --mix read=80,write=20 --rate 200 \
  --concurrency 8 --duration 20s --json >"$dir/big-load.json" 2>/dev/null &
load=$!
sleep 2
td a tenant move big --to c --json | tee "$dir/big-move.json"
wait "$load" || true
echo "load during the move (200 req/s, 80% reads): $(summary "$dir/big-load.json")"
python3 - "$dir/big-move.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"move of {m['bytes'] / 1e6:.1f} MB: writes paused {m['write_pause_ms']} ms (directory flipped after {m['flipped_ms']} ms), seeding {m['seed_ms']} ms")
PY

echo "+ 3. failover of node c with $fail_tenants tenants"
for i in $(seq -w 1 "$fail_tenants"); do create "f-$i" c; done
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf" --reload >/dev/null 2>&1
# Until Litestream has every one of them (and the catalog that lists them) in the store.
for _ in $(seq 1 600); do
  have=$(find "$dir/store/nodes/c/tenants" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
  [ "$have" -ge "$((fail_tenants + 1))" ] && break
  sleep 0.1
done
sleep 2
kill -9 "$(cat "$dir/c/serve.pid")" "$(cat "$dir/c/litestream.pid")"
start=$(date +%s.%N)
td a cluster failover c --to b --json >"$dir/failover.json" || { cat "$dir/failover.json"; exit 1; }
end=$(date +%s.%N)
python3 - "$dir/failover.json" "$start" "$end" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
took = float(sys.argv[3]) - float(sys.argv[2])
print(f"failover: {len(f['restored'])} tenants restored on {f['to']} in {f['seconds']} s; {len(f['failed'])} failed; {took:.2f} s with the router rewritten and reloaded")
PY
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["restored"][0])' "$dir/failover.json")
wait_routed "$first" tenantd_node_b 2>/dev/null
echo "bench-cluster done"
