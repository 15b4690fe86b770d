//! Issue 20 item 7, the mock Stripe's webhooks, errors and listening (the rest is
//! tests/stripe_mock.rs): redelivery of undelivered events, Stripe-shaped auth and errors,
//! loopback only, in-process answers.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod stripe_mock_kit;

use stripe_mock_kit::*;

#[test]
fn undelivered_webhooks_are_kept_for_redelivery_and_any_event_can_be_sent_again() {
    let (running, api, hooks) = start();
    hooks.status.store(503, Ordering::SeqCst);
    // A second endpoint nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    running.mock().add_webhook(&dead_url, "whsec_other");
    let (_, customer) = api.customer_on_clock(Some("pm_card_visa"));
    let price = api.price(1000, "month");
    subscribe(&api, &customer, &price, &[("trial_period_days", "5")]);
    assert_eq!(hooks.received().len(), 2, "tried, answered 503");
    let log = api.call("GET", "/__mock/events", &[], &[]).ok();
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        let d = e["deliveries"].as_array().unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d["ok"] == false));
        assert!(d.iter().any(|d| d["status"] == 503) && d.iter().any(|d| d["error"].is_string()));
    }

    hooks.status.store(200, Ordering::SeqCst);
    assert_eq!(api.call("POST", "/__mock/redeliver", &[], &[]).ok()["redelivered"], 4);
    let again = hooks.received();
    assert_eq!(again.len(), 2);
    // Stripe's retries send the same body, signed anew.
    assert_eq!(again[0].1, events[0]["payload"].as_str().unwrap().as_bytes());
    assert_eq!(running.mock().redeliver(), 2, "only the dead endpoint still fails, for both events");
    hooks.received();

    // Resend one event on purpose: the receiver sees the same event id twice (a duplicate
    // delivery, as Stripe's retries make).
    let id = events[0]["id"].as_str().unwrap();
    assert_eq!(api.call("POST", &format!("/__mock/events/{id}/resend"), &[], &[]).ok()["resent"], 2);
    let dup = hooks.received();
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].0["id"], id);
    // A recorded delivery replayed past the tolerance is refused by the verifier.
    let first = &events[0]["deliveries"][0];
    let late = first["at"].as_i64().unwrap() + 301;
    let replay = signature::verify(
        first["signature"].as_str().unwrap(),
        events[0]["payload"].as_str().unwrap().as_bytes(),
        &[SECRET],
        DEFAULT_TOLERANCE,
        late,
    );
    assert!(matches!(replay, Err(SignatureError::OutsideTolerance { .. })));
}

#[test]
fn auth_and_errors_have_stripes_shapes() {
    let (_mock, api, _hooks) = start();
    let none = api.call("GET", "/v1/customers", &[], &[]);
    assert_eq!((none.status, none.error()["type"].as_str()), (401, Some("invalid_request_error")));
    let live = api.call("GET", "/v1/customers", &[], &[("Authorization", "Bearer sk_live_123")]);
    assert_eq!(live.status, 401);
    let missing = api.get("/v1/customers/cus_nope", &[]);
    assert_eq!((missing.status, missing.error()["code"].as_str()), (404, Some("resource_missing")));
    assert_eq!(missing.error()["message"], "No such customer: 'cus_nope'");
    assert!(missing.header("Request-Id").unwrap().starts_with("req_"));
    let unknown = api.post("/v1/customers", &[("bogus", "1")]);
    assert_eq!((unknown.status, unknown.error()["param"].as_str()), (400, Some("bogus")));
    let r = api.post("/v1/subscriptions", &[("items[0][price]", "price_x")]);
    assert_eq!(
        (r.error()["code"].as_str(), r.error()["param"].as_str()),
        (Some("parameter_missing"), Some("customer"))
    );
    let (_, customer) = api.customer_on_clock(None);
    let r = api.post("/v1/subscriptions", &[("customer", &customer), ("items[0][price]", "price_nope")]);
    assert_eq!((r.status, r.error()["param"].as_str()), (400, Some("items[0][price]")));
    assert_eq!(api.get("/v1/charges", &[]).status, 404);
    let bad_pm = api.post("/v1/customers", &[("payment_method", "pm_123")]);
    assert_eq!(bad_pm.error()["code"], "resource_missing");
    let bad_clock = api.post("/v1/test_helpers/test_clocks/clock_nope/advance", &[("frozen_time", "1")]);
    assert_eq!(bad_clock.status, 404);
    // Absurd numbers are refused or saturate; they never reach a panic (a 500).
    let far = api.post("/v1/test_helpers/test_clocks", &[("frozen_time", &i64::MAX.to_string())]);
    assert_eq!((far.status, far.error()["param"].as_str()), (400, Some("frozen_time")));
    assert_eq!(
        api.post("/v1/prices", &[("currency", "usd"), ("unit_amount", "100000000"), ("product", "p")]).status,
        400
    );
    let (_, payer) = api.customer_on_clock(Some("pm_card_visa"));
    let price = api.price(99_999_999, "month");
    let huge =
        [("customer", payer.as_str()), ("items[0][price]", &price), ("items[0][quantity]", "9223372036854775807")];
    assert_eq!(api.post("/v1/subscriptions", &huge).status, 200);
}

#[test]
fn the_mock_listens_on_loopback_only() {
    let refused = mock::start("0.0.0.0:0", MockConfig::default());
    assert!(matches!(refused, Err(mock::StartError::NotLoopback(_))));
}

#[test]
fn the_mock_answers_in_process_without_a_socket() {
    let m = mock::MockStripe::new(MockConfig { clock: Arc::new(|| T0), ..MockConfig::default() });
    let req = mock::MockRequest::new("POST", "/v1/customers")
        .with_header("Authorization", "Bearer sk_test_x")
        .with_body("email=a%40acme.test&metadata[plan]=pro");
    let r = m.handle(&req);
    assert_eq!(r.status, 200);
    let c = r.json();
    assert_eq!((c["email"].as_str(), c["created"].as_i64()), (Some("a@acme.test"), Some(T0)));
    assert_eq!(c["metadata"]["plan"], "pro");
    assert_eq!(r.header("Stripe-Version"), Some(mock::API_VERSION));
}
