//! The API's URLs, and the plain resources: customers, prices, test clocks, webhook endpoints
//! and events. Subscriptions, invoices and meters have their own files.

use serde_json::{json, Value};

use super::calendar::Interval;
use super::error::ApiError;
use super::objects::*;
use super::params::Params;
use super::state::{list, update_metadata, ApiResult, Ctx, State};
use super::{cycle, meters, subscriptions};

pub fn route(st: &mut State, ctx: &Ctx, method: &str, path: &str, p: &Params) -> ApiResult {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, &segs[..]) {
        ("POST", ["v1", "customers"]) => create_customer(st, ctx, p),
        ("GET", ["v1", "customers"]) => list_customers(st, p),
        ("GET", ["v1", "customers", id]) => get_customer(st, id, p),
        ("POST", ["v1", "customers", id]) => update_customer(st, id, p),
        ("POST", ["v1", "prices"]) => create_price(st, ctx, p),
        ("GET", ["v1", "prices"]) => list_prices(st, p),
        ("GET", ["v1", "prices", id]) => {
            p.allow(&[])?;
            st.price(id).map(Price::to_json).ok_or_else(|| ApiError::not_found("price", id))
        }
        ("POST", ["v1", "subscriptions"]) => subscriptions::create(st, ctx, p),
        ("GET", ["v1", "subscriptions"]) => subscriptions::list(st, p),
        ("GET", ["v1", "subscriptions", id]) => subscriptions::get(st, id, p),
        ("POST", ["v1", "subscriptions", id]) => subscriptions::update(st, ctx, id, p),
        ("DELETE", ["v1", "subscriptions", id]) => subscriptions::cancel(st, ctx, id, p),
        ("POST", ["v1", "subscriptions", id, "resume"]) => subscriptions::resume(st, ctx, id, p),
        ("GET", ["v1", "invoices"]) => cycle::list_invoices(st, p),
        ("GET", ["v1", "invoices", id]) => cycle::get_invoice(st, id, p),
        ("POST", ["v1", "invoices", id, "pay"]) => cycle::pay_invoice(st, ctx, id, p),
        ("POST", ["v1", "billing", "meters"]) => meters::create_meter(st, ctx, p),
        ("GET", ["v1", "billing", "meters"]) => meters::list_meters(st, p),
        ("GET", ["v1", "billing", "meters", id]) => meters::get_meter(st, id, p),
        ("GET", ["v1", "billing", "meters", id, "event_summaries"]) => meters::summaries(st, id, p),
        ("POST", ["v1", "billing", "meter_events"]) => meters::create_event(st, ctx, p),
        ("POST", ["v1", "test_helpers", "test_clocks"]) => create_clock(st, ctx, p),
        ("GET", ["v1", "test_helpers", "test_clocks"]) => {
            list(st.clocks.iter().collect(), p, "/v1/test_helpers/test_clocks", |c| &c.id, |c| c.to_json("ready"))
        }
        ("GET", ["v1", "test_helpers", "test_clocks", id]) => {
            p.allow(&[])?;
            let clock = st.clocks.iter().find(|c| c.id == *id);
            clock.map(|c| c.to_json("ready")).ok_or_else(|| ApiError::not_found("test_helpers.test_clock", id))
        }
        ("DELETE", ["v1", "test_helpers", "test_clocks", id]) => delete_clock(st, id, p),
        ("POST", ["v1", "test_helpers", "test_clocks", id, "advance"]) => cycle::advance(st, ctx, id, p),
        ("POST", ["v1", "webhook_endpoints"]) => create_endpoint(st, ctx, p),
        ("GET", ["v1", "webhook_endpoints"]) => {
            list(st.endpoints.iter().collect(), p, "/v1/webhook_endpoints", |e| &e.id, |e| e.to_json(false))
        }
        ("DELETE", ["v1", "webhook_endpoints", id]) => {
            p.allow(&[])?;
            let i = st
                .endpoints
                .iter()
                .position(|e| e.id == *id)
                .ok_or_else(|| ApiError::not_found("webhook endpoint", id))?;
            st.endpoints.remove(i);
            Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
        }
        ("GET", ["v1", "events"]) => list_events(st, p),
        ("GET", ["v1", "events", id]) => {
            p.allow(&[])?;
            let e = st.events.iter().find(|e| e.id == *id).ok_or_else(|| ApiError::not_found("event", id))?;
            Ok(serde_json::from_str(&e.payload).unwrap_or(Value::Null))
        }
        _ => Err(ApiError::unrecognized_url(method, path)),
    }
}

/// Test payment methods (docs.stripe.com/testing#cards): the mock attaches any `pm_card_…`
/// token; which ones decline is `cycle::charge`'s business.
pub fn check_payment_method(pm: &str, param: &str) -> Result<String, ApiError> {
    if pm.starts_with("pm_card_") {
        Ok(pm.to_string())
    } else {
        Err(ApiError::no_such_param("PaymentMethod", pm, param))
    }
}

fn create_customer(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&[
        "email",
        "name",
        "description",
        "metadata*",
        "payment_method",
        "invoice_settings[default_payment_method]",
        "test_clock",
    ])?;
    let test_clock = match p.get("test_clock").filter(|c| !c.is_empty()) {
        Some(id) => Some(
            st.clocks
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| ApiError::no_such_param("test_helpers.test_clock", id, "test_clock"))?,
        ),
        None => None,
    };
    let created = test_clock.map_or(ctx.wall_now, |c| c.frozen_time);
    let test_clock = test_clock.map(|c| c.id.clone());
    let pm = match (p.get("invoice_settings[default_payment_method]"), p.get("payment_method")) {
        (Some(pm), _) => Some(check_payment_method(pm, "invoice_settings[default_payment_method]")?),
        (None, Some(pm)) => Some(check_payment_method(pm, "payment_method")?),
        (None, None) => None,
    };
    let mut metadata = Metadata::new();
    update_metadata(&mut metadata, p);
    let id = new_id("cus");
    let invoice_prefix = id[4..12].to_uppercase();
    let customer = Customer {
        id,
        created,
        email: p.get("email").map(str::to_string),
        name: p.get("name").map(str::to_string),
        description: p.get("description").map(str::to_string),
        metadata,
        test_clock,
        payment_method: pm,
        invoice_prefix,
        invoice_seq: 0,
    };
    let json = st.customer_json(&customer);
    st.customers.push(customer);
    Ok(json)
}

fn list_customers(st: &State, p: &Params) -> ApiResult {
    p.allow(&["email", "test_clock", "limit", "starting_after"])?;
    let email = p.get("email");
    let clock = p.get("test_clock");
    let found = st
        .customers
        .iter()
        .filter(|c| email.is_none_or(|e| c.email.as_deref() == Some(e)))
        .filter(|c| clock.is_none_or(|k| c.test_clock.as_deref() == Some(k)))
        .collect();
    list(found, p, "/v1/customers", |c| &c.id, |c| st.customer_json(c))
}

fn get_customer(st: &State, id: &str, p: &Params) -> ApiResult {
    p.allow(&[])?;
    st.customer(id).map(|c| st.customer_json(c)).ok_or_else(|| ApiError::not_found("customer", id))
}

/// The mock takes a new default payment method directly (Stripe would want it attached first).
fn update_customer(st: &mut State, id: &str, p: &Params) -> ApiResult {
    p.allow(&["email", "name", "description", "metadata*", "invoice_settings[default_payment_method]"])?;
    let pm = match p.get("invoice_settings[default_payment_method]") {
        Some("") => Some(None),
        Some(pm) => Some(Some(check_payment_method(pm, "invoice_settings[default_payment_method]")?)),
        None => None,
    };
    let c = st.customer_mut(id).ok_or_else(|| ApiError::not_found("customer", id))?;
    let text = |key: &str, field: &mut Option<String>| {
        if let Some(v) = p.get(key) {
            *field = (!v.is_empty()).then(|| v.to_string());
        }
    };
    text("email", &mut c.email);
    text("name", &mut c.name);
    text("description", &mut c.description);
    update_metadata(&mut c.metadata, p);
    if let Some(pm) = pm {
        c.payment_method = pm;
    }
    let c = st.customer(id).ok_or_else(|| ApiError::not_found("customer", id))?;
    Ok(st.customer_json(c))
}

fn create_price(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&[
        "currency",
        "unit_amount",
        "product",
        "product_data[name]",
        "recurring[interval]",
        "recurring[interval_count]",
        "recurring[usage_type]",
        "recurring[meter]",
        "nickname",
        "lookup_key",
        "transfer_lookup_key",
        "metadata*",
        "active",
        "billing_scheme",
        "transform_quantity[divide_by]",
        "transform_quantity[round]",
    ])?;
    let currency = p.require("currency")?.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::invalid_param("currency", format!("Invalid currency: {currency}")));
    }
    let unit_amount = p.int("unit_amount")?.ok_or_else(|| ApiError::missing_param("unit_amount"))?;
    // Stripe's ceiling is 8 digits in the smallest unit ($999,999.99).
    if !(0..=99_999_999).contains(&unit_amount) {
        return Err(ApiError::invalid_param("unit_amount", "This value must be between 0 and 99999999."));
    }
    p.one_of("billing_scheme", &["per_unit"])?;
    let product = match (p.get("product"), p.get("product_data[name]")) {
        (Some(id), None) if !id.is_empty() => id.to_string(),
        (None, Some(name)) if !name.is_empty() => {
            let id = new_id("prod");
            st.products.push((id.clone(), name.to_string()));
            id
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("You may only specify one of these parameters: product, product_data."))
        }
        _ => return Err(ApiError::missing_param("product")),
    };
    let recurring = recurring(st, p)?;
    let transform = match p.int("transform_quantity[divide_by]")? {
        Some(d) if d > 0 => Some((d, p.one_of("transform_quantity[round]", &["up", "down"])? == Some("up"))),
        Some(_) => {
            return Err(ApiError::invalid_param("transform_quantity[divide_by]", "This value must be greater than 0."))
        }
        None => None,
    };
    let lookup_key = p.get("lookup_key").filter(|k| !k.is_empty()).map(str::to_string);
    if let Some(key) = &lookup_key {
        let taken = st.prices.iter_mut().find(|x| x.lookup_key.as_ref() == Some(key));
        match taken {
            Some(other) if p.bool("transfer_lookup_key")? == Some(true) => other.lookup_key = None,
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "lookup_key",
                    format!("A price (`{}`) already uses that lookup key.", other.id),
                ))
            }
            None => {}
        }
    }
    let mut metadata = Metadata::new();
    update_metadata(&mut metadata, p);
    let price = Price {
        id: new_id("price"),
        created: ctx.wall_now,
        product,
        currency,
        unit_amount,
        recurring,
        nickname: p.get("nickname").map(str::to_string),
        lookup_key,
        metadata,
        active: p.bool("active")?.unwrap_or(true),
        transform,
    };
    let json = price.to_json();
    st.prices.push(price);
    Ok(json)
}

fn recurring(st: &State, p: &Params) -> Result<Option<Recurring>, ApiError> {
    let Some(interval) = p.get("recurring[interval]") else {
        if p.has("recurring[usage_type]") || p.has("recurring[meter]") || p.has("recurring[interval_count]") {
            return Err(ApiError::missing_param("recurring[interval]"));
        }
        return Ok(None);
    };
    let interval = Interval::parse(interval).ok_or_else(|| {
        ApiError::invalid_param(
            "recurring[interval]",
            "Invalid recurring[interval]: must be one of day, week, month, or year",
        )
    })?;
    let count = p.int("recurring[interval_count]")?.unwrap_or(1);
    let count = u32::try_from(count).ok().filter(|c| (1..=365).contains(c)).ok_or_else(|| {
        ApiError::invalid_param(
            "recurring[interval_count]",
            "Invalid recurring[interval_count]: must be between 1 and 365",
        )
    })?;
    let metered = p.one_of("recurring[usage_type]", &["licensed", "metered"])? == Some("metered");
    let meter = p.get("recurring[meter]").filter(|m| !m.is_empty());
    if let Some(m) = meter {
        if !st.meters.iter().any(|x| x.id == m) {
            return Err(ApiError::no_such_param("billing.meter", m, "recurring[meter]"));
        }
    }
    // Since 2025-03-31.basil a metered price reads a meter (docs.stripe.com/changelog/basil).
    if metered && meter.is_none() {
        return Err(ApiError::missing_param("recurring[meter]"));
    }
    Ok(Some(Recurring { interval, count, meter: meter.map(str::to_string), metered }))
}

fn list_prices(st: &State, p: &Params) -> ApiResult {
    p.allow(&["active", "currency", "product", "type", "lookup_keys[#]", "limit", "starting_after"])?;
    let active = p.bool("active")?;
    let keys = p.list("lookup_keys");
    let kind = p.one_of("type", &["recurring", "one_time"])?;
    let found = st
        .prices
        .iter()
        .filter(|x| active.is_none_or(|a| x.active == a))
        .filter(|x| p.get("currency").is_none_or(|c| x.currency == c))
        .filter(|x| p.get("product").is_none_or(|pr| x.product == pr))
        .filter(|x| kind.is_none_or(|k| (k == "recurring") == x.recurring.is_some()))
        .filter(|x| keys.is_empty() || x.lookup_key.as_deref().is_some_and(|k| keys.contains(&k)))
        .collect();
    list(found, p, "/v1/prices", |x| &x.id, Price::to_json)
}

fn create_clock(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&["frozen_time", "name"])?;
    let frozen_time = p.int("frozen_time")?.ok_or_else(|| ApiError::missing_param("frozen_time"))?;
    let frozen_time = check_time(frozen_time, "frozen_time")?;
    let clock =
        TestClock { id: new_id("clock"), created: ctx.wall_now, name: p.get("name").map(str::to_string), frozen_time };
    let json = clock.to_json("ready");
    st.clocks.push(clock);
    Ok(json)
}

/// Deleting a clock deletes the customers on it and everything of theirs, as at Stripe.
fn delete_clock(st: &mut State, id: &str, p: &Params) -> ApiResult {
    p.allow(&[])?;
    let i = st.clock_index(id).ok_or_else(|| ApiError::not_found("test_helpers.test_clock", id))?;
    st.clocks.remove(i);
    let gone: Vec<String> =
        st.customers.iter().filter(|c| c.test_clock.as_deref() == Some(id)).map(|c| c.id.clone()).collect();
    st.customers.retain(|c| !gone.contains(&c.id));
    st.subscriptions.retain(|s| !gone.contains(&s.customer));
    st.invoices.retain(|inv| !gone.contains(&inv.customer));
    Ok(json!({"id": id, "object": "test_helpers.test_clock", "deleted": true}))
}

/// `secret` is the mock's own parameter: a test that must know the signing secret before
/// the endpoint exists sets it (Stripe always generates it).
fn create_endpoint(st: &mut State, ctx: &Ctx, p: &Params) -> ApiResult {
    p.allow(&["url", "enabled_events[#]", "description", "metadata*", "api_version", "secret"])?;
    let url = p.require("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::invalid_param("url", format!("Invalid URL: {url}")));
    }
    let enabled_events: Vec<String> = p.list("enabled_events").into_iter().map(str::to_string).collect();
    if enabled_events.is_empty() {
        return Err(ApiError::missing_param("enabled_events"));
    }
    let secret = match p.get("secret") {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        Some(_) => return Err(ApiError::invalid_param("secret", "The signing secret may not be blank.")),
        None => format!("whsec_{}", &new_id("x")[2..]),
    };
    let endpoint = Endpoint { id: new_id("we"), created: ctx.wall_now, url: url.to_string(), secret, enabled_events };
    let json = endpoint.to_json(true);
    st.endpoints.push(endpoint);
    Ok(json)
}

fn list_events(st: &State, p: &Params) -> ApiResult {
    p.allow(&["type", "types[#]", "limit", "starting_after"])?;
    let types = p.list("types");
    let found = st
        .events
        .iter()
        .filter(|e| p.get("type").is_none_or(|t| type_matches(t, &e.kind)))
        .filter(|e| types.is_empty() || types.iter().any(|t| type_matches(t, &e.kind)))
        .collect();
    list(found, p, "/v1/events", |e| &e.id, |e| serde_json::from_str(&e.payload).unwrap_or(Value::Null))
}

/// `type` may end in `.*` (`invoice.*`), as at Stripe.
fn type_matches(filter: &str, kind: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => filter == kind,
    }
}
