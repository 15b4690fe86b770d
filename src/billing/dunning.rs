//! Dunning and entitlements: what payment state lets a tenant do.
//!
//! - An open invoice past its due date makes the subscription `past_due` (local invoices; with
//!   Stripe, its webhooks set the status).
//! - `past_due` keeps the plan's limits for `dunning_grace_days`; then the tenant is held: its
//!   writes answer 402 `payment_required` (reads, exports and the billing routes keep working).
//! - `canceled` and `unpaid` tenants are suspended `retention_days` after the subscription ended.
//! - Paying the last overdue invoice ends the hold at once.
//!
//! Every transition goes into the platform audit chain (in the catalog transaction) and the
//! tenant's own chain (after it commits).

use rusqlite::Connection;
use serde::Serialize;
use serde_json::json;

use super::subscription::{ledger, platform_audit};
use crate::app::App;
use crate::catalog::billing::{self, Subscription};
use crate::catalog::tenants::{self, TenantStatus};
use crate::error::Result;
use crate::ids::TenantId;
use crate::tenancy::Actor;

/// What a dunning pass changed, by tenant id.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub past_due: Vec<String>,
    pub held: Vec<String>,
    pub released: Vec<String>,
    pub suspended: Vec<String>,
}

/// Applies the rules at `now` inside the caller's transaction. Returns the tenants to suspend
/// (done after the commit, through `tenancy::suspend`, which has its own transaction).
pub fn apply(tx: &Connection, app: &App, now: i64, actor: &str, out: &mut Outcome) -> Result<Vec<TenantId>> {
    let cfg = &app.config.billing;
    let grace = cfg.dunning_grace_days as i64 * 86_400;
    let retention = cfg.retention_days as i64 * 86_400;
    let mut suspend = Vec::new();
    for mut s in billing::all_current(tx)? {
        let before = s.clone();
        if s.provider == "local" && s.status == "active" && billing::overdue(tx, &s.tenant_id, now)? > 0 {
            let since = first_overdue(tx, &s.tenant_id, now)?.unwrap_or(now);
            set_status(tx, &mut s, "past_due", actor, now)?;
            s.past_due_since = Some(since);
            out.past_due.push(s.tenant_id.clone());
        }
        if s.status == "past_due" {
            let since = *s.past_due_since.get_or_insert(now);
            if now >= since + grace && billing::set_hold(tx, &s.tenant_id, true, now, "past_due")? {
                platform_audit(tx, actor, "billing.read_only", &s, json!({"past_due_since": since}), now)?;
                out.held.push(s.tenant_id.clone());
            }
        }
        if matches!(s.status.as_str(), "canceled" | "unpaid") {
            let ended = s.canceled_at.unwrap_or(s.updated_at);
            if now >= ended + retention {
                if let Some(t) = tenants::find_by_id(tx, &TenantId::parse(&s.tenant_id)?)? {
                    if t.status == TenantStatus::Active {
                        suspend.push(t.id.clone());
                        out.suspended.push(s.tenant_id.clone());
                    }
                }
            }
        }
        if s != before {
            s.updated_at = now;
            billing::update_subscription(tx, &s)?;
        }
    }
    Ok(suspend)
}

/// After a payment: a past-due subscription with nothing overdue left is active again and the
/// tenant's hold ends.
pub fn settle(tx: &Connection, _app: &App, tenant_id: &str, actor: &str, now: i64, out: &mut Outcome) -> Result<()> {
    let id = TenantId::parse(tenant_id)?;
    if billing::overdue(tx, tenant_id, now)? > 0 {
        return Ok(());
    }
    // Nothing overdue: the hold ends whatever the subscription's state (canceled since, …).
    let released = billing::set_hold(tx, tenant_id, false, now, "")?;
    if released {
        out.released.push(tenant_id.to_string());
    }
    let Some(mut s) = billing::current(tx, &id)? else { return Ok(()) };
    if !matches!(s.status.as_str(), "past_due" | "unpaid") {
        return Ok(());
    }
    set_status(tx, &mut s, "active", actor, now)?;
    s.past_due_since = None;
    s.canceled_at = None;
    s.updated_at = now;
    billing::update_subscription(tx, &s)?;
    platform_audit(tx, actor, "billing.paid", &s, json!({}), now)
}

/// An invoice written off: the subscription is `unpaid` (suspended after the retention period).
pub fn mark_unpaid(tx: &Connection, tenant_id: &str, actor: &str, now: i64) -> Result<()> {
    let Some(mut s) = billing::current(tx, &TenantId::parse(tenant_id)?)? else { return Ok(()) };
    if s.status == "unpaid" {
        return Ok(());
    }
    set_status(tx, &mut s, "unpaid", actor, now)?;
    s.canceled_at = Some(now);
    s.updated_at = now;
    billing::update_subscription(tx, &s)
}

/// Sets a subscription's status with its ledger line and platform-audit entry.
pub fn set_status(tx: &Connection, s: &mut Subscription, status: &str, actor: &str, now: i64) -> Result<()> {
    if s.status == status {
        return Ok(());
    }
    let from = std::mem::replace(&mut s.status, status.to_string());
    ledger(tx, s, actor, "status_changed", Some(&s.plan.clone()), Some(s.amount_cents), Some(&from), now)?;
    platform_audit(tx, actor, &format!("billing.{status}"), s, json!({"from": from}), now)
}

fn first_overdue(tx: &Connection, tenant: &str, now: i64) -> Result<Option<i64>> {
    Ok(tx.query_row(
        "SELECT min(due_at) FROM invoices WHERE tenant_id = ?1 AND status = 'open' AND due_at <= ?2",
        rusqlite::params![tenant, now],
        |r| r.get(0),
    )?)
}

/// After the catalog commit: suspensions, and an entry in each affected tenant's own chain.
pub fn after_commit(app: &App, out: &Outcome, suspend: &[TenantId], actor: &Actor) -> Result<()> {
    for id in suspend {
        if let Some(t) = tenants::find_by_id(&*app.catalog.conn()?, id)? {
            crate::tenancy::suspend(app, &t.slug, actor)?;
        }
    }
    let events = [
        ("billing.past_due", &out.past_due),
        ("billing.read_only", &out.held),
        ("billing.paid", &out.released),
        ("billing.suspended", &out.suspended),
    ];
    let day = crate::util::now_unix() / 86_400;
    for (action, ids) in events {
        for id in ids {
            let Some(t) = tenants::find_by_id(&*app.catalog.conn()?, &TenantId::parse(id)?)? else { continue };
            // The tenant's owners see alerts on their pages; the platform gets the alert webhook.
            let message = match action {
                "billing.past_due" => {
                    Some(format!("payment for {} is overdue; writes stop after the grace period", t.slug))
                }
                "billing.read_only" => Some(format!("{} is read-only until its overdue invoice is paid", t.slug)),
                "billing.suspended" => Some(format!("{} is suspended: its subscription ended", t.slug)),
                _ => None,
            };
            if let Some(message) = message {
                app.limits.alerts.raise(&t.id, t.slug.as_str(), action, day, message);
            }
            let entry = crate::audit::Entry {
                actor: &actor.0,
                source: None,
                user_agent: None,
                request_id: None,
                action,
                resource: Some("billing"),
                outcome: "ok",
                risk: 0,
                details: json!({}),
            };
            if let Err(e) = crate::audit::record(app, &t, &entry) {
                crate::log::warn(&format!(
                    "billing: could not write {action} into {}'s audit chain: {}",
                    t.slug,
                    e.log_detail()
                ));
            }
        }
    }
    Ok(())
}
