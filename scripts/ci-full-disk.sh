#!/usr/bin/env bash
# Issue 18, item 3, on a really full disk: the data dir on a 24 MiB tmpfs (needs root to mount).
#   scripts/ci-full-disk.sh target/release/tenantd
# Fills the tenant until a write is refused, then checks: the refusal is 507
# insufficient_storage (not the tenant's storage quota), reads and liveness still answer,
# readiness fails naming the data dir, the tmpfs grown again takes writes within 2 s, the server
# stops with exit 0, and `audit verify` passes. Prints "full disk: N passed, 0 failed".
set -euo pipefail

bin=$(realpath "$1")
port=${PORT:-18767}
base="http://127.0.0.1:$port"
work=$(mktemp -d)
mnt="$work/mnt"
mkdir "$mnt"
mount -t tmpfs -o size=24m tenantd-full-disk "$mnt"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
data="$mnt/data"
password='tangerine-orbit-42-xyz'
export TENANTD_LOG=quiet
"$bin" --data-dir "$data" init >/dev/null
"$bin" --data-dir "$data" tenant create acme --name Acme --plan enterprise >/dev/null
"$bin" --data-dir "$data" user create ada@acme.test --password "$password" --tenant acme --role owner >/dev/null
TENANTD_MIN_FREE_DISK_BYTES=1048576 "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "$base/health/readiness" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
token=$(curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"ada@acme.test\",\"password\":\"$password\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
big=$(head -c 150000 /dev/zero | tr '\0' x)
printf '{"name":"Big","company":"%s"}' "$big" >"$work/row"
post() {
  curl -sS -o "$work/out" -w '%{http_code}' "$base/api/v1/t/acme/customers" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary @"$work/row"
}
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

created=0
status=201
for _ in $(seq 1 400); do
  status=$(post)
  [ "$status" = 201 ] || break
  created=$((created + 1))
done
[ "$status" = 507 ] || { echo "the full disk answered $status: $(cat "$work/out")" >&2; exit 1; }
grep -q '"insufficient_storage"' "$work/out" || { echo "wrong code: $(cat "$work/out")" >&2; exit 1; }
ok "$created rows fitted; the next write got 507 insufficient_storage"

total=$(curl -fsS "$base/api/v1/t/acme/customers?per_page=1" -H "Authorization: Bearer $token" \
  | sed 's/.*"total":\([0-9]*\).*/\1/')
[ "$total" -ge "$created" ] || { echo "only $total of $created rows readable" >&2; exit 1; }
curl -fsS "$base/health/liveness" >/dev/null
ok "reads ($total rows) and liveness still answer"

ready_status=$(curl -sS -o "$work/ready" -w '%{http_code}' "$base/health/readiness")
[ "$ready_status" = 503 ] || { echo "readiness answered $ready_status on a full disk" >&2; exit 1; }
grep -q "$data" "$work/ready" || { echo "readiness does not name the data dir: $(cat "$work/ready")" >&2; exit 1; }
ok "readiness fails naming the data dir"

mount -o remount,size=64m "$mnt"
start=$(date +%s%N)
status=$(post)
while [ "$status" != 201 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ] || { echo "no write within 2 s of space coming back: $status" >&2; exit 1; }
  sleep 0.05
  status=$(post)
done
ok "writes work again $(( ($(date +%s%N) - start) / 1000000 )) ms after space came back"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { cat "$work/log"; echo "the server exited $rc" >&2; exit 1; }
ok "SIGTERM: exit 0"
"$bin" --data-dir "$data" audit verify >/dev/null
ok "audit verify passes"
echo "full disk: $passed passed, 0 failed"
