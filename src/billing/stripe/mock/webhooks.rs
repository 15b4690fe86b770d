//! Sending events to webhook endpoints as Stripe does: a POST of the event's JSON with
//! `Stripe-Signature` made by `signature::sign` at the wall-clock time of each attempt (a
//! retry is signed anew, like Stripe's), and a record of every attempt. The mock-only admin
//! routes under `/__mock/` read the record, send an event again, redeliver what failed, and
//! inject failures.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::error::ApiError;
use super::objects::Delivery;
use super::params::Params;
use super::state::{Outgoing, State};
use crate::billing::stripe::signature;

/// Deliveries go out one at a time, in the order their events happened. A request made while
/// another thread is sending (say, tenantd's webhook handler calling the mock back) queues its
/// deliveries for that thread and returns: waiting for the sender would deadlock.
#[derive(Default)]
pub struct Sender {
    pub queue: VecDeque<Outgoing>,
    pub busy: bool,
}

/// One POST. Any 2xx is a success, as at Stripe; the body of the answer is ignored.
pub fn post(agent: &ureq::Agent, out: &Outgoing, at: i64) -> Delivery {
    let sig = signature::sign(out.payload.as_bytes(), &out.secret, at);
    let result = agent
        .post(&out.url)
        .header("Stripe-Signature", &sig)
        .header("Content-Type", "application/json; charset=utf-8")
        .header("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .send(out.payload.as_bytes());
    let (status, error) = match result {
        Ok(resp) => (Some(resp.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Delivery { endpoint: out.endpoint_id.clone(), url: out.url.clone(), at, signature: sig, status, error }
}

/// `GET /__mock/events[?type=]`: every event, oldest first, with its exact body and every
/// delivery attempt (signature header, status), so a test can replay one byte for byte.
pub fn events_json(st: &State, kind: Option<&str>) -> Value {
    let data: Vec<Value> = st
        .events
        .iter()
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .map(|e| {
            json!({"id": e.id, "type": e.kind, "created": e.created, "payload": &*e.payload,
                   "deliveries": e.deliveries.iter().map(Delivery::to_json).collect::<Vec<_>>()})
        })
        .collect();
    json!({"object": "list", "data": data})
}

/// `POST /__mock/redeliver`: queues each event again for every endpoint whose last attempt
/// failed (or that never got it because it was unreachable). Returns how many.
pub fn requeue_failed(st: &mut State) -> usize {
    let mut n = 0;
    for i in 0..st.events.len() {
        let event = &st.events[i];
        let mut failed: Vec<String> = Vec::new();
        for d in &event.deliveries {
            failed.retain(|e| *e != d.endpoint);
            if !d.ok() {
                failed.push(d.endpoint.clone());
            }
        }
        if !failed.is_empty() {
            n += st.requeue(i, Some(&failed));
        }
    }
    n
}

/// `POST /__mock/fail_next` (`count=N`, `status=500`): the next N API requests fail with
/// Stripe's `api_error` before executing (nothing saved under their idempotency keys).
pub fn fail_next(st: &mut State, p: &Params) -> Result<Value, ApiError> {
    p.allow(&["count", "status"])?;
    let count = p.int("count")?.ok_or_else(|| ApiError::missing_param("count"))?;
    let status = p.int("status")?.unwrap_or(500);
    let count = u32::try_from(count).map_err(|_| ApiError::invalid_param("count", "count must be 0 or more"))?;
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (500..600).contains(s))
        .ok_or_else(|| ApiError::invalid_param("status", "status must be a 5xx code"))?;
    (st.fail_next, st.fail_status) = (count, status);
    Ok(json!({"fail_next": count, "status": status}))
}
