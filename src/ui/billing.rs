//! The tenant's billing page (`/admin/t/{slug}/billing`): its plan and subscription, the prices,
//! what the current period will cost, the invoices (printable), and plan change, cancel and
//! resume. The same domain functions as `api::billing`.

use maud::html;

use super::tenant::act;
use super::{csrf_field, field, flash, form, page, Chrome};
use crate::billing::{invoice, money, subscription};
use crate::catalog::billing as records;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::tenancy::Actor;
use crate::util::rfc3339;

fn date(t: i64) -> String {
    rfc3339(t).get(..10).unwrap_or("").to_string()
}

pub fn page_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let conn = ctx.app.catalog.conn()?;
    let sub = records::current(&conn, &t.id)?;
    let upcoming = match &sub {
        Some(s) if s.status != "canceled" => Some(invoice::upcoming(&conn, ctx.app, s)?),
        _ => None,
    };
    let invoices = records::invoices(&conn, Some(t.id.as_str()), None)?;
    drop(conn);
    let base = format!("/admin/t/{}", t.slug);
    let chrome = Chrome::for_ctx(ctx, "Billing", "billing")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Billing" }
            p.lead { "Provider: " (ctx.app.config.billing.provider) " · plan " strong { (t.plan) } }
            (flash(req))
            @if let Some(s) = &sub {
                table.data {
                    tbody {
                        tr { th { "Status" } td { span.badge.(s.status) { (s.status) } @if s.cancel_at_period_end { " (ends at the end of this period)" } } }
                        tr { th { "Price" } td { (money(s.amount_cents, &s.currency)) " per " (s.interval) } }
                        tr { th { "Current period" } td { (date(s.current_period_start)) " to " (date(s.current_period_end)) } }
                        @if let Some(end) = s.trial_end { tr { th { "Trial ends" } td { (date(end)) } } }
                        @if let Some(since) = s.past_due_since { tr { th { "Payment overdue since" } td { (date(since)) } } }
                    }
                }
                div.toolbar {
                    @if s.cancel_at_period_end {
                        form.inline method="post" action={ (base) "/billing" } {
                            (csrf_field(ctx)) input type="hidden" name="action" value="resume";
                            button type="submit" { "Keep the subscription" }
                        }
                    } @else if s.status != "canceled" {
                        form.inline method="post" action={ (base) "/billing" } {
                            (csrf_field(ctx)) input type="hidden" name="action" value="cancel";
                            button.danger type="submit" { "Cancel at the end of the period" }
                        }
                    }
                }
            } @else {
                p { "No subscription: the plan is free, or billing is off." }
            }
            h2 { "Plans" }
            form method="post" action={ (base) "/billing" } {
                (csrf_field(ctx)) input type="hidden" name="action" value="change_plan";
                table.data {
                    thead { tr { th {} th { "Plan" } th { "Monthly" } th { "Yearly" } th { "Trial" } th { "Requests included / month" } } }
                    tbody {
                        @for (name, p) in &ctx.app.config.plans {
                            tr {
                                td { input type="radio" name="plan" value=(name) checked[*name == t.plan]; }
                                td { (name) }
                                td { (money(p.price_monthly_cents as i64, &p.currency)) }
                                td { (money(p.price_yearly_cents as i64, &p.currency)) }
                                td { (p.trial_days) " days" }
                                td { (p.included_monthly_requests) }
                            }
                        }
                    }
                }
                select name="interval" { option value="" { "same interval" } option value="month" { "monthly" } option value="year" { "yearly" } }
                " "
                button type="submit" { "Change plan" }
            }
            @if let Some(u) = &upcoming {
                h2 { "This period so far" }
                table.data {
                    tbody {
                        @for l in &u.lines { tr { td { (l.description) } td.num { (money(l.amount_cents, &u.currency)) } } }
                        tr { th { "Estimated total (with tax)" } th.num { (money(u.total_cents, &u.currency)) } }
                    }
                }
            }
            h2 { "Invoices" }
            table.data {
                thead { tr { th { "Number" } th { "Period" } th { "Status" } th { "Total" } th { "Due" } } }
                tbody {
                    @for i in &invoices {
                        tr {
                            td { a href={ (base) "/billing/invoices/" (i.number) } { (i.number) } }
                            td { (date(i.period_start)) " to " (date(i.period_end)) }
                            td { span.badge.(i.status) { (i.status) } }
                            td { (money(i.total_cents, &i.currency)) }
                            td { (date(i.due_at)) }
                        }
                    }
                }
            }
        },
    ))
}

pub fn page_post(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let f = form(req)?;
    let loc = format!("/admin/t/{}/billing", t.slug);
    let actor = Actor(ctx.principal()?.actor());
    match field(&f, "action") {
        Some("change_plan") => {
            let plan = field(&f, "plan").unwrap_or("").to_string();
            crate::api::billing::self_service(ctx, &t.plan, &plan)?;
            // "" keeps the subscription's interval.
            let interval = field(&f, "interval").filter(|i| !i.is_empty()).map(str::to_string);
            act(&loc, "plan changed", || {
                crate::tenancy::set_plan_and_interval(ctx.app, &t.slug, &plan, interval.as_deref(), &actor).map(|_| ())
            })
        }
        Some("cancel") => act(&loc, "the subscription ends at the end of this period", || {
            subscription::cancel(ctx.app, &t.slug, true, &actor).map(|_| ())
        }),
        Some("resume") => {
            act(&loc, "the subscription continues", || subscription::resume(ctx.app, &t.slug, &actor).map(|_| ()))
        }
        _ => Err(Error::invalid("invalid_action", "action must be change_plan, cancel or resume")),
    }
}

/// The printable invoice, for a session (the API route wants a bearer token).
pub fn invoice_page(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let number = ctx.param("number")?;
    let inv = records::invoice_by_number(&*ctx.app.catalog.conn()?, number)?
        .filter(|i| i.tenant_id == t.id.as_str())
        .ok_or_else(|| Error::NotFound(format!("invoice {:?}", crate::ids::truncate_for_message(number))))?;
    let body = invoice::render_html(&inv, &t.name, &ctx.app.config.billing.issuer);
    Ok(Resp {
        status: 200,
        content_type: "text/html; charset=utf-8",
        headers: vec![],
        body: body.into_bytes(),
        error: None,
        rate_limit: None,
    })
}

/// The banner every tenant page shows while a payment is late (none when billing is off).
pub fn notice(ctx: &Ctx<'_>, t: &crate::catalog::tenants::TenantRecord) -> Option<String> {
    if crate::billing::Provider::of(ctx.app) == crate::billing::Provider::None {
        return None;
    }
    if t.billing_hold {
        return Some("Payment is overdue: this tenant is read-only until the open invoice is paid (Billing).".into());
    }
    let conn = ctx.app.catalog.conn().ok()?;
    let s = records::current(&conn, &t.id).ok()??;
    (s.status == "past_due").then(|| {
        let grace = ctx.app.config.billing.dunning_grace_days;
        format!(
            "Payment is overdue: pay the open invoice within {grace} days of its due date to keep writing (Billing)."
        )
    })
}
