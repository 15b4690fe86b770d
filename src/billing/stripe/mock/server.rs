//! The mock over HTTP: a tiny_http server on a loopback address, a few worker threads, each
//! request turned into a [`MockRequest`] for [`MockStripe::handle`]. Test support, so it
//! refuses any address but loopback.

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{ApiError, MockConfig, MockRequest, MockResponse, MockStripe, MAX_BODY};

/// Enough for a webhook receiver that calls the mock back while a delivery is waiting on it,
/// and for a test client's concurrent calls.
const WORKERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the mock Stripe listens on loopback only; {0} is not a loopback address (use 127.0.0.1:0)")]
    NotLoopback(String),
    #[error("{0} is not an address (use 127.0.0.1:PORT, or 127.0.0.1:0 for any free port)")]
    BadAddress(String),
    #[error("could not listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}

/// A running mock; dropping it stops the server and joins its threads.
pub struct RunningMock {
    mock: MockStripe,
    addr: SocketAddr,
    http: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
}

impl RunningMock {
    /// `http://127.0.0.1:PORT`, what `stripe_api_base` and `stripe.api_base` take.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mock itself, to call in-process (`add_webhook`, `fail_next`, `events`).
    pub fn mock(&self) -> &MockStripe {
        &self.mock
    }
}

impl Drop for RunningMock {
    fn drop(&mut self) {
        // Each unblock wakes one worker waiting in recv(); it is queued if none is waiting.
        for _ in &self.workers {
            self.http.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Starts the mock on `listen` (`127.0.0.1:0` for any free port).
pub fn start(listen: &str, config: MockConfig) -> Result<RunningMock, StartError> {
    let addr: SocketAddr = listen.parse().map_err(|_| StartError::BadAddress(listen.to_string()))?;
    if !addr.ip().is_loopback() {
        return Err(StartError::NotLoopback(listen.to_string()));
    }
    let http = tiny_http::Server::http(addr)
        .map_err(|e| StartError::Listen { addr: listen.to_string(), reason: e.to_string() })?;
    let addr = http.server_addr().to_ip().ok_or_else(|| StartError::BadAddress(listen.to_string()))?;
    let http = Arc::new(http);
    let mock = MockStripe::new(config);
    let mut workers = Vec::with_capacity(WORKERS);
    for n in 0..WORKERS {
        let (http, mock) = (http.clone(), mock.clone());
        let spawned = std::thread::Builder::new().name(format!("mock-stripe-{n}")).spawn(move || {
            while let Ok(req) = http.recv() {
                serve(&mock, req);
            }
        });
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => return Err(StartError::Listen { addr: listen.to_string(), reason: e.to_string() }),
        }
    }
    Ok(RunningMock { mock, addr, http, workers })
}

fn serve(mock: &MockStripe, mut req: tiny_http::Request) {
    let mut body = Vec::new();
    let read = req.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body);
    let response = match read {
        Err(e) => error_response(ApiError::invalid(format!("Could not read the request body: {e}"))),
        Ok(n) if n > MAX_BODY => {
            error_response(ApiError { status: 413, ..ApiError::invalid("The request body is too large.") })
        }
        Ok(_) => {
            let plain = MockRequest {
                method: req.method().as_str().to_string(),
                url: req.url().to_string(),
                headers: req.headers().iter().map(|h| (h.field.as_str().to_string(), h.value.to_string())).collect(),
                body,
            };
            catch_unwind(AssertUnwindSafe(|| mock.handle(&plain)))
                .unwrap_or_else(|_| error_response(ApiError::server(500, "The mock Stripe panicked.")))
        }
    };
    let mut out = tiny_http::Response::from_string(response.body).with_status_code(response.status);
    for (k, v) in &response.headers {
        // Values come from the mock or echo a request header; a control character would
        // split the answer's head.
        if v.bytes().any(|b| b.is_ascii_control()) {
            continue;
        }
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    }
    let _ = req.respond(out);
}

fn error_response(e: ApiError) -> MockResponse {
    MockResponse {
        status: e.status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: e.to_json().to_string(),
    }
}
