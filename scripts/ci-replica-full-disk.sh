#!/usr/bin/env bash
# Issue 22's fault "the replica directory's disk full": the data dir on the machine's disk, its
# replicas/ on a 1 MiB tmpfs mounted inside it (needs root). Writes ~4.5 MB through the API and
# checks: every write is acknowledged and readable (the primary is unaffected), the replica's
# errors grow and a `replica_errors` alert is raised, the mirror falls behind; with room again it
# catches up by itself, `replica verify` passes, SIGTERM exits 0 and `audit verify` passes.
#   scripts/ci-replica-full-disk.sh target/release/tenantd
# Prints "replica full disk: N passed, 0 failed".
set -euo pipefail

bin=$(realpath "$1")
port=${PORT:-18768}
base="http://127.0.0.1:$port"
work=$(mktemp -d)
data="$work/data"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  umount "$data/replicas" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
password='tangerine-orbit-42-xyz'
export TENANTD_LOG=quiet
printf '[replicas]\ncount = 1\n' >"$work/tenantd.toml"
export TENANTD_CONFIG="$work/tenantd.toml"
"$bin" --data-dir "$data" init >/dev/null
mkdir -p "$data/replicas"
mount -t tmpfs -o size=1m tenantd-replica-full "$data/replicas"
"$bin" --data-dir "$data" tenant create acme --name Acme --plan enterprise >/dev/null
"$bin" --data-dir "$data" user create ada@acme.test --password "$password" --tenant acme --role owner >/dev/null
"$bin" --data-dir "$data" user create root@ops.test --password "$password" --platform-admin >/dev/null
"$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && break; sleep 0.1; done
login() {
  curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
token=$(login ada@acme.test)
root=$(login root@ops.test)
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
json_of() { curl -fsS -H "Authorization: Bearer $1" "$base$2"; }

big=$(head -c 150000 /dev/zero | tr '\0' x)
printf '{"name":"Big","company":"%s"}' "$big" >"$work/row"
for i in $(seq 1 30); do
  status=$(curl -sS -o "$work/out" -w '%{http_code}' "$base/api/v1/t/acme/customers" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary @"$work/row")
  [ "$status" = 201 ] || { echo "write $i answered $status: $(cat "$work/out")" >&2; exit 1; }
done
total=$(json_of "$token" "/api/v1/t/acme/customers?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
[ "$total" = 30 ] || { echo "$total of 30 rows readable" >&2; exit 1; }
ok "30 writes of 150 KB acknowledged and readable with the replica directory (1 MiB) full"

errors=0
for _ in $(seq 1 100); do
  errors=$(json_of "$root" /health/detailed | python3 -c 'import json,sys; print(json.load(sys.stdin)["checks"]["replicas:errors"][0]["observedValue"])')
  [ "$errors" -gt 0 ] && break
  sleep 0.1
done
[ "$errors" -gt 0 ] || { echo "no replica error counted" >&2; exit 1; }
ok "/health/detailed counts $errors replica errors"
alert=""
for _ in $(seq 1 100); do
  alert=$(json_of "$root" /api/v1/platform/alerts | python3 -c '
import json,sys
items = [a for a in json.load(sys.stdin)["items"] if a["kind"] == "replica_errors"]
print(items[0]["message"] if items else "")')
  [ -n "$alert" ] && break
  sleep 0.1
done
[ -n "$alert" ] || { echo "no replica_errors alert" >&2; exit 1; }
ok "alert: $alert"
behind=$("$bin" --data-dir "$data" replica status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["behind"])')
[ "$behind" -ge 1 ] || { echo "the mirror is not behind ($behind)" >&2; exit 1; }
ok "the mirror is behind ($behind tenant)"
ready=$(curl -sS -o /dev/null -w '%{http_code}' "$base/health/readiness")
[ "$ready" = 200 ] || { echo "readiness answered $ready" >&2; exit 1; }
ok "readiness still 200 (the primaries serve)"

mount -o remount,size=64m "$data/replicas"
start=$(date +%s%N)
until [ "$("$bin" --data-dir "$data" replica status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["behind"])')" = 0 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 30000 ] || { echo "the mirror did not catch up within 30 s" >&2; exit 1; }
  sleep 0.2
done
ok "with room again the mirror caught up by itself in $(( ($(date +%s%N) - start) / 1000000 )) ms"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { cat "$work/log"; echo "the server exited $rc" >&2; exit 1; }
ok "SIGTERM: exit 0"
"$bin" --data-dir "$data" replica verify --tenant acme >/dev/null
ok "replica verify passes"
"$bin" --data-dir "$data" audit verify >/dev/null
ok "audit verify passes"
echo "replica full disk: $passed passed, 0 failed"
