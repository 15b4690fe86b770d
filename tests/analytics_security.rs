//! Issue 21, items 6 and 7 on a real server: the security document counts real failed
//! sign-ins, a lockout and a key never used, per tenant and platform-wide; the health endpoint
//! lists tenants lowest score first and explains each component; tenant admins do not reach
//! the platform routes.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::time::Duration;

use common::{TestServer, PASSWORD};
use serde_json::{json, Value};

fn root(s: &TestServer) -> String {
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    s.login("root@ops.test")
}

fn wrong_login(s: &TestServer, email: &str) -> u16 {
    s.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "wrong-password-9"})).status
}

#[test]
fn issue21_security_metrics_count_failed_sign_ins_lockouts_and_unused_keys() {
    let s = TestServer::start();
    let owner = s.token("owner@acme.test", "acme", "owner");
    s.member("ada@acme.test", "acme", "member");
    let other = s.token("owner@globex.test", "globex", "owner");
    let r = root(&s);
    // Five wrong passwords lock ada's account (auth.lockout_threshold = 5); one more try while
    // locked is refused as such. Two tries on emails nobody has.
    for i in 0..5 {
        assert_eq!(wrong_login(&s, "ada@acme.test"), 401, "attempt {i}");
    }
    assert_eq!(wrong_login(&s, "ada@acme.test"), 429, "locked");
    assert_eq!(wrong_login(&s, "nobody@nowhere.test"), 401);
    assert_eq!(wrong_login(&s, "ghost@nowhere.test"), 401);
    let k = s.post_json("/api/v1/t/acme/api-keys", Some(&owner), &json!({"name": "ci", "scope": "read"}));
    assert_eq!(k.status, 201, "{}", k.text());

    // The lockout's brute_force alert is recorded by a background thread: bounded wait.
    let mut doc = Value::Null;
    let seen = common::within(Duration::from_secs(3), || {
        let res = s.get_as("/api/v1/t/acme/analytics/security?from=-1d", &owner);
        assert_eq!(res.status, 200, "{}", res.text());
        doc = res.json()["security"].clone();
        doc["lockouts"]["in_range"] == 1
    });
    assert!(seen.is_some(), "the lockout is counted: {doc}");
    assert_eq!(doc["scope"], "tenant");
    assert!(doc["from"].is_string() && doc["to"].is_string() && doc["data_until"].is_string(), "{doc}");
    let failed = &doc["failed_sign_ins"];
    assert_eq!(failed["total"], 6, "{doc}");
    assert_eq!(failed["by_reason"]["wrong_password"], 5, "{doc}");
    assert_eq!(failed["by_reason"]["account_locked"], 1, "{doc}");
    assert_eq!(failed["addresses"], 1, "all from 127.0.0.1");
    assert_eq!(failed["accounts_failing_now"], 1);
    assert_eq!(doc["lockouts"]["locked_now"], 1);
    assert!(doc["alerts"]["security"].as_i64().unwrap() >= 1, "the member's lockout: {doc}");
    assert_eq!(doc["mfa"]["users"], 2);
    assert_eq!(doc["mfa"]["enrolled"], 0);
    assert_eq!(doc["mfa"]["adoption_percent"], 0.0);
    assert_eq!(doc["api_keys"]["active"], 1);
    assert_eq!(doc["api_keys"]["never_used"], 1, "{doc}");
    assert_eq!(doc["api_keys"]["unused_days"], 30);
    assert!(doc["blocked_addresses"]["in_range"].is_null(), "platform-wide only");

    // Another tenant sees none of it.
    let g = s.get_as("/api/v1/t/globex/analytics/security?from=-1d", &other).json()["security"].clone();
    assert_eq!(g["failed_sign_ins"]["total"], 0, "{g}");
    assert_eq!(g["lockouts"]["in_range"], 0, "{g}");
    assert_eq!(g["api_keys"]["active"], 0);

    // CSV and bad input.
    let csv = s.get_as("/api/v1/t/acme/analytics/security?from=-1d&format=csv", &owner);
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.text().contains("\nfailed_sign_ins,6\n"), "{}", csv.text());
    assert!(csv.text().contains("\napi_keys_never_used,1\n"), "{}", csv.text());
    let bad = s.get_as("/api/v1/t/acme/analytics/security?unused_days=0", &owner);
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("unused_days"), "{}", bad.text());

    // The platform: unknown-account failures from its own chain, the lockout, MFA over all users.
    let p = s.get_as("/api/v1/platform/analytics/security?from=-1d", &r);
    assert_eq!(p.status, 200, "{}", p.text());
    let p = p.json()["security"].clone();
    assert_eq!(p["scope"], "platform");
    assert_eq!(p["failed_sign_ins"]["by_reason"]["unknown_account"], 2, "{p}");
    assert_eq!(p["lockouts"]["in_range"], 1, "{p}");
    assert_eq!(p["lockouts"]["locked_now"], 1);
    assert_eq!(p["alerts"]["by_kind"]["brute_force"], 1, "{p}");
    assert_eq!(p["mfa"]["users"], 4, "owner, ada, globex's owner, root");
    assert_eq!(p["api_keys"]["never_used"], 1);
    assert!(p["blocked_addresses"]["in_range"].is_i64() && p["blocked_addresses"]["now"].is_i64(), "{p}");

    // Tenant admins do not reach the platform's routes.
    for path in ["/api/v1/platform/analytics/security", "/api/v1/platform/analytics/health"] {
        assert_eq!(s.get_as(path, &owner).status, 403, "{path}");
    }
    let viewer = s.token("viewer@acme.test", "acme", "viewer");
    assert_eq!(s.get_as("/api/v1/t/acme/analytics/security", &viewer).status, 403);
}

#[test]
fn issue21_health_lists_tenants_lowest_score_first_and_explains_each_component() {
    let s = TestServer::start();
    let acme = s.token("owner@acme.test", "acme", "owner");
    let globex = s.token("owner@globex.test", "globex", "owner");
    s.create_tenant("idle");
    let r = root(&s);
    // acme: every request fails, and its subscription is unpaid.
    for i in 0..10 {
        assert_eq!(s.get_as(&format!("/api/v1/t/acme/customers/{}", 90_000 + i), &acme).status, 404);
    }
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    s.app
        .change(|tx| {
            tx.execute(
                "INSERT INTO billing_subscriptions(tenant_id, plan, interval, status, amount_cents, currency, \
                 current_period_start, current_period_end, segment_start, provider, created_at, updated_at) \
                 VALUES (?1, 'free', 'month', 'unpaid', 2900, 'usd', 0, 1, 0, 'local', 0, 0)",
                [t.id.as_str()],
            )?;
            Ok(())
        })
        .unwrap();
    // globex: healthy traffic.
    for _ in 0..10 {
        assert_eq!(s.get_as("/api/v1/t/globex/customers", &globex).status, 200);
    }

    let res = s.get_as("/api/v1/platform/analytics/health?from=-1d", &r);
    assert_eq!(res.status, 200, "{}", res.text());
    let h = res.json()["health"].clone();
    assert!(h["formula"].as_str().unwrap().contains("latency_target_ms"), "{h}");
    assert_eq!(h["at_risk_below"], 60.0);
    assert!(h["from"].is_string() && h["data_until"].is_string(), "{h}");
    let tenants = h["tenants"].as_array().unwrap();
    let order: Vec<&str> = tenants.iter().map(|t| t["tenant"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 3, "{h}");
    assert_eq!(order[0], "acme", "the at-risk tenant first: {order:?}");
    assert_eq!(tenants[0]["at_risk"], true, "{}", tenants[0]);
    assert_eq!(h["at_risk"], 1);
    let scores: Vec<f64> = tenants.iter().map(|t| t["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "ascending: {scores:?}");
    for t in tenants {
        let comps = t["components"].as_array().unwrap();
        let names: Vec<&str> = comps.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["errors", "latency", "quota_headroom", "payment", "security_alerts", "activity_trend"]);
        let sum: f64 = comps.iter().map(|c| c["points"].as_f64().unwrap()).sum();
        assert!((sum - t["score"].as_f64().unwrap()).abs() < 0.05, "the parts add up: {t}");
        assert_eq!(comps.iter().map(|c| c["weight"].as_f64().unwrap()).sum::<f64>(), 100.0);
        assert!(comps.iter().all(|c| c["explain"].is_string() && c.get("value").is_some()), "{t}");
    }
    let acme_doc = &tenants[0];
    let comp =
        |name: &str| acme_doc["components"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(comp("errors")["points"], 0.0, "every request failed: {acme_doc}");
    assert_eq!(comp("payment")["value"], "unpaid");
    assert_eq!(comp("payment")["points"], 0.0);
    let idle = tenants.iter().find(|t| t["tenant"] == "idle").unwrap();
    let trend = idle["components"].as_array().unwrap().iter().find(|c| c["name"] == "activity_trend").unwrap();
    assert_eq!(trend["points"], 0.0, "no requests in either period: {idle}");

    // The tenant sees its own score, the same as the platform's, on its overview.
    let own = s.get_as("/api/v1/t/acme/analytics/overview?from=-1d", &acme).json()["health"].clone();
    assert_eq!(own["score"], acme_doc["score"], "{own}");
    // The platform's list is computed for all tenants at once (`inputs_all`): the same parts.
    assert_eq!(own["components"], acme_doc["components"], "{own}");
    assert_eq!(own["at_risk"], true);

    let csv = s.get_as("/api/v1/platform/analytics/health?from=-1d&format=csv", &r);
    assert_eq!(csv.status, 200);
    let text = csv.text();
    assert!(text.starts_with("tenant,plan,score,at_risk,errors,latency,"), "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("acme,"), "{text}");
}
