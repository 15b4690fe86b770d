//! Fair queueing between tenants. tiny_http hands out requests in arrival order, so a tenant
//! flooding the server (even with requests that end in a cheap 429) puts every other tenant's
//! request behind all of its own. Workers therefore take requests through this queue: one
//! worker at a time (the feeder) waits on tiny_http, moves everything that has arrived into a
//! queue per tenant, and workers serve the tenants round-robin, one request each. A quiet
//! tenant's request waits behind at most one request of each busy tenant, not behind all of
//! them (measured in docs/benchmarks.md, "Noisy neighbour").
//!
//! The tenant key is read cheaply from the request line and headers (the slug in
//! `/api/v1/t/{slug}` or `/admin/t/{slug}`, else `X-Tenant`, else `Host`); it only decides
//! queueing order, never access.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Requests queued per worker wake-up at most: the rest stay in tiny_http's queue.
const DRAIN_MAX: usize = 256;

#[derive(Default)]
struct Inner {
    queues: HashMap<String, VecDeque<tiny_http::Request>>,
    /// Keys with queued requests, in round-robin order.
    order: VecDeque<String>,
    len: usize,
    /// A worker is waiting on tiny_http for new requests.
    feeding: bool,
}

impl Inner {
    fn push(&mut self, rq: tiny_http::Request) {
        let key = tenant_key(&rq);
        let q = self.queues.entry(key.clone()).or_default();
        if q.is_empty() {
            self.order.push_back(key);
        }
        q.push_back(rq);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<tiny_http::Request> {
        let key = self.order.pop_front()?;
        let q = self.queues.get_mut(&key)?;
        let rq = q.pop_front();
        if q.is_empty() {
            self.queues.remove(&key);
        } else {
            self.order.push_back(key);
        }
        self.len -= usize::from(rq.is_some());
        rq
    }
}

/// What a worker got.
pub enum Next {
    Request(Box<tiny_http::Request>),
    /// Nothing within the poll interval (or tiny_http was unblocked for shutdown).
    Idle,
    /// tiny_http's accept loop failed.
    Failed(std::io::Error),
}

#[derive(Default)]
pub struct FairQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl FairQueue {
    /// The next request to serve, waiting up to `poll`.
    pub fn next(&self, http: &tiny_http::Server, poll: Duration) -> Next {
        let mut inner = self.inner.lock();
        loop {
            if let Some(rq) = inner.pop() {
                return Next::Request(Box::new(rq));
            }
            if inner.feeding {
                if self.ready.wait_for(&mut inner, poll).timed_out() && inner.len == 0 {
                    return Next::Idle;
                }
                continue;
            }
            inner.feeding = true;
            let got = parking_lot::MutexGuard::unlocked(&mut inner, || http.recv_timeout(poll));
            inner.feeding = false;
            match got {
                Ok(Some(rq)) => {
                    inner.push(rq);
                    // Everything else already waiting joins its tenant's queue now, so the
                    // round-robin sees it.
                    while inner.len < DRAIN_MAX {
                        match http.try_recv() {
                            Ok(Some(rq)) => inner.push(rq),
                            _ => break,
                        }
                    }
                    for _ in 1..inner.len {
                        self.ready.notify_one();
                    }
                    // Someone must feed while this worker serves.
                    self.ready.notify_one();
                }
                Ok(None) => {
                    self.ready.notify_one();
                    return Next::Idle;
                }
                Err(e) => {
                    self.ready.notify_one();
                    return Next::Failed(e);
                }
            }
        }
    }

    /// Whatever is still queued (at shutdown, after the workers left).
    pub fn take_all(&self) -> Vec<tiny_http::Request> {
        let mut inner = self.inner.lock();
        std::iter::from_fn(|| inner.pop()).collect()
    }
}

/// The tenant a request is about, for queueing order only.
fn tenant_key(rq: &tiny_http::Request) -> String {
    let url = rq.url();
    for prefix in ["/api/v1/t/", "/admin/t/"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            return rest[..end.min(64)].to_string();
        }
    }
    for name in ["X-Tenant", "Host"] {
        if let Some(h) = rq.headers().iter().find(|h| h.field.equiv(name)) {
            return h.value.as_str().chars().take(64).collect();
        }
    }
    String::new()
}
