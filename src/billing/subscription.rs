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
    // A plan priced only by the year starts yearly.
    let interval = if price(plan, interval) == 0 && interval == "month" { "year" } else { interval };
    check_price(plan_name, plan, interval)?;
    // A trial once per tenant: leaving and coming back does not start another.
    let had_one = !billing::history(tx, tenant)?.is_empty();
    let trial = plan.trial_days > 0 && !had_one;
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
        segment_start: now,
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

/// Refuses an interval the plan has no price for (it would make the plan free), and, with
/// Stripe, one it has no Stripe price for.
pub fn check_price(plan_name: &str, plan: &PlanConfig, interval: &str) -> Result<()> {
    check_interval(interval)?;
    if price(plan, interval) == 0 {
        return Err(Error::invalid("no_price", format!("plan {plan_name} has no {interval}ly price")));
    }
    Ok(())
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
/// transaction). Mid-period, a `local` subscription's period is split: the part used so far is
/// a pending charge at the old price, and the period's plan line charges the rest at the new
/// one (`segment_start`). A free plan ends the subscription with a final invoice for the part
/// used; a priced plan without a subscription (or after a canceled one) starts one.
pub fn change_plan(
    tx: &Connection,
    app: &App,
    tenant: &TenantId,
    plan_name: &str,
    interval: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<()> {
    let plan = app
        .config
        .plans
        .get(plan_name)
        .ok_or_else(|| Error::invalid("unknown_plan", format!("unknown plan {plan_name:?}")))?;
    let current = billing::current(tx, tenant)?;
    // A canceled (or never paid) subscription is history: a priced plan starts a new one.
    let current = match current {
        Some(mut old) if matches!(old.status.as_str(), "canceled" | "incomplete_expired") => {
            old.ended_at = Some(now);
            old.updated_at = now;
            billing::update_subscription(tx, &old)?;
            None
        }
        other => other,
    };
    let Some(mut s) = current else {
        start(tx, app, tenant, plan_name, interval.unwrap_or("month"), actor, now)?;
        return Ok(());
    };
    let interval = interval.unwrap_or(&s.interval).to_string();
    let (from_plan, from_amount, from_status) = (s.plan.clone(), s.amount_cents, s.status.clone());
    if from_plan == plan_name && interval == s.interval {
        return Ok(());
    }
    if plan.is_priced() {
        check_price(plan_name, plan, &interval)?;
    }
    let paying = matches!(s.status.as_str(), "active" | "past_due");
    if !plan.is_priced() {
        // Down to a free plan: the part used so far is invoiced now, and the subscription ends.
        if paying && s.provider == "local" {
            s.current_period_end = now.clamp(s.current_period_start, s.current_period_end);
            super::invoice::close_now(tx, app, &s)?;
        }
        if s.provider == "stripe" {
            let key = format!("tenantd-end-{}-{}", s.id, crate::util::random_hex(8));
            super::provider::enqueue(tx, &s.tenant_id, "cancel", &json!({"at_period_end": false}), &key, now)?;
        }
        s.status = "canceled".into();
        s.canceled_at = Some(now);
        s.ended_at = Some(now);
        s.updated_at = now;
        billing::update_subscription(tx, &s)?;
        billing::set_hold(tx, &s.tenant_id, false, now, "")?;
        ledger(tx, &s, actor, "canceled", Some(&from_plan), Some(from_amount), Some(&from_status), now)?;
        platform_audit(tx, actor, "billing.subscription_ended", &s, json!({"from": from_plan, "to": plan_name}), now)?;
        return Ok(());
    }
    if paying && s.provider == "local" {
        // The part of the period used at the old price, as a pending charge.
        let span = (s.current_period_end - s.current_period_start).max(1);
        let used = (now.clamp(s.segment_start, s.current_period_end) - s.segment_start) as f64 / span as f64;
        let amount = (from_amount as f64 * used).round() as i64;
        if amount != 0 {
            let from_day = crate::util::rfc3339(s.segment_start).get(..10).unwrap_or("").to_string();
            let to_day = crate::util::rfc3339(now).get(..10).unwrap_or("").to_string();
            billing::add_pending(
                tx,
                &s.tenant_id,
                "plan_part",
                &format!("{from_plan} plan ({}), {from_day} to {to_day}", s.interval),
                amount,
                now,
            )?;
        }
        s.segment_start = now.clamp(s.current_period_start, s.current_period_end);
    }
    s.plan = plan_name.to_string();
    s.amount_cents = price(plan, &interval);
    s.currency = plan.currency.clone();
    if interval != s.interval {
        // A new interval starts a new period now; the old one's used part is pending above.
        s.interval = interval;
        if s.status != "trialing" {
            s.current_period_start = now;
            s.current_period_end = period_end(now, &s.interval);
            s.segment_start = now;
        }
    }
    s.updated_at = now;
    billing::update_subscription(tx, &s)?;
    if s.provider == "stripe" {
        let p = super::provider::subscribe_params(app, &s.plan, &s.interval, "", "");
        let key = format!("tenantd-chg-{}-{}", s.id, crate::util::random_hex(8));
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
            if s.status == "canceled" {
                return Err(Error::conflict("already_canceled", "the subscription is already canceled"));
            }
            // At once: the part of the period used so far is invoiced now.
            if s.provider == "local" && matches!(s.status.as_str(), "active" | "past_due") {
                let mut part = s.clone();
                part.current_period_end = now.clamp(s.current_period_start, s.current_period_end);
                super::invoice::close_now(tx, app, &part)?;
            }
            s.status = "canceled".into();
            s.canceled_at = Some(now);
        }
        s.updated_at = now;
        billing::update_subscription(tx, &s)?;
        if s.provider == "stripe" {
            let key = format!("tenantd-cancel-{}-{}", s.id, crate::util::random_hex(8));
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
                &format!("tenantd-resume-{}-{}", s.id, crate::util::random_hex(8)),
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
