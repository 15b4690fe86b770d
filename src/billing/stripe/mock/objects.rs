//! The objects the mock keeps, and their JSON in Stripe's shapes. The shapes follow API
//! versions from 2025-03-31.basil on (what the pinned stripe-python sends): a subscription's
//! `current_period_start`/`_end` live on its items, an invoice names its subscription under
//! `parent.subscription_details`, and invoices have no `paid` flag (`status` says it).
//! Fields the mock has no notion of are present with Stripe's empty values (`null`, `{}`,
//! `[]`), so a parser that expects them finds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

use super::calendar::{self, Interval};

pub type Metadata = BTreeMap<String, String>;

/// Timestamps the mock takes: 1970 to the end of 9999, so period arithmetic cannot overflow.
pub const MAX_TIME: i64 = 253_402_300_799;

/// A timestamp parameter within 0..=MAX_TIME.
pub fn check_time(t: i64, param: &str) -> Result<i64, super::error::ApiError> {
    if (0..=MAX_TIME).contains(&t) {
        Ok(t)
    } else {
        Err(super::error::ApiError::invalid_param(
            param,
            format!("Invalid timestamp: {t} is not between 1970 and 9999."),
        ))
    }
}

/// `cus_…`, `sub_…`: Stripe's ids are a prefix and 14 or more random alphanumerics.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Alphanumeric.sample_string(&mut rand::rng(), 14))
}

pub struct Customer {
    pub id: String,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub test_clock: Option<String>,
    /// The default payment method: a test token (`pm_card_visa`, `pm_card_chargeDeclined`).
    pub payment_method: Option<String>,
    pub invoice_prefix: String,
    pub invoice_seq: u32,
}

impl Customer {
    pub fn to_json(&self, delinquent: bool) -> Value {
        json!({
            "id": self.id, "object": "customer", "address": null, "balance": 0, "created": self.created,
            "currency": null, "default_source": null, "delinquent": delinquent, "description": self.description,
            "discount": null, "email": self.email, "invoice_prefix": self.invoice_prefix,
            "invoice_settings": {"custom_fields": null, "default_payment_method": self.payment_method, "footer": null, "rendering_options": null},
            "livemode": false, "metadata": self.metadata, "name": self.name, "phone": null, "preferred_locales": [],
            "shipping": null, "tax_exempt": "none", "test_clock": self.test_clock,
        })
    }
}

pub struct Recurring {
    pub interval: Interval,
    pub count: u32,
    /// `usage_type=metered`: billed in arrears from a meter's events.
    pub meter: Option<String>,
    pub metered: bool,
}

pub struct Price {
    pub id: String,
    pub created: i64,
    pub product: String,
    pub currency: String,
    pub unit_amount: i64,
    pub recurring: Option<Recurring>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub metadata: Metadata,
    pub active: bool,
    /// `transform_quantity`: (divide_by, round up).
    pub transform: Option<(i64, bool)>,
}

impl Price {
    pub fn to_json(&self) -> Value {
        let recurring = self.recurring.as_ref().map(|r| {
            json!({"interval": r.interval.as_str(), "interval_count": r.count, "meter": r.meter,
                   "trial_period_days": null, "usage_type": if r.metered { "metered" } else { "licensed" }})
        });
        let transform = self.transform.map(|(d, up)| json!({"divide_by": d, "round": if up { "up" } else { "down" }}));
        json!({
            "id": self.id, "object": "price", "active": self.active, "billing_scheme": "per_unit", "created": self.created,
            "currency": self.currency, "custom_unit_amount": null, "livemode": false, "lookup_key": self.lookup_key,
            "metadata": self.metadata, "nickname": self.nickname, "product": self.product, "recurring": recurring,
            "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": transform,
            "type": if self.recurring.is_some() { "recurring" } else { "one_time" },
            "unit_amount": self.unit_amount, "unit_amount_decimal": self.unit_amount.to_string(),
        })
    }

    /// The billed quantity of `units` after `transform_quantity`.
    pub fn billed_quantity(&self, units: i64) -> i64 {
        match self.transform {
            Some((d, true)) => units.saturating_add(d - 1).div_euclid(d),
            Some((d, false)) => units.div_euclid(d),
            None => units,
        }
    }
}

/// Stripe's subscription statuses (async-stripe `SubscriptionStatus`, from Stripe's OpenAPI)
/// but `unpaid`: the mock cancels when retries run out, Stripe's default, and never leaves a
/// subscription unpaid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Incomplete => "incomplete",
            Status::IncompleteExpired => "incomplete_expired",
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
            Status::Paused => "paused",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(self, Status::Canceled | Status::IncompleteExpired)
    }
}

pub struct Item {
    pub id: String,
    pub price: String,
    pub quantity: i64,
    pub created: i64,
}

/// An invoice line, or a proration waiting for the next invoice.
#[derive(Clone)]
pub struct Line {
    pub id: String,
    pub amount: i64,
    pub description: String,
    pub price: Option<String>,
    pub item: Option<String>,
    pub quantity: i64,
    pub period: (i64, i64),
    pub proration: bool,
}

/// The sum of lines; amounts saturate rather than overflow on absurd quantities.
pub fn total(lines: &[Line]) -> i64 {
    lines.iter().fold(0, |sum: i64, l| sum.saturating_add(l.amount))
}

pub struct Subscription {
    pub id: String,
    pub created: i64,
    pub customer: String,
    pub status: Status,
    pub items: Vec<Item>,
    pub currency: String,
    pub interval: Interval,
    pub interval_count: u32,
    /// Periods are `shift(anchor, n)`…`shift(anchor, n + 1)` with `n = cycle`, after the trial.
    pub anchor: i64,
    pub cycle: i64,
    pub start_date: i64,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub trial_will_end_sent: bool,
    /// `trial_settings[end_behavior][missing_payment_method]`.
    pub missing_pm: &'static str,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub cancel_reason: Option<&'static str>,
    /// `pause_collection[behavior]`.
    pub pause_collection: Option<String>,
    pub metadata: Metadata,
    pub latest_invoice: Option<String>,
    /// Prorations waiting for the next invoice (`proration_behavior=create_prorations`).
    pub pending: Vec<Line>,
    pub default_payment_method: Option<String>,
}

impl Subscription {
    /// The current period: the trial while trialing, else the billing cycle's.
    pub fn period(&self) -> (i64, i64) {
        match (self.status, self.trial_start, self.trial_end) {
            (Status::Trialing, Some(s), Some(e)) => (s, e),
            _ => (self.shift(self.cycle), self.shift(self.cycle + 1)),
        }
    }

    pub fn shift(&self, n: i64) -> i64 {
        calendar::shift(self.anchor, self.interval, self.interval_count, n)
    }
}

pub struct Invoice {
    pub id: String,
    pub created: i64,
    pub customer: String,
    pub subscription: Option<String>,
    pub number: String,
    /// draft, open, paid, void, uncollectible.
    pub status: &'static str,
    pub billing_reason: &'static str,
    pub lines: Vec<Line>,
    pub currency: String,
    pub period: (i64, i64),
    pub amount_paid: i64,
    pub attempt_count: u32,
    pub next_payment_attempt: Option<i64>,
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
    pub uncollectible_at: Option<i64>,
    pub test_clock: Option<String>,
}

impl Invoice {
    pub fn total(&self) -> i64 {
        total(&self.lines)
    }

    /// A negative total would be a credit to the customer's balance, which the mock does not
    /// keep: nothing is due.
    pub fn amount_due(&self) -> i64 {
        self.total().max(0)
    }
}

pub struct TestClock {
    pub id: String,
    pub created: i64,
    pub name: Option<String>,
    pub frozen_time: i64,
}

impl TestClock {
    pub fn to_json(&self, status: &str) -> Value {
        json!({
            "id": self.id, "object": "test_helpers.test_clock", "created": self.created,
            // Stripe deletes a clock 30 days after it was made.
            "deletes_after": self.created + 30 * 86_400, "frozen_time": self.frozen_time, "livemode": false,
            "name": self.name, "status": status, "status_details": {},
        })
    }
}

pub struct Meter {
    pub id: String,
    pub created: i64,
    pub display_name: String,
    pub event_name: String,
    /// sum, count or last.
    pub formula: String,
    pub customer_key: String,
    pub value_key: String,
}

impl Meter {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "object": "billing.meter", "created": self.created,
            "customer_mapping": {"event_payload_key": self.customer_key, "type": "by_id"},
            "default_aggregation": {"formula": self.formula}, "display_name": self.display_name,
            "event_name": self.event_name, "event_time_window": null, "livemode": false, "status": "active",
            "status_transitions": {"deactivated_at": null}, "updated": self.created,
            "value_settings": {"event_payload_key": self.value_key},
        })
    }
}

pub struct MeterEvent {
    pub identifier: String,
    pub event_name: String,
    pub payload: Metadata,
    pub timestamp: i64,
    pub created: i64,
}

impl MeterEvent {
    pub fn to_json(&self) -> Value {
        json!({
            "object": "billing.meter_event", "created": self.created, "event_name": self.event_name,
            "identifier": self.identifier, "livemode": false, "payload": self.payload, "timestamp": self.timestamp,
        })
    }
}

pub struct Endpoint {
    pub id: String,
    pub created: i64,
    pub url: String,
    pub secret: String,
    pub enabled_events: Vec<String>,
}

impl Endpoint {
    /// The secret is in the answer to the creation only, as at Stripe.
    pub fn to_json(&self, with_secret: bool) -> Value {
        let mut v = json!({
            "id": self.id, "object": "webhook_endpoint", "api_version": null, "application": null,
            "created": self.created, "description": null, "enabled_events": self.enabled_events,
            "livemode": false, "metadata": {}, "status": "enabled", "url": self.url,
        });
        if with_secret {
            v["secret"] = json!(self.secret);
        }
        v
    }

    pub fn wants(&self, kind: &str) -> bool {
        self.enabled_events.iter().any(|e| e == "*" || e == kind)
    }
}

/// An event, with the exact body every delivery of it sends.
pub struct Event {
    pub id: String,
    pub kind: String,
    pub created: i64,
    pub payload: Arc<str>,
    pub deliveries: Vec<Delivery>,
}

/// One attempt to deliver an event to an endpoint.
#[derive(Clone)]
pub struct Delivery {
    pub endpoint: String,
    pub url: String,
    /// Wall time of the attempt, the `t` of its signature.
    pub at: i64,
    pub signature: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn to_json(&self) -> Value {
        json!({"endpoint": self.endpoint, "url": self.url, "at": self.at, "signature": self.signature,
               "status": self.status, "error": self.error, "ok": self.ok()})
    }
}
