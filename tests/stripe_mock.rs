//! Issue 20 item 7: the mock Stripe, run in-process on an ephemeral loopback port and driven
//! over HTTP like tenantd will drive it. Webhooks go to a tiny_http receiver in the test and
//! are checked with `billing::stripe::signature::verify`, the verifier tenantd's webhook
//! route uses. Time moves only through test clocks: nothing here sleeps.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod stripe_mock_kit;

use stripe_mock_kit::*;

#[test]
fn a_trial_ends_in_a_paid_invoice_and_a_signed_invoice_paid_webhook() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_visa"));
    let price = api.price(2900, "month");
    let sub = subscribe(&api, &customer, &price, &[("trial_period_days", "14"), ("metadata[tenant]", "acme")]);
    assert_eq!((sub["object"].as_str(), sub["status"].as_str()), (Some("subscription"), Some("trialing")));
    assert_eq!(sub["trial_end"], T0 + 14 * DAY);
    assert_eq!(sub["metadata"]["tenant"], "acme");
    assert_eq!(sub["livemode"], false);
    assert_eq!(sub["items"]["data"][0]["price"]["id"], price);
    // Stripe opens a trial with a paid invoice of 0.
    assert_eq!(hooks.types(), ["customer.subscription.created", "invoice.paid"]);

    let advanced = api.advance(&clock, T0 + 15 * DAY);
    assert_eq!(advanced["frozen_time"], T0 + 15 * DAY);
    let events = hooks.received();
    let types: Vec<&str> = events.iter().map(|(e, _, _)| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["customer.subscription.trial_will_end", "customer.subscription.updated", "invoice.paid"]);
    let (updated, _, _) = &events[1];
    assert_eq!(updated["data"]["object"]["status"], "active");
    assert_eq!(updated["data"]["previous_attributes"]["status"], "trialing");
    assert_eq!(updated["request"]["id"], Value::Null, "automatic changes have no request");
    let (paid, body, sig) = &events[2];
    assert!(paid["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(paid["object"], "event");
    let invoice = &paid["data"]["object"];
    assert_eq!((invoice["status"].as_str(), invoice["amount_paid"].as_i64()), (Some("paid"), Some(2900)));
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(invoice["parent"]["subscription_details"]["subscription"], sub["id"]);
    // The body is verified as sent; a changed byte is not.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let refused = signature::verify(sig, &tampered, &[SECRET], DEFAULT_TOLERANCE, tenantd::util::now_unix());
    assert_eq!(refused, Err(SignatureError::NoMatch));

    let sub = api.sub(sub["id"].as_str().unwrap());
    assert_eq!(sub["status"], "active");
    let item = &sub["items"]["data"][0];
    assert_eq!(item["current_period_start"], T0 + 14 * DAY);
    assert_eq!(item["current_period_end"], T0 + 14 * DAY + 31 * DAY, "January 15 to February 15");
    let invoices = api.get("/v1/invoices", &[("customer", &customer)]).ok();
    let amounts: Vec<i64> =
        invoices["data"].as_array().unwrap().iter().map(|i| i["amount_paid"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [2900, 0], "newest first");
    assert!(invoices["data"][0]["number"].as_str().unwrap().ends_with("-0002"));
}

#[test]
fn a_declining_card_fails_the_renewal_goes_past_due_and_recovers_on_retry() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_chargeDeclined"));
    let price = api.price(1500, "month");
    let sub = subscribe(&api, &customer, &price, &[("trial_period_days", "7")]);
    let sub_id = sub["id"].as_str().unwrap();
    hooks.received();
    api.advance(&clock, T0 + 8 * DAY);
    let events = hooks.received();
    let failed = events.iter().find(|(e, _, _)| e["type"] == "invoice.payment_failed").expect("invoice.payment_failed");
    let invoice = &failed.0["data"]["object"];
    assert_eq!((invoice["status"].as_str(), invoice["attempt_count"].as_i64()), (Some("open"), Some(1)));
    assert_eq!(invoice["next_payment_attempt"], T0 + 7 * DAY + 3 * DAY, "first retry 3 days on");
    let last = &events.last().unwrap().0;
    assert_eq!(last["type"], "customer.subscription.updated");
    assert_eq!(last["data"]["object"]["status"], "past_due");
    assert_eq!(api.sub(sub_id)["status"], "past_due");
    assert_eq!(api.get(&format!("/v1/customers/{customer}"), &[]).ok()["delinquent"], true);

    // Paying by hand with the same card: a 402 card error, and one more failed attempt.
    let inv_id = invoice["id"].as_str().unwrap();
    let r = api.post(&format!("/v1/invoices/{inv_id}/pay"), &[]);
    assert_eq!((r.status, r.error()["type"].as_str()), (402, Some("card_error")));
    assert_eq!(
        (r.error()["code"].as_str(), r.error()["decline_code"].as_str()),
        (Some("card_declined"), Some("generic_decline"))
    );
    assert_eq!(hooks.types(), ["invoice.payment_failed"]);

    // A working card, then the scheduled retry pays and the subscription is active again.
    api.post(&format!("/v1/customers/{customer}"), &[("invoice_settings[default_payment_method]", "pm_card_visa")])
        .ok();
    // The hand-made attempt was the second: the next is 5 days after finalization.
    api.advance(&clock, T0 + 12 * DAY);
    assert_eq!(hooks.types(), ["invoice.paid", "customer.subscription.updated"]);
    assert_eq!(api.sub(sub_id)["status"], "active");
    let invoice = api.get(&format!("/v1/invoices/{inv_id}"), &[]).ok();
    assert_eq!((invoice["status"].as_str(), invoice["attempt_count"].as_i64()), (Some("paid"), Some(3)));
}

#[test]
fn when_retries_run_out_the_subscription_is_canceled() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_chargeDeclinedInsufficientFunds"));
    let price = api.price(1500, "month");
    let sub = subscribe(&api, &customer, &price, &[("trial_period_days", "1")]);
    hooks.received();
    api.advance(&clock, T0 + 10 * DAY);
    let types = hooks.types();
    assert_eq!(types.iter().filter(|t| *t == "invoice.payment_failed").count(), 4, "{types:?}");
    assert_eq!(types.last().unwrap(), "customer.subscription.deleted");
    let sub = api.sub(sub["id"].as_str().unwrap());
    assert_eq!(sub["status"], "canceled");
    assert_eq!(sub["cancellation_details"]["reason"], "payment_failed");
    assert_eq!(sub["ended_at"], T0 + DAY + 7 * DAY);
}

#[test]
fn a_first_payment_that_fails_is_a_402_or_an_incomplete_subscription() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_chargeDeclined"));
    let price = api.price(1500, "month");
    let form =
        [("customer", customer.as_str()), ("items[0][price]", &price), ("payment_behavior", "error_if_incomplete")];
    let r = api.post("/v1/subscriptions", &form);
    assert_eq!((r.status, r.error()["code"].as_str()), (402, Some("card_declined")));
    assert_eq!(
        api.get("/v1/subscriptions", &[("customer", &customer), ("status", "all")]).ok()["data"],
        serde_json::json!([])
    );
    assert!(hooks.types().is_empty(), "nothing was made");

    let sub = subscribe(&api, &customer, &price, &[]);
    assert_eq!(sub["status"], "incomplete");
    assert_eq!(hooks.types(), ["customer.subscription.created", "invoice.payment_failed"]);
    api.advance(&clock, T0 + DAY);
    let sub = api.sub(sub["id"].as_str().unwrap());
    assert_eq!(sub["status"], "incomplete_expired", "not paid within 23 hours");
    let invoice = api.get(&format!("/v1/invoices/{}", sub["latest_invoice"].as_str().unwrap()), &[]).ok();
    assert_eq!(invoice["status"], "void");
}

#[test]
fn idempotency_keys_replay_the_first_answer_and_refuse_other_parameters() {
    let (_mock, api, _hooks) = start();
    let first = api.post_key("/v1/customers", &[("email", "a@acme.test")], "key-1");
    let again = api.post_key("/v1/customers", &[("email", "a@acme.test")], "key-1");
    assert_eq!(first.json, again.ok());
    let replay = api.post_key("/v1/customers", &[("email", "a@acme.test")], "key-1");
    assert_eq!(replay.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(first.header("Idempotent-Replayed"), None);
    assert_eq!(api.get("/v1/customers", &[]).ok()["data"].as_array().unwrap().len(), 1, "made once");

    let conflict = api.post_key("/v1/customers", &[("email", "b@acme.test")], "key-1");
    assert_eq!((conflict.status, conflict.error()["type"].as_str()), (400, Some("idempotency_error")));
    let other_url = api.post_key("/v1/test_helpers/test_clocks", &[("email", "a@acme.test")], "key-1");
    assert_eq!(other_url.error()["type"], "idempotency_error");

    // A request refused before it ran is not saved: the corrected retry runs.
    let bad = api.post_key("/v1/customers", &[("emial", "c@acme.test")], "key-2");
    assert_eq!((bad.status, bad.error()["code"].as_str()), (400, Some("parameter_unknown")));
    assert_eq!(api.post_key("/v1/customers", &[("email", "c@acme.test")], "key-2").status, 200);

    // A declined card is an outcome: replayed, even after the card is fixed.
    let (_, customer) = api.customer_on_clock(Some("pm_card_chargeDeclined"));
    let price = api.price(900, "month");
    let form =
        [("customer", customer.as_str()), ("items[0][price]", &price), ("payment_behavior", "error_if_incomplete")];
    assert_eq!(api.post_key("/v1/subscriptions", &form, "key-3").status, 402);
    api.post(&format!("/v1/customers/{customer}"), &[("invoice_settings[default_payment_method]", "pm_card_visa")])
        .ok();
    let replayed = api.post_key("/v1/subscriptions", &form, "key-3");
    assert_eq!((replayed.status, replayed.header("Idempotent-Replayed")), (402, Some("true")));
    assert_eq!(api.post_key("/v1/subscriptions", &form, "key-4").ok()["status"], "active");
}

#[test]
fn injected_500s_fail_before_running_so_a_retry_with_the_same_key_succeeds() {
    let (_mock, api, _hooks) = start();
    assert_eq!(api.call("POST", "/__mock/fail_next", &[("count", "2")], &[]).ok()["fail_next"], 2);
    for _ in 0..2 {
        let r = api.post_key("/v1/customers", &[("email", "a@acme.test")], "retry-me");
        assert_eq!((r.status, r.error()["type"].as_str()), (500, Some("api_error")));
        assert_eq!(r.header("Stripe-Should-Retry"), Some("true"));
    }
    let ok = api.post_key("/v1/customers", &[("email", "a@acme.test")], "retry-me");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("Idempotent-Replayed"), None, "the 500s were not saved");
    assert_eq!(api.get("/v1/customers", &[]).ok()["data"].as_array().unwrap().len(), 1);
    // And in-process, with another status.
    _mock.mock().fail_next(1, 503);
    assert_eq!(api.get("/v1/customers", &[]).status, 503);
    assert_eq!(api.get("/v1/customers", &[]).status, 200);
}

#[test]
fn meter_events_are_deduplicated_by_identifier_and_billed_once() {
    let (_mock, api, _hooks) = start();
    let meter = api
        .post(
            "/v1/billing/meters",
            &[
                ("display_name", "API requests"),
                ("event_name", "api_requests"),
                ("default_aggregation[formula]", "sum"),
            ],
        )
        .ok();
    let meter = meter["id"].as_str().unwrap().to_string();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_visa"));
    // A metered price (5 cents per started 1,000 requests) beside a licensed one.
    let metered = api
        .post(
            "/v1/prices",
            &[
                ("currency", "usd"),
                ("unit_amount", "5"),
                ("product_data[name]", "Requests"),
                ("recurring[interval]", "month"),
                ("recurring[usage_type]", "metered"),
                ("recurring[meter]", &meter),
                ("transform_quantity[divide_by]", "1000"),
                ("transform_quantity[round]", "up"),
            ],
        )
        .ok();
    let licensed = api.price(2000, "month");
    let form = [
        ("customer", customer.as_str()),
        ("items[0][price]", &licensed),
        ("items[1][price]", metered["id"].as_str().unwrap()),
    ];
    assert_eq!(api.post("/v1/subscriptions", &form).ok()["status"], "active");

    let report = |identifier: &str, value: &str, at: i64| {
        let at = at.to_string();
        let form = [
            ("event_name", "api_requests"),
            ("payload[stripe_customer_id]", customer.as_str()),
            ("payload[value]", value),
            ("identifier", identifier),
            ("timestamp", at.as_str()),
        ];
        api.post("/v1/billing/meter_events", &form)
    };
    let first = report("acme:2026-01-01T00", "1200", T0);
    assert_eq!(first.status, 200);
    assert_eq!(first.json["object"], "billing.meter_event");
    assert_eq!(first.json["identifier"], "acme:2026-01-01T00");
    let dup = report("acme:2026-01-01T00", "1200", T0);
    assert_eq!((dup.status, dup.error()["param"].as_str()), (400, Some("identifier")));
    assert_eq!(dup.error()["message"], "An event already exists with identifier acme:2026-01-01T00.");
    assert_eq!(dup.header("Stripe-Should-Retry"), Some("false"));
    // The customer's "now" is its test clock: an hour ahead is too far until the clock moves.
    assert_eq!(report("acme:2026-01-01T01", "300", T0 + 3600).status, 400, "5 minutes ahead at most");
    api.advance(&clock, T0 + 2 * 3600);
    assert_eq!(report("acme:2026-01-01T01", "300", T0 + 3600).status, 200);
    assert_eq!(report("acme:too-old", "1", T0 - 36 * DAY).status, 400, "35 days back at most");
    let window =
        [("customer", customer.as_str()), ("start_time", &T0.to_string()), ("end_time", &(T0 + DAY).to_string())];
    let summary = api.get(&format!("/v1/billing/meters/{meter}/event_summaries"), &window).ok();
    assert_eq!(summary["data"][0]["aggregated_value"], 1500.0);

    // The renewal bills the month's usage in arrears, once: ceil(1500 / 1000) × 5 cents.
    api.advance(&clock, T0 + 31 * DAY);
    let invoices = api.get("/v1/invoices", &[("customer", &customer)]).ok();
    let renewal = &invoices["data"][0];
    assert_eq!(renewal["billing_reason"], "subscription_cycle");
    let lines = renewal["lines"]["data"].as_array().unwrap();
    let usage: Vec<&Value> = lines.iter().filter(|l| l["pricing"]["price_details"]["price"] == metered["id"]).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0]["quantity"].as_i64(), usage[0]["amount"].as_i64()), (Some(2), Some(10)));
    assert_eq!(renewal["amount_paid"], 2010);
}

#[test]
fn a_mid_period_upgrade_is_prorated_now_or_on_the_next_invoice() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_visa"));
    let basic = api.price(1000, "month");
    let pro = api.price(3000, "month");
    let sub = subscribe(&api, &customer, &basic, &[]);
    assert_eq!(sub["status"], "active");
    let sub_id = sub["id"].as_str().unwrap();
    let item = sub["items"]["data"][0]["id"].as_str().unwrap().to_string();
    let (start, end) = (T0, T0 + 31 * DAY);
    assert_eq!(sub["items"]["data"][0]["current_period_end"], end);
    let half = start + (end - start) / 2;
    api.advance(&clock, half);
    hooks.received();

    let form =
        [("items[0][id]", item.as_str()), ("items[0][price]", pro.as_str()), ("proration_behavior", "always_invoice")];
    let upgraded = api.post(&format!("/v1/subscriptions/{sub_id}"), &form).ok();
    assert_eq!(upgraded["items"]["data"][0]["price"]["id"], pro);
    let events = hooks.received();
    let (updated, _, _) = &events[0];
    assert_eq!(updated["type"], "customer.subscription.updated");
    assert!(updated["data"]["previous_attributes"]["items"].is_object());
    assert!(updated["request"]["id"].as_str().unwrap().starts_with("req_"));
    let invoice = &events[1].0["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_update");
    let amounts: Vec<i64> =
        invoice["lines"]["data"].as_array().unwrap().iter().map(|l| l["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [-500, 1500], "half a period of each");
    assert_eq!(invoice["amount_paid"], 1000);

    // Two seats from now on, prorated onto the renewal invoice.
    let form = [("items[0][id]", item.as_str()), ("items[0][quantity]", "2")];
    api.post(&format!("/v1/subscriptions/{sub_id}"), &form).ok();
    api.advance(&clock, end);
    let renewal = &api.get("/v1/invoices", &[("customer", &customer)]).ok()["data"][0];
    let amounts: Vec<i64> =
        renewal["lines"]["data"].as_array().unwrap().iter().map(|l| l["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [-1500, 3000, 6000]);
    assert_eq!(renewal["amount_paid"], 7500);
}

#[test]
fn cancel_at_period_end_and_paused_collection() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(Some("pm_card_visa"));
    let price = api.price(1000, "month");
    let leaving = subscribe(&api, &customer, &price, &[]);
    let pausing = subscribe(&api, &customer, &price, &[]);
    let (leaving, pausing) = (leaving["id"].as_str().unwrap(), pausing["id"].as_str().unwrap());
    let set = api.post(&format!("/v1/subscriptions/{leaving}"), &[("cancel_at_period_end", "true")]).ok();
    assert_eq!((set["status"].as_str(), set["cancel_at"].as_i64()), (Some("active"), Some(T0 + 31 * DAY)));
    api.post(&format!("/v1/subscriptions/{pausing}"), &[("pause_collection[behavior]", "void")]).ok();
    hooks.received();
    api.advance(&clock, T0 + 31 * DAY);
    let events = hooks.received();
    let deleted: Vec<&Value> =
        events.iter().map(|e| &e.0).filter(|e| e["type"] == "customer.subscription.deleted").collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["object"]["id"], leaving);
    assert_eq!(api.sub(leaving)["ended_at"], T0 + 31 * DAY);
    assert!(!events.iter().any(|e| e.0["type"] == "invoice.paid"), "paused collection charges nothing");
    let renewal = api.get("/v1/invoices", &[("subscription", pausing)]).ok();
    assert_eq!(renewal["data"][0]["status"], "void");
    assert_eq!(api.delete(&format!("/v1/subscriptions/{pausing}")).ok()["status"], "canceled");
    assert_eq!(api.delete(&format!("/v1/subscriptions/{pausing}")).status, 400);
}

#[test]
fn a_trial_without_a_payment_method_pauses_when_asked_and_resumes() {
    let (_mock, api, hooks) = start();
    let (clock, customer) = api.customer_on_clock(None);
    let price = api.price(1000, "month");
    let sub = subscribe(
        &api,
        &customer,
        &price,
        &[("trial_period_days", "2"), ("trial_settings[end_behavior][missing_payment_method]", "pause")],
    );
    let id = sub["id"].as_str().unwrap();
    hooks.received();
    api.advance(&clock, T0 + 3 * DAY);
    assert_eq!(hooks.types(), ["customer.subscription.updated", "customer.subscription.paused"]);
    assert_eq!(api.sub(id)["status"], "paused");
    api.post(&format!("/v1/customers/{customer}"), &[("invoice_settings[default_payment_method]", "pm_card_visa")])
        .ok();
    let resumed = api.post(&format!("/v1/subscriptions/{id}/resume"), &[]).ok();
    assert_eq!(resumed["status"], "active");
    assert_eq!(hooks.types(), ["customer.subscription.resumed", "customer.subscription.updated", "invoice.paid"]);
}
