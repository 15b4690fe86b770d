//! What tests/stripe_mock.rs and tests/stripe_mock_hooks.rs share: the mock started on a
//! loopback port, a client for its API and a webhook receiver.
#![allow(dead_code, reason = "each test crate uses part of it")]

pub use std::sync::atomic::{AtomicU16, Ordering};
pub use std::sync::mpsc::{channel, Receiver};
pub use std::sync::Arc;

pub use serde_json::Value;
pub use tenantd::billing::stripe::mock::{self, MockConfig, RunningMock, WebhookConfig};
pub use tenantd::billing::stripe::signature::{self, SignatureError, DEFAULT_TOLERANCE};

/// 2026-01-01T00:00:00Z, where every test clock starts.
pub const T0: i64 = 1_767_225_600;
pub const DAY: i64 = 86_400;
pub const SECRET: &str = "whsec_mock_test_secret";
pub const KEY: &str = "sk_test_tenantd";

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.json);
        self.json
    }

    pub fn error(&self) -> &Value {
        &self.json["error"]
    }
}

pub struct Api {
    pub base: String,
    pub agent: ureq::Agent,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api { base, agent: ureq::Agent::config_builder().http_status_as_error(false).build().into() }
    }

    pub fn call(&self, method: &str, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
        let url = format!("{}{path}", self.base);
        let resp = match method {
            "POST" => {
                let mut req = self.agent.post(&url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send_form(form.iter().copied())
            }
            _ => {
                let mut req = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                for (k, v) in form {
                    req = req.query(*k, *v);
                }
                req.call()
            }
        };
        let mut resp = resp.unwrap();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap();
        Resp { status: resp.status().as_u16(), headers, json: serde_json::from_str(&body).unwrap_or(Value::Null) }
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("POST", path, form, &[("Authorization", &format!("Bearer {KEY}"))])
    }

    pub fn post_key(&self, path: &str, form: &[(&str, &str)], idempotency_key: &str) -> Resp {
        let auth = format!("Bearer {KEY}");
        self.call("POST", path, form, &[("Authorization", &auth), ("Idempotency-Key", idempotency_key)])
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        self.call("GET", path, query, &[("Authorization", &format!("Bearer {KEY}"))])
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, &[], &[("Authorization", &format!("Bearer {KEY}"))])
    }

    /// A test clock at `T0`, a customer on it paying with `pm`, and a monthly price.
    pub fn customer_on_clock(&self, pm: Option<&str>) -> (String, String) {
        let clock = self.post("/v1/test_helpers/test_clocks", &[("frozen_time", &T0.to_string())]).ok();
        let clock = clock["id"].as_str().unwrap().to_string();
        let mut form = vec![("email", "owner@acme.test"), ("test_clock", clock.as_str())];
        form.extend(pm.map(|pm| ("payment_method", pm)));
        let customer = self.post("/v1/customers", &form).ok();
        (clock, customer["id"].as_str().unwrap().to_string())
    }

    pub fn price(&self, cents: i64, interval: &str) -> String {
        let cents = cents.to_string();
        let form = [
            ("currency", "usd"),
            ("unit_amount", cents.as_str()),
            ("product_data[name]", "Pro"),
            ("recurring[interval]", interval),
        ];
        self.post("/v1/prices", &form).ok()["id"].as_str().unwrap().to_string()
    }

    pub fn advance(&self, clock: &str, to: i64) -> Value {
        self.post(&format!("/v1/test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", &to.to_string())]).ok()
    }

    pub fn sub(&self, id: &str) -> Value {
        self.get(&format!("/v1/subscriptions/{id}"), &[]).ok()
    }
}

/// A webhook receiver answering `status` (200 unless a test changes it).
pub struct Hooks {
    pub url: String,
    pub rx: Receiver<(String, Vec<u8>)>,
    pub status: Arc<AtomicU16>,
}

impl Hooks {
    pub fn start() -> Hooks {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/billing/stripe/webhook", server.server_addr().to_ip().unwrap());
        let (tx, rx) = channel();
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let sig = req.headers().iter().find(|h| h.field.equiv("Stripe-Signature")).map(|h| h.value.to_string());
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                // Sent before answering: once the mock has its answer, the test has the event.
                if tx.send((sig.unwrap_or_default(), body)).is_err() {
                    return;
                }
                let _ = req.respond(tiny_http::Response::empty(answer.load(Ordering::SeqCst)));
            }
        });
        Hooks { url, rx, status }
    }

    /// Every delivery so far, each verified: (event, raw body, signature header).
    pub fn received(&self) -> Vec<(Value, Vec<u8>, String)> {
        self.rx
            .try_iter()
            .map(|(sig, body)| {
                let v = signature::verify(&sig, &body, &[SECRET], DEFAULT_TOLERANCE, tenantd::util::now_unix());
                assert!(v.is_ok(), "delivery does not verify: {v:?}");
                (serde_json::from_slice(&body).unwrap(), body, sig)
            })
            .collect()
    }

    pub fn types(&self) -> Vec<String> {
        self.received().iter().map(|(e, _, _)| e["type"].as_str().unwrap().to_string()).collect()
    }
}

pub fn start() -> (RunningMock, Api, Hooks) {
    let hooks = Hooks::start();
    let config = MockConfig {
        webhooks: vec![WebhookConfig { url: hooks.url.clone(), secret: SECRET.into() }],
        ..MockConfig::default()
    };
    let running = mock::start("127.0.0.1:0", config).unwrap();
    let api = Api::new(running.base_url());
    (running, api, hooks)
}

pub fn subscribe(api: &Api, customer: &str, price: &str, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("customer", customer), ("items[0][price]", price)];
    form.extend_from_slice(extra);
    api.post("/v1/subscriptions", &form).ok()
}
