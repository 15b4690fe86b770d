//! Billing (issue 20): prices on plans become subscriptions, payment state becomes what a tenant
//! may do, metered usage becomes money.
//!
//! - `subscription`: a tenant's subscription and its ledger of changes (create with trial,
//!   change plan with proration, cancel, resume).
//! - `invoice`: local invoicing (`provider = "local"`): closing periods, gapless numbers, line
//!   items from the plan, usage rollups, seats and prorations; marking paid, void,
//!   uncollectible; printable HTML.
//! - `dunning`: overdue invoices → `past_due` → after the grace period writes answer 402 →
//!   canceled or unpaid tenants suspended after the retention period; paying restores at once.
//! - `provider`: the Stripe provider's outbound calls, queued in the same transaction as the
//!   change and made off the request path with idempotency keys.
//! - `webhook`: Stripe's signed events, deduplicated and applied in any order.
//! - `stripe/`: the webhook signature check, and the mock Stripe used by tests and CI.

pub mod dunning;
pub mod invoice;
pub mod provider;
pub mod stripe;
pub mod subscription;
pub mod webhook;

use crate::app::App;

/// Who charges tenants (`[billing] provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Nothing is charged; plans only limit.
    None,
    /// tenantd invoices by itself.
    Local,
    /// Stripe charges; tenantd mirrors its state.
    Stripe,
}

impl Provider {
    pub fn of(app: &App) -> Provider {
        match app.config.billing.provider.as_str() {
            "local" => Provider::Local,
            "stripe" => Provider::Stripe,
            _ => Provider::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::None => "none",
            Provider::Local => "local",
            Provider::Stripe => "stripe",
        }
    }
}

/// The end of a billing period that starts at `start`.
pub fn period_end(start: i64, interval: &str) -> i64 {
    crate::util::add_months(start, if interval == "year" { 12 } else { 1 })
}

/// Monthly recurring revenue of a price: a yearly price counts as a twelfth (whole cents,
/// rounded down), as Stripe's billing analytics count annual plans. The platform summary and the
/// revenue analytics both use it, so their MRR agree.
pub fn monthly_cents(amount_cents: i64, interval: &str) -> i64 {
    if interval == "year" {
        amount_cents / 12
    } else {
        amount_cents
    }
}

/// Money as the invoice shows it: `12.34 USD`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02} {}", c / 100, c % 100, currency.to_ascii_uppercase())
}

/// The platform's view: every current subscription with its tenant's slug, the failing ones,
/// open invoices, revenue paid this month and monthly recurring revenue, by currency.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub provider: &'static str,
    pub subscriptions: Vec<(String, crate::catalog::billing::Subscription)>,
    pub failed_payments: Vec<(String, crate::catalog::billing::Subscription)>,
    pub open_invoices: usize,
    pub revenue_this_month_cents: std::collections::BTreeMap<String, i64>,
    pub mrr_cents: std::collections::BTreeMap<String, i64>,
    /// Calls queued for the provider, and the ones failing.
    pub provider_queue: i64,
    pub provider_failures: Vec<provider::Trouble>,
}

pub fn summary(app: &App, now: i64) -> crate::error::Result<Summary> {
    use crate::catalog::{billing as records, tenants};
    let conn = app.catalog.conn()?;
    let slugs: std::collections::BTreeMap<String, String> =
        tenants::list(&conn, true)?.into_iter().map(|t| (t.id.to_string(), t.slug.to_string())).collect();
    let (month_start, month_end) = crate::util::month_bounds(now);
    let mut revenue = std::collections::BTreeMap::new();
    for i in records::invoices(&conn, None, Some("paid"))? {
        if i.paid_at.is_some_and(|p| p >= month_start && p < month_end) {
            *revenue.entry(i.currency.clone()).or_default() += i.total_cents;
        }
    }
    let mut mrr = std::collections::BTreeMap::new();
    let subs: Vec<(String, records::Subscription)> = records::all_current(&conn)?
        .into_iter()
        .map(|s| (slugs.get(&s.tenant_id).cloned().unwrap_or_else(|| s.tenant_id.clone()), s))
        .collect();
    for (_, s) in subs.iter().filter(|(_, s)| matches!(s.status.as_str(), "active" | "past_due")) {
        *mrr.entry(s.currency.clone()).or_default() += monthly_cents(s.amount_cents, &s.interval);
    }
    let (provider_queue, provider_failures) = provider::backlog(&conn)?;
    let failed_payments =
        subs.iter().filter(|(_, s)| matches!(s.status.as_str(), "past_due" | "unpaid")).cloned().collect();
    Ok(Summary {
        provider: Provider::of(app).as_str(),
        open_invoices: records::invoices(&conn, None, Some("open"))?.len(),
        subscriptions: subs,
        failed_payments,
        revenue_this_month_cents: revenue,
        mrr_cents: mrr,
        provider_queue,
        provider_failures,
    })
}

/// Queues what Stripe must hear of each tenant's usage: one meter event per tenant and closed
/// hour (the idempotency key and Stripe's `identifier` are the tenant and the hour, so a
/// tenant-hour is charged once whatever retries or restarts happen). Only hours that ended over
/// an hour ago, when their counts are complete; looks back two days.
pub fn queue_meter_events(app: &App, now: i64) -> crate::error::Result<usize> {
    if Provider::of(app) != Provider::Stripe {
        return Ok(0);
    }
    let this_hour = now - now.rem_euclid(3600);
    app.catalog.write(|tx| {
        let mut stmt = tx.prepare(
            "SELECT u.tenant_id, u.hour, u.requests FROM usage_hourly u JOIN billing_subscriptions s \
             ON s.tenant_id = u.tenant_id AND s.ended_at IS NULL AND s.provider = 'stripe' \
             WHERE u.hour >= ?1 AND u.hour < ?2 AND u.requests > 0",
        )?;
        let rows: Vec<(String, i64, i64)> = stmt
            .query_map([this_hour - 48 * 3600, this_hour - 3600], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for (tenant, hour, requests) in &rows {
            let params = serde_json::json!({"event_name": "tenantd_requests", "value": requests, "timestamp": hour});
            provider::enqueue(tx, tenant, "meter", &params, &format!("tenantd-meter-{tenant}-{hour}"), now)?;
        }
        Ok(rows.len())
    })
}
