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

pub mod dunning;
pub mod invoice;
pub mod subscription;

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

/// Money as the invoice shows it: `12.34 USD`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02} {}", c / 100, c % 100, currency.to_ascii_uppercase())
}
