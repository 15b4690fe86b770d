#!/usr/bin/env bash
# Issue 19's migration benchmark (docs/benchmarks.md): a generated shared SQLite database of
# SIZE_MB (default 1000) with TENANTS (default 1000) accounts, 20 tables, foreign keys, a
# lookup table, users and memberships; then, with the release binary, each timed with
# /usr/bin/time (wall seconds, peak RSS):
#   analyze-schema · convert to one tenant (+ its validation) · split into TENANTS tenants
#   (+ validation) · validate RUN again · rollback of the split.
# usage: scripts/bench-migration.sh [SIZE_MB] [TENANTS]   (BIN=path/to/tenantd, WORK=dir)
set -euo pipefail
size=${1:-1000}
tenants=${2:-1000}
bin=${BIN:-target/release/tenantd}
work=${WORK:-/tmp/tenantd-bench-migration}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
src="$work/source-${size}mb-${tenants}.db"
[ -f "$src" ] || python3 "$here/gen-migration-source.py" "$src" "$size" "$tenants"
ls -l "$src"
data="$work/data"
rm -rf "$data"
"$bin" --data-dir "$data" init >/dev/null

measure() { # label, then the command; prints "label  seconds  peak RSS MB" and keeps stdout in $work/out.json
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.json" 2> "$work/err.txt" || {
    echo "$label failed:"; cat "$work/err.txt"; tail -c 2000 "$work/out.json"; exit 1; }
  read -r secs kb < "$work/time.txt"
  printf '%-44s %8.1f s %8.0f MB\n' "$label" "$secs" "$((kb / 1024))"
}
run_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$work/out.json"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $("$bin" --version)"
printf '%-44s %10s %11s\n' "step" "wall" "peak RSS"
measure "analyze-schema (profiles, trial split)" "$bin" --data-dir "$data" migration analyze-schema --source-db "$src" --json
measure "convert to one tenant + validation" "$bin" --data-dir "$data" migration convert-to-multitenant \
  --source-db "$src" --tenant-slug whole --schema-mode keep --json
measure "split into $tenants tenants + validation" "$bin" --data-dir "$data" migration convert-to-multitenant \
  --source-db "$src" --split-by accounts.id --slug-from slug --name-from name --schema-mode keep --json
split=$(run_id)
python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  split run {r['run_id']}: ok={r['ok']} registered={r['registered']} failed={r['failed']} users={r['users_created']} memberships={r['memberships_created']}")
PY
measure "validate RUN (split, re-read through the map)" "$bin" --data-dir "$data" migration validate "$split" --json
measure "rollback of the split" "$bin" --data-dir "$data" migration rollback "$split" --json
