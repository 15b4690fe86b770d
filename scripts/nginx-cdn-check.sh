#!/usr/bin/env bash
# The shipped nginx site (packaging/nginx/tenantd.conf) in front of the release binary with a
# CDN edge: an object the edge lacks is answered by tenantd (which pulls it into the edge), the
# next request is served by nginx straight from disk, and an unknown object is tenantd's 404.
# The site is made plain HTTP on high ports for the check; everything else is as shipped.
# Usage: scripts/nginx-cdn-check.sh PATH/TO/nginx
set -euo pipefail
cd "$(dirname "$0")/.."
nginx=$1
dir=$(mktemp -d)
port=${PORT:-18971}
nport=${NGINX_PORT:-18443}
bin=$PWD/target/release/tenantd
data=$dir/data
pw='nginx-check-password-1'
export TENANTD_LOG=quiet
printf '[cdn]\nedges = ["eu-west"]\n' >"$dir/tenantd.toml"
export TENANTD_CONFIG=$dir/tenantd.toml
$bin --data-dir "$data" init >/dev/null
$bin --data-dir "$data" tenant create acme --name Acme >/dev/null
$bin --data-dir "$data" user create o@acme.test --password "$pw" --tenant acme --role owner >/dev/null
$bin --data-dir "$data" serve --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true; [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done
sed -e "s#server 127.0.0.1:8080;#server 127.0.0.1:$port;#" -e "s#root /var/lib/tenantd;#root $data;#" \
  -e "s#listen 443 ssl http2;#listen $nport;#" -e '/listen \[::\]:443/d' -e "s#listen 80;#listen $((nport + 1));#" \
  -e '/listen \[::\]:80;/d' -e '/ssl_/d' packaging/nginx/tenantd.conf >"$dir/site.conf"
cat >"$dir/nginx.conf" <<NGINX
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/site.conf;
}
NGINX
"$nginx" -p "$dir" -c "$dir/nginx.conf" -g 'user root;'
base="http://127.0.0.1:$nport"
host=(-H "Host: saas.example.com")
for _ in $(seq 1 50); do curl -fsS "${host[@]}" "$base/health/liveness" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fsS "${host[@]}" "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"o@acme.test\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
url=$(curl -fsS "${host[@]}" "$base/api/v1/t/acme/assets" -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' \
  --data-binary 'hello from the edge' | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
rm -rf "$data/cdn/eu-west" # whatever the syncer pushed: the edge lacks the object now
cdn_header() { curl -fsS -D - -o /dev/null "${host[@]}" "$base$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="tenantd-cdn"{print $2}'; }
first=$(cdn_header)
second=$(cdn_header)
body=$(curl -fsS "${host[@]}" "$base$url")
missing=$(curl -sS -o /dev/null -w '%{http_code}' "${host[@]}" "$base/cdn/eu-west/0123456789abcdef/$(printf '%064d' 0)")
echo "first request: $first; second: $second; body: $body; unknown object: $missing"
[ "$first" = "eu-west; miss" ] && [ "$second" = "eu-west; hit; nginx" ] && [ "$body" = "hello from the edge" ] && [ "$missing" = 404 ]
# nginx types what it serves by the URL's extension, as tenantd would: text as a UTF-8 download,
# an image inline. (Before the typed names it sent every object as application/octet-stream.)
header_of() { curl -fsS -D - -o /dev/null "${host[@]}" "$base$1" | tr -d '\r' | awk -F': ' -v h="$2" 'tolower($1)==h{print $2}'; }
[[ "$url" == *.txt ]] || { echo "the asset URL has no extension: $url" >&2; exit 1; }
text_type=$(header_of "$url" content-type)
text_disposition=$(header_of "$url" content-disposition)
png_url=$(printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00' |
  curl -fsS "${host[@]}" "$base/api/v1/t/acme/assets" -H "Authorization: Bearer $token" -H 'Content-Type: image/png' \
  --data-binary @- | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
for _ in $(seq 1 50); do [ "$(header_of "$png_url" tenantd-cdn)" = "eu-west; hit; nginx" ] && break; sleep 0.1; done
png_cdn=$(header_of "$png_url" tenantd-cdn)
png_type=$(header_of "$png_url" content-type)
png_disposition=$(header_of "$png_url" content-disposition)
echo "text: $text_type ($text_disposition); png: $png_type (${png_disposition:-inline}) from $png_cdn"
[ "$text_type" = "text/plain; charset=utf-8" ] && [ "$text_disposition" = "attachment" ]
[ "$png_cdn" = "eu-west; hit; nginx" ] && [ "$png_type" = "image/png" ] && [ -z "$png_disposition" ]
echo "nginx CDN check: ok"
