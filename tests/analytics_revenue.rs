//! Issue 21, item 5: platform revenue on a real server. Subscriptions made through the billing
//! API (a trial, an upgrade-free start, a downgrade, a yearly plan, cancellations at once and at
//! period end) show up as MRR movements that reconcile; CSV and the CLI work; bad input is a 400
//! naming the parameter; tenant owners cannot see it.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use common::ServerCli as _;
use common::TestServer;
use serde_json::{json, Value};

fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.billing.provider = "local".into();
        let pro = c.plans.get_mut("pro").unwrap();
        pro.trial_days = 14;
        pro.price_monthly_cents = 2900;
        let ent = c.plans.get_mut("enterprise").unwrap();
        ent.trial_days = 0;
        ent.price_monthly_cents = 9900;
        ent.price_yearly_cents = 99_000;
    })
}

fn billing(s: &TestServer, slug: &str, token: &str, body: Value) {
    let r = s.post_json(&format!("/api/v1/t/{slug}/billing"), Some(token), &body);
    assert_eq!(r.status, 200, "{slug} {body}: {}", r.text());
}

fn i(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// start + new + expansion + reactivation − contraction − churn = end, for a month row or the
/// summary.
fn assert_reconciles(m: &Value) {
    let moved = i(m, "new_mrr_cents") + i(m, "expansion_mrr_cents") + i(m, "reactivation_mrr_cents")
        - i(m, "contraction_mrr_cents")
        - i(m, "churn_mrr_cents");
    assert_eq!(i(m, "start_mrr_cents") + moved, i(m, "end_mrr_cents"), "{m}");
}

#[test]
fn issue21_revenue_reconciles_and_reflects_plan_changes_and_cancellations() {
    let s = server();
    let acme = s.token("owner@acme.test", "acme", "owner");
    let beta = s.token("owner@beta.test", "beta", "owner");
    let gamma = s.token("owner@gamma.test", "gamma", "owner");
    let delta = s.token("owner@delta.test", "delta", "owner");
    let eps = s.token("owner@eps.test", "eps", "owner");
    let zeta = s.token("owner@zeta.test", "zeta", "owner");
    // acme pays 99.00; beta is on a trial (not MRR); gamma starts at 99.00 and moves down to
    // 29.00 (contraction 70.00); delta cancels at once (churn); eps pays yearly (990.00 / 12);
    // zeta cancels at the period's end (still MRR until then).
    billing(&s, "acme", &acme, json!({"action": "change_plan", "plan": "enterprise"}));
    billing(&s, "beta", &beta, json!({"action": "change_plan", "plan": "pro"}));
    billing(&s, "gamma", &gamma, json!({"action": "change_plan", "plan": "enterprise"}));
    billing(&s, "gamma", &gamma, json!({"action": "change_plan", "plan": "pro"}));
    billing(&s, "delta", &delta, json!({"action": "change_plan", "plan": "enterprise"}));
    billing(&s, "delta", &delta, json!({"action": "cancel", "at_period_end": false}));
    billing(&s, "eps", &eps, json!({"action": "change_plan", "plan": "enterprise", "interval": "year"}));
    billing(&s, "zeta", &zeta, json!({"action": "change_plan", "plan": "enterprise"}));
    billing(&s, "zeta", &zeta, json!({"action": "cancel", "at_period_end": true}));

    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.get_as("/api/v1/platform/analytics/revenue", &root);
    assert_eq!(r.status, 200, "{}", r.text());
    let rev = r.json()["revenue"].clone();
    assert!(rev["from"].is_string() && rev["to"].is_string() && rev["data_until"].is_string(), "{rev}");
    let months = rev["months"].as_array().unwrap();
    assert_eq!(months.len(), 12, "a year of months by default: {rev}");
    for m in months {
        assert_reconciles(m);
    }
    assert!(months.last().unwrap()["partial"].as_bool().unwrap());
    // The whole range (robust to the test running across a month's end).
    let sum = &rev["summary"][0];
    assert_eq!(sum["currency"], "usd");
    assert_reconciles(sum);
    let yearly = 99_000 / 12;
    assert_eq!(i(sum, "new_mrr_cents"), 4 * 9900 + yearly, "acme, gamma, delta, zeta, eps: {sum}");
    assert_eq!(i(sum, "contraction_mrr_cents"), 7000, "gamma's downgrade: {sum}");
    assert_eq!(i(sum, "churn_mrr_cents"), 9900, "delta: {sum}");
    assert_eq!(i(sum, "end_mrr_cents"), 9900 + 2900 + yearly + 9900, "acme, gamma, eps, zeta; not beta's trial");
    assert_eq!(i(sum, "arr_cents"), i(sum, "end_mrr_cents") * 12);
    assert_eq!(i(sum, "customers_end"), 4);
    // By plan: the current month's plans add up to the month.
    let last = months.last().unwrap();
    let plans: Vec<&Value> =
        rev["by_plan"].as_array().unwrap().iter().filter(|p| p["month"] == last["month"]).collect();
    assert_eq!(plans.iter().map(|p| i(p, "end_mrr_cents")).sum::<i64>(), i(last, "end_mrr_cents"));
    let pro = plans.iter().find(|p| p["plan"] == "pro").unwrap();
    assert_eq!((i(pro, "end_mrr_cents"), i(pro, "customers_end")), (2900, 1), "gamma only: {pro}");
    // The platform billing summary agrees on MRR.
    let b = s.get_as("/api/v1/platform/billing", &root).json();
    assert_eq!(b["mrr_cents"]["usd"].as_i64(), Some(i(sum, "end_mrr_cents")), "{b}");

    // CSV: months, and plans.
    let csv = s.get_as("/api/v1/platform/analytics/revenue?format=csv", &root);
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.text();
    assert!(text.starts_with("month,currency,partial,start_mrr_cents,new_mrr_cents"), "{text}");
    assert_eq!(text.lines().count(), 13, "a header and 12 months: {text}");
    let csv = s.get_as("/api/v1/platform/analytics/revenue?format=csv&table=by_plan", &root).text();
    assert!(csv.starts_with("month,currency,plan,") && csv.contains("\"enterprise\""), "{csv}");

    // Bad input names the parameter; owners of a tenant do not see the platform's revenue.
    for (q, needle) in [("from=yesterday", "from="), ("to=soon", "to="), ("table=nope", "table=")] {
        let r = s.get_as(&format!("/api/v1/platform/analytics/revenue?{q}"), &root);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains(needle), "{q}: {}", r.text());
    }
    assert!(matches!(s.get_as("/api/v1/platform/analytics/revenue", &acme).status, 403 | 404));

    // The CLI prints the same numbers.
    let o = s.cli(&["analytics", "revenue", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"][0]["end_mrr_cents"], sum["end_mrr_cents"]);
    let o = s.cli(&["analytics", "revenue", "--from", "-60d"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(common::stdout(&o).contains("platform revenue from"), "{}", common::stdout(&o));
    let o = s.cli(&["analytics", "revenue", "--from", "whenever"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("from="), "{}", common::stderr(&o));
}

#[test]
fn issue21_revenue_with_an_empty_ledger_is_zero_months_not_an_error() {
    let s = server();
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.get_as("/api/v1/platform/analytics/revenue?from=2026-01-01&to=2026-04-01", &root);
    assert_eq!(r.status, 200, "{}", r.text());
    let rev = r.json()["revenue"].clone();
    assert_eq!(rev["currencies"], json!(["usd"]), "the priced plans' currency: {rev}");
    let months = rev["months"].as_array().unwrap();
    assert_eq!(months.len(), 3);
    assert!(months.iter().all(|m| m["end_mrr_cents"] == 0 && m["ltv_cents"].is_null()), "{rev}");
    assert!(months[0]["ltv_withheld"].is_string());
}
