//! Stripe's events (`POST /api/v1/billing/stripe/webhook`): verified exactly as Stripe signs
//! them (`stripe::signature`), recorded by event id (a second delivery answers 200 and changes
//! nothing), and applied in any order: an event older than the state it would change is
//! skipped, so a late `customer.subscription.updated` never undoes a newer one.
//!
//! Handled: `customer.subscription.created|updated|deleted|trial_will_end|paused|resumed`,
//! `invoice.paid`, `invoice.payment_failed`, `invoice.payment_action_required`,
//! `checkout.session.completed`. Other types answer 200 and are ignored.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use super::stripe::signature;
use super::subscription::{ledger, platform_audit};
use crate::app::App;
use crate::catalog::billing::{self, Subscription};
use crate::catalog::{audit, tenants};
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};

#[derive(Debug, Serialize)]
pub struct Received {
    pub event_id: String,
    pub event_type: String,
    /// `applied`, `duplicate`, `stale` (older than the state it would change), `ignored` (a
    /// type tenantd does not act on) or `unknown` (no tenant has that subscription or customer).
    pub outcome: &'static str,
}

/// Verifies, records and applies one delivery. A bad or missing signature, or a timestamp
/// outside the tolerance, is a 400 with a platform-audit entry and no state change.
pub fn receive(app: &App, header: Option<&str>, body: &[u8], source: Option<&str>, now: i64) -> Result<Received> {
    let cfg = &app.config.billing;
    let secrets: Vec<&str> = cfg.stripe_webhook_secrets.iter().map(String::as_str).collect();
    let tolerance = Duration::from_secs(cfg.webhook_tolerance_seconds);
    let checked = match header {
        None => Err(signature::SignatureError::MissingHeader),
        Some(h) => signature::verify(h, body, &secrets, tolerance, now),
    };
    if let Err(why) = checked {
        let reason = why.to_string();
        if !refusal_audited(now) {
            crate::log::warn(&format!("stripe webhook refused ({reason}); over 60 this minute: not audited"));
            return Err(Error::invalid("bad_signature", format!("webhook refused: {why}")));
        }
        app.catalog.write(|tx| {
            audit::append(
                tx,
                now,
                &audit::Event {
                    actor: "stripe",
                    action: "billing.webhook_refused",
                    tenant_id: None,
                    resource: source,
                    outcome: "denied",
                    details: json!({"reason": reason}),
                },
            )?;
            Ok(())
        })?;
        return Err(Error::invalid("bad_signature", format!("webhook refused: {why}")));
    }
    let event: Value =
        serde_json::from_slice(body).map_err(|e| Error::invalid("invalid_json", format!("webhook body: {e}")))?;
    let id = event["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid("invalid_event", "the event has no id"))?;
    let kind = event["type"].as_str().unwrap_or("").to_string();
    let created = event["created"].as_i64().unwrap_or(now);
    let object = &event["data"]["object"];
    let mut changes = super::dunning::Outcome::default();
    let outcome = app.change(|tx| {
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO billing_events (id, type, created, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, kind, created, now],
        )?;
        if fresh == 0 {
            return Ok("duplicate");
        }
        let outcome = apply(tx, app, &kind, created, object, now, &mut changes)?;
        tx.execute("UPDATE billing_events SET outcome = ?2 WHERE id = ?1", params![id, outcome])?;
        Ok(outcome)
    })?;
    super::dunning::after_commit(app, &changes, &[], &crate::tenancy::Actor("stripe".into()))?;
    if outcome == "unknown" {
        crate::log::info(&format!("stripe event {id} ({kind}) names no tenant's subscription or customer: ignored"));
    }
    Ok(Received { event_id: id.to_string(), event_type: kind, outcome })
}

fn apply(
    tx: &Connection,
    app: &App,
    kind: &str,
    created: i64,
    obj: &Value,
    now: i64,
    out: &mut super::dunning::Outcome,
) -> Result<&'static str> {
    match kind {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.trial_will_end"
        | "customer.subscription.paused"
        | "customer.subscription.resumed" => {
            let Some(mut s) = find(tx, obj["id"].as_str(), obj["customer"].as_str(), &obj["metadata"])? else {
                return Ok("unknown");
            };
            if s.provider_updated_at.is_some_and(|seen| created < seen) {
                return Ok("stale");
            }
            subscription_state(tx, app, &mut s, kind, obj, created, now, out)?;
            Ok("applied")
        }
        "invoice.paid" | "invoice.payment_failed" | "invoice.payment_action_required" => {
            let sub_id =
                obj["subscription"].as_str().or_else(|| obj["parent"]["subscription_details"]["subscription"].as_str());
            let Some(mut s) = find(tx, sub_id, obj["customer"].as_str(), &obj["metadata"])? else {
                return Ok("unknown");
            };
            // An invoice says how one payment went, not the subscription's state: a paid
            // invoice while another is failing must not lift the hold. Stripe follows every
            // status change with `customer.subscription.updated`, which sets it. A failed
            // payment of a live subscription is past due at once (the hold waits for the grace).
            if kind != "invoice.paid" && matches!(s.status.as_str(), "active" | "trialing") {
                set_status(tx, app, &mut s, "past_due", now, out)?;
                s.updated_at = now;
                billing::update_subscription(tx, &s)?;
            }
            Ok("applied")
        }
        "checkout.session.completed" => {
            let reference = obj["client_reference_id"].as_str().or_else(|| obj["metadata"]["tenant"].as_str());
            let Some(t) = reference.and_then(|r| tenant_by_ref(tx, r).transpose()).transpose()? else {
                return Ok("unknown");
            };
            let Some(mut s) = billing::current(tx, &t)? else { return Ok("unknown") };
            s.provider_customer_id = obj["customer"].as_str().map(String::from).or(s.provider_customer_id);
            s.provider_subscription_id = obj["subscription"].as_str().map(String::from).or(s.provider_subscription_id);
            touch(tx, &mut s, created, now)?;
            Ok("applied")
        }
        _ => Ok("ignored"),
    }
}

/// The local subscription an event is about: by Stripe subscription id, else by the tenant
/// the Stripe objects name in `metadata.tenant_id`, else by customer id.
fn find(
    tx: &Connection,
    sub_id: Option<&str>,
    customer: Option<&str>,
    metadata: &Value,
) -> Result<Option<Subscription>> {
    if let Some(found) = sub_id.map(|id| billing::by_provider_id(tx, id)).transpose()?.flatten() {
        return Ok(Some(found));
    }
    if let Some(t) = metadata["tenant_id"].as_str().and_then(|id| TenantId::parse(id).ok()) {
        if let Some(s) = billing::current(tx, &t)? {
            return Ok(Some(s));
        }
    }
    let Some(customer) = customer else { return Ok(None) };
    let tenant: Option<String> = tx
        .query_row(
            "SELECT tenant_id FROM billing_subscriptions WHERE provider_customer_id = ?1 ORDER BY id DESC LIMIT 1",
            [customer],
            |r| r.get(0),
        )
        .optional()?;
    match tenant.map(|t| TenantId::parse(&t)).transpose()? {
        Some(t) => billing::current(tx, &t),
        None => Ok(None),
    }
}

fn tenant_by_ref(tx: &Connection, reference: &str) -> Result<Option<TenantId>> {
    if let Ok(id) = TenantId::parse(reference) {
        if tenants::find_by_id(tx, &id)?.is_some() {
            return Ok(Some(id));
        }
    }
    match Slug::parse(reference) {
        Ok(slug) => Ok(tenants::find_by_slug(tx, &slug)?.map(|t| t.id)),
        Err(_) => Ok(None),
    }
}

/// Mirrors a Stripe Subscription object onto the local one.
#[allow(clippy::too_many_arguments)]
fn subscription_state(
    tx: &Connection,
    app: &App,
    s: &mut Subscription,
    kind: &str,
    obj: &Value,
    created: i64,
    now: i64,
    out: &mut super::dunning::Outcome,
) -> Result<()> {
    let (from_plan, from_amount) = (s.plan.clone(), s.amount_cents);
    if let Some(id) = obj["id"].as_str() {
        s.provider_subscription_id = Some(id.to_string());
    }
    if let Some(c) = obj["customer"].as_str() {
        s.provider_customer_id = Some(c.to_string());
    }
    // Periods: on the object (older API versions) or on its first item (newer ones).
    let item = &obj["items"]["data"][0];
    if let Some(start) = obj["current_period_start"].as_i64().or(item["current_period_start"].as_i64()) {
        s.current_period_start = start;
    }
    if let Some(end) = obj["current_period_end"].as_i64().or(item["current_period_end"].as_i64()) {
        s.current_period_end = end;
    }
    s.trial_end = obj["trial_end"].as_i64().or(s.trial_end);
    if let Some(c) = obj["cancel_at_period_end"].as_bool() {
        s.cancel_at_period_end = c;
    }
    // The plan whose Stripe price the subscription now has.
    if let Some(price) = item["price"]["id"].as_str() {
        for (name, p) in &app.config.plans {
            let yearly = p.stripe_price_id_yearly.as_deref() == Some(price);
            if p.stripe_price_id.as_deref() == Some(price) || yearly {
                s.plan = name.clone();
                s.interval = if yearly { "year" } else { "month" }.into();
                s.amount_cents = super::subscription::price(p, &s.interval);
                s.currency = p.currency.clone();
            }
        }
    }
    let status = match kind {
        "customer.subscription.deleted" => "canceled",
        _ => obj["status"].as_str().unwrap_or(&s.status),
    };
    let status = match status {
        "incomplete" | "incomplete_expired" | "trialing" | "active" | "past_due" | "canceled" | "unpaid" | "paused" => {
            status.to_string()
        }
        _ => s.status.clone(),
    };
    if s.plan != from_plan {
        ledger(tx, s, "stripe", "plan_changed", Some(&from_plan), Some(from_amount), Some(&s.status.clone()), now)?;
        // The tenant's limits follow its plan.
        tx.execute("UPDATE tenants SET plan = ?2, updated_at = ?3 WHERE id = ?1", params![s.tenant_id, s.plan, now])?;
    }
    set_status(tx, app, s, &status, now, out)?;
    if status == "canceled" || status == "incomplete_expired" {
        s.canceled_at = Some(obj["canceled_at"].as_i64().or(obj["ended_at"].as_i64()).unwrap_or(now));
    }
    touch(tx, s, created, now)
}

/// A status from Stripe, with the hold that goes with it (grace 0: read-only at once; paying
/// lifts it).
fn set_status(
    tx: &Connection,
    app: &App,
    s: &mut Subscription,
    status: &str,
    now: i64,
    out: &mut super::dunning::Outcome,
) -> Result<()> {
    let was = s.status.clone();
    super::dunning::set_status(tx, s, status, "stripe", now)?;
    match status {
        "past_due" | "unpaid" | "incomplete" => {
            if was != status {
                out.past_due.push(s.tenant_id.clone());
            }
            let since = *s.past_due_since.get_or_insert(now);
            let grace = app.config.billing.dunning_grace_days as i64 * 86_400;
            if now >= since + grace && billing::set_hold(tx, &s.tenant_id, true, now, status)? {
                platform_audit(tx, "stripe", "billing.read_only", s, json!({"past_due_since": since}), now)?;
                out.held.push(s.tenant_id.clone());
            }
        }
        // Paused by the customer at Stripe: no service while paused.
        "paused" if billing::set_hold(tx, &s.tenant_id, true, now, status)? => {
            platform_audit(tx, "stripe", "billing.read_only", s, json!({"paused": true}), now)?;
            out.held.push(s.tenant_id.clone());
        }
        "active" | "trialing" => {
            s.past_due_since = None;
            if billing::set_hold(tx, &s.tenant_id, false, now, "")? {
                platform_audit(tx, "stripe", "billing.paid", s, json!({}), now)?;
                out.released.push(s.tenant_id.clone());
            }
        }
        _ => {}
    }
    Ok(())
}

fn touch(tx: &Connection, s: &mut Subscription, created: i64, now: i64) -> Result<()> {
    s.provider_updated_at = Some(s.provider_updated_at.map_or(created, |seen| seen.max(created)));
    s.updated_at = now;
    billing::update_subscription(tx, s)
}

/// At most 60 refused deliveries a minute reach the audit chain: anyone can post garbage to
/// the webhook, and each entry takes the catalog's write lock.
fn refusal_audited(now: i64) -> bool {
    use std::sync::atomic::{AtomicI64, Ordering};
    static MINUTE: AtomicI64 = AtomicI64::new(0);
    static COUNT: AtomicI64 = AtomicI64::new(0);
    let minute = now / 60;
    if MINUTE.swap(minute, Ordering::Relaxed) != minute {
        COUNT.store(0, Ordering::Relaxed);
    }
    COUNT.fetch_add(1, Ordering::Relaxed) < 60
}
