//! A stateful mock of the part of Stripe's API tenantd calls (issue 20 item 7), for tests and
//! for the fidelity check with the official Python library (scripts/stripe-fidelity.sh).
//! docs/stripe-mock.md lists what it does and does not do.
//!
//! [`MockStripe::handle`] answers one request given as plain values, so the rules are
//! testable without a socket; [`start`] serves it over HTTP on loopback (`server.rs`, the one
//! file here that knows tiny_http), and `src/bin/mock-stripe.rs` is the same as a program.
//!
//! Every API request runs under one lock on the whole state; the webhooks it caused are sent
//! after the lock is released (the receiver may call the mock back) and before the answer,
//! so a test that gets the answer to a clock advance has its webhooks already.

mod calendar;
mod cycle;
mod error;
mod meters;
mod objects;
mod params;
mod routes;
mod server;
mod state;
mod subscriptions;
mod webhooks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

pub use error::ApiError;
pub use server::{start, RunningMock, StartError};
pub use state::API_VERSION;

use objects::new_id;
use params::Params;
use state::{Ctx, Outgoing, Saved, State};
use webhooks::Sender;

/// A request body larger than this is refused (Stripe's API takes small forms).
pub const MAX_BODY: usize = 1 << 20;
/// Stripe's limit on an `Idempotency-Key` (docs.stripe.com/api/idempotent_requests).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A webhook endpoint configured at start (the program's `--webhook-url`/`--webhook-secret`).
/// More can be added with `POST /v1/webhook_endpoints`.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig").field("url", &self.url).field("secret", &"<redacted>").finish()
    }
}

#[derive(Clone)]
pub struct MockConfig {
    /// When set, requests must carry exactly this key; otherwise any test-mode secret key
    /// (`sk_test_…`, or a restricted `rk_test_…`) is accepted.
    pub api_key: Option<String>,
    pub webhooks: Vec<WebhookConfig>,
    /// Wall time in Unix seconds: the time of objects on no test clock, and the `t` of
    /// webhook signatures. Injected so tests can fix it.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// How long one webhook delivery may take.
    pub delivery_timeout: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            api_key: None,
            webhooks: Vec::new(),
            clock: Arc::new(crate::util::now_unix),
            delivery_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("webhooks", &self.webhooks)
            .field("delivery_timeout", &self.delivery_timeout)
            .finish_non_exhaustive()
    }
}

/// A request as plain values. `url` is the path with its query string.
#[derive(Debug, Clone, Default)]
pub struct MockRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl MockRequest {
    pub fn new(method: &str, url: &str) -> MockRequest {
        MockRequest { method: method.to_ascii_uppercase(), url: url.to_string(), ..MockRequest::default() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> MockRequest {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> MockRequest {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct MockResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl MockResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The mock; clones share one state.
#[derive(Clone)]
pub struct MockStripe {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    sender: Mutex<Sender>,
    agent: ureq::Agent,
    config: MockConfig,
}

impl MockStripe {
    pub fn new(config: MockConfig) -> MockStripe {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.delivery_timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut state = State::default();
        for w in &config.webhooks {
            state.endpoints.push(objects::Endpoint {
                id: new_id("we"),
                created: (config.clock)(),
                url: w.url.clone(),
                secret: w.secret.clone(),
                enabled_events: vec!["*".into()],
            });
        }
        MockStripe { inner: Arc::new(Inner { state: Mutex::new(state), sender: Mutex::default(), agent, config }) }
    }

    /// Answers one request: the Stripe API under `/v1/`, the mock's own routes under
    /// `/__mock/`.
    pub fn handle(&self, req: &MockRequest) -> MockResponse {
        let request_id = new_id("req");
        let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
        let raw = if req.method == "POST" { &req.body[..] } else { query.as_bytes() };
        let outcome = match Params::parse(raw) {
            Err(e) => Err(e),
            Ok(p) if path.starts_with("/__mock/") => self.admin(&req.method, path, &p),
            Ok(p) => return self.api(req, path, &p, request_id),
        };
        let (status, body) = match outcome {
            Ok(v) => (200, v),
            Err(e) => (e.status, e.to_json()),
        };
        respond(status, body.to_string(), &request_id, None, req)
    }

    fn api(&self, req: &MockRequest, path: &str, p: &Params, request_id: String) -> MockResponse {
        let key = match self.authenticate(req) {
            Ok(k) => k,
            Err(e) => return respond(e.status, e.to_json().to_string(), &request_id, None, req),
        };
        let idempotency_key = req.header("Idempotency-Key").filter(|_| req.method == "POST").map(str::to_string);
        let mut st = self.inner.state.lock();
        if st.fail_next > 0 {
            st.fail_next -= 1;
            let e =
                ApiError::server(st.fail_status, "An unexpected error occurred (injected: POST /__mock/fail_next).");
            return respond(e.status, e.to_json().to_string(), &request_id, e.should_retry, req);
        }
        let request = format!("{} {path}", req.method);
        if let Some(k) = &idempotency_key {
            if k.len() > MAX_IDEMPOTENCY_KEY {
                let e = ApiError::invalid("The Idempotency-Key header may be at most 255 characters long.");
                return respond(e.status, e.to_json().to_string(), &request_id, None, req);
            }
            if let Some(saved) = st.idempotency.get(&(key.clone(), k.clone())) {
                if saved.request == request && saved.fingerprint == p.fingerprint() {
                    let mut r = respond(saved.status, saved.body.clone(), &request_id, None, req);
                    r.headers.push(("Idempotent-Replayed".into(), "true".into()));
                    return r;
                }
                let e = ApiError::idempotency_conflict(k);
                return respond(e.status, e.to_json().to_string(), &request_id, None, req);
            }
        }
        let ctx = Ctx {
            request_id: Some(request_id.clone()),
            idempotency_key: idempotency_key.clone(),
            wall_now: (self.inner.config.clock)(),
        };
        let result = catch_unwind(AssertUnwindSafe(|| routes::route(&mut st, &ctx, &req.method, path, p)))
            .unwrap_or_else(|_| Err(ApiError { saved: true, ..ApiError::server(500, "The mock Stripe panicked.") }));
        let (status, body, should_retry, saved) = match result {
            Ok(v) => (200, v.to_string(), None, true),
            Err(e) => (e.status, e.to_json().to_string(), e.should_retry, e.saved),
        };
        if let (Some(k), true) = (idempotency_key, saved) {
            let entry = Saved { request, fingerprint: p.fingerprint(), status, body: body.clone() };
            st.idempotency.insert((key, k), entry);
        }
        let outbox = std::mem::take(&mut st.outbox);
        drop(st);
        self.send(outbox);
        respond(status, body, &request_id, should_retry, req)
    }

    /// The API key of a request, or Stripe's 401.
    fn authenticate(&self, req: &MockRequest) -> Result<String, ApiError> {
        let Some(auth) = req.header("Authorization").filter(|a| !a.trim().is_empty()) else {
            return Err(ApiError::unauthorized(
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            ));
        };
        let key = auth.strip_prefix("Bearer ").map(str::trim).unwrap_or_default();
        let tail = key.len().saturating_sub(4);
        let masked = format!("{}****{}", key.get(..8).unwrap_or(""), key.get(tail..).unwrap_or(""));
        let ok = match &self.inner.config.api_key {
            Some(expected) => key == expected,
            None => key.starts_with("sk_test_") || key.starts_with("rk_test_"),
        };
        if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
            return Err(ApiError::unauthorized("The mock Stripe takes test-mode keys only (sk_test_…)."));
        }
        if !ok {
            return Err(ApiError::unauthorized(format!("Invalid API Key provided: {masked}")));
        }
        Ok(key.to_string())
    }

    fn admin(&self, method: &str, path: &str, p: &Params) -> Result<Value, ApiError> {
        let segs: Vec<&str> = path.trim_start_matches("/__mock/").split('/').collect();
        match (method, &segs[..]) {
            ("GET", ["events"]) => Ok(webhooks::events_json(&self.inner.state.lock(), p.get("type"))),
            ("POST", ["events", id, "resend"]) => {
                let n = {
                    let mut st = self.inner.state.lock();
                    let i =
                        st.events.iter().position(|e| e.id == *id).ok_or_else(|| ApiError::not_found("event", id))?;
                    st.requeue(i, None)
                };
                self.flush();
                Ok(json!({"resent": n}))
            }
            ("POST", ["redeliver"]) => {
                let n = webhooks::requeue_failed(&mut self.inner.state.lock());
                self.flush();
                Ok(json!({"redelivered": n}))
            }
            ("POST", ["fail_next"]) => webhooks::fail_next(&mut self.inner.state.lock(), p),
            _ => Err(ApiError::unrecognized_url(method, path)),
        }
    }

    fn flush(&self) {
        let outbox = std::mem::take(&mut self.inner.state.lock().outbox);
        self.send(outbox);
    }

    /// Sends `outbox` and anything other requests queued meanwhile, unless another thread is
    /// already sending (it takes these too).
    fn send(&self, outbox: Vec<Outgoing>) {
        {
            let mut sender = self.inner.sender.lock();
            sender.queue.extend(outbox);
            if sender.busy || sender.queue.is_empty() {
                return;
            }
            sender.busy = true;
        }
        loop {
            let next = {
                let mut sender = self.inner.sender.lock();
                let next = sender.queue.pop_front();
                sender.busy = next.is_some();
                next
            };
            let Some(out) = next else { return };
            let delivery = webhooks::post(&self.inner.agent, &out, (self.inner.config.clock)());
            let mut st = self.inner.state.lock();
            if let Some(e) = st.events.iter_mut().find(|e| e.id == out.event_id) {
                e.deliveries.push(delivery);
            }
        }
    }

    /// Adds a webhook endpoint receiving every event; returns its id.
    pub fn add_webhook(&self, url: &str, secret: &str) -> String {
        let id = new_id("we");
        let endpoint = objects::Endpoint {
            id: id.clone(),
            created: (self.inner.config.clock)(),
            url: url.to_string(),
            secret: secret.to_string(),
            enabled_events: vec!["*".into()],
        };
        self.inner.state.lock().endpoints.push(endpoint);
        id
    }

    /// Makes the next `count` API requests fail with `status` (a 5xx).
    pub fn fail_next(&self, count: u32, status: u16) {
        let mut st = self.inner.state.lock();
        (st.fail_next, st.fail_status) = (count, status);
    }

    /// What `GET /__mock/events` answers.
    pub fn events(&self) -> Value {
        webhooks::events_json(&self.inner.state.lock(), None)
    }

    /// What `POST /__mock/redeliver` does; returns how many deliveries were retried.
    pub fn redeliver(&self) -> usize {
        let n = webhooks::requeue_failed(&mut self.inner.state.lock());
        self.flush();
        n
    }
}

fn respond(status: u16, body: String, request_id: &str, should_retry: Option<bool>, req: &MockRequest) -> MockResponse {
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Request-Id".to_string(), request_id.to_string()),
        ("Stripe-Version".to_string(), req.header("Stripe-Version").unwrap_or(API_VERSION).to_string()),
    ];
    if let Some(k) = req.header("Idempotency-Key") {
        headers.push(("Idempotency-Key".to_string(), k.to_string()));
    }
    if let Some(r) = should_retry {
        headers.push(("Stripe-Should-Retry".to_string(), r.to_string()));
    }
    MockResponse { status, headers, body }
}
