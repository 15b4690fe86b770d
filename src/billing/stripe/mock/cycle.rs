//! What time does to subscriptions, driven by test clocks: trials warn and end, periods
//! renew with an invoice, invoices are charged (or declined, and retried), subscriptions go
//! `past_due`, cancel at period end, expire when incomplete. Invoices live here too.
//!
//! Stripe's own rules, and the mock's simplifications of them:
//! - `customer.subscription.trial_will_end` three days before the trial ends
//!   (docs.stripe.com/billing/subscriptions/trials).
//! - A renewal invoices the new period's licensed items in advance, metered usage of the
//!   ended period in arrears, and waiting prorations; it is charged at once (Stripe waits
//!   about an hour after `invoice.created`).
//! - A failed payment makes the subscription `past_due`; the invoice is retried 3, 5 and 7
//!   days after it was finalized (a fixed schedule standing in for Smart Retries), and after
//!   the last failure the subscription is canceled (Stripe's default "if all retries fail").
//! - An `incomplete` subscription whose first invoice is not paid within 23 hours becomes
//!   `incomplete_expired` (docs.stripe.com/billing/subscriptions/overview).

use super::error::ApiError;
use super::meters;
use super::objects::*;
use super::params::Params;
use super::routes::check_payment_method;
use super::state::{list, ApiResult, Ctx, State};

/// Days after finalization of each retry of a failed invoice.
const RETRY_DAYS: [i64; 3] = [3, 5, 7];
const DAY: i64 = 86_400;
/// A bound on the work of one advance (each step is a trial end, renewal or retry).
const MAX_STEPS: usize = 100_000;

/// Why a charge failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Declined { decline_code: &'static str, message: &'static str },
    NoPaymentMethod,
}

/// Whether charging the customer would fail, with `pm` (the subscription's or the request's
/// payment method) before the customer's default. Test cards from docs.stripe.com/testing
/// decline as documented; `metadata[mock_decline]` (any value but "false") declines too.
pub fn decline(st: &State, customer: &str, pm: Option<&str>) -> Option<Failure> {
    let c = st.customer(customer)?;
    if c.metadata.get("mock_decline").is_some_and(|v| v != "false") {
        return Some(Failure::Declined { decline_code: "generic_decline", message: "Your card was declined." });
    }
    let declined = |decline_code, message| Some(Failure::Declined { decline_code, message });
    let Some(pm) = pm.or(c.payment_method.as_deref()) else {
        return Some(Failure::NoPaymentMethod);
    };
    match pm {
        // pm_card_chargeCustomerFail attaches and then fails every charge, which is what a
        // renewal meets; the mock lets pm_card_chargeDeclined attach too (Stripe refuses it).
        "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" | "pm_card_chargeCustomerFail" => {
            declined("generic_decline", "Your card was declined.")
        }
        "pm_card_chargeDeclinedInsufficientFunds" | "pm_card_visa_chargeDeclinedInsufficientFunds" => {
            declined("insufficient_funds", "Your card has insufficient funds.")
        }
        "pm_card_chargeDeclinedExpiredCard" | "pm_card_visa_chargeDeclinedExpiredCard" => {
            declined("expired_card", "Your card has expired.")
        }
        "pm_card_chargeDeclinedFraudulent" | "pm_card_visa_chargeDeclinedFraudulent" => {
            declined("fraudulent", "Your card was declined.")
        }
        _ => None,
    }
}

/// Licensed items billed for `period` (zero during a trial).
pub fn licensed_lines(st: &State, items: &[Item], period: (i64, i64), trial: bool) -> Vec<Line> {
    let mut lines = Vec::new();
    for item in items {
        let Some(price) = st.price(&item.price) else { continue };
        let Some(r) = price.recurring.as_ref().filter(|r| !r.metered) else { continue };
        let name = st.product_name(&price.product);
        let description = if trial {
            format!("Trial period for {name}")
        } else {
            format!(
                "{} × {name} (at {} / {})",
                item.quantity,
                money(price.unit_amount, &price.currency),
                r.interval.as_str()
            )
        };
        lines.push(Line {
            id: new_id("il"),
            amount: if trial { 0 } else { price.unit_amount.saturating_mul(item.quantity) },
            description,
            price: Some(price.id.clone()),
            item: Some(item.id.clone()),
            quantity: item.quantity,
            period,
            proration: false,
        });
    }
    lines
}

/// Metered items billed in arrears for `period`, from the meter's events.
fn metered_lines(st: &State, sub: &Subscription, period: (i64, i64)) -> Vec<Line> {
    let mut lines = Vec::new();
    for item in &sub.items {
        let Some(price) = st.price(&item.price) else { continue };
        let Some(meter) = price.recurring.as_ref().filter(|r| r.metered).and_then(|r| r.meter.as_deref()) else {
            continue;
        };
        let usage = meters::aggregate(st, meter, &sub.customer, period).round() as i64;
        let quantity = price.billed_quantity(usage);
        lines.push(Line {
            id: new_id("il"),
            amount: quantity.saturating_mul(price.unit_amount),
            description: format!("{quantity} × {} (usage)", st.product_name(&price.product)),
            price: Some(price.id.clone()),
            item: Some(item.id.clone()),
            quantity,
            period,
            proration: false,
        });
    }
    lines
}

fn money(cents: i64, currency: &str) -> String {
    let amount = format!("{}.{:02}", cents / 100, (cents % 100).abs());
    if currency == "usd" {
        format!("${amount}")
    } else {
        format!("{amount} {}", currency.to_uppercase())
    }
}

/// A finalized (`open`) invoice for subscription `idx`, numbered in its customer's sequence.
pub fn open_invoice(
    st: &mut State,
    idx: usize,
    lines: Vec<Line>,
    reason: &'static str,
    period: (i64, i64),
    now: i64,
) -> usize {
    let (sub_id, customer, currency) = {
        let s = &st.subscriptions[idx];
        (s.id.clone(), s.customer.clone(), s.currency.clone())
    };
    let (number, test_clock) = match st.customer_mut(&customer) {
        Some(c) => {
            c.invoice_seq += 1;
            (format!("{}-{:04}", c.invoice_prefix, c.invoice_seq), c.test_clock.clone())
        }
        None => (String::new(), None),
    };
    let id = new_id("in");
    st.invoices.push(Invoice {
        id: id.clone(),
        created: now,
        customer,
        subscription: Some(sub_id),
        number,
        status: "open",
        billing_reason: reason,
        lines,
        currency,
        period,
        amount_paid: 0,
        attempt_count: 0,
        next_payment_attempt: None,
        finalized_at: Some(now),
        paid_at: None,
        voided_at: None,
        uncollectible_at: None,
        test_clock,
    });
    st.subscriptions[idx].latest_invoice = Some(id);
    st.invoices.len() - 1
}

/// Charges an open invoice: paid (`invoice.paid`; a `past_due` or `incomplete` subscription
/// becomes `active`), or failed (`invoice.payment_failed`; the subscription goes `past_due`
/// and the invoice is retried, or the subscription is canceled after the last retry).
pub fn collect(st: &mut State, ctx: &Ctx, inv: usize, now: i64, pm: Option<&str>) -> Result<(), Failure> {
    if st.invoices[inv].status != "open" {
        return Ok(());
    }
    let sub = st.invoices[inv].subscription.as_deref().and_then(|s| st.sub_index(s));
    let pm = pm.or_else(|| sub.and_then(|s| st.subscriptions[s].default_payment_method.as_deref()));
    let due = st.invoices[inv].amount_due();
    let failure = if due == 0 { None } else { decline(st, &st.invoices[inv].customer, pm) };
    let Some(failure) = failure else {
        mark_paid(st, ctx, inv, now);
        return Ok(());
    };
    let invoice = &mut st.invoices[inv];
    invoice.attempt_count += 1;
    let incomplete = sub.is_some_and(|s| st.subscriptions[s].status == Status::Incomplete);
    let retry = RETRY_DAYS.get(invoice.attempt_count as usize - 1).filter(|_| !incomplete);
    invoice.next_payment_attempt = retry.map(|d| invoice.finalized_at.unwrap_or(now) + d * DAY);
    let exhausted = invoice.next_payment_attempt.is_none();
    let json = st.invoice_json(&st.invoices[inv]);
    st.emit("invoice.payment_failed", json, None, now, ctx);
    if let Some(s) = sub {
        if matches!(st.subscriptions[s].status, Status::Trialing | Status::Active) {
            set_status(st, ctx, s, Status::PastDue, now);
        }
        if exhausted && st.subscriptions[s].status == Status::PastDue {
            cancel(st, ctx, s, now, "payment_failed");
        }
    }
    Err(failure)
}

fn mark_paid(st: &mut State, ctx: &Ctx, inv: usize, now: i64) {
    let invoice = &mut st.invoices[inv];
    let due = invoice.amount_due();
    invoice.status = "paid";
    invoice.amount_paid = due;
    invoice.paid_at = Some(now);
    invoice.next_payment_attempt = None;
    if due > 0 {
        invoice.attempt_count += 1;
    }
    let json = st.invoice_json(&st.invoices[inv]);
    st.emit("invoice.paid", json, None, now, ctx);
    let sub = st.invoices[inv].subscription.as_deref().and_then(|s| st.sub_index(s));
    if let Some(s) = sub.filter(|&s| matches!(st.subscriptions[s].status, Status::Incomplete | Status::PastDue)) {
        set_status(st, ctx, s, Status::Active, now);
    }
}

fn set_status(st: &mut State, ctx: &Ctx, idx: usize, status: Status, now: i64) {
    let before = st.sub_json(&st.subscriptions[idx]);
    st.subscriptions[idx].status = status;
    let after = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.updated", after, Some(&before), now, ctx);
}

/// Ends a subscription now (`customer.subscription.deleted`).
pub fn cancel(st: &mut State, ctx: &Ctx, idx: usize, now: i64, reason: &'static str) {
    let sub = &mut st.subscriptions[idx];
    sub.status = Status::Canceled;
    sub.canceled_at.get_or_insert(now);
    sub.ended_at = Some(now);
    sub.cancel_reason.get_or_insert(reason);
    let json = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.deleted", json, None, now, ctx);
}

/// The trial ends: without a payment method the subscription pauses or cancels when it was
/// created to; otherwise it becomes `active` and its first period is invoiced and charged.
pub fn end_trial(st: &mut State, ctx: &Ctx, idx: usize, now: i64) {
    let sub = &st.subscriptions[idx];
    if sub.status != Status::Trialing {
        return;
    }
    if sub.cancel_at_period_end {
        return cancel(st, ctx, idx, now, "cancellation_requested");
    }
    let has_pm =
        sub.default_payment_method.is_some() || st.customer(&sub.customer).is_some_and(|c| c.payment_method.is_some());
    match (has_pm, sub.missing_pm) {
        (false, "pause") => {
            set_status(st, ctx, idx, Status::Paused, now);
            let json = st.sub_json(&st.subscriptions[idx]);
            return st.emit("customer.subscription.paused", json, None, now, ctx);
        }
        (false, "cancel") => return cancel(st, ctx, idx, now, "cancellation_requested"),
        _ => {}
    }
    let before = st.sub_json(&st.subscriptions[idx]);
    let sub = &mut st.subscriptions[idx];
    (sub.status, sub.trial_end, sub.anchor, sub.cycle) = (Status::Active, Some(now), now, 0);
    let period = sub.period();
    let mut lines = std::mem::take(&mut sub.pending);
    let after = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.updated", after, Some(&before), now, ctx);
    lines.extend(licensed_lines(st, &st.subscriptions[idx].items, period, false));
    let inv = open_invoice(st, idx, lines, "subscription_cycle", period, now);
    let _ = collect(st, ctx, inv, now, None);
}

/// The period ends: cancel when asked to, else start the next period and invoice it.
fn renew(st: &mut State, ctx: &Ctx, idx: usize, now: i64) {
    if st.subscriptions[idx].cancel_at_period_end {
        return cancel(st, ctx, idx, now, "cancellation_requested");
    }
    let before = st.sub_json(&st.subscriptions[idx]);
    let ended = st.subscriptions[idx].period();
    let mut lines = metered_lines(st, &st.subscriptions[idx], ended);
    let sub = &mut st.subscriptions[idx];
    sub.cycle += 1;
    let period = sub.period();
    lines.append(&mut sub.pending);
    let after = st.sub_json(&st.subscriptions[idx]);
    st.emit("customer.subscription.updated", after, Some(&before), now, ctx);
    lines.extend(licensed_lines(st, &st.subscriptions[idx].items, period, false));
    let inv = open_invoice(st, idx, lines, "subscription_cycle", ended, now);
    // pause_collection: the invoice is made and left as the behavior says, never charged.
    let invoice = &mut st.invoices[inv];
    match st.subscriptions[idx].pause_collection.as_deref() {
        Some("void") => (invoice.status, invoice.voided_at) = ("void", Some(now)),
        Some("keep_as_draft") => (invoice.status, invoice.finalized_at) = ("draft", None),
        Some(_) => (invoice.status, invoice.uncollectible_at) = ("uncollectible", Some(now)),
        None => {
            let _ = collect(st, ctx, inv, now, None);
        }
    }
}

fn expire(st: &mut State, ctx: &Ctx, idx: usize, now: i64) {
    let sub_id = st.subscriptions[idx].id.clone();
    for inv in st.invoices.iter_mut().filter(|i| i.subscription.as_deref() == Some(&sub_id) && i.status == "open") {
        (inv.status, inv.voided_at, inv.next_payment_attempt) = ("void", Some(now), None);
    }
    st.subscriptions[idx].ended_at = Some(now);
    set_status(st, ctx, idx, Status::IncompleteExpired, now);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Milestone {
    Retry(usize),
    TrialWillEnd,
    TrialEnd,
    Expire,
    PeriodEnd,
}

/// The earliest thing due at or before `to` for the subscriptions of the clock's customers.
fn next_milestone(st: &State, clock: &str, to: i64) -> Option<(i64, Milestone, usize)> {
    let mut best: Option<(i64, Milestone, usize)> = None;
    let mut consider = |t: i64, m: Milestone, idx: usize| {
        if t <= to && best.is_none_or(|b| (t, m) < (b.0, b.1)) {
            best = Some((t, m, idx));
        }
    };
    for (idx, s) in st.subscriptions.iter().enumerate() {
        if st.customer(&s.customer).and_then(|c| c.test_clock.as_deref()) != Some(clock) {
            continue;
        }
        match s.status {
            Status::Trialing => {
                let end = s.trial_end.unwrap_or(s.created);
                let warn = end - 3 * DAY;
                if !s.trial_will_end_sent && warn > s.trial_start.unwrap_or(s.created) {
                    consider(warn, Milestone::TrialWillEnd, idx);
                } else {
                    consider(end, Milestone::TrialEnd, idx);
                }
            }
            Status::Incomplete => consider(s.start_date + 23 * 3600, Milestone::Expire, idx),
            Status::Active | Status::PastDue => {
                consider(s.period().1, Milestone::PeriodEnd, idx);
                for (j, inv) in st.invoices.iter().enumerate() {
                    if inv.subscription.as_deref() == Some(&s.id) && inv.status == "open" {
                        if let Some(t) = inv.next_payment_attempt {
                            consider(t, Milestone::Retry(j), idx);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    best
}

/// `POST /v1/test_helpers/test_clocks/{id}/advance`: runs everything due up to `frozen_time`
/// in time order and sends its events, all before answering. Stripe answers at once with
/// `status: "advancing"` and works in the background; the mock answers `advancing` too (so a
/// client that polls for `ready` works on both), but its clock is `ready` by then.
pub fn advance(st: &mut State, ctx: &Ctx, id: &str, p: &Params) -> ApiResult {
    p.allow(&["frozen_time"])?;
    let to = p.int("frozen_time")?.ok_or_else(|| ApiError::missing_param("frozen_time"))?;
    let to = check_time(to, "frozen_time")?;
    let ci = st.clock_index(id).ok_or_else(|| ApiError::not_found("test_helpers.test_clock", id))?;
    if to <= st.clocks[ci].frozen_time {
        return Err(ApiError::invalid_param(
            "frozen_time",
            "The frozen_time must be after the test clock's current frozen_time.",
        ));
    }
    let auto = ctx.automatic();
    for _ in 0..MAX_STEPS {
        let Some((t, milestone, idx)) = next_milestone(st, id, to) else {
            st.clocks[ci].frozen_time = to;
            return Ok(st.clocks[ci].to_json("advancing"));
        };
        st.clocks[ci].frozen_time = st.clocks[ci].frozen_time.max(t);
        match milestone {
            Milestone::TrialWillEnd => {
                st.subscriptions[idx].trial_will_end_sent = true;
                let json = st.sub_json(&st.subscriptions[idx]);
                st.emit("customer.subscription.trial_will_end", json, None, t, &auto);
            }
            Milestone::TrialEnd => end_trial(st, &auto, idx, t),
            Milestone::PeriodEnd => renew(st, &auto, idx, t),
            Milestone::Retry(inv) => {
                let _ = collect(st, &auto, inv, t, None);
            }
            Milestone::Expire => expire(st, &auto, idx, t),
        }
    }
    Err(ApiError::invalid_param(
        "frozen_time",
        "Advancing that far takes too many billing periods; advance in smaller steps.",
    ))
}

pub fn list_invoices(st: &State, p: &Params) -> ApiResult {
    p.allow(&["customer", "subscription", "status", "limit", "starting_after"])?;
    let status = p.one_of("status", &["draft", "open", "paid", "uncollectible", "void"])?;
    let found = st
        .invoices
        .iter()
        .filter(|i| p.get("customer").is_none_or(|c| i.customer == c))
        .filter(|i| p.get("subscription").is_none_or(|s| i.subscription.as_deref() == Some(s)))
        .filter(|i| status.is_none_or(|s| i.status == s))
        .collect();
    list(found, p, "/v1/invoices", |i| &i.id, |i| st.invoice_json(i))
}

pub fn get_invoice(st: &State, id: &str, p: &Params) -> ApiResult {
    p.allow(&[])?;
    let i = st.invoice_index(id).ok_or_else(|| ApiError::not_found("invoice", id))?;
    Ok(st.invoice_json(&st.invoices[i]))
}

/// `POST /v1/invoices/{id}/pay`: charges now (a decline answers 402 and counts as an attempt)
/// or, with `paid_out_of_band=true`, records a payment made elsewhere.
pub fn pay_invoice(st: &mut State, ctx: &Ctx, id: &str, p: &Params) -> ApiResult {
    p.allow(&["payment_method", "paid_out_of_band", "off_session", "forgive"])?;
    let i = st.invoice_index(id).ok_or_else(|| ApiError::not_found("invoice", id))?;
    let now = st.now_for(&st.invoices[i].customer.clone(), ctx);
    match st.invoices[i].status {
        "paid" => return Err(ApiError::invalid("Invoice is already paid")),
        "void" => return Err(ApiError::invalid("This invoice is void and cannot be paid.")),
        "draft" => (st.invoices[i].status, st.invoices[i].finalized_at) = ("open", Some(now)),
        "uncollectible" => st.invoices[i].status = "open",
        _ => {}
    }
    if p.bool("paid_out_of_band")? == Some(true) {
        mark_paid(st, ctx, i, now);
    } else {
        let pm = p.get("payment_method").map(|pm| check_payment_method(pm, "payment_method")).transpose()?;
        collect(st, ctx, i, now, pm.as_deref()).map_err(Failure::into_error)?;
    }
    Ok(st.invoice_json(&st.invoices[i]))
}
