# Shared by the callgrind benchmarks (bench-open-instructions.sh, bench-spread-instructions.sh);
# sourced, not run. After `cg_setup PORT`: $base, $dir (a temp dir removed at exit), $pid (the
# server under test, killed at exit), the bench plan's config, and the helpers below.

cg_setup() {
  command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
    { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
  port=$1
  base="http://127.0.0.1:$port"
  dir=$(mktemp -d)
  pid=
  # KEEP=DIR keeps the callgrind profiles (for callgrind_annotate) in DIR.
  trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null
    [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$dir"/callgrind.out* "$KEEP"/ 2>/dev/null; rm -rf "$dir"' EXIT
  export TENANTD_LOG=quiet TENANTD_WORKERS=4
  cp scripts/bench-plan.toml "$dir/tenantd.toml"
  export TENANTD_CONFIG="$dir/tenantd.toml"
}

# Waits until the server answers readiness (up to two minutes: valgrind starts slowly).
ready() { for _ in $(seq 1 600); do curl -fsS "$base/health/readiness" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

# The value of one unlabelled series from /metrics.
metric() { curl -fsS "$base/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# `cg_provision BIN N`: $dir/pristine with N tenants × 1,000 rows (loadtest creates them).
cg_provision() {
  "$1" --data-dir "$dir/pristine" init >/dev/null
  "$1" --data-dir "$dir/pristine" serve --listen "127.0.0.1:$port" &
  pid=$!
  ready
  "$1" --data-dir "$dir/pristine" loadtest --url "$base" --plan bench --rows 1000 --tenants "$2" --duration 1s \
    --json >/dev/null 2>&1 || true
  kill $pid; wait $pid 2>/dev/null || true; pid=
}

# A fresh copy of the provisioned data in $dir/data.
cg_fresh_data() { rm -rf "$dir/data"; cp -a "$dir/pristine" "$dir/data"; sync; }

# `cg_inclusive FILE FUNCTION`: the inclusive instructions of FUNCTION in a callgrind output
# (its largest entry; inlined pieces appear under other files with smaller counts), 0 if absent.
cg_inclusive() {
  callgrind_annotate --inclusive=yes --show=Ir "$1" 2>/dev/null |
    awk -v f="$2 [" 'index($0, f) && !found {gsub(",", "", $1); print $1; found = 1}' | grep . || echo 0
}
