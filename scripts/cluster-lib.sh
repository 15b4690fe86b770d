# Shared by scripts/cluster-check.sh and scripts/bench-cluster.sh: three tenantd nodes (a, b,
# c) on loopback ports with their own data dirs and a platform admin each, every node
# replicating with Litestream to a shared-directory store, and nginx in front with the
# configuration `tenantd cluster nginx-config` renders. Source it from the repo root with
# base_port, dir and nginx_bin set (CLUSTER_TOML_EXTRA: more top-level config lines; STORE=s3:
# the store is an S3-compatible server, moto's server mode from PyPI, instead of a directory). It
# defines td, start_node, upstream_of and wait_routed, and sets bin and router.
# Needs the release binary, litestream and curl.

router_port=$((base_port + 9))
export TENANTD_LOG=quiet
export TENANTD_CLUSTER_SECRET=ci-cluster-secret-0123456789abcdef0123
bin=$PWD/target/release/tenantd
nodes=(a b c)
mkdir -p "$dir/store"
store_url="file://$dir/store"
if [ "${STORE:-file}" = s3 ]; then
  command -v moto_server >/dev/null || pip install --quiet 'moto[server]'
  moto_port=$((base_port + 7))
  moto_server -p "$moto_port" >"$dir/moto.log" 2>&1 &
  for _ in $(seq 1 300); do curl -fsS -X PUT "http://127.0.0.1:$moto_port/tenantd-store" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://127.0.0.1:$moto_port/tenantd-store" >/dev/null
  store_url="s3://tenantd-store/cluster?endpoint=http://127.0.0.1:$moto_port&forcePathStyle=true"
  export AWS_ACCESS_KEY_ID=cluster-check AWS_SECRET_ACCESS_KEY=cluster-check AWS_REGION=us-east-1
  # A CA bundle set for the machine makes Litestream's AWS SDK refuse to build its HTTP client
  # ("unable to add custom RootCAs"); the endpoint here is plain HTTP on loopback.
  unset AWS_CA_BUNDLE
fi
echo "store: $store_url"
for i in 0 1 2; do
  n=${nodes[$i]}
  mkdir -p "$dir/$n"
  cat >"$dir/$n/tenantd.toml" <<EOF
data_dir = "$dir/$n/data"
trusted_proxies = ["127.0.0.1/32"]
${CLUSTER_TOML_EXTRA:-}
[cluster]
name = "$n"
directory = "a"
store = "$store_url"
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

# Starts node $1 (index $2) and its Litestream; their pids go to $dir/<node>/{serve,litestream}.pid.
start_node() {
  local n=$1 i=$2
  $bin --config "$dir/$n/tenantd.toml" serve --listen "127.0.0.1:$((base_port + i))" >"$dir/$n/serve.log" 2>&1 &
  echo $! >"$dir/$n/serve.pid"
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$((base_port + i))/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done
  litestream replicate -config "$dir/$n/ls/litestream.yml" >"$dir/$n/litestream.log" 2>&1 </dev/null &
  echo $! >"$dir/$n/litestream.pid"
}

for i in 0 1 2; do
  n=${nodes[$i]}
  td "$n" init >/dev/null
  td "$n" user create root@example.com --password 'cluster-check-password-1' --platform-admin >/dev/null
  echo "+ tenantd litestream config (node $n)"
  td "$n" litestream config --out "$dir/$n/ls" --sync-interval "${LITESTREAM_INTERVAL:-200ms}" >/dev/null
  start_node "$n" "$i"
done

cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/nginx-body;
    proxy_temp_path $dir/nginx-proxy;
    fastcgi_temp_path $dir/nginx-fastcgi;
    uwsgi_temp_path $dir/nginx-uwsgi;
    scgi_temp_path $dir/nginx-scgi;
    include $dir/nginx-cluster.conf;
    # Extra server blocks a script adds (bench-cluster.sh: a plain proxy without the maps).
    include $dir/nginx-extra*.conf;
}
EOF
echo "+ tenantd cluster nginx-config --listen 127.0.0.1:$router_port"
td a cluster nginx-config --listen "127.0.0.1:$router_port" --out "$dir/nginx-cluster.conf"
"$nginx_bin" -t -p "$dir" -c "$dir/nginx.conf" 2>&1 | tail -1
"$nginx_bin" -p "$dir" -c "$dir/nginx.conf"
router=http://127.0.0.1:$router_port

upstream_of() { curl -fsS -o /dev/null -D - "$router/api/v1/t/$1/" | tr -d '\r' | awk -F': ' 'tolower($1)=="tenantd-upstream"{print $2}'; }

# Until nginx sends tenant $1 to upstream $2 twenty times in a row (after a reload it starts new
# workers and stops the old ones 100 ms later).
wait_routed() {
  local ok=0
  for _ in $(seq 1 400); do
    if [ "$(upstream_of "$1")" = "$2" ]; then ok=$((ok + 1)); [ $ok -ge 20 ] && return 0; else ok=0; fi
    sleep 0.02
  done
  cat "$dir/nginx-error.log"
  echo "nginx does not send $1 to $2" >&2
  return 1
}
