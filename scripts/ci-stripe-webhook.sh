#!/usr/bin/env bash
# Issue 20 item 7, tenantd's side: webhooks signed by the official `stripe` library's own
# signing helper are accepted by a real `tenantd serve` (provider "stripe"), a tampered body
# and an expired signature (an old delivery replayed past the tolerance) get 400, and a second
# delivery of an event answers 200 and changes nothing.
#
#   scripts/ci-stripe-webhook.sh TENANTD_BINARY
#
# Uses the venv scripts/stripe-fidelity.sh made (STRIPE_VENV, same default).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1"
STRIPE_VERSION="${STRIPE_VERSION:-16.1.0}"
VENV="${STRIPE_VENV:-${TMPDIR:-/tmp}/tenantd-stripe-venv-$STRIPE_VERSION}"
if ! "$VENV/bin/python" -c "import stripe" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "stripe==$STRIPE_VERSION"
fi
work=$(mktemp -d)
secret="whsec_ci_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$work/tenantd.toml" <<TOML
data_dir = "$work/data"
[billing]
provider = "stripe"
stripe_secret_key = "sk_test_ci"
stripe_api_base = "http://127.0.0.1:9"
stripe_webhook_secrets = ["$secret"]
[plans.pro]
stripe_price_id = "price_pro_month"
stripe_price_id_yearly = "price_pro_year"
[plans.enterprise]
stripe_price_id = "price_enterprise_month"
stripe_price_id_yearly = "price_enterprise_year"
TOML
"$bin" --config "$work/tenantd.toml" init >/dev/null
mkfifo "$work/log"
# The "listening on" line is an info line: TENANTD_LOG=quiet (as .ci/run sets it) would hide it.
env -u TENANTD_LOG "$bin" --config "$work/tenantd.toml" serve --listen 127.0.0.1:0 2>"$work/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
exec 3<"$work/log"
base=""
while read -r -t 60 line <&3; do
    case "$line" in *"listening on http://"*) base="http://${line##*listening on http://}"; base="${base%% *}"; break ;; esac
done
[ -n "$base" ] || { echo "tenantd did not start" >&2; exit 1; }
cat <&3 >/dev/null &
url="$base/api/v1/billing/stripe/webhook"

now=$(date +%s)
printf '{"id":"evt_ci_%s","object":"event","type":"invoice.paid","created":%s,"data":{"object":{"object":"invoice","customer":"cus_unknown"}}}' "$now" "$now" >"$work/body"
sign() { "$VENV/bin/python" scripts/stripe-fidelity.py --sign "$1" --secret "$secret" --timestamp "$2"; }
post() { curl -s -o "$work/answer" -w '%{http_code}' -H 'Content-Type: application/json' -H "Stripe-Signature: $2" --data-binary "@$1" "$url"; }

fail=0
check() { # name, expected status, actual status
    if [ "$2" = "$3" ]; then echo "ok      $1 ($3 $(cat "$work/answer"))"; else echo "FAILED  $1: expected $2, got $3 $(cat "$work/answer")"; fail=1; fi
}
header=$(sign "$work/body" "$now")
check "a delivery signed by the stripe library is accepted" 200 "$(post "$work/body" "$header")"
grep -q '"outcome":"unknown"' "$work/answer" || { echo "FAILED  first delivery outcome: $(cat "$work/answer")"; fail=1; }
check "the same event again answers 200" 200 "$(post "$work/body" "$header")"
grep -q '"outcome":"duplicate"' "$work/answer" || { echo "FAILED  second delivery is not a duplicate: $(cat "$work/answer")"; fail=1; }
sed 's/invoice.paid/invoice.payment_failed/' "$work/body" >"$work/tampered"
check "a tampered body is refused" 400 "$(post "$work/tampered" "$header")"
old=$((now - 3600))
check "an old delivery replayed past the tolerance is refused" 400 "$(post "$work/body" "$(sign "$work/body" "$old")")"
check "no signature is refused" 400 "$(curl -s -o "$work/answer" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$work/body" "$url")"
[ "$fail" = 0 ] && echo "stripe webhooks: 5 passed, 0 failed"
exit "$fail"
