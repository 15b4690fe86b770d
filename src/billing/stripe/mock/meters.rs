//! Billing meters and meter events (docs.stripe.com/api/billing/meter-event/create): usage
//! reported as events, deduplicated by `identifier`, summed (or counted, or the last taken)
//! per customer and period for metered prices and for `event_summaries`.
//!
//! Stripe validates most of an event asynchronously (an unknown customer or meter shows up
//! in an error report, not in the answer); the mock answers synchronously only what Stripe
//! answers synchronously as far as is known: a missing `event_name` or `payload`, a timestamp
//! outside 35 days back to 5 minutes ahead, and a repeated `identifier` — 400, "An event
//! already exists with identifier …", `Stripe-Should-Retry: false` (as reported in
//! langfuse/langfuse pull 16292). Stripe keeps identifiers "within a rolling period of at
//! least 24 hours"; the mock keeps them as long as it runs.

use serde_json::json;

use super::error::ApiError;
use super::objects::*;
use super::params::Params;
use super::state::{list, ApiResult, Ctx, State};

const MAX_BACKDATE: i64 = 35 * 86_400;
const MAX_AHEAD: i64 = 5 * 60;

pub fn create_meter(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&[
        "display_name",
        "event_name",
        "default_aggregation[formula]",
        "customer_mapping[event_payload_key]",
        "customer_mapping[type]",
        "value_settings[event_payload_key]",
        "event_time_window",
    ])?;
    let display_name = p.require("display_name")?.to_string();
    let event_name = p.require("event_name")?.to_string();
    let formula = p.one_of("default_aggregation[formula]", &["sum", "count", "last"])?;
    let formula = formula.ok_or_else(|| ApiError::missing_param("default_aggregation[formula]"))?.to_string();
    p.one_of("customer_mapping[type]", &["by_id"])?;
    if st.meters.iter().any(|m| m.event_name == event_name) {
        return Err(ApiError::invalid_param(
            "event_name",
            format!("An active meter with event_name `{event_name}` already exists."),
        ));
    }
    let key = |k: &str, default: &str| p.get(k).filter(|v| !v.is_empty()).unwrap_or(default).to_string();
    let meter = Meter {
        id: new_id("mtr"),
        created: ctx.wall_now,
        display_name,
        event_name,
        formula,
        customer_key: key("customer_mapping[event_payload_key]", "stripe_customer_id"),
        value_key: key("value_settings[event_payload_key]", "value"),
    };
    let json = meter.to_json();
    st.meters.push(meter);
    Ok(json)
}

pub fn list_meters(st: &State, p: &Params) -> ApiResult {
    p.allow(&["status", "limit", "starting_after"])?;
    list(st.meters.iter().collect(), p, "/v1/billing/meters", |m| &m.id, Meter::to_json)
}

pub fn get_meter(st: &State, id: &str, p: &Params) -> ApiResult {
    p.allow(&[])?;
    st.meters.iter().find(|m| m.id == id).map(Meter::to_json).ok_or_else(|| ApiError::not_found("billing.meter", id))
}

pub fn create_event(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&["event_name", "payload*", "identifier", "timestamp"])?;
    let event_name = p.require("event_name")?.to_string();
    let payload: Metadata = p.hash("payload").into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if payload.is_empty() {
        return Err(ApiError::missing_param("payload"));
    }
    // "Now" is the customer's test clock when it has one.
    let customer_key =
        st.meters.iter().find(|m| m.event_name == event_name).map_or("stripe_customer_id", |m| &m.customer_key);
    let now = payload.get(customer_key).map_or(ctx.wall_now, |c| st.now_for(c, ctx));
    let timestamp = p.int("timestamp")?.unwrap_or(now);
    if timestamp < now - MAX_BACKDATE || timestamp > now + MAX_AHEAD {
        return Err(ApiError::invalid_param(
            "timestamp",
            "The timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
        ));
    }
    let identifier = match p.get("identifier") {
        Some(id) if id.len() > 100 => {
            return Err(ApiError::invalid_param("identifier", "The identifier must be at most 100 characters."))
        }
        Some(id) if !id.is_empty() => id.to_string(),
        _ => new_id("mev").replacen("mev_", "", 1),
    };
    if st.meter_events.iter().any(|e| e.identifier == identifier) {
        return Err(ApiError {
            should_retry: Some(false),
            ..ApiError::invalid_param("identifier", format!("An event already exists with identifier {identifier}."))
        });
    }
    let event = MeterEvent { identifier, event_name, payload, timestamp, created: now };
    let json = event.to_json();
    st.meter_events.push(event);
    Ok(json)
}

/// `GET /v1/billing/meters/{id}/event_summaries?customer=&start_time=&end_time=`: one summary
/// for the whole window (no `value_grouping_window`).
pub fn summaries(st: &State, id: &str, p: &Params) -> ApiResult {
    p.allow(&["customer", "start_time", "end_time", "limit", "starting_after"])?;
    if !st.meters.iter().any(|m| m.id == id) {
        return Err(ApiError::not_found("billing.meter", id));
    }
    let customer = p.require("customer")?;
    let start = p.int("start_time")?.ok_or_else(|| ApiError::missing_param("start_time"))?;
    let end = p.int("end_time")?.ok_or_else(|| ApiError::missing_param("end_time"))?;
    if end <= start {
        return Err(ApiError::invalid_param("end_time", "end_time must be after start_time."));
    }
    let value = aggregate(st, id, customer, (start, end));
    let summary = json!({
        "id": format!("mtrusg_{start}_{end}"), "object": "billing.meter_event_summary", "aggregated_value": value,
        "end_time": end, "livemode": false, "meter": id, "start_time": start,
    });
    Ok(json!({"object": "list", "data": [summary], "has_more": false,
              "url": format!("/v1/billing/meters/{id}/event_summaries")}))
}

/// The meter's aggregate of the customer's events with `start ≤ timestamp < end`. A value
/// that is not a number counts as 0 (Stripe reports it in an error report instead).
pub fn aggregate(st: &State, meter: &str, customer: &str, (start, end): (i64, i64)) -> f64 {
    let Some(m) = st.meters.iter().find(|m| m.id == meter) else { return 0.0 };
    let events = st.meter_events.iter().filter(|e| {
        e.event_name == m.event_name
            && e.payload.get(&m.customer_key).is_some_and(|c| c == customer)
            && (start..end).contains(&e.timestamp)
    });
    let value = |e: &MeterEvent| e.payload.get(&m.value_key).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    match m.formula.as_str() {
        "count" => events.count() as f64,
        "last" => events.max_by_key(|e| e.timestamp).map_or(0.0, value),
        _ => events.map(value).sum(),
    }
}
