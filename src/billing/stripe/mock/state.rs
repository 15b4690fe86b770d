//! Everything the mock knows, in memory behind one lock: the objects, the events and their
//! deliveries still to send, saved idempotent answers, and the injected failures.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::objects::*;
use super::params::Params;

/// The API version events are stamped with: the one stripe-python 16.1.0 sends
/// (`stripe/_api_version.py`), which the fidelity check pins.
pub const API_VERSION: &str = "2026-10-28.endive";

/// The request a change came from, for an event's `request` field; `None` for what a test
/// clock's advance did on its own (Stripe sends `{"id": null, …}` for automatic changes).
#[derive(Clone, Default)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Wall time, for objects on no test clock.
    pub wall_now: i64,
}

impl Ctx {
    pub fn automatic(&self) -> Ctx {
        Ctx { request_id: None, idempotency_key: None, wall_now: self.wall_now }
    }
}

/// An answer saved under an idempotency key, with what identifies its request.
pub struct Saved {
    pub request: String,
    pub fingerprint: Vec<(String, String)>,
    pub status: u16,
    pub body: String,
}

/// A delivery to make once the lock is released.
pub struct Outgoing {
    pub event_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub payload: Arc<str>,
}

#[derive(Default)]
pub struct State {
    pub customers: Vec<Customer>,
    pub prices: Vec<Price>,
    /// (id, name) of the products made with `product_data[name]`.
    pub products: Vec<(String, String)>,
    pub subscriptions: Vec<Subscription>,
    pub invoices: Vec<Invoice>,
    pub clocks: Vec<TestClock>,
    pub meters: Vec<Meter>,
    pub meter_events: Vec<MeterEvent>,
    pub endpoints: Vec<Endpoint>,
    pub events: Vec<Event>,
    /// By (API key, Idempotency-Key): keys are scoped to an account.
    pub idempotency: HashMap<(String, String), Saved>,
    /// Injected failures: the next `fail_next` API requests answer `fail_status`.
    pub fail_next: u32,
    pub fail_status: u16,
    pub outbox: Vec<Outgoing>,
}

impl State {
    pub fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers.iter().find(|c| c.id == id)
    }

    pub fn customer_mut(&mut self, id: &str) -> Option<&mut Customer> {
        self.customers.iter_mut().find(|c| c.id == id)
    }

    pub fn price(&self, id: &str) -> Option<&Price> {
        self.prices.iter().find(|p| p.id == id)
    }

    /// A product's name for invoice lines: its id when it was not made here.
    pub fn product_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.products.iter().find(|(p, _)| p == id).map_or(id, |(_, n)| n.as_str())
    }

    pub fn sub_index(&self, id: &str) -> Option<usize> {
        self.subscriptions.iter().position(|s| s.id == id)
    }

    pub fn invoice_index(&self, id: &str) -> Option<usize> {
        self.invoices.iter().position(|i| i.id == id)
    }

    pub fn clock_index(&self, id: &str) -> Option<usize> {
        self.clocks.iter().position(|c| c.id == id)
    }

    /// Now for a customer: its test clock's frozen time, or the wall clock.
    pub fn now_for(&self, customer: &str, ctx: &Ctx) -> i64 {
        let clock = self.customer(customer).and_then(|c| c.test_clock.as_deref());
        clock.and_then(|id| self.clocks.iter().find(|c| c.id == id)).map_or(ctx.wall_now, |c| c.frozen_time)
    }

    /// A customer is delinquent while one of its invoices failed and is still open.
    pub fn customer_json(&self, c: &Customer) -> Value {
        let delinquent = self.invoices.iter().any(|i| i.customer == c.id && i.status == "open" && i.attempt_count > 0);
        c.to_json(delinquent)
    }

    pub fn sub_json(&self, s: &Subscription) -> Value {
        let (start, end) = s.period();
        let items: Vec<Value> = s
            .items
            .iter()
            .map(|i| {
                json!({
                    "id": i.id, "object": "subscription_item", "created": i.created,
                    "current_period_end": end, "current_period_start": start, "discounts": [], "metadata": {},
                    "price": self.price(&i.price).map(Price::to_json), "quantity": i.quantity, "subscription": s.id,
                })
            })
            .collect();
        let clock = self.customer(&s.customer).and_then(|c| c.test_clock.clone());
        json!({
            "id": s.id, "object": "subscription", "application": null, "billing_cycle_anchor": s.anchor,
            "cancel_at": if s.cancel_at_period_end { Some(end) } else { None },
            "cancel_at_period_end": s.cancel_at_period_end, "canceled_at": s.canceled_at,
            "cancellation_details": {"comment": null, "feedback": null, "reason": s.cancel_reason},
            "collection_method": "charge_automatically", "created": s.created, "currency": s.currency,
            "customer": s.customer, "default_payment_method": s.default_payment_method, "description": null,
            "discounts": [], "ended_at": s.ended_at,
            "items": {"object": "list", "data": items, "has_more": false, "total_count": s.items.len(),
                      "url": format!("/v1/subscription_items?subscription={}", s.id)},
            "latest_invoice": s.latest_invoice, "livemode": false, "metadata": s.metadata,
            "pause_collection": s.pause_collection.as_ref().map(|b| json!({"behavior": b, "resumes_at": null})),
            "pending_update": null, "start_date": s.start_date, "status": s.status.as_str(), "test_clock": clock,
            "trial_end": s.trial_end,
            "trial_settings": {"end_behavior": {"missing_payment_method": s.missing_pm}},
            "trial_start": s.trial_start,
        })
    }

    pub fn invoice_json(&self, inv: &Invoice) -> Value {
        let lines: Vec<Value> = inv.lines.iter().map(|l| self.line_json(inv, l)).collect();
        let email = self.customer(&inv.customer).and_then(|c| c.email.clone());
        let parent = inv.subscription.as_ref().map(|s| {
            json!({"type": "subscription_details", "quote_details": null,
                   "subscription_details": {"metadata": {}, "subscription": s}})
        });
        let due = inv.amount_due();
        let remaining = if inv.status == "paid" || inv.status == "void" { 0 } else { due - inv.amount_paid };
        json!({
            "id": inv.id, "object": "invoice", "account_country": "US", "amount_due": due,
            "amount_paid": inv.amount_paid, "amount_remaining": remaining, "attempt_count": inv.attempt_count,
            "attempted": inv.attempt_count > 0, "auto_advance": inv.status == "open" || inv.status == "draft",
            "billing_reason": inv.billing_reason, "collection_method": "charge_automatically",
            "created": inv.created, "currency": inv.currency, "customer": inv.customer, "customer_email": email,
            "default_payment_method": null, "description": null, "due_date": null, "effective_at": inv.finalized_at,
            "hosted_invoice_url": null,
            "lines": {"object": "list", "data": lines, "has_more": false, "total_count": inv.lines.len(),
                      "url": format!("/v1/invoices/{}/lines", inv.id)},
            "livemode": false, "metadata": {}, "next_payment_attempt": inv.next_payment_attempt,
            "number": if inv.status == "draft" { None } else { Some(&inv.number) }, "parent": parent,
            "period_end": inv.period.1, "period_start": inv.period.0, "status": inv.status,
            "status_transitions": {"finalized_at": inv.finalized_at, "marked_uncollectible_at": inv.uncollectible_at,
                                   "paid_at": inv.paid_at, "voided_at": inv.voided_at},
            "subtotal": inv.total(), "test_clock": inv.test_clock, "total": inv.total(),
        })
    }

    fn line_json(&self, inv: &Invoice, l: &Line) -> Value {
        let price = l.price.as_deref().and_then(|p| self.price(p));
        let pricing = price.map(|p| {
            json!({"type": "price_details", "price_details": {"price": p.id, "product": p.product},
                   "unit_amount_decimal": p.unit_amount.to_string()})
        });
        let parent = inv.subscription.as_ref().map(|s| {
            json!({"type": "subscription_item_details", "invoice_item_details": null,
                   "subscription_item_details": {"invoice_item": null, "proration": l.proration,
                                                 "subscription": s, "subscription_item": l.item}})
        });
        json!({
            "id": l.id, "object": "line_item", "amount": l.amount, "currency": inv.currency,
            "description": l.description, "invoice": inv.id, "livemode": false, "metadata": {},
            "parent": parent, "period": {"end": l.period.1, "start": l.period.0}, "pricing": pricing,
            "quantity": l.quantity, "subtotal": l.amount,
        })
    }

    /// Records an event and queues a delivery to each endpoint that wants it. `previous` is
    /// the object before an `*.updated` change: its fields that changed become
    /// `data.previous_attributes`.
    pub fn emit(&mut self, kind: &str, object: Value, previous: Option<&Value>, created: i64, ctx: &Ctx) {
        let id = new_id("evt");
        let endpoints: Vec<(String, String, String)> = self
            .endpoints
            .iter()
            .filter(|e| e.wants(kind))
            .map(|e| (e.id.clone(), e.url.clone(), e.secret.clone()))
            .collect();
        let mut data = json!({ "object": object });
        if let Some(before) = previous {
            data["previous_attributes"] = changed_fields(before, &data["object"]);
        }
        let event = json!({
            "id": id, "object": "event", "api_version": API_VERSION, "created": created, "data": data,
            "livemode": false, "pending_webhooks": endpoints.len(),
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key}, "type": kind,
        });
        // Stripe's webhook bodies are pretty-printed JSON: a receiver that verifies a
        // re-serialised body instead of the raw bytes fails here as it would there.
        let payload: Arc<str> = serde_json::to_string_pretty(&event).unwrap_or_default().into();
        for (endpoint_id, url, secret) in endpoints {
            self.outbox.push(Outgoing { event_id: id.clone(), endpoint_id, url, secret, payload: payload.clone() });
        }
        self.events.push(Event { id, kind: kind.to_string(), created, payload, deliveries: Vec::new() });
    }

    /// Queues the event again for `endpoints` (all of its endpoints when `None`).
    pub fn requeue(&mut self, event_index: usize, only: Option<&[String]>) -> usize {
        let event = &self.events[event_index];
        let mut n = 0;
        for e in self.endpoints.iter().filter(|e| e.wants(&event.kind)) {
            if only.is_some_and(|ids| !ids.contains(&e.id)) {
                continue;
            }
            self.outbox.push(Outgoing {
                event_id: event.id.clone(),
                endpoint_id: e.id.clone(),
                url: e.url.clone(),
                secret: e.secret.clone(),
                payload: event.payload.clone(),
            });
            n += 1;
        }
        n
    }
}

/// The top-level fields of `before` that differ in `after`, with their old values.
fn changed_fields(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A list answer (`{"object": "list", "data", "has_more", "url"}`), newest first as Stripe
/// lists, cut by `limit` (1–100, default 10) and `starting_after`.
pub fn list<T>(
    items: Vec<&T>,
    p: &Params,
    url: &str,
    id: impl Fn(&T) -> &str,
    json: impl Fn(&T) -> Value,
) -> ApiResult {
    let limit = p.int("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_param("limit", "This value must be between 1 and 100."));
    }
    let mut newest_first: Vec<&T> = items.into_iter().rev().collect();
    if let Some(after) = p.get("starting_after") {
        let Some(pos) = newest_first.iter().position(|t| id(t) == after) else {
            return Err(ApiError::no_such_param("object", after, "starting_after"));
        };
        newest_first.drain(..=pos);
    }
    let has_more = newest_first.len() > limit as usize;
    let data: Vec<Value> = newest_first.into_iter().take(limit as usize).map(json).collect();
    Ok(json!({"object": "list", "data": data, "has_more": has_more, "url": url}))
}

pub type ApiResult = Result<Value, ApiError>;

/// Applies Stripe's metadata update rules: `metadata[k]=v` sets, `metadata[k]=` unsets,
/// `metadata=` clears all.
pub fn update_metadata(metadata: &mut Metadata, p: &Params) {
    if p.get("metadata") == Some("") {
        metadata.clear();
    }
    for (k, v) in p.hash("metadata") {
        if v.is_empty() {
            metadata.remove(k);
        } else {
            metadata.insert(k.to_string(), v.to_string());
        }
    }
}
