//! Local invoicing (`[billing] provider = "local"`): `run` closes every period that ended by a
//! given time, one invoice per closed period (in arrears: the plan's price for the period, usage
//! beyond what it includes, seats, pending prorations, tax), numbered without gaps; then the
//! dunning rules apply. The server runs it hourly; `tenantd billing run [--as-of DATE]` by hand.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;
use serde_json::json;

use super::subscription::{ledger, platform_audit};
use super::{dunning, money, period_end, Provider};
use crate::app::App;
use crate::catalog::billing::{self, Invoice, InvoiceLine, Subscription};
use crate::catalog::{identity, tenants};
use crate::config::PlanConfig;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::tenancy::Actor;

/// At most this many periods are closed for one subscription in one run (a server that was off
/// for three years catches up over several runs rather than in one long transaction).
const MAX_PERIODS_PER_RUN: usize = 36;

#[derive(Debug, Default, Serialize)]
pub struct RunSummary {
    pub as_of: i64,
    pub invoices: Vec<IssuedInvoice>,
    pub trials_ended: usize,
    pub canceled: usize,
    pub dunning: dunning::Outcome,
}

#[derive(Debug, Serialize)]
pub struct IssuedInvoice {
    pub number: String,
    pub tenant_id: String,
    pub total_cents: i64,
    pub currency: String,
}

/// Closes every local period that ended by `as_of`, then applies dunning (for every provider).
pub fn run(app: &App, as_of: i64, actor: &Actor) -> Result<RunSummary> {
    let provider = Provider::of(app);
    if provider == Provider::None {
        return Err(Error::invalid("billing_off", "[billing] provider is \"none\": nothing is invoiced"));
    }
    let mut summary = RunSummary { as_of, ..Default::default() };
    let to_suspend = app.change(|tx| {
        if provider == Provider::Local {
            for mut s in billing::all_current(tx)?.into_iter().filter(|s| s.provider == "local") {
                close_due(tx, app, &mut s, as_of, &actor.0, &mut summary)?;
            }
        }
        dunning::apply(tx, app, as_of, &actor.0, &mut summary.dunning)
    })?;
    dunning::after_commit(app, &summary.dunning, &to_suspend, actor)?;
    Ok(summary)
}

fn close_due(
    tx: &Connection,
    app: &App,
    s: &mut Subscription,
    as_of: i64,
    actor: &str,
    out: &mut RunSummary,
) -> Result<()> {
    let before = s.clone();
    for _ in 0..MAX_PERIODS_PER_RUN {
        if s.current_period_end > as_of {
            break;
        }
        match s.status.as_str() {
            "trialing" => {
                let from = s.status.clone();
                let end = s.current_period_end;
                if s.cancel_at_period_end {
                    end_at_period_end(tx, s, actor, out)?;
                    break;
                }
                s.status = "active".into();
                s.current_period_start = end;
                s.segment_start = end;
                s.current_period_end = period_end(end, &s.interval);
                s.updated_at = end;
                ledger(tx, s, actor, "status_changed", Some(&s.plan.clone()), Some(s.amount_cents), Some(&from), end)?;
                platform_audit(tx, actor, "billing.trial_ended", s, json!({}), end)?;
                out.trials_ended += 1;
            }
            "active" | "past_due" => {
                let inv = close_period(tx, app, s)?;
                out.invoices.push(IssuedInvoice {
                    number: inv.number.clone(),
                    tenant_id: inv.tenant_id.clone(),
                    total_cents: inv.total_cents,
                    currency: inv.currency.clone(),
                });
                let end = s.current_period_end;
                if s.cancel_at_period_end {
                    end_at_period_end(tx, s, actor, out)?;
                    break;
                }
                s.current_period_start = end;
                s.segment_start = end;
                s.current_period_end = period_end(end, &s.interval);
                s.updated_at = end;
            }
            _ => break,
        }
    }
    if *s != before {
        billing::update_subscription(tx, s)?;
    }
    Ok(())
}

/// A subscription set to cancel at period end reaches it: `canceled` as of the period's end.
fn end_at_period_end(tx: &Connection, s: &mut Subscription, actor: &str, out: &mut RunSummary) -> Result<()> {
    let (from, end) = (s.status.clone(), s.current_period_end);
    s.status = "canceled".into();
    s.canceled_at = Some(end);
    s.updated_at = end;
    ledger(tx, s, actor, "status_changed", Some(&s.plan.clone()), Some(s.amount_cents), Some(&from), end)?;
    out.canceled += 1;
    Ok(())
}

/// Invoices `s`'s current period up to its `current_period_end` now (an early end: the caller
/// sets it to the moment the subscription stops).
pub(crate) fn close_now(tx: &Connection, app: &App, s: &Subscription) -> Result<Invoice> {
    close_period(tx, app, s)
}

/// The invoice of the period `s` is closing: plan, usage beyond what the plan includes, seats,
/// pending prorations and tax, under the next invoice number.
fn close_period(tx: &Connection, app: &App, s: &Subscription) -> Result<Invoice> {
    let cfg = &app.config.billing;
    let (ps, pe) = (s.current_period_start, s.current_period_end);
    let (lines, pending) = period_lines(tx, app, s)?;
    let subtotal: i64 = lines.iter().map(|l| l.amount_cents).sum();
    let tax = tax_of(subtotal, cfg.tax_rate_percent);
    let n = billing::next_number(tx, "invoice")?;
    let mut inv = Invoice {
        id: 0,
        number: format!("{}{n:06}", cfg.invoice_prefix),
        tenant_id: s.tenant_id.clone(),
        subscription_id: Some(s.id),
        status: "open".into(),
        currency: s.currency.clone(),
        period_start: ps,
        period_end: pe,
        subtotal_cents: subtotal,
        tax_rate_percent: cfg.tax_rate_percent,
        tax_cents: tax,
        total_cents: subtotal + tax,
        issued_at: pe,
        due_at: pe + cfg.invoice_due_days as i64 * 86_400,
        paid_at: None,
        voided_at: None,
        lines,
    };
    // Nothing to pay (prorations credited it all): settled at once.
    if inv.total_cents <= 0 {
        inv.status = "paid".into();
        inv.paid_at = Some(pe);
    }
    inv.id = billing::insert_invoice(tx, &inv)?;
    billing::claim_pending(tx, &pending, inv.id)?;
    Ok(inv)
}

fn tax_of(subtotal: i64, rate_percent: f64) -> i64 {
    if subtotal > 0 {
        (subtotal as f64 * rate_percent / 100.0).round() as i64
    } else {
        0
    }
}

/// What the current period will cost if it closed now: the plan, the usage so far beyond what
/// it includes, seats and pending prorations, with tax. For the tenant's billing page.
#[derive(Debug, Serialize)]
pub struct Upcoming {
    pub period_start: i64,
    pub period_end: i64,
    pub lines: Vec<InvoiceLine>,
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub currency: String,
}

pub fn upcoming(conn: &Connection, app: &App, s: &Subscription) -> Result<Upcoming> {
    let (mut lines, _) = period_lines(conn, app, s)?;
    if s.status == "trialing" {
        lines.retain(|l| l.kind == "proration");
    }
    let subtotal: i64 = lines.iter().map(|l| l.amount_cents).sum();
    let tax = tax_of(subtotal, app.config.billing.tax_rate_percent);
    Ok(Upcoming {
        period_start: s.current_period_start,
        period_end: s.current_period_end,
        lines,
        subtotal_cents: subtotal,
        tax_cents: tax,
        total_cents: subtotal + tax,
        currency: s.currency.clone(),
    })
}

/// The lines of `s`'s current period and the ids of the pending charges they include.
fn period_lines(tx: &Connection, app: &App, s: &Subscription) -> Result<(Vec<InvoiceLine>, Vec<i64>)> {
    let plan = app.config.plans.get(&s.plan).cloned().unwrap_or_default();
    let (ps, pe) = (s.current_period_start, s.current_period_end);
    // The plan's price for the part of the period at this price: all of it, or since the last
    // plan change (the part before is a pending `plan_part` charge at the old price), or up to
    // an early end (a cancellation or a move to a free plan).
    let nominal_end = period_end(ps, &s.interval);
    let from = s.segment_start.clamp(ps, pe);
    let amount = if from == ps && pe == nominal_end {
        s.amount_cents
    } else {
        (s.amount_cents as f64 * (pe - from) as f64 / (nominal_end - ps).max(1) as f64).round() as i64
    };
    let mut lines = vec![InvoiceLine {
        kind: "plan".into(),
        description: format!(
            "{} plan ({}), {} to {}",
            s.plan,
            s.interval,
            crate::util::rfc3339(from).get(..10).unwrap_or(""),
            crate::util::rfc3339(pe).get(..10).unwrap_or("")
        ),
        quantity: 1.0,
        unit_cents: amount as f64,
        amount_cents: amount,
    }];
    lines.extend(usage_lines(tx, &plan, s)?);
    let pending = billing::pending(tx, &s.tenant_id)?;
    for (_, kind, description, amount) in &pending {
        lines.push(InvoiceLine {
            kind: kind.clone(),
            description: description.clone(),
            quantity: 1.0,
            unit_cents: *amount as f64,
            amount_cents: *amount,
        });
    }
    Ok((lines, pending.iter().map(|p| p.0).collect()))
}

/// Requests, storage and seats beyond what the plan includes for the period.
fn usage_lines(tx: &Connection, plan: &PlanConfig, s: &Subscription) -> Result<Vec<InvoiceLine>> {
    let months = if s.interval == "year" { 12 } else { 1 };
    let (requests, avg_bytes, _hours) =
        crate::analytics::rollup::usage_between(tx, &s.tenant_id, s.current_period_start, s.current_period_end)?;
    let mut out = Vec::new();
    let included = plan.included_monthly_requests as i64 * months;
    if plan.overage_cents_per_1000_requests > 0 && requests > included {
        let thousands = (requests - included + 999) / 1000;
        out.push(InvoiceLine {
            kind: "overage_requests".into(),
            description: format!("{} requests beyond the {} included (per 1,000)", requests - included, included),
            quantity: thousands as f64,
            unit_cents: plan.overage_cents_per_1000_requests as f64,
            amount_cents: thousands * plan.overage_cents_per_1000_requests as i64,
        });
    }
    let gb_months = avg_bytes / 1e9 * months as f64;
    let included_gb = (plan.included_storage_gb * months as u64) as f64;
    if plan.overage_cents_per_gb_month > 0 && gb_months > included_gb {
        let over = gb_months - included_gb;
        out.push(InvoiceLine {
            kind: "overage_storage".into(),
            description: format!("{over:.3} GB-months of storage beyond the {included_gb} included"),
            quantity: (over * 1000.0).round() / 1000.0,
            unit_cents: plan.overage_cents_per_gb_month as f64,
            amount_cents: (over * plan.overage_cents_per_gb_month as f64).round() as i64,
        });
    }
    let tenant = TenantId::parse(&s.tenant_id)?;
    let seats = identity::count_members(tx, &tenant)?;
    if plan.overage_cents_per_seat > 0 && seats > plan.included_seats as i64 {
        let extra = seats - plan.included_seats as i64;
        out.push(InvoiceLine {
            kind: "seats".into(),
            description: format!("{extra} seats beyond the {} included", plan.included_seats),
            quantity: (extra * months) as f64,
            unit_cents: plan.overage_cents_per_seat as f64,
            amount_cents: extra * months * plan.overage_cents_per_seat as i64,
        });
    }
    Ok(out)
}

/// Marks an invoice `paid`, `void` or `uncollectible` (open invoices; an uncollectible one can
/// still be paid). Paying the last overdue invoice restores the tenant at once.
pub fn mark(app: &App, number: &str, status: &str, actor: &Actor) -> Result<Invoice> {
    let allowed: &[&str] = match status {
        "paid" => &["open", "uncollectible"],
        "void" => &["open", "draft"],
        "uncollectible" => &["open"],
        other => {
            return Err(Error::invalid(
                "invalid_status",
                format!(
                    "an invoice can be marked paid, void or uncollectible, not {:?}",
                    crate::ids::truncate_for_message(other)
                ),
            ))
        }
    };
    let now = crate::util::now_unix();
    let mut outcome = dunning::Outcome::default();
    let inv = app.change(|tx| {
        let inv =
            billing::invoice_by_number(tx, number)?.ok_or_else(|| Error::NotFound(format!("invoice {number:?}")))?;
        if !allowed.contains(&inv.status.as_str()) {
            return Err(Error::conflict(
                "invoice_state",
                format!("invoice {number} is {}; it cannot become {status}", inv.status),
            ));
        }
        billing::set_invoice_status(tx, inv.id, status, now)?;
        crate::catalog::audit::append(
            tx,
            now,
            &crate::catalog::audit::Event {
                actor: &actor.0,
                action: "billing.invoice_marked",
                tenant_id: Some(&inv.tenant_id),
                resource: Some(number),
                outcome: "ok",
                details: json!({"from": inv.status, "to": status, "total_cents": inv.total_cents}),
            },
        )?;
        // Written off: the subscription is unpaid (and the tenant stays held). Paid or voided:
        // nothing overdue left may restore it.
        if status == "uncollectible" {
            dunning::mark_unpaid(tx, &inv.tenant_id, &actor.0, now)?;
        } else {
            dunning::settle(tx, app, &inv.tenant_id, &actor.0, now, &mut outcome)?;
        }
        Ok(billing::invoice_by_number(tx, number)?.unwrap_or(inv))
    })?;
    dunning::after_commit(app, &outcome, &[], actor)?;
    Ok(inv)
}

/// The printable invoice: one self-contained HTML page (print it, or save it as PDF).
pub fn render_html(inv: &Invoice, tenant_name: &str, issuer: &str) -> String {
    let date = |t: i64| crate::util::rfc3339(t).get(..10).unwrap_or("").to_string();
    let m = |c: i64| money(c, &inv.currency);
    maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Invoice " (inv.number) }
                style { "body{font:14px/1.4 system-ui,sans-serif;max-width:48rem;margin:2rem auto;color:#111}\
                         table{width:100%;border-collapse:collapse}td,th{padding:.4rem;border-bottom:1px solid #ddd;text-align:left}\
                         .num{text-align:right}.status{text-transform:uppercase;font-weight:600}" }
            }
            body {
                h1 { "Invoice " (inv.number) }
                p { strong { (issuer) } br; "Billed to: " (tenant_name) }
                p {
                    "Issued " (date(inv.issued_at)) " · due " (date(inv.due_at)) " · period " (date(inv.period_start)) " to " (date(inv.period_end))
                    " · " span.status { (inv.status) }
                }
                table {
                    thead { tr { th { "Item" } th.num { "Quantity" } th.num { "Unit" } th.num { "Amount" } } }
                    tbody {
                        @for l in &inv.lines {
                            tr { td { (l.description) } td.num { (l.quantity) } td.num { (m(l.unit_cents.round() as i64)) } td.num { (m(l.amount_cents)) } }
                        }
                    }
                    tfoot {
                        tr { td colspan="3" { "Subtotal" } td.num { (m(inv.subtotal_cents)) } }
                        tr { td colspan="3" { "Tax (" (inv.tax_rate_percent) "%)" } td.num { (m(inv.tax_cents)) } }
                        tr { th colspan="3" { "Total" } th.num { (m(inv.total_cents)) } }
                    }
                }
            }
        }
    }
    .into_string()
}

/// Invoices with the tenant slugs, for listings (`tenant` filters by slug).
pub fn list(app: &App, tenant: Option<&crate::ids::Slug>, status: Option<&str>) -> Result<Vec<(String, Invoice)>> {
    let conn = app.catalog.conn()?;
    let slugs: BTreeMap<String, String> =
        tenants::list(&conn, true)?.into_iter().map(|t| (t.id.to_string(), t.slug.to_string())).collect();
    let id = match tenant {
        Some(s) => Some(tenants::get_by_slug(&conn, s)?.id.to_string()),
        None => None,
    };
    Ok(billing::invoices(&conn, id.as_deref(), status)?
        .into_iter()
        .map(|i| (slugs.get(&i.tenant_id).cloned().unwrap_or_else(|| i.tenant_id.clone()), i))
        .collect())
}
