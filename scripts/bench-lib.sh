# Sourced by the benchmark scripts: `serve DATA_DIR CONFIG` starts $bin on 127.0.0.1:$port with
# that config and returns once it answers liveness (its pid in $pid); `stop` ends it and waits.
pid=
serve() {
  TENANTD_CONFIG="$2" $bin --data-dir "$1" serve --listen "127.0.0.1:$port" &
  pid=$!
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/health/liveness" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "server did not start" >&2
  exit 1
}
stop() { kill "$pid"; wait "$pid" || true; }
