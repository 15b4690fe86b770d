#!/usr/bin/env bash
# Issue 20 item 7: the mock Stripe checked with the official Python library. Builds (or takes)
# the mock-stripe binary, starts it on a free loopback port, runs scripts/stripe-fidelity.py in
# a venv with a pinned `stripe` from PyPI, prints the script's JSON, and stops the mock.
#
#   scripts/stripe-fidelity.sh [PATH_TO_MOCK_STRIPE_BINARY]
#
# Environment: STRIPE_VERSION (default below), STRIPE_VENV (default under $TMPDIR or /tmp).
# Exit status: the script's (0 all checks passed, 1 one failed), or 1 when the mock cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the mock's shapes and API version were checked against (docs/stripe-mock.md).
STRIPE_VERSION="${STRIPE_VERSION:-16.1.0}"
VENV="${STRIPE_VENV:-${TMPDIR:-/tmp}/tenantd-stripe-venv-$STRIPE_VERSION}"

bin="${1:-}"
if [ -z "$bin" ]; then
    # Builds share the machine's cargo lock when there is one.
    if command -v flock >/dev/null; then
        flock -o /tmp/tenantd-cargo.lock cargo build -q --bin mock-stripe
    else
        cargo build -q --bin mock-stripe
    fi
    bin=target/debug/mock-stripe
fi

if ! "$VENV/bin/python" -c "import stripe, sys; sys.exit(stripe.VERSION != '$STRIPE_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "stripe==$STRIPE_VERSION"
fi

secret="whsec_fidelity_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
work=$(mktemp -d)
mkfifo "$work/out"
"$bin" --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# The mock's first line is "mock-stripe listening on http://127.0.0.1:PORT".
exec 3<"$work/out"
if ! read -r -t 60 line <&3; then
    echo "mock-stripe did not start:" >&2
    cat "$work/err" >&2
    exit 1
fi
url="${line##* }"

"$VENV/bin/python" scripts/stripe-fidelity.py --base-url "$url" --webhook-secret "$secret"
