//! Issue 20 with `provider = "stripe"`, end to end against the mock Stripe on loopback: the
//! tenant's Customer and Subscription are created off the request path, the test clock ends the
//! trial and renews, Stripe's signed webhooks drive the local state (paid → active, a declined
//! card → past_due → read-only → paid → active), an upgrade changes the price at Stripe, a
//! second delivery changes nothing, tampered and expired deliveries are refused, a 500 is
//! retried, and usage is reported once per tenant-hour.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use common::TestServer;
use serde_json::{json, Value};
use tenantd::billing::stripe::mock::{self, MockConfig, MockStripe};
use tenantd::billing::stripe::signature;
use tenantd::catalog::billing as records;
use tenantd::tenancy::Actor;

const KEY: &str = "sk_test_tenantd";
const SECRET: &str = "whsec_tenantd_test";

/// Calls the mock's API as a test (the operator or the customer at Stripe).
fn stripe(m: &MockStripe, method: &str, path: &str, form: &str) -> Value {
    let r = m.handle(
        &mock::MockRequest::new(method, path)
            .with_header("Authorization", &format!("Bearer {KEY}"))
            .with_body(form.as_bytes().to_vec()),
    );
    let v = r.json();
    assert!(r.status < 300, "{method} {path}: {} {v}", r.status);
    v
}

struct World {
    s: TestServer,
    running: mock::RunningMock,
    clock: String,
}

fn world() -> World {
    let running = mock::start("127.0.0.1:0", MockConfig::default()).unwrap();
    let m = running.mock();
    let now = tenantd::util::now_unix();
    let clock = stripe(m, "POST", "/v1/test_helpers/test_clocks", &format!("frozen_time={now}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let price = |amount: u32, name: &str| {
        stripe(
            m,
            "POST",
            "/v1/prices",
            &format!("currency=usd&unit_amount={amount}&recurring[interval]=month&product_data[name]={name}"),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pro, ent) = (price(2900, "Pro"), price(9900, "Enterprise"));
    let base = running.base_url();
    let clock2 = clock.clone();
    let s = TestServer::start_with(move |c| {
        c.billing.provider = "stripe".into();
        c.billing.stripe_api_base = base;
        c.billing.stripe_secret_key = Some(KEY.into());
        c.billing.stripe_webhook_secrets = vec!["whsec_old_rotated_out".into(), SECRET.into()];
        c.billing.dunning_grace_days = 0;
        c.billing.stripe_test_clock = Some(clock2);
        let p = c.plans.get_mut("pro").unwrap();
        p.stripe_price_id = Some(pro);
        p.trial_days = 14;
        p.price_monthly_cents = 2900;
        p.price_yearly_cents = 0;
        let e = c.plans.get_mut("enterprise").unwrap();
        e.stripe_price_id = Some(ent);
        e.price_monthly_cents = 9900;
        e.price_yearly_cents = 0;
    });
    m.add_webhook(&format!("http://{}/api/v1/billing/stripe/webhook", s.addr()), SECRET);
    World { s, running, clock }
}

fn local(s: &TestServer, slug: &str) -> records::Subscription {
    let t = s.app.tenant(&tenantd::ids::Slug::parse(slug).unwrap()).unwrap();
    records::current(&s.app.catalog.conn().unwrap(), &t.id).unwrap().unwrap()
}

fn sync(s: &TestServer) -> tenantd::billing::provider::Drained {
    tenantd::billing::provider::drain(&s.app, tenantd::util::now_unix()).unwrap()
}

#[test]
fn issue20_stripe_trial_paid_upgrade_decline_read_only_paid() {
    let w = world();
    let m = w.running.mock();
    let owner = w.s.token("owner@acme.test", "acme", "owner");
    tenantd::tenancy::set_plan(&w.s.app, &tenantd::ids::Slug::parse("acme").unwrap(), "pro", &Actor::cli()).unwrap();
    assert_eq!(local(&w.s, "acme").status, "trialing");
    assert!(local(&w.s, "acme").provider_subscription_id.is_none(), "nothing called Stripe on the request path");

    // Off the request path: the Customer and the Subscription (with its trial) at Stripe.
    let d = sync(&w.s);
    assert_eq!((d.done, d.pending), (1, 0), "{d:?}");
    let sub = local(&w.s, "acme");
    let (cus, sid) = (sub.provider_customer_id.clone().unwrap(), sub.provider_subscription_id.clone().unwrap());
    let remote = stripe(m, "GET", &format!("/v1/subscriptions/{sid}"), "");
    assert_eq!(remote["status"], "trialing");
    assert_eq!(remote["metadata"]["tenant_id"], sub.tenant_id);
    // The customer enters a card (as Checkout would).
    stripe(m, "POST", &format!("/v1/customers/{cus}"), "invoice_settings[default_payment_method]=pm_card_visa");

    // The trial ends at Stripe: its signed webhooks make the tenant active.
    let trial_end = remote["trial_end"].as_i64().unwrap();
    stripe(
        m,
        "POST",
        &format!("/v1/test_helpers/test_clocks/{}/advance", w.clock),
        &format!("frozen_time={}", trial_end + 3600),
    );
    let sub = local(&w.s, "acme");
    assert_eq!(sub.status, "active", "{sub:?}");

    // Upgrade: the price changes at Stripe (prorated there).
    tenantd::tenancy::set_plan(&w.s.app, &tenantd::ids::Slug::parse("acme").unwrap(), "enterprise", &Actor::cli())
        .unwrap();
    assert_eq!(sync(&w.s).done, 1);
    let remote = stripe(m, "GET", &format!("/v1/subscriptions/{sid}"), "");
    assert_eq!(remote["items"]["data"][0]["price"]["unit_amount"], 9900, "{remote}");

    // The card declines at renewal: past_due, and with no grace the tenant is read-only.
    stripe(
        m,
        "POST",
        &format!("/v1/customers/{cus}"),
        "invoice_settings[default_payment_method]=pm_card_chargeCustomerFail",
    );
    let end = remote["items"]["data"][0]["current_period_end"].as_i64().unwrap();
    stripe(
        m,
        "POST",
        &format!("/v1/test_helpers/test_clocks/{}/advance", w.clock),
        &format!("frozen_time={}", end + 3600),
    );
    assert_eq!(local(&w.s, "acme").status, "past_due");
    let write = w.s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "x"}));
    assert_eq!(write.status, 402, "{}", write.text());
    assert_eq!(w.s.get_as("/api/v1/t/acme/billing", &owner).status, 200);
    let chain = w.s.get_as("/api/v1/t/acme/audit", &owner).text();
    assert!(
        chain.contains("billing.past_due") && chain.contains("billing.read_only"),
        "the tenant's own chain: {chain}"
    );

    // A working card and Stripe's retry: paid, active, writable again.
    stripe(m, "POST", &format!("/v1/customers/{cus}"), "invoice_settings[default_payment_method]=pm_card_visa");
    stripe(
        m,
        "POST",
        &format!("/v1/test_helpers/test_clocks/{}/advance", w.clock),
        &format!("frozen_time={}", end + 4 * 86_400),
    );
    assert_eq!(local(&w.s, "acme").status, "active");
    assert_eq!(w.s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "x"})).status, 201);

    // Stripe delivers an event again: 200, and nothing changes.
    let ledger_before = records::ledger(&w.s.app.catalog.conn().unwrap(), None).unwrap().len();
    let events = m.events();
    let last = events["data"].as_array().unwrap().iter().rev().find(|e| e["type"] == "invoice.payment_failed").unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = m.handle(&mock::MockRequest::new("POST", &format!("/__mock/events/{last}/resend")));
    assert!(r.status < 300, "{}", r.json());
    assert_eq!(local(&w.s, "acme").status, "active", "an old failure delivered again does not undo the payment");
    assert_eq!(records::ledger(&w.s.app.catalog.conn().unwrap(), None).unwrap().len(), ledger_before);
}

#[test]
fn issue20_webhook_signatures_tampering_replay_and_unknown_customers() {
    let w = world();
    let post = |body: &str, header: Option<String>| {
        let mut headers = vec![("Content-Type", "application/json")];
        let h = header.unwrap_or_default();
        if !h.is_empty() {
            headers.push(("Stripe-Signature", h.as_str()));
        }
        w.s.client().request("POST", "/api/v1/billing/stripe/webhook", &headers, body.as_bytes()).unwrap()
    };
    let now = tenantd::util::now_unix();
    let body = json!({"id": "evt_unknown_1", "object": "event", "type": "customer.subscription.updated", "created": now,
        "data": {"object": {"id": "sub_nobody", "object": "subscription", "customer": "cus_nobody", "status": "active"}}})
    .to_string();
    let ok = post(&body, Some(signature::sign(body.as_bytes(), SECRET, now)));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["outcome"], "unknown", "an unknown customer is logged, not an error");
    // The same event again: 200, a duplicate.
    let again = post(&body, Some(signature::sign(body.as_bytes(), SECRET, now)));
    assert_eq!(again.json()["outcome"], "duplicate");
    // Tampered, signed with another secret, expired (a replayed old delivery), or missing.
    let other = body.replace("active", "canceled");
    let bad = [
        post(&other, Some(signature::sign(body.as_bytes(), SECRET, now))),
        post(&body, Some(signature::sign(body.as_bytes(), "whsec_wrong", now))),
        post(&body, Some(signature::sign(body.as_bytes(), SECRET, now - 301))),
        post(&body, None),
    ];
    for r in &bad {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "bad_signature");
    }
    let n: i64 =
        w.s.app
            .catalog
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM platform_audit WHERE action = 'billing.webhook_refused'", [], |r| r.get(0))
            .unwrap();
    assert_eq!(n, 4, "each refusal is a security audit entry");
    // The rotated-out secret still verifies during a rotation.
    let rotated = json!({"id": "evt_rot", "type": "ping", "created": now, "data": {"object": {}}}).to_string();
    let r = post(&rotated, Some(signature::sign(rotated.as_bytes(), "whsec_old_rotated_out", now)));
    assert_eq!((r.status, r.json()["outcome"].clone()), (200, json!("ignored")));
}

#[test]
fn issue20_stripe_outages_are_retried_and_usage_is_reported_once_per_hour() {
    let w = world();
    let m = w.running.mock();
    w.s.create_tenant("acme");
    tenantd::tenancy::set_plan(&w.s.app, &tenantd::ids::Slug::parse("acme").unwrap(), "enterprise", &Actor::cli())
        .unwrap();
    // Stripe answers 500: the call stays queued with a backoff; tenant traffic is unaffected.
    m.fail_next(1, 500);
    let d = sync(&w.s);
    assert_eq!((d.done, d.retried.len()), (0, 1), "{d:?}");
    let now = tenantd::util::now_unix();
    let later = tenantd::billing::provider::drain(&w.s.app, now + 3600).unwrap();
    assert_eq!(later.done, 1, "{later:?}");
    assert!(local(&w.s, "acme").provider_customer_id.is_some());
    // Usage: three closed hours, queued and sent twice, reported once each.
    stripe(
        m,
        "POST",
        "/v1/billing/meters",
        "display_name=Requests&event_name=tenantd_requests&default_aggregation[formula]=sum",
    );
    let t = local(&w.s, "acme");
    let hour = now - now.rem_euclid(3600);
    // Hours that ended over an hour ago (the last one may still be counting).
    for h in 2..=4 {
        w.s.app
            .catalog
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO usage_hourly (tenant_id, hour, requests) VALUES (?1, ?2, ?3)",
                rusqlite::params![t.tenant_id, hour - h * 3600, 100 * h],
            )
            .unwrap();
    }
    assert_eq!(tenantd::billing::queue_meter_events(&w.s.app, now).unwrap(), 3);
    assert_eq!(tenantd::billing::queue_meter_events(&w.s.app, now).unwrap(), 3, "queued again…");
    let d = tenantd::billing::provider::drain(&w.s.app, now + 7200).unwrap();
    assert_eq!(d.done, 3, "…but each tenant-hour once: {d:?}");
    assert_eq!(tenantd::billing::provider::drain(&w.s.app, now + 7300).unwrap().done, 0);
}

#[test]
fn issue20_a_crash_between_stripe_and_the_local_write_converges_without_a_second_charge() {
    let w = world();
    let m = w.running.mock();
    w.s.create_tenant("acme");
    tenantd::tenancy::set_plan(&w.s.app, &tenantd::ids::Slug::parse("acme").unwrap(), "enterprise", &Actor::cli())
        .unwrap();
    assert_eq!(sync(&w.s).done, 1);
    let first = local(&w.s, "acme");
    // As if the process died after Stripe answered and before the answer was stored: the local
    // ids are gone and the queued call is due again.
    {
        let conn = w.s.app.catalog.conn().unwrap();
        conn.execute("UPDATE billing_subscriptions SET provider_customer_id = NULL, provider_subscription_id = NULL WHERE id = ?1", [first.id]).unwrap();
        conn.execute("UPDATE billing_outbox SET done_at = NULL, attempts = 0", []).unwrap();
    }
    assert_eq!(sync(&w.s).done, 1);
    let again = local(&w.s, "acme");
    assert_eq!(
        again.provider_customer_id, first.provider_customer_id,
        "the idempotency key replayed Stripe's first answer"
    );
    assert_eq!(again.provider_subscription_id, first.provider_subscription_id);
    let customers = stripe(m, "GET", "/v1/customers", "limit=100");
    assert_eq!(customers["data"].as_array().unwrap().len(), 1, "one customer at Stripe: {customers}");
    let subs = stripe(m, "GET", "/v1/subscriptions", "limit=100");
    assert_eq!(subs["data"].as_array().unwrap().len(), 1, "one subscription, charged once");
}
