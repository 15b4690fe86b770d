//! A tenant's subscription: created with the tenant (a trial when the plan has one), changed
//! with its plan (prorated), canceled and resumed. Every change is a ledger line (who, when,
//! from what to what) and a platform-audit entry, in the same catalog transaction.

use rusqlite::Connection;
use serde_json::json;

use super::{period_end, Provider};
use crate::app::App;
use crate::catalog::audit;
use crate::catalog::billing::{self, LedgerEntry, Subscription};
use crate::catalog::tenants;
use crate::config::PlanConfig;
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::tenancy::Actor;
use crate::util::now_unix;

/// The price of `plan` for `interval`.
pub fn price(plan: &PlanConfig, interval: &str) -> i64 {
    (if interval == "year" { plan.price_yearly_cents } else { plan.price_monthly_cents }) as i64
}

pub fn check_interval(interval: &str) -> Result<()> {
    match interval {
        "month" | "year" => Ok(()),
        other => Err(Error::invalid(
            "invalid_interval",
            format!("interval must be \"month\" or \"year\", got {:?}", crate::ids::truncate_for_message(other)),
        )),
    }
}

/// Starts a subscription for a tenant on a priced plan, inside the caller's transaction (the
/// tenant's creation, or a plan change from a free plan). Free plans and `provider = "none"`
/// get none. Returns the new subscription.
pub fn start(
    tx: &Connection,
    app: &App,
    tenant: &TenantId,
    plan_name: &str,
    interval: &str,
    actor: &str,
    now: i64,
) -> Result<Option<Subscription>> {
    let provider = Provider::of(app);
    let Some(plan) = app.config.plans.get(plan_name) else { return Ok(None) };
    if provider == Provider::None || !plan.is_priced() {
        return Ok(None);
    }
    check_interval(interval)?;
    let trial = plan.trial_days > 0;
    let trial_end = trial.then(|| now + plan.trial_days as i64 * 86_400);
    let mut s = Subscription {
        id: 0,
        tenant_id: tenant.to_string(),
        plan: plan_name.to_string(),
        interval: interval.to_string(),
        status: if trial { "trialing" } else { "active" }.into(),
        amount_cents: price(plan, interval),
        currency: plan.currency.clone(),
        current_period_start: now,
        current_period_end: trial_end.unwrap_or_else(|| period_end(now, interval)),
        trial_end,
        cancel_at_period_end: false,
        past_due_since: None,
        canceled_at: None,
        provider: provider.as_str().into(),
        provider_customer_id: None,
        provider_subscription_id: None,
        provider_updated_at: None,
        created_at: now,
        updated_at: now,
        ended_at: None,
    };
    s.id = billing::insert_subscription(tx, &s)?;
    if provider == Provider::Stripe {
        let t = tenants::find_by_id(tx, tenant)?;
        let (slug, name) = t.map(|t| (t.slug.to_string(), t.name)).unwrap_or_default();
        let params = super::provider::subscribe_params(app, plan_name, interval, &slug, &name);
        super::provider::enqueue(tx, tenant.as_str(), "subscribe", &params, &format!("tenantd-sub-{}", s.id), now)?;
    }
    ledger(tx, &s, actor, "created", None, None, None, now)?;
    platform_audit(
        tx,
        actor,
        "billing.subscription_created",
        &s,
        json!({"plan": s.plan, "status": s.status, "trial_end": s.trial_end}),
        now,
    )?;
    Ok(Some(s))
}

/// A ledger line for `s` after a change; `from` is what it was (plan, amount, status).
#[allow(clippy::too_many_arguments)]
pub(crate) fn ledger(
    tx: &Connection,
    s: &Subscription,
    actor: &str,
    kind: &str,
    from_plan: Option<&str>,
    from_amount: Option<i64>,
    from_status: Option<&str>,
    now: i64,
) -> Result<()> {
    billing::append_ledger(
        tx,
        &LedgerEntry {
            tenant_id: s.tenant_id.clone(),
            subscription_id: Some(s.id),
            at: now,
            actor: actor.to_string(),
            kind: kind.to_string(),
            from_plan: from_plan.map(String::from),
            to_plan: Some(s.plan.clone()),
            from_amount_cents: from_amount,
            to_amount_cents: Some(s.amount_cents),
            from_status: from_status.map(String::from),
            to_status: Some(s.status.clone()),
            interval: Some(s.interval.clone()),
            currency: Some(s.currency.clone()),
            details: json!({}),
        },
    )
}

pub(crate) fn platform_audit(
    tx: &Connection,
    actor: &str,
    action: &str,
    s: &Subscription,
    details: serde_json::Value,
    now: i64,
) -> Result<()> {
    audit::append(
        tx,
        now,
        &audit::Event { actor, action, tenant_id: Some(&s.tenant_id), resource: Some(&s.plan), outcome: "ok", details },
    )?;
    Ok(())
}

/// Moves the tenant's subscription to `plan` (the caller changes the tenant's plan in the same
/// transaction). Mid-period, a `local` subscription is prorated: the unused part of the old
/// price is credited and the rest of the period at the new price charged on the next invoice.
/// A free plan ends the subscription; a priced plan without one starts it.
pub fn change_plan(
    tx: &Connection,
    app: &App,
    tenant: &TenantId,
    plan_name: &str,
    interval: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<()> {
    let Some(mut s) = billing::current(tx, tenant)? else {
        start(tx, app, tenant, plan_name, interval.unwrap_or("month"), actor, now)?;
        return Ok(());
    };
    let plan = app
        .config
        .plans
        .get(plan_name)
        .ok_or_else(|| Error::invalid("unknown_plan", format!("unknown plan {plan_name:?}")))?;
    let interval = interval.unwrap_or(&s.interval).to_string();
    check_interval(&interval)?;
    let (from_plan, from_amount, from_status) = (s.plan.clone(), s.amount_cents, s.status.clone());
    let new_amount = price(plan, &interval);
    if from_plan == plan_name && interval == s.interval {
        return Ok(());
    }
    // Prorate what is left of the current paid period (a trial costs nothing either way).
    let paying = matches!(s.status.as_str(), "active" | "past_due");
    let span = (s.current_period_end - s.current_period_start).max(1);
    let left = (s.current_period_end - now).clamp(0, span);
    if paying && s.provider == "local" && left > 0 {
        let f = left as f64 / span as f64;
        let credit = -((from_amount as f64 * f).round() as i64);
        let charge = (new_amount as f64 * f).round() as i64;
        let days = (left as f64 / 86_400.0).round();
        billing::add_pending(
            tx,
            &s.tenant_id,
            "proration",
            &format!("Unused time on {from_plan} ({days} days)"),
            credit,
            now,
        )?;
        if plan.is_priced() {
            billing::add_pending(
                tx,
                &s.tenant_id,
                "proration",
                &format!("Remaining time on {plan_name} ({days} days)"),
                charge,
                now,
            )?;
        }
    }
    if !plan.is_priced() {
        s.status = "canceled".into();
        s.canceled_at = Some(now);
        s.ended_at = Some(now);
        s.updated_at = now;
        billing::update_subscription(tx, &s)?;
        ledger(tx, &s, actor, "canceled", Some(&from_plan), Some(from_amount), Some(&from_status), now)?;
        platform_audit(tx, actor, "billing.subscription_ended", &s, json!({"from": from_plan, "to": plan_name}), now)?;
        return Ok(());
    }
    s.plan = plan_name.to_string();
    s.amount_cents = new_amount;
    s.currency = plan.currency.clone();
    if interval != s.interval {
        // A new interval starts a new period now (the proration above settled the old one).
        s.interval = interval;
        if s.status != "trialing" {
            s.current_period_start = now;
            s.current_period_end = period_end(now, &s.interval);
        }
    }
    s.updated_at = now;
    billing::update_subscription(tx, &s)?;
    if s.provider == "stripe" {
        let p = super::provider::subscribe_params(app, &s.plan, &s.interval, "", "");
        let key = format!("tenantd-chg-{}-{}-{}-{now}", s.id, s.plan, s.interval);
        super::provider::enqueue(tx, &s.tenant_id, "change_price", &p, &key, now)?;
    }
    ledger(tx, &s, actor, "plan_changed", Some(&from_plan), Some(from_amount), Some(&from_status), now)?;
    platform_audit(
        tx,
        actor,
        "billing.plan_changed",
        &s,
        json!({"from": from_plan, "to": s.plan, "amount_cents": s.amount_cents}),
        now,
    )
}

/// Cancels at the end of the current period (`at_period_end`), or at once.
pub fn cancel(app: &App, slug: &Slug, at_period_end: bool, actor: &Actor) -> Result<Subscription> {
    let now = now_unix();
    app.change(|tx| {
        let t = tenants::get_by_slug(tx, slug)?;
        let mut s = require(tx, &t.id, slug)?;
        let from_status = s.status.clone();
        if at_period_end {
            if s.cancel_at_period_end {
                return Err(Error::conflict(
                    "already_canceling",
                    "the subscription already ends at the end of its period",
                ));
            }
            s.cancel_at_period_end = true;
        } else {
            s.status = "canceled".into();
            s.canceled_at = Some(now);
        }
        s.updated_at = now;
        billing::update_subscription(tx, &s)?;
        if s.provider == "stripe" {
            let key = format!("tenantd-cancel-{}-{now}", s.id);
            super::provider::enqueue(tx, &s.tenant_id, "cancel", &json!({"at_period_end": at_period_end}), &key, now)?;
        }
        ledger(tx, &s, &actor.0, "canceled", Some(&s.plan.clone()), Some(s.amount_cents), Some(&from_status), now)?;
        platform_audit(tx, &actor.0, "billing.cancel", &s, json!({"at_period_end": at_period_end}), now)?;
        Ok(s)
    })
}

/// Undoes a cancellation at period end (a subscription already canceled cannot resume: the
/// tenant subscribes again by changing plan).
pub fn resume(app: &App, slug: &Slug, actor: &Actor) -> Result<Subscription> {
    let now = now_unix();
    app.change(|tx| {
        let t = tenants::get_by_slug(tx, slug)?;
        let mut s = require(tx, &t.id, slug)?;
        if !s.cancel_at_period_end || s.status == "canceled" {
            return Err(Error::conflict("not_canceling", "the subscription is not set to end; nothing to resume"));
        }
        s.cancel_at_period_end = false;
        s.updated_at = now;
        billing::update_subscription(tx, &s)?;
        if s.provider == "stripe" {
            super::provider::enqueue(
                tx,
                &s.tenant_id,
                "resume",
                &json!({}),
                &format!("tenantd-resume-{}-{now}", s.id),
                now,
            )?;
        }
        ledger(tx, &s, &actor.0, "resumed", Some(&s.plan.clone()), Some(s.amount_cents), Some(&s.status.clone()), now)?;
        platform_audit(tx, &actor.0, "billing.resume", &s, json!({}), now)?;
        Ok(s)
    })
}

fn require(tx: &Connection, id: &TenantId, slug: &Slug) -> Result<Subscription> {
    billing::current(tx, id)?.ok_or_else(|| {
        Error::conflict(
            "no_subscription",
            format!("tenant {slug} has no subscription (a free plan, or billing is off)"),
        )
    })
}
