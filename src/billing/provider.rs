//! The Stripe provider's outbound side: every change that Stripe must hear of is queued in
//! `billing_outbox` in the same catalog transaction as the change, then `drain` makes the calls
//! off the request path (the server every few seconds, `tenantd billing sync` by hand). Each
//! call carries an `Idempotency-Key` derived from the queued row, so a retry, or a restart after
//! a crash between Stripe's answer and the local write, replays Stripe's first answer instead of
//! charging twice. Failures back off (5 s doubling to an hour) and give up after 20 attempts,
//! shown on the console and by `billing status`. Tenant traffic never waits for Stripe.
//!
//! Requests are form-encoded as Stripe's API wants (`items[0][price]=…`); the secret key comes
//! from `[billing] stripe_secret_key` or `TENANTD_STRIPE_SECRET_KEY` and is never logged.

use std::time::Duration;

use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::catalog::billing;
use crate::error::{Error, Result};
use crate::ids::TenantId;

const MAX_ATTEMPTS: i64 = 20;

/// Queues a call for `tenant` (once per idempotency key: queueing the same key twice is a no-op).
pub fn enqueue(tx: &Connection, tenant: &str, op: &str, params: &Value, key: &str, now: i64) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO billing_outbox (tenant_id, op, params, idempotency_key, next_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![tenant, op, params.to_string(), key, now],
    )?;
    Ok(())
}

#[derive(Debug, Default, Serialize)]
pub struct Drained {
    pub done: usize,
    pub retried: Vec<String>,
    pub failed: Vec<String>,
    pub pending: usize,
}

struct Queued {
    id: i64,
    tenant_id: String,
    op: String,
    params: Value,
    key: String,
    attempts: i64,
}

/// Makes every queued call that is due at `now`, in order.
pub fn drain(app: &App, now: i64) -> Result<Drained> {
    let client = Stripe::from_config(app)?;
    let due: Vec<Queued> = {
        let conn = app.catalog.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, tenant_id, op, params, idempotency_key, attempts FROM billing_outbox \
             WHERE done_at IS NULL AND failed_at IS NULL AND next_at <= ?1 ORDER BY id LIMIT 500",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(Queued {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                op: r.get(2)?,
                params: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                key: r.get(4)?,
                attempts: r.get(5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Drained::default();
    for q in due {
        match perform(app, &client, &q) {
            Ok(()) => {
                app.catalog.write(|tx| {
                    tx.execute(
                        "UPDATE billing_outbox SET done_at = ?2, attempts = attempts + 1 WHERE id = ?1",
                        params![q.id, now],
                    )?;
                    Ok(())
                })?;
                out.done += 1;
            }
            Err(e) => {
                let attempts = q.attempts + 1;
                let text = e.log_detail();
                let permanent = attempts >= MAX_ATTEMPTS || matches!(e, Error::Invalid { .. });
                let backoff = 5i64.saturating_mul(1 << attempts.min(10)).min(3600);
                app.catalog.write(|tx| {
                    tx.execute(
                        "UPDATE billing_outbox SET attempts = ?2, last_error = ?3, next_at = ?4, failed_at = ?5 WHERE id = ?1",
                        params![q.id, attempts, text, now + backoff, permanent.then_some(now)],
                    )?;
                    Ok(())
                })?;
                let line = format!("{} {} (attempt {attempts}): {text}", q.op, q.tenant_id);
                crate::log::warn(&format!("stripe: {line}"));
                if permanent {
                    out.failed.push(line);
                } else {
                    out.retried.push(line);
                }
            }
        }
    }
    out.pending = app.catalog.conn()?.query_row(
        "SELECT count(*) FROM billing_outbox WHERE done_at IS NULL AND failed_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )? as usize;
    Ok(out)
}

/// A queued call that failed at least once: tenant id, operation, last error.
#[derive(Debug, Serialize)]
pub struct Trouble {
    pub tenant_id: String,
    pub op: String,
    pub last_error: Option<String>,
}

/// Queued calls not yet made, and the ones that failed, for the console and `billing status`.
pub fn backlog(conn: &Connection) -> Result<(i64, Vec<Trouble>)> {
    let pending =
        conn.query_row("SELECT count(*) FROM billing_outbox WHERE done_at IS NULL AND failed_at IS NULL", [], |r| {
            r.get(0)
        })?;
    let mut stmt = conn.prepare(
        "SELECT tenant_id, op, last_error FROM billing_outbox WHERE failed_at IS NOT NULL OR (done_at IS NULL AND attempts > 0) ORDER BY id DESC LIMIT 50",
    )?;
    let rows = stmt.query_map([], |r| Ok(Trouble { tenant_id: r.get(0)?, op: r.get(1)?, last_error: r.get(2)? }))?;
    Ok((pending, rows.collect::<rusqlite::Result<_>>()?))
}

fn perform(app: &App, stripe: &Stripe, q: &Queued) -> Result<()> {
    let tenant = TenantId::parse(&q.tenant_id)?;
    let current = billing::current(&*app.catalog.conn()?, &tenant)?;
    match q.op.as_str() {
        "subscribe" => {
            let Some(sub) = current else { return Ok(()) };
            let name = q.params["name"].as_str().unwrap_or("");
            let customer = match sub.provider_customer_id.clone() {
                Some(c) => c,
                None => {
                    let mut form = vec![
                        ("name", name),
                        ("metadata[tenant_id]", q.tenant_id.as_str()),
                        ("metadata[tenant]", q.params["slug"].as_str().unwrap_or("")),
                    ];
                    if let Some(clock) = &app.config.billing.stripe_test_clock {
                        form.push(("test_clock", clock.as_str()));
                    }
                    let c = stripe.post("/v1/customers", &form, &format!("{}-customer", q.key))?;
                    let id = c["id"]
                        .as_str()
                        .ok_or_else(|| Error::Internal("Stripe answered a customer without an id".into()))?
                        .to_string();
                    app.catalog.write(|tx| {
                        tx.execute(
                            "UPDATE billing_subscriptions SET provider_customer_id = ?2 WHERE id = ?1",
                            params![sub.id, id],
                        )?;
                        Ok(())
                    })?;
                    id
                }
            };
            let price = q.params["price"].as_str().ok_or_else(|| {
                Error::invalid(
                    "no_stripe_price",
                    format!("plan {} has no stripe_price_id for interval {}", sub.plan, sub.interval),
                )
            })?;
            let trial = q.params["trial_days"].as_u64().unwrap_or(0).to_string();
            let mut form = vec![
                ("customer", customer.as_str()),
                ("items[0][price]", price),
                ("metadata[tenant_id]", q.tenant_id.as_str()),
            ];
            if trial != "0" {
                form.push(("trial_period_days", trial.as_str()));
            }
            let s = stripe.post("/v1/subscriptions", &form, &format!("{}-subscription", q.key))?;
            mirror(app, sub.id, &s)
        }
        "change_price" => {
            let Some(sub) = current else { return Ok(()) };
            let Some(sid) = sub.provider_subscription_id.clone() else {
                return Err(Error::Retry("not subscribed at Stripe yet".into()));
            };
            let s = stripe.get(&format!("/v1/subscriptions/{sid}"))?;
            let item = s["items"]["data"][0]["id"].as_str().unwrap_or("").to_string();
            let price = q.params["price"].as_str().unwrap_or("");
            let s = stripe.post(
                &format!("/v1/subscriptions/{sid}"),
                &[
                    ("items[0][id]", item.as_str()),
                    ("items[0][price]", price),
                    ("proration_behavior", "create_prorations"),
                ],
                &q.key,
            )?;
            mirror(app, sub.id, &s)
        }
        "cancel" | "resume" => {
            let Some(sub) = current else { return Ok(()) };
            let Some(sid) = sub.provider_subscription_id.clone() else {
                return Err(Error::Retry("not subscribed at Stripe yet".into()));
            };
            if q.op == "cancel" && q.params["at_period_end"] == false {
                let s = stripe.delete(&format!("/v1/subscriptions/{sid}"), &q.key)?;
                return mirror(app, sub.id, &s);
            }
            let flag = if q.op == "cancel" { "true" } else { "false" };
            let s = stripe.post(&format!("/v1/subscriptions/{sid}"), &[("cancel_at_period_end", flag)], &q.key)?;
            mirror(app, sub.id, &s)
        }
        "meter" => {
            let Some(customer) = current.and_then(|s| s.provider_customer_id) else {
                return Err(Error::Retry("no Stripe customer yet".into()));
            };
            let value = q.params["value"].as_i64().unwrap_or(0).to_string();
            let ts = q.params["timestamp"].as_i64().unwrap_or(0).to_string();
            stripe.post(
                "/v1/billing/meter_events",
                &[
                    ("event_name", q.params["event_name"].as_str().unwrap_or("tenantd_requests")),
                    ("payload[stripe_customer_id]", customer.as_str()),
                    ("payload[value]", value.as_str()),
                    ("identifier", q.key.as_str()),
                    ("timestamp", ts.as_str()),
                ],
                &q.key,
            )?;
            Ok(())
        }
        other => Err(Error::invalid("unknown_op", format!("unknown outbox operation {other:?}"))),
    }
}

/// Writes Stripe's view of a subscription (ids, status, period) onto the local one.
fn mirror(app: &App, local_id: i64, s: &Value) -> Result<()> {
    let item = &s["items"]["data"][0];
    app.change(|tx| {
        tx.execute(
            "UPDATE billing_subscriptions SET provider_subscription_id = coalesce(?2, provider_subscription_id), \
             provider_customer_id = coalesce(?3, provider_customer_id), \
             current_period_start = coalesce(?4, current_period_start), current_period_end = coalesce(?5, current_period_end), \
             cancel_at_period_end = coalesce(?6, cancel_at_period_end) WHERE id = ?1",
            params![
                local_id,
                s["id"].as_str(),
                s["customer"].as_str(),
                s["current_period_start"].as_i64().or(item["current_period_start"].as_i64()),
                s["current_period_end"].as_i64().or(item["current_period_end"].as_i64()),
                s["cancel_at_period_end"].as_bool(),
            ],
        )?;
        Ok(())
    })
}

/// A minimal Stripe client: form-encoded POSTs with an idempotency key, JSON answers, Stripe's
/// error objects turned into errors (4xx: refused, not retried; 5xx and network: retried).
pub struct Stripe {
    base: String,
    secret: String,
    agent: ureq::Agent,
}

impl Stripe {
    pub fn from_config(app: &App) -> Result<Stripe> {
        let secret = std::env::var("TENANTD_STRIPE_SECRET_KEY")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| app.config.billing.stripe_secret_key.clone())
            .ok_or_else(|| {
                Error::invalid("no_stripe_key", "set [billing] stripe_secret_key or TENANTD_STRIPE_SECRET_KEY")
            })?;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .http_status_as_error(false)
            .build();
        Ok(Stripe {
            base: app.config.billing.stripe_api_base.trim_end_matches('/').to_string(),
            secret,
            agent: config.into(),
        })
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)], idempotency_key: &str) -> Result<Value> {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", crate::util::percent_encode(k), crate::util::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let res = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.secret))
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.as_bytes());
        Self::answer(path, res)
    }

    pub fn delete(&self, path: &str, idempotency_key: &str) -> Result<Value> {
        let res = self
            .agent
            .delete(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.secret))
            .header("Idempotency-Key", idempotency_key)
            .call();
        Self::answer(path, res)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let res = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.secret))
            .call();
        Self::answer(path, res)
    }

    fn answer(path: &str, res: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value> {
        let mut res = res.map_err(|e| Error::Retry(format!("Stripe {path}: {e}")))?;
        let status = res.status().as_u16();
        let body: Value = res.body_mut().read_json().unwrap_or(Value::Null);
        if status < 300 {
            return Ok(body);
        }
        let message = body["error"]["message"].as_str().unwrap_or("no message").to_string();
        let kind = body["error"]["type"].as_str().unwrap_or("").to_string();
        if status >= 500 || status == 429 || status == 409 {
            Err(Error::Retry(format!("Stripe {path}: {status} {kind}: {message}")))
        } else {
            Err(Error::invalid("stripe_refused", format!("Stripe {path}: {status} {kind}: {message}")))
        }
    }
}

/// The queued call that creates a tenant's Customer and Subscription at Stripe.
pub fn subscribe_params(app: &App, plan: &str, interval: &str, slug: &str, name: &str) -> Value {
    let p = app.config.plans.get(plan);
    let price =
        p.and_then(|p| if interval == "year" { p.stripe_price_id_yearly.clone() } else { p.stripe_price_id.clone() });
    json!({"plan": plan, "interval": interval, "price": price, "trial_days": p.map(|p| p.trial_days).unwrap_or(0), "slug": slug, "name": name})
}
