#!/usr/bin/env python3
"""Checks the mock Stripe (src/billing/stripe/mock, docs/stripe-mock.md) with the official
Python library, `stripe` from PyPI (issue 20 item 7): the library, pointed at the mock, creates
a customer, a price and a subscription with a trial and parses the answers as its own objects;
advances a test clock and lists the invoices; verifies the webhooks the mock sent with
`stripe.Webhook.construct_event`; and maps the mock's errors to its exception classes.

    stripe-fidelity.py --base-url http://127.0.0.1:PORT --webhook-secret whsec_...
        runs the checks and prints one JSON document; exit status 1 when any check fails.
    stripe-fidelity.py --sign BODY_FILE --secret whsec_... --timestamp UNIX_SECONDS
        prints the Stripe-Signature header the library's own signing helper makes for the
        body, to feed tenantd's webhook endpoint library-signed deliveries.

scripts/stripe-fidelity.sh starts the mock and runs this in a venv with a pinned `stripe`.
"""

import argparse
import json
import sys
import threading
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

T0 = 1767225600  # 2026-01-01T00:00:00Z
DAY = 86400


def sign(body_file, secret, timestamp):
    """The library's own helper: WebhookSignature.generate_signature_header."""
    with open(body_file, "rb") as f:
        body = f.read().decode("utf-8")
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=int(timestamp))


class Receiver:
    """A webhook endpoint on 127.0.0.1: keeps every delivery's signature header and raw body."""

    def __init__(self):
        self.deliveries = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.headers.get("Stripe-Signature", ""), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/webhook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        out = list(self.deliveries)
        self.deliveries.clear()
        return out


class Checks:
    def __init__(self):
        self.results = []

    def check(self, name, fn):
        try:
            detail = fn()
            self.results.append({"name": name, "ok": True, "detail": detail})
            return detail
        except Exception as e:  # a failed check is reported, and the others still run
            self.results.append({"name": name, "ok": False, "error": "%s: %s" % (type(e).__name__, e),
                                 "trace": traceback.format_exc(limit=3)})
            return None

    @property
    def ok(self):
        return all(r["ok"] for r in self.results)


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_raises(cls, fn):
    try:
        fn()
    except cls as e:
        return e
    raise AssertionError("expected %s" % cls.__name__)


def run(base_url, webhook_secret):
    checks = Checks()
    receiver = Receiver()
    client = stripe.StripeClient("sk_test_fidelity", base_addresses={"api": base_url}, max_network_retries=0)
    v1 = client.v1
    state = {}

    def endpoint():
        # `secret` is the mock's own parameter (Stripe generates the secret).
        ep = v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"], "secret": webhook_secret})
        expect(isinstance(ep, stripe.WebhookEndpoint), type(ep).__name__)
        expect(ep.secret == webhook_secret and ep.status == "enabled", ep)
        return ep.id

    def customer():
        clock = v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "fidelity"})
        expect(isinstance(clock, stripe.test_helpers.TestClock) and clock.status == "ready", clock)
        c = v1.customers.create(params={"email": "owner@acme.test", "payment_method": "pm_card_visa",
                                        "test_clock": clock.id, "metadata": {"tenant": "acme"}})
        expect(isinstance(c, stripe.Customer), type(c).__name__)
        expect(c.id.startswith("cus_") and c.livemode is False and c.test_clock == clock.id, c)
        expect(c.metadata["tenant"] == "acme", c.metadata)
        expect(c.invoice_settings.default_payment_method == "pm_card_visa", c.invoice_settings)
        again = v1.customers.retrieve(c.id)
        expect(again.email == "owner@acme.test" and again.created == T0, again)
        state.update(clock=clock.id, customer=c.id)
        return c.id

    def price():
        p = v1.prices.create(params={"currency": "usd", "unit_amount": 2900, "product_data": {"name": "Pro"},
                                     "recurring": {"interval": "month"}, "lookup_key": "pro_monthly"})
        expect(isinstance(p, stripe.Price), type(p).__name__)
        expect(p.recurring.interval == "month" and p.unit_amount == 2900 and p.type == "recurring", p)
        found = v1.prices.list(params={"lookup_keys": ["pro_monthly"]})
        expect([x.id for x in found.data] == [p.id], found)
        state["price"] = p.id
        return p.id

    def subscription():
        s = v1.subscriptions.create(params={"customer": state["customer"], "items": [{"price": state["price"]}],
                                            "trial_period_days": 14, "metadata": {"tenant": "acme"}})
        expect(isinstance(s, stripe.Subscription), type(s).__name__)
        expect(s.status == "trialing" and s.trial_end == T0 + 14 * DAY, s)
        item = s["items"].data[0]
        expect(isinstance(item, stripe.SubscriptionItem) and item.price.id == state["price"], item)
        expect(isinstance(item.price, stripe.Price), type(item.price).__name__)
        state["subscription"] = s.id
        return {"id": s.id, "status": s.status, "trial_end": s.trial_end}

    def advance():
        clock = v1.test_helpers.test_clocks.advance(state["clock"], params={"frozen_time": T0 + 15 * DAY})
        expect(clock.frozen_time == T0 + 15 * DAY, clock)
        ready = v1.test_helpers.test_clocks.retrieve(state["clock"])
        expect(ready.status == "ready", ready.status)
        s = v1.subscriptions.retrieve(state["subscription"])
        expect(s.status == "active", s.status)
        expect(s["items"].data[0].current_period_start == T0 + 14 * DAY, s["items"].data[0])
        return s.status

    def invoices():
        page = v1.invoices.list(params={"customer": state["customer"]})
        expect(isinstance(page, stripe.ListObject), type(page).__name__)
        all_invoices = list(page.auto_paging_iter())
        expect(all(isinstance(i, stripe.Invoice) for i in all_invoices), [type(i).__name__ for i in all_invoices])
        newest = all_invoices[0]
        expect(newest.status == "paid" and newest.amount_paid == 2900, newest)
        expect(newest.parent.subscription_details.subscription == state["subscription"], newest.parent)
        expect(newest.lines.data[0].amount == 2900, newest.lines)
        return [{"id": i.id, "status": i.status, "amount_paid": i.amount_paid} for i in all_invoices]

    def webhooks():
        got = receiver.take()
        expect(got, "no deliveries")
        types = []
        for header, body in got:
            event = stripe.Webhook.construct_event(body, header, webhook_secret)
            expect(isinstance(event, stripe.Event), type(event).__name__)
            types.append(event.type)
            if event.type == "invoice.paid":
                expect(isinstance(event.data.object, stripe.Invoice), type(event.data.object).__name__)
            if event.type.startswith("customer.subscription."):
                expect(isinstance(event.data.object, stripe.Subscription), type(event.data.object).__name__)
        header, body = got[-1]
        expect_raises(stripe.SignatureVerificationError,
                      lambda: stripe.Webhook.construct_event(body + b" ", header, webhook_secret))
        expect("invoice.paid" in types and "customer.subscription.trial_will_end" in types, types)
        return types

    def errors():
        e = expect_raises(stripe.InvalidRequestError, lambda: v1.customers.retrieve("cus_nope"))
        expect(e.http_status == 404 and e.code == "resource_missing", e)
        e = expect_raises(stripe.InvalidRequestError, lambda: v1.customers.create(params={"emial": "x"}))
        expect(e.code == "parameter_unknown" and e.param == "emial", e)
        live = stripe.StripeClient("sk_live_nope", base_addresses={"api": base_url}, max_network_retries=0)
        expect_raises(stripe.AuthenticationError, lambda: live.v1.customers.list())
        declining = v1.customers.create(params={"payment_method": "pm_card_chargeDeclined"})
        e = expect_raises(stripe.CardError, lambda: v1.subscriptions.create(
            params={"customer": declining.id, "items": [{"price": state["price"]}], "payment_behavior": "error_if_incomplete"}))
        expect(e.http_status == 402 and e.code == "card_declined", e)
        expect(e.error.decline_code == "generic_decline", e.error)
        return "ok"

    def idempotency():
        first = v1.customers.create(params={"email": "i@acme.test"}, options={"idempotency_key": "fidelity-1"})
        again = v1.customers.create(params={"email": "i@acme.test"}, options={"idempotency_key": "fidelity-1"})
        expect(first.id == again.id, (first.id, again.id))
        e = expect_raises(stripe.IdempotencyError, lambda: v1.customers.create(
            params={"email": "other@acme.test"}, options={"idempotency_key": "fidelity-1"}))
        return e.user_message

    def retry_after_500():
        # The mock fails the next request before it runs; the library retries (same key) and wins.
        req = urllib.request.Request(base_url + "/__mock/fail_next", data=b"count=1", method="POST")
        urllib.request.urlopen(req).read()
        retrying = stripe.StripeClient("sk_test_fidelity", base_addresses={"api": base_url}, max_network_retries=2)
        c = retrying.v1.customers.create(params={"email": "retry@acme.test"})
        expect(c.email == "retry@acme.test", c)
        return c.id

    def meter_events():
        meter = v1.billing.meters.create(params={"display_name": "API requests", "event_name": "api_requests",
                                                 "default_aggregation": {"formula": "sum"}})
        expect(isinstance(meter, stripe.billing.Meter), type(meter).__name__)
        params = {"event_name": "api_requests", "identifier": "acme:2026-01-01T00",
                  "payload": {"stripe_customer_id": state["customer"], "value": "1200"},
                  "timestamp": T0 + 15 * DAY}
        ev = v1.billing.meter_events.create(params=params)
        expect(isinstance(ev, stripe.billing.MeterEvent) and ev.identifier == "acme:2026-01-01T00", ev)
        e = expect_raises(stripe.InvalidRequestError, lambda: v1.billing.meter_events.create(params=params))
        expect(e.param == "identifier", e)
        return e.user_message

    checks.check("webhook endpoint", endpoint)
    checks.check("customer on a test clock", customer)
    checks.check("price", price)
    checks.check("subscription with a trial", subscription)
    checks.check("test clock advance ends the trial", advance)
    checks.check("invoices list", invoices)
    checks.check("webhooks verified by stripe.Webhook.construct_event", webhooks)
    checks.check("errors map to the library's exceptions", errors)
    checks.check("idempotency keys", idempotency)
    checks.check("a 500 is retried by the library", retry_after_500)
    checks.check("meter events", meter_events)
    receiver.server.shutdown()
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="the mock's base URL, http://127.0.0.1:PORT")
    ap.add_argument("--webhook-secret", help="the signing secret the mock signs deliveries with")
    ap.add_argument("--sign", metavar="BODY_FILE", help="print the library's Stripe-Signature header for this body")
    ap.add_argument("--secret", help="with --sign: the endpoint's signing secret")
    ap.add_argument("--timestamp", help="with --sign: the signature's t, Unix seconds")
    args = ap.parse_args()
    if args.sign:
        if not args.secret or args.timestamp is None:
            ap.error("--sign needs --secret and --timestamp")
        print(sign(args.sign, args.secret, args.timestamp))
        return 0
    if not args.base_url or not args.webhook_secret:
        ap.error("--base-url and --webhook-secret are required (or --sign)")
    checks = run(args.base_url.rstrip("/"), args.webhook_secret)
    print(json.dumps({"ok": checks.ok, "stripe_version": stripe.VERSION,
                      "api_version": stripe._api_version._ApiVersion.CURRENT,
                      "checks": checks.results}, indent=2, default=str))
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
