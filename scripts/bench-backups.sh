#!/usr/bin/env bash
# Issue 22's backup measurements on this machine:
#   1. snapshots of TENANTS tenants of about 1 MB each (`tenantd backup create --all`, the
#      server's scheduled pass does the same work), target < 30 s for 1,000;
#   2. point-in-time restore of a tenant of about 10 MB (`backup restore --at`: the snapshot
#      extracted, then the change log's commits since replayed), target < 1 s; into a new tenant
#      and in place.
# Usage: scripts/bench-backups.sh   (TENANTS=1000 ROWS=11000 BIG_ROWS=110000 WRITES=2000 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
tenants=${TENANTS:-1000}
rows=${ROWS:-11000}
big_rows=${BIG_ROWS:-110000}
writes=${WRITES:-2000}
port=${PORT:-18941}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
printf '[limits]\nenabled = false\n[backup]\ninterval_hours = 0\n' > "$dir/many.toml"
printf '[limits]\nenabled = false\n[backup]\ninterval_hours = 0\n[replicas]\ncount = 1\n' > "$dir/pit.toml"


echo "+ $tenants tenants of $rows rows each (seeded by loadtest)"
TENANTD_CONFIG="$dir/many.toml" $bin --data-dir "$dir/many" init >/dev/null
serve "$dir/many" "$dir/many.toml"
TENANTD_CONFIG="$dir/many.toml" $bin --data-dir "$dir/many" loadtest --url "http://127.0.0.1:$port" \
  --tenants "$tenants" --rows "$rows" --duration 1s --mix read=100 >/dev/null 2>&1
echo "tenant files: $(du -sh "$dir/many/tenants" | cut -f1) in $tenants tenants (e.g. $(du -k "$(ls -d "$dir"/many/tenants/*/ | head -1)data.db" | cut -f1) KB each)"
echo "+ tenantd backup create --all (beside the running server, 2 threads)"
TENANTD_CONFIG="$dir/many.toml" $bin --data-dir "$dir/many" backup create --all
echo "stored: $(du -sh "$dir/many/backups" | cut -f1)"
stop

echo "+ point-in-time restore of one tenant of $big_rows rows, $writes commits after its snapshot"
TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" init >/dev/null
serve "$dir/pit" "$dir/pit.toml"
TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" loadtest --url "http://127.0.0.1:$port" \
  --tenants 1 --rows "$big_rows" --duration 1s --mix read=100 >/dev/null 2>&1
db=$(ls -d "$dir"/pit/tenants/*/ | head -1)data.db
echo "tenant file and its WAL: $(du -ck "$db"* | tail -1 | cut -f1) KB"
TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" backup create load-00001
TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" loadtest --url "http://127.0.0.1:$port" \
  --tenants 1 --rows "$big_rows" --duration 5s --rate $((writes / 5)) --mix write=100 >/dev/null 2>&1
at=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")')
echo "restore to $at"
for i in 1 2 3; do
  TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" backup restore load-00001 --at "$at" --as "copy-$i"
done
TENANTD_CONFIG="$dir/pit.toml" $bin --data-dir "$dir/pit" backup restore load-00001 --at "$at"
stop
