//! Issue 20: subscriptions, local invoices and dunning, end to end on a real server: sign-up
//! with a trial → trial ends → plan upgrade with proration → invoice → payment late → grace →
//! read-only (402) → paid → writes again; overage charged once per period; gapless numbers;
//! canceled tenants suspended after the retention period.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use common::TestServer;
use serde_json::json;
use tenantd::billing::invoice;
use tenantd::catalog::billing as records;
use tenantd::tenancy::Actor;

const DAY: i64 = 86_400;

fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.billing.provider = "local".into();
        c.billing.tax_rate_percent = 10.0;
        c.billing.dunning_grace_days = 7;
        c.billing.retention_days = 30;
        let pro = c.plans.get_mut("pro").unwrap();
        pro.trial_days = 14;
        pro.price_monthly_cents = 2900;
        pro.included_monthly_requests = 1000;
        pro.overage_cents_per_1000_requests = 5;
        pro.included_seats = 50;
        let ent = c.plans.get_mut("enterprise").unwrap();
        ent.price_monthly_cents = 9900;
        ent.trial_days = 0;
        ent.included_monthly_requests = 1000;
        ent.overage_cents_per_1000_requests = 5;
    })
}

fn sub(s: &TestServer, slug: &str) -> records::Subscription {
    let t = s.app.tenant(&tenantd::ids::Slug::parse(slug).unwrap()).unwrap();
    records::current(&s.app.catalog.conn().unwrap(), &t.id).unwrap().expect("a subscription")
}

fn run(s: &TestServer, as_of: i64) -> invoice::RunSummary {
    invoice::run(&s.app, as_of, &Actor::cli()).unwrap()
}

#[test]
fn issue20_trial_upgrade_invoice_grace_read_only_paid() {
    let s = server();
    let owner = s.token("owner@acme.test", "acme", "owner");
    tenantd::tenancy::set_plan(&s.app, &tenantd::ids::Slug::parse("acme").unwrap(), "pro", &Actor::cli()).unwrap();
    let first = sub(&s, "acme");
    assert_eq!(first.status, "trialing");
    let trial_end = first.trial_end.unwrap();
    assert_eq!(trial_end - first.created_at, 14 * DAY);

    // Trial ends: active, nothing invoiced for the trial.
    let r = run(&s, trial_end + 60);
    assert_eq!((r.trials_ended, r.invoices.len()), (1, 0));
    let active = sub(&s, "acme");
    assert_eq!(active.status, "active");
    assert_eq!(active.current_period_start, trial_end);

    // Upgrade halfway through the period: the first half at pro's price, the second at
    // enterprise's, on the period's invoice.
    let mid = active.current_period_start + (active.current_period_end - active.current_period_start) / 2;
    let id = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap().id;
    s.app
        .change(|tx| {
            tenantd::catalog::tenants::set_plan(tx, &id, "enterprise", mid)?;
            tenantd::billing::subscription::change_plan(tx, &s.app, &id, "enterprise", None, "cli", mid)
        })
        .unwrap();
    let up = sub(&s, "acme");
    assert_eq!((up.plan.as_str(), up.amount_cents, up.segment_start), ("enterprise", 9900, mid));

    // Period closes: one invoice, numbered, with both parts and tax.
    let r = run(&s, active.current_period_end + 60);
    assert_eq!(r.invoices.len(), 1);
    let inv = records::invoice_by_number(&s.app.catalog.conn().unwrap(), &r.invoices[0].number).unwrap().unwrap();
    assert_eq!(inv.number, "INV-000001");
    let part = |kind: &str| inv.lines.iter().find(|l| l.kind == kind).unwrap().amount_cents;
    assert_eq!(part("plan"), 4950, "enterprise for the second half: {:?}", inv.lines);
    assert_eq!(part("plan_part"), 1450, "pro for the first half");
    assert_eq!(inv.subtotal_cents, 6400, "not the new price plus a credit and a charge: {:?}", inv.lines);
    assert_eq!(inv.tax_cents, (inv.subtotal_cents as f64 * 0.10).round() as i64);
    assert_eq!(inv.total_cents, inv.subtotal_cents + inv.tax_cents);
    // Running again for the same moment invoices nothing twice.
    assert!(run(&s, active.current_period_end + 60).invoices.is_empty());

    // Late: past_due, limits kept during the grace period.
    let r = run(&s, inv.due_at + 60);
    assert_eq!(r.dunning.past_due.len(), 1);
    assert_eq!(sub(&s, "acme").status, "past_due");
    let w = s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "in grace"}));
    assert_eq!(w.status, 201, "{}", w.text());

    // Past the grace period: writes answer 402, reads keep working.
    let r = run(&s, inv.due_at + 8 * DAY);
    assert_eq!(r.dunning.held.len(), 1);
    let w = s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "held"}));
    assert_eq!(w.status, 402, "{}", w.text());
    assert_eq!(w.json()["error"]["code"], "payment_required");
    assert!(w.json()["error"]["message"].as_str().unwrap().contains("/api/v1/t/acme/billing"));
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &owner).status, 200);

    // Paid: active again at once, writes work.
    let paid = invoice::mark(&s.app, &inv.number, "paid", &Actor::cli()).unwrap();
    assert_eq!(paid.status, "paid");
    assert_eq!(sub(&s, "acme").status, "active");
    let w = s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "paid"}));
    assert_eq!(w.status, 201, "{}", w.text());

    // The ledger has every change, the tenant's own chain the dunning steps.
    let ledger = records::ledger(&s.app.catalog.conn().unwrap(), None).unwrap();
    let kinds: Vec<String> =
        ledger.iter().map(|e| format!("{}:{}", e.kind, e.to_status.clone().unwrap_or_default())).collect();
    assert_eq!(
        kinds,
        [
            "created:trialing",
            "status_changed:active",
            "plan_changed:active",
            "status_changed:past_due",
            "status_changed:active"
        ],
        "{kinds:?}"
    );
    let log = s.get_as("/api/v1/t/acme/audit", &owner).json().to_string();
    for action in ["billing.past_due", "billing.read_only", "billing.paid"] {
        assert!(log.contains(action), "{action} in the tenant's chain: {log}");
    }
    // A paid invoice cannot be voided; an unknown one is a 404-style error.
    assert!(invoice::mark(&s.app, &inv.number, "void", &Actor::cli()).is_err());
    assert!(invoice::mark(&s.app, "INV-999999", "paid", &Actor::cli()).is_err());
}

#[test]
fn issue20_overage_is_charged_once_and_numbers_have_no_gaps() {
    let s = server();
    s.create_tenant("acme");
    s.create_tenant("beta");
    for slug in ["acme", "beta"] {
        tenantd::tenancy::set_plan(&s.app, &tenantd::ids::Slug::parse(slug).unwrap(), "enterprise", &Actor::cli())
            .unwrap();
    }
    let a = sub(&s, "acme");
    assert_eq!(a.status, "active", "enterprise has no trial here");
    // 25,500 requests in the period on acme: 24,500 beyond the 1,000 included, 25 thousands.
    {
        let conn = s.app.catalog.conn().unwrap();
        let hour = a.current_period_start - a.current_period_start % 3600 + 3600;
        conn.execute(
            "INSERT INTO usage_hourly (tenant_id, hour, requests) VALUES (?1, ?2, 25500)",
            rusqlite::params![a.tenant_id, hour],
        )
        .unwrap();
    }
    let r = run(&s, a.current_period_end + 60);
    assert_eq!(r.invoices.len(), 2);
    let acme = r.invoices.iter().find(|i| i.tenant_id == a.tenant_id).unwrap();
    let inv = records::invoice_by_number(&s.app.catalog.conn().unwrap(), &acme.number).unwrap().unwrap();
    let over: Vec<_> = inv.lines.iter().filter(|l| l.kind == "overage_requests").collect();
    assert_eq!(over.len(), 1, "{:?}", inv.lines);
    assert_eq!((over[0].quantity, over[0].amount_cents), (25.0, 125));
    let numbers: Vec<&str> = r.invoices.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["INV-000001", "INV-000002"]);
    let r2 = run(&s, a.current_period_end + 120);
    assert!(r2.invoices.is_empty(), "a closed period is never invoiced again");
    let next = sub(&s, "acme");
    assert_eq!(next.current_period_start, a.current_period_end);
    let r3 = run(&s, next.current_period_end + 60);
    let numbers: Vec<&str> = r3.invoices.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(numbers, ["INV-000003", "INV-000004"], "numbers continue without gaps");
}

#[test]
fn issue20_canceled_tenants_are_suspended_after_retention() {
    let s = server();
    let slug = tenantd::ids::Slug::parse("acme").unwrap();
    s.create_tenant("acme");
    tenantd::tenancy::set_plan(&s.app, &slug, "enterprise", &Actor::cli()).unwrap();
    let a = sub(&s, "acme");
    let c = tenantd::billing::subscription::cancel(&s.app, &slug, true, &Actor::cli()).unwrap();
    assert!(c.cancel_at_period_end);
    assert!(tenantd::billing::subscription::cancel(&s.app, &slug, true, &Actor::cli()).is_err(), "twice");
    let r = run(&s, a.current_period_end + 60);
    assert_eq!((r.invoices.len(), r.canceled), (1, 1), "the last period is invoiced, then it ends");
    assert_eq!(sub(&s, "acme").status, "canceled");
    let r = run(&s, a.current_period_end + 10 * DAY);
    assert!(r.dunning.suspended.is_empty(), "kept during the retention period");
    let r = run(&s, a.current_period_end + 31 * DAY);
    assert_eq!(r.dunning.suspended.len(), 1);
    assert_eq!(s.app.tenant(&slug).unwrap().status.as_str(), "suspended");
}

#[test]
fn issue20_billing_api_for_owners_and_billing_roles_only() {
    let s = server();
    let owner = s.token("owner@acme.test", "acme", "owner");
    let admin = s.token("admin@acme.test", "acme", "admin");
    let r = s.post_json("/api/v1/t/acme/billing", Some(&owner), &json!({"action": "change_plan", "plan": "pro"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["subscription"]["status"], "trialing");
    let g = s.get_as("/api/v1/t/acme/billing", &owner);
    assert_eq!(g.status, 200);
    let g = g.json();
    assert_eq!(g["plan"], "pro");
    assert_eq!(g["prices"]["monthly_cents"], 2900);
    assert!(g["upcoming"]["lines"].as_array().unwrap().is_empty(), "nothing is due during a trial: {}", g["upcoming"]);
    // Admins manage members, not money; a custom role with can_manage:billing does.
    assert_eq!(s.get_as("/api/v1/t/acme/billing", &admin).status, 403);
    let r = s.call(
        "PUT",
        "/api/v1/t/acme/roles/billing",
        Some(&owner),
        Some(&json!({"permissions": ["can_manage:billing"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let clerk = s.token("clerk@acme.test", "acme", "billing");
    let g = s.get_as("/api/v1/t/acme/billing", &clerk);
    assert_eq!(g.status, 200, "{} {}", g.text(), s.get_as("/api/v1/t/acme/roles", &owner).text());
    let r = s.post_json("/api/v1/t/acme/billing", Some(&clerk), &json!({"action": "cancel"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["subscription"]["cancel_at_period_end"], true);
    let r = s.post_json("/api/v1/t/acme/billing", Some(&clerk), &json!({"action": "resume"}));
    assert_eq!(r.json()["subscription"]["cancel_at_period_end"], false);
    // Bad input.
    let r = s.post_json("/api/v1/t/acme/billing", Some(&owner), &json!({"action": "refund"}));
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("invalid_action")));
    let r = s.post_json("/api/v1/t/acme/billing", Some(&owner), &json!({"action": "change_plan", "plan": "gold"}));
    assert_eq!(r.status, 400);
    let r = s.post_json(
        "/api/v1/t/acme/billing",
        Some(&owner),
        &json!({"action": "change_plan", "plan": "pro", "interval": "week"}),
    );
    assert_eq!(r.status, 400);
    // A held tenant can still reach its billing routes (that is where it pays).
    let t = sub(&s, "acme");
    run(&s, t.current_period_end + 60);
    let inv = records::invoices(&s.app.catalog.conn().unwrap(), Some(&t.tenant_id), Some("open")).unwrap();
    assert!(inv.is_empty(), "the trial period is free");
    let after = sub(&s, "acme");
    let r = run(&s, after.current_period_end + 60);
    let number = r.invoices[0].number.clone();
    let due = records::invoice_by_number(&s.app.catalog.conn().unwrap(), &number).unwrap().unwrap().due_at;
    run(&s, due + 30 * DAY);
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "x"})).status, 402);
    let r = s.post_json(
        "/api/v1/t/acme/billing",
        Some(&owner),
        &json!({"action": "change_plan", "plan": "pro", "interval": "month"}),
    );
    assert_eq!(r.status, 200, "billing stays open: {}", r.text());
    let page = s.get_as(&format!("/api/v1/t/acme/billing/invoices/{number}?format=html"), &owner);
    assert_eq!(page.status, 200);
    assert!(page.text().contains(&number) && page.text().contains("Total"));
    // The platform sees the failing payment and marks it paid.
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let p = s.get_as("/api/v1/platform/billing", &root).json();
    assert_eq!(p["failed_payments"].as_array().unwrap().len(), 1, "{p}");
    let r =
        s.post_json(&format!("/api/v1/platform/billing/invoices/{number}"), Some(&root), &json!({"status": "paid"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": "x"})).status, 201);
    assert_eq!(s.get_as("/api/v1/platform/billing", &owner).status, 403);
}

#[test]
fn issue20_leaving_for_free_write_offs_trials_once_and_self_service_needs_billing() {
    let s = server();
    let slug = tenantd::ids::Slug::parse("acme").unwrap();
    s.create_tenant("acme");
    tenantd::tenancy::set_plan(&s.app, &slug, "enterprise", &Actor::cli()).unwrap();
    let a = sub(&s, "acme");
    let id = s.app.tenant(&slug).unwrap().id;
    // Down to free a quarter into the period: the quarter used is invoiced now, and it ends.
    let quarter = a.current_period_start + (a.current_period_end - a.current_period_start) / 4;
    s.app
        .change(|tx| {
            tenantd::catalog::tenants::set_plan(tx, &id, "free", quarter)?;
            tenantd::billing::subscription::change_plan(tx, &s.app, &id, "free", None, "cli", quarter)
        })
        .unwrap();
    assert!(records::current(&s.app.catalog.conn().unwrap(), &id).unwrap().is_none(), "ended");
    let invs = records::invoices(&s.app.catalog.conn().unwrap(), Some(id.as_str()), None).unwrap();
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].lines[0].amount_cents, 2475, "a quarter of 99.00: {:?}", invs[0].lines);
    // Back to pro: no second trial.
    tenantd::tenancy::set_plan(&s.app, &slug, "pro", &Actor::cli()).unwrap();
    assert_eq!(sub(&s, "acme").status, "active", "a trial once per tenant");
    // A written-off invoice keeps the tenant held.
    let p = sub(&s, "acme");
    let r = run(&s, p.current_period_end + 60);
    let number = r.invoices[0].number.clone();
    let due = records::invoice_by_number(&s.app.catalog.conn().unwrap(), &number).unwrap().unwrap().due_at;
    run(&s, due + 8 * DAY);
    assert!(s.app.tenant(&slug).unwrap().billing_hold);
    invoice::mark(&s.app, &number, "uncollectible", &Actor::cli()).unwrap();
    assert_eq!(sub(&s, "acme").status, "unpaid");
    assert!(s.app.tenant(&slug).unwrap().billing_hold, "writing an invoice off does not lift the hold");
    invoice::mark(&s.app, &number, "paid", &Actor::cli()).unwrap();
    assert!(!s.app.tenant(&slug).unwrap().billing_hold, "paying it does");
    assert_eq!(sub(&s, "acme").status, "active");
}

#[test]
fn issue20_with_billing_off_owners_cannot_pick_their_plan() {
    let s = TestServer::start();
    let owner = s.token("owner@acme.test", "acme", "owner");
    let r =
        s.post_json("/api/v1/t/acme/billing", Some(&owner), &json!({"action": "change_plan", "plan": "enterprise"}));
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("billing_off")), "{}", r.text());
    assert_eq!(s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap().plan, "free");
}
