//! Billing over HTTP (issue 20): a tenant's subscription, invoices and what the current period
//! will cost (`/api/v1/t/{slug}/billing`, owners and roles with `can_manage:billing`), and the
//! platform's view (`/api/v1/platform/billing`). These routes keep working while a tenant's
//! writes are held for payment: this is where it pays.

use serde::Deserialize;
use serde_json::json;

use crate::billing::{invoice, subscription};
use crate::catalog::billing as records;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::tenancy::Actor;

/// `GET /api/v1/t/{slug}/billing`.
pub fn get(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let conn = ctx.app.catalog.conn()?;
    let current = records::current(&conn, &t.id)?;
    let upcoming = match &current {
        Some(s) if !matches!(s.status.as_str(), "canceled" | "incomplete_expired") => {
            Some(invoice::upcoming(&conn, ctx.app, s)?)
        }
        _ => None,
    };
    let invoices: Vec<serde_json::Value> = records::invoices(&conn, Some(t.id.as_str()), None)?
        .into_iter()
        .map(|i| {
            json!({"number": i.number, "status": i.status, "total_cents": i.total_cents, "currency": i.currency,
                   "issued_at": i.issued_at, "due_at": i.due_at, "period_start": i.period_start, "period_end": i.period_end})
        })
        .collect();
    let plan = ctx.app.config.plans.get(&t.plan);
    Ok(Resp::json(
        200,
        &json!({
            "provider": ctx.app.config.billing.provider,
            "plan": t.plan,
            "prices": plan.map(|p| json!({"monthly_cents": p.price_monthly_cents, "yearly_cents": p.price_yearly_cents,
                "currency": p.currency, "trial_days": p.trial_days})),
            "read_only": t.billing_hold,
            "subscription": current,
            "upcoming": upcoming,
            "invoices": invoices,
            "history": records::history(&conn, &t.id)?,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    action: String,
    plan: Option<String>,
    interval: Option<String>,
    at_period_end: Option<bool>,
}

/// `POST /api/v1/t/{slug}/billing`: `{"action": "change_plan", "plan": "pro", "interval": "year"}`,
/// `{"action": "cancel", "at_period_end": true}`, `{"action": "resume"}`.
pub fn post(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let body: Change = req.json()?;
    let actor = Actor(ctx.principal()?.actor());
    match body.action.as_str() {
        "change_plan" => {
            let plan = body.plan.ok_or_else(|| Error::invalid("missing_field", "change_plan needs \"plan\""))?;
            self_service(ctx, &t.plan, &plan)?;
            crate::tenancy::set_plan_and_interval(ctx.app, &t.slug, &plan, body.interval.as_deref(), &actor)?;
        }
        "cancel" => {
            subscription::cancel(ctx.app, &t.slug, body.at_period_end.unwrap_or(true), &actor)?;
        }
        "resume" => {
            subscription::resume(ctx.app, &t.slug, &actor)?;
        }
        other => {
            return Err(Error::invalid(
                "invalid_action",
                format!("action {:?}: use change_plan, cancel or resume", crate::ids::truncate_for_message(other)),
            ))
        }
    }
    let conn = ctx.app.catalog.conn()?;
    Ok(Resp::json(200, &json!({"subscription": records::current(&conn, &t.id)?})))
}

/// `GET /api/v1/t/{slug}/billing/invoices/{number}`: JSON, or the printable page with
/// `?format=html`. Another tenant's invoice is a 404, like a missing one.
pub fn invoice(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let number = ctx.param("number")?;
    let conn = ctx.app.catalog.conn()?;
    let inv = records::invoice_by_number(&conn, number)?
        .filter(|i| i.tenant_id == t.id.as_str())
        .ok_or_else(|| Error::NotFound(format!("invoice {:?}", crate::ids::truncate_for_message(number))))?;
    if req.query_param("format") == Some("html") {
        let page = invoice::render_html(&inv, &t.name, &ctx.app.config.billing.issuer);
        return Ok(Resp {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: vec![],
            body: page.into_bytes(),
            error: None,
            rate_limit: None,
        });
    }
    Ok(Resp::json(200, &inv))
}

/// `GET /api/v1/platform/billing`: every subscription, the failing ones, and this month's money.
pub fn platform(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let sum = crate::billing::summary(ctx.app, crate::util::now_unix())?;
    let row = |(slug, s): &(String, records::Subscription)| {
        json!({"tenant": slug, "plan": s.plan, "status": s.status, "interval": s.interval,
               "amount_cents": s.amount_cents, "currency": s.currency, "current_period_end": s.current_period_end,
               "past_due_since": s.past_due_since, "cancel_at_period_end": s.cancel_at_period_end})
    };
    Ok(Resp::json(
        200,
        &json!({
            "provider": sum.provider,
            "subscriptions": sum.subscriptions.iter().map(row).collect::<Vec<_>>(),
            "failed_payments": sum.failed_payments.iter().map(row).collect::<Vec<_>>(),
            "open_invoices": sum.open_invoices,
            "revenue_this_month_cents": sum.revenue_this_month_cents,
            "mrr_cents": sum.mrr_cents,
            "provider_queue": sum.provider_queue,
            "provider_failures": sum.provider_failures,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    status: String,
}

/// `POST /api/v1/platform/billing/invoices/{number}`: `{"status": "paid" | "void" | "uncollectible"}`.
pub fn platform_mark(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let number = ctx.param("number")?;
    let body: Mark = req.json()?;
    let inv = invoice::mark(ctx.app, number, &body.status, &Actor(ctx.principal()?.actor()))?;
    Ok(Resp::json(200, &inv))
}

/// `POST /api/v1/billing/stripe/webhook`: Stripe's signed events. 400 for a bad or missing
/// signature or a timestamp past the tolerance (with a platform-audit entry); 200 otherwise,
/// including a second delivery of an event (which changes nothing) and types tenantd ignores.
pub fn webhook(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    if crate::billing::Provider::of(ctx.app) != crate::billing::Provider::Stripe {
        return Err(Error::NotFound("webhook endpoint (billing provider is not stripe)".into()));
    }
    let caller = req.caller();
    let source = caller.client.map(|a| a.to_string());
    let r = crate::billing::webhook::receive(
        ctx.app,
        req.header("stripe-signature"),
        &req.body,
        source.as_deref(),
        crate::util::now_unix(),
    )?;
    Ok(Resp::json(200, &json!({"received": true, "id": r.event_id, "type": r.event_type, "outcome": r.outcome})))
}

/// A tenant may pick its own plan only when billing charges for it; with `provider = "none"` the
/// plan is the platform's to set (else any owner could give itself the largest plan for free).
pub fn self_service(ctx: &Ctx<'_>, current: &str, wanted: &str) -> Result<()> {
    if crate::billing::Provider::of(ctx.app) == crate::billing::Provider::None && current != wanted {
        return Err(Error::conflict(
            "billing_off",
            "billing is off ([billing] provider = \"none\"): the platform operator sets plans",
        ));
    }
    Ok(())
}
