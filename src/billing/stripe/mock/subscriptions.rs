//! Subscriptions: create (with a trial), change items with prorations, cancel at period end,
//! pause collection, cancel now, resume. What time does to them is `cycle`'s.

use std::collections::BTreeMap;

use super::calendar::Interval;
use super::cycle::{self, Failure};
use super::error::ApiError;
use super::objects::{self, *};
use super::params::Params;
use super::routes::check_payment_method;
use super::state::{update_metadata, ApiResult, Ctx, State};

/// Stripe caps trials at two years (`trial_period_days` ≤ 730).
const MAX_TRIAL_DAYS: i64 = 730;

pub fn create(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    let (sub, behavior) = new_subscription(st, ctx, p)?;
    let (now, period, trial) = (sub.created, sub.period(), sub.status == Status::Trialing);
    let lines = cycle::licensed_lines(st, &sub.items, period, trial);
    let total = objects::total(&lines);
    if behavior == "error_if_incomplete" && total > 0 {
        // Stripe creates nothing when the first payment fails under error_if_incomplete.
        if let Some(failure) = cycle::decline(st, &sub.customer, sub.default_payment_method.as_deref()) {
            return Err(failure.into_error());
        }
    }
    let idx = st.subscriptions.len();
    st.subscriptions.push(sub);
    let json = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.created", json, None, now, ctx);
    let inv = cycle::open_invoice(st, idx, lines, "subscription_create", period, now);
    if behavior != "default_incomplete" || total == 0 {
        // A failed first payment leaves the subscription `incomplete`; the error is in the
        // invoice and its event, not in this answer (allow_incomplete).
        let _ = cycle::collect(st, ctx, inv, now, None);
    }
    Ok(st.sub_json(&st.subscriptions[idx]))
}

/// The subscription a create asks for, checked, and its `payment_behavior`.
fn new_subscription(st: &State, ctx: &Ctx, p: &Params) -> Result<(Subscription, &'static str), ApiError> {
    p.allow(&[
        "customer",
        "items[#][price]",
        "items[#][quantity]",
        "items[#][metadata]*",
        "trial_period_days",
        "trial_end",
        "metadata*",
        "payment_behavior",
        "proration_behavior",
        "default_payment_method",
        "cancel_at_period_end",
        "trial_settings[end_behavior][missing_payment_method]",
        "collection_method",
        "off_session",
    ])?;
    let customer = p.require("customer")?;
    if st.customer(customer).is_none() {
        return Err(ApiError::no_such_param("customer", customer, "customer"));
    }
    let entries = p.indexed("items")?;
    if entries.is_empty() {
        return Err(ApiError::missing_param("items"));
    }
    let items = resolve_items(st, &[], &entries, ctx.wall_now)?;
    let (currency, interval, interval_count) = billing_terms(st, &items)?;
    p.one_of("collection_method", &["charge_automatically"])?;
    p.one_of("proration_behavior", &["create_prorations", "none", "always_invoice"])?;
    let behavior =
        match p.one_of("payment_behavior", &["allow_incomplete", "default_incomplete", "error_if_incomplete"])? {
            Some("default_incomplete") => "default_incomplete",
            Some("error_if_incomplete") => "error_if_incomplete",
            _ => "allow_incomplete",
        };
    let missing_pm = match p
        .one_of("trial_settings[end_behavior][missing_payment_method]", &["create_invoice", "pause", "cancel"])?
    {
        Some("pause") => "pause",
        Some("cancel") => "cancel",
        _ => "create_invoice",
    };
    let default_payment_method =
        p.get("default_payment_method").map(|pm| check_payment_method(pm, "default_payment_method")).transpose()?;
    let now = st.now_for(customer, ctx);
    let trial_end = trial_end(p, now)?;
    let mut sub = Subscription {
        id: new_id("sub"),
        created: now,
        customer: customer.to_string(),
        status: if trial_end.is_some() { Status::Trialing } else { Status::Incomplete },
        items,
        currency,
        interval,
        interval_count,
        anchor: trial_end.unwrap_or(now),
        cycle: 0,
        start_date: now,
        trial_start: trial_end.map(|_| now),
        trial_end,
        trial_will_end_sent: false,
        missing_pm,
        cancel_at_period_end: p.bool("cancel_at_period_end")?.unwrap_or(false),
        canceled_at: None,
        ended_at: None,
        cancel_reason: None,
        pause_collection: None,
        metadata: Metadata::new(),
        latest_invoice: None,
        pending: Vec::new(),
        default_payment_method,
    };
    update_metadata(&mut sub.metadata, p);
    Ok((sub, behavior))
}

pub fn get(st: &State, id: &str, p: &Params) -> ApiResult {
    p.allow(&[])?;
    let i = st.sub_index(id).ok_or_else(|| ApiError::not_found("subscription", id))?;
    Ok(st.sub_json(&st.subscriptions[i]))
}

/// Without `status`, canceled subscriptions are left out, as at Stripe.
pub fn list(st: &State, p: &Params) -> ApiResult {
    p.allow(&["customer", "status", "price", "test_clock", "limit", "starting_after"])?;
    let status = p.get("status");
    let found = st
        .subscriptions
        .iter()
        .filter(|s| p.get("customer").is_none_or(|c| s.customer == c))
        .filter(|s| p.get("price").is_none_or(|pr| s.items.iter().any(|i| i.price == pr)))
        .filter(|s| match status {
            None => !s.status.is_over(),
            Some("all") => true,
            Some(x) => s.status.as_str() == x,
        })
        .filter(|s| {
            p.get("test_clock")
                .is_none_or(|k| st.customer(&s.customer).and_then(|c| c.test_clock.as_deref()) == Some(k))
        })
        .collect();
    super::state::list(found, p, "/v1/subscriptions", |s| &s.id, |s| st.sub_json(s))
}

pub fn update(st: &mut State, ctx: &Ctx, id: &str, p: &Params) -> ApiResult {
    p.allow(&[
        "items[#][id]",
        "items[#][price]",
        "items[#][quantity]",
        "items[#][deleted]",
        "items[#][metadata]*",
        "proration_behavior",
        "payment_behavior",
        "cancel_at_period_end",
        "pause_collection*",
        "metadata*",
        "trial_end",
        "default_payment_method",
        "off_session",
    ])?;
    let idx = st.sub_index(id).ok_or_else(|| ApiError::not_found("subscription", id))?;
    let now = st.now_for(&st.subscriptions[idx].customer.clone(), ctx);
    if st.subscriptions[idx].status.is_over() && p.fingerprint().iter().any(|(k, _)| !k.starts_with("metadata")) {
        return Err(ApiError::invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
        ));
    }
    let proration = p
        .one_of("proration_behavior", &["create_prorations", "none", "always_invoice"])?
        .unwrap_or("create_prorations");
    let behavior = p.one_of(
        "payment_behavior",
        &["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
    )?;
    let changes = Changes::parse(p, &st.subscriptions[idx], now)?;
    let plan = plan_item_change(st, idx, p, proration, now)?;
    if let (Some(plan), Some("error_if_incomplete" | "pending_if_incomplete")) = (&plan, behavior) {
        if plan.immediate.as_ref().is_some_and(|l| objects::total(l) > 0) {
            let sub = &st.subscriptions[idx];
            if let Some(failure) = cycle::decline(st, &sub.customer, sub.default_payment_method.as_deref()) {
                return Err(failure.into_error());
            }
        }
    }
    // Everything is checked: from here on the update happens.
    let before = st.sub_json(&st.subscriptions[idx]);
    let sub = &mut st.subscriptions[idx];
    let mut immediate = None;
    if let Some(plan) = plan {
        sub.items = plan.items;
        (sub.interval, sub.interval_count) = plan.interval;
        if plan.reset {
            (sub.anchor, sub.cycle) = (now, 0);
        }
        sub.pending.extend(plan.deferred);
        immediate = plan.immediate.map(|mut lines| {
            lines.append(&mut sub.pending);
            lines
        });
    }
    let end_trial_now = changes.apply(sub, now);
    update_metadata(&mut sub.metadata, p);
    let after = st.sub_json(&st.subscriptions[idx]);
    if after != before {
        st.emit("customer.subscription.updated", after, Some(&before), now, ctx);
    }
    if end_trial_now {
        cycle::end_trial(st, ctx, idx, now);
    }
    if let Some(lines) = immediate {
        let inv = cycle::open_invoice(st, idx, lines, "subscription_update", (now, now), now);
        let _ = cycle::collect(st, ctx, inv, now, None);
    }
    Ok(st.sub_json(&st.subscriptions[idx]))
}

/// An update's changes besides items and metadata, checked before any is made.
struct Changes {
    cancel_at_period_end: Option<bool>,
    pause_collection: Option<Option<String>>,
    default_payment_method: Option<Option<String>>,
    trial_end: Option<i64>,
}

impl Changes {
    fn parse(p: &Params, sub: &Subscription, now: i64) -> Result<Changes, ApiError> {
        let default_payment_method = match p.get("default_payment_method") {
            Some("") => Some(None),
            Some(pm) => Some(Some(check_payment_method(pm, "default_payment_method")?)),
            None => None,
        };
        let trial_end = match p.get("trial_end") {
            Some(_) if sub.status != Status::Trialing => {
                return Err(ApiError::invalid_param("trial_end", "The mock changes trial_end only while trialing."))
            }
            Some("now") => Some(now),
            Some(_) => Some(p.int("trial_end")?.filter(|&t| t > now && t <= MAX_TIME).ok_or_else(invalid_trial_end)?),
            None => None,
        };
        Ok(Changes {
            cancel_at_period_end: p.bool("cancel_at_period_end")?,
            pause_collection: pause_collection(p)?,
            default_payment_method,
            trial_end,
        })
    }

    /// Makes the changes; true when the trial is to end now.
    fn apply(self, sub: &mut Subscription, now: i64) -> bool {
        if let Some(flag) = self.cancel_at_period_end {
            sub.cancel_at_period_end = flag;
            // Stripe: canceled_at is the time of the request that set cancel_at_period_end.
            (sub.canceled_at, sub.cancel_reason) =
                if flag { (Some(now), Some("cancellation_requested")) } else { (None, None) };
        }
        if let Some(pause) = self.pause_collection {
            sub.pause_collection = pause;
        }
        if let Some(pm) = self.default_payment_method {
            sub.default_payment_method = pm;
        }
        match self.trial_end {
            Some(t) if t == now => true,
            Some(t) => {
                (sub.trial_end, sub.anchor) = (Some(t), t);
                false
            }
            None => false,
        }
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancels now. `invoice_now` and `prorate` are taken and
/// ignored (the mock issues no final invoice).
pub fn cancel(st: &mut State, ctx: &Ctx, id: &str, p: &Params) -> ApiResult {
    p.allow(&["invoice_now", "prorate", "cancellation_details[comment]", "cancellation_details[feedback]"])?;
    let idx = st.sub_index(id).ok_or_else(|| ApiError::not_found("subscription", id))?;
    if st.subscriptions[idx].status.is_over() {
        return Err(ApiError::invalid(format!("The subscription {id} is already canceled.")));
    }
    let now = st.now_for(&st.subscriptions[idx].customer.clone(), ctx);
    cycle::cancel(st, ctx, idx, now, "cancellation_requested");
    Ok(st.sub_json(&st.subscriptions[idx]))
}

/// `POST /v1/subscriptions/{id}/resume`: a paused subscription (a trial that ended without a
/// payment method) starts a new period now and is invoiced.
pub fn resume(st: &mut State, ctx: &Ctx, id: &str, p: &Params) -> ApiResult {
    p.allow(&["billing_cycle_anchor", "proration_behavior"])?;
    p.one_of("billing_cycle_anchor", &["now", "unchanged"])?;
    let idx = st.sub_index(id).ok_or_else(|| ApiError::not_found("subscription", id))?;
    if st.subscriptions[idx].status != Status::Paused {
        return Err(ApiError::invalid("Only a paused subscription can be resumed."));
    }
    let now = st.now_for(&st.subscriptions[idx].customer.clone(), ctx);
    let before = st.sub_json(&st.subscriptions[idx]);
    let sub = &mut st.subscriptions[idx];
    (sub.status, sub.anchor, sub.cycle) = (Status::Active, now, 0);
    let period = sub.period();
    let after = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.resumed", after.clone(), None, now, ctx);
    st.emit("customer.subscription.updated", after, Some(&before), now, ctx);
    let lines = cycle::licensed_lines(st, &st.subscriptions[idx].items, period, false);
    let inv = cycle::open_invoice(st, idx, lines, "subscription_update", period, now);
    let _ = cycle::collect(st, ctx, inv, now, None);
    Ok(st.sub_json(&st.subscriptions[idx]))
}

/// What an item change does: the new items, and the prorations billed now or later.
struct ItemPlan {
    items: Vec<Item>,
    interval: (Interval, u32),
    /// A new interval restarts the billing cycle now (docs.stripe.com/billing/subscriptions/
    /// billing-cycle: changing between intervals resets the anchor and invoices at once).
    reset: bool,
    immediate: Option<Vec<Line>>,
    deferred: Vec<Line>,
}

fn plan_item_change(
    st: &State,
    idx: usize,
    p: &Params,
    proration: &str,
    now: i64,
) -> Result<Option<ItemPlan>, ApiError> {
    let entries = p.indexed("items")?;
    if entries.is_empty() {
        return Ok(None);
    }
    let sub = &st.subscriptions[idx];
    let items = resolve_items(st, &sub.items, &entries, now)?;
    let (currency, interval, count) = billing_terms(st, &items)?;
    if currency != sub.currency {
        return Err(ApiError::invalid("The currency of a subscription cannot change."));
    }
    let billing = matches!(sub.status, Status::Active | Status::PastDue);
    let reset = billing && (interval, count) != (sub.interval, sub.interval_count);
    let prorations = if billing && proration != "none" { prorations(st, sub, &items, now, reset) } else { Vec::new() };
    let (immediate, deferred) = if reset {
        let new_period = (now, super::calendar::shift(now, interval, count, 1));
        let mut lines = prorations;
        lines.extend(cycle::licensed_lines(st, &items, new_period, false));
        (Some(lines), Vec::new())
    } else if billing && proration == "always_invoice" {
        (Some(prorations), Vec::new())
    } else {
        (None, prorations)
    };
    Ok(Some(ItemPlan { items, interval: (interval, count), reset, immediate, deferred }))
}

fn clone_items(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|i| Item { id: i.id.clone(), price: i.price.clone(), quantity: i.quantity, created: i.created })
        .collect()
}

/// Credit for the unused time of every licensed item that changes or goes, and a charge for
/// the rest of the period of every one that changes or comes, each `amount × remaining /
/// period` rounded to the cent (docs.stripe.com/billing/subscriptions/prorations). With
/// `reset` only the credits: the new items are billed for a whole new period.
fn prorations(st: &State, sub: &Subscription, new: &[Item], now: i64, reset: bool) -> Vec<Line> {
    let (start, end) = sub.period();
    let (len, left) = (end - start, end - now);
    if len <= 0 || left <= 0 {
        return Vec::new();
    }
    let share = |amount: i64| ((i128::from(amount) * i128::from(left) + i128::from(len) / 2) / i128::from(len)) as i64;
    let day = crate::util::rfc3339(now)[..10].to_string();
    let mut lines = Vec::new();
    let mut line = |item: &Item, sign: i64, text: &str| {
        let Some(price) = st.price(&item.price).filter(|x| x.recurring.as_ref().is_some_and(|r| !r.metered)) else {
            return;
        };
        let name = st.product_name(&price.product);
        lines.push(Line {
            id: new_id("il"),
            amount: sign * share(price.unit_amount.saturating_mul(item.quantity)),
            description: format!("{text} {} × {name} after {day}", item.quantity),
            price: Some(price.id.clone()),
            item: Some(item.id.clone()),
            quantity: item.quantity,
            period: (now, end),
            proration: true,
        });
    };
    let same = |a: &Item, b: &Item| a.price == b.price && a.quantity == b.quantity;
    for old in &sub.items {
        if reset || !new.iter().any(|n| n.id == old.id && same(n, old)) {
            line(old, -1, "Unused time on");
        }
    }
    if !reset {
        for n in new {
            if !sub.items.iter().any(|old| old.id == n.id && same(n, old)) {
                line(n, 1, "Remaining time on");
            }
        }
    }
    lines
}

/// The items after applying `entries` (`items[n][id|price|quantity|deleted]`) to `current`.
fn resolve_items(
    st: &State,
    current: &[Item],
    entries: &BTreeMap<usize, Params>,
    now: i64,
) -> Result<Vec<Item>, ApiError> {
    let mut items = clone_items(current);
    for (n, e) in entries {
        let price = e.get("price").filter(|x| !x.is_empty());
        if let Some(price) = price {
            let param = format!("items[{n}][price]");
            let found = st.price(price).ok_or_else(|| ApiError::no_such_param("price", price, &param))?;
            if found.recurring.is_none() {
                return Err(ApiError::invalid_param(
                    &param,
                    "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.",
                ));
            }
            if !found.active {
                return Err(ApiError::invalid_param(&param, format!("The price specified is inactive: {price}")));
            }
        }
        let quantity = e.int("quantity")?;
        if quantity.is_some_and(|q| q < 0) {
            return Err(ApiError::invalid_param(
                &format!("items[{n}][quantity]"),
                "This value must be greater than or equal to 0.",
            ));
        }
        match e.get("id") {
            Some(item_id) => {
                let Some(pos) = items.iter().position(|i| i.id == item_id) else {
                    return Err(ApiError::no_such_param("subscription item", item_id, &format!("items[{n}][id]")));
                };
                if e.bool("deleted")? == Some(true) {
                    items.remove(pos);
                    continue;
                }
                if let Some(price) = price {
                    items[pos].price = price.to_string();
                }
                if let Some(q) = quantity {
                    items[pos].quantity = q;
                }
            }
            None => {
                let price = price.ok_or_else(|| ApiError::missing_param(&format!("items[{n}][price]")))?;
                items.push(Item {
                    id: new_id("si"),
                    price: price.to_string(),
                    quantity: quantity.unwrap_or(1),
                    created: now,
                });
            }
        }
    }
    if items.is_empty() {
        return Err(ApiError::invalid_param("items", "A subscription needs at least one item."));
    }
    Ok(items)
}

/// The currency and interval every item shares (Stripe refuses items that differ).
fn billing_terms(st: &State, items: &[Item]) -> Result<(String, Interval, u32), ApiError> {
    let mut terms: Option<(String, Interval, u32)> = None;
    for item in items {
        let Some(price) = st.price(&item.price) else { continue };
        let Some(r) = &price.recurring else { continue };
        let these = (price.currency.clone(), r.interval, r.count);
        match &terms {
            Some(t) if *t != these => {
                return Err(ApiError::invalid_param(
                    "items",
                    "All prices on a subscription must have the same currency and recurring interval.",
                ))
            }
            Some(_) => {}
            None => terms = Some(these),
        }
    }
    terms.ok_or_else(|| ApiError::missing_param("items"))
}

fn trial_end(p: &Params, now: i64) -> Result<Option<i64>, ApiError> {
    match (p.get("trial_end"), p.int("trial_period_days")?) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("You may only specify one of these parameters: trial_end, trial_period_days."))
        }
        (Some("now"), None) => Ok(None),
        (Some(_), None) => {
            Ok(Some(p.int("trial_end")?.filter(|&t| t > now && t <= MAX_TIME).ok_or_else(invalid_trial_end)?))
        }
        (None, Some(days)) if (0..=MAX_TRIAL_DAYS).contains(&days) => Ok((days > 0).then_some(now + days * 86_400)),
        (None, Some(_)) => {
            Err(ApiError::invalid_param("trial_period_days", "trial_period_days must be between 0 and 730."))
        }
        (None, None) => Ok(None),
    }
}

fn invalid_trial_end() -> ApiError {
    ApiError::invalid_param(
        "trial_end",
        "Invalid timestamp: must be an integer Unix timestamp in the future, or `now`.",
    )
}

/// `pause_collection=` (empty) unsets; `pause_collection[behavior]=void|…` sets.
fn pause_collection(p: &Params) -> Result<Option<Option<String>>, ApiError> {
    if p.get("pause_collection") == Some("") {
        return Ok(Some(None));
    }
    if p.has("pause_collection[resumes_at]") {
        return Err(ApiError::invalid_param(
            "pause_collection[resumes_at]",
            "The mock does not resume collection by date.",
        ));
    }
    let b = p.one_of("pause_collection[behavior]", &["keep_as_draft", "mark_uncollectible", "void"])?;
    match (b, p.fingerprint().iter().any(|(k, _)| k.starts_with("pause_collection"))) {
        (Some(b), _) => Ok(Some(Some(b.to_string()))),
        (None, true) => Err(ApiError::missing_param("pause_collection[behavior]")),
        (None, false) => Ok(None),
    }
}

impl Failure {
    /// The answer to a request whose payment failed synchronously.
    pub fn into_error(self) -> ApiError {
        match self {
            Failure::Declined { decline_code, message } => ApiError::card_declined(decline_code, message),
            Failure::NoPaymentMethod => ApiError::invalid(
                "This customer has no attached payment source or default payment method. Please consider adding a default payment method.",
            ),
        }
    }
}
