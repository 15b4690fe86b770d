# Sourced by the benchmark scripts from the repo root: builds the release binary ($bin), makes a
# scratch $dir removed at exit (with every background job stopped), prints the machine.
# `serve DATA_DIR CONFIG` starts $bin on 127.0.0.1:$port with that config and returns once it
# answers liveness (its pid in $pid); `stop` ends it and waits.
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
export TENANTD_LOG=quiet
echo "+ cargo build --release"
cargo build --release -q
bin=$PWD/target/release/tenantd
nproc
grep -m1 'model name' /proc/cpuinfo || true
pid=
serve() {
  TENANTD_CONFIG="$2" $bin --data-dir "$1" serve --listen "127.0.0.1:$port" &
  pid=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/health/liveness" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start" >&2
  exit 1
}
stop() { kill "$pid"; wait "$pid" || true; }
