//! The server: tiny_http accepts connections and parses headers on its own threads; a pool of
//! workers (sized by `workers`, see there) each loops `recv()` and runs one request to the end:
//! parse & limits → route → resolve tenant → tenant status → access → handler → respond.
//! A panic in a handler becomes a 500 with a log line; the worker lives on.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::access::{check_access, cors_headers, is_sign_in, preflight, route};
use super::resolve;
use super::response::{self, error_response};
use super::router::Router;
use super::workers::WorkerPool;
use super::{Ctx, Method, Req, Resp};
use crate::app::App;
use crate::auth::Principal;
use crate::catalog::tenants::{TenantRecord, TenantStatus};
use crate::error::{Error, Result};

/// Shared by every worker.
pub struct ServerState {
    pub app: Arc<App>,
    pub router: Router,
    pub draining: AtomicBool,
    pub inflight: AtomicUsize,
    pub requests: AtomicU64,
    pub panics: AtomicU64,
    pub started: Instant,
    pub metrics: crate::metrics::Metrics,
    pub pool: WorkerPool,
    /// Round-robin between tenants in front of tiny_http's FIFO (see `fair`).
    pub fair: super::fair::FairQueue,
    /// Held-back 429s of throttled tenants (see `tarpit`); `None` when off or not started.
    pub(super) tarpit: Option<super::tarpit::Tarpit>,
    /// Unix time of the last successful usage flush and audit anchoring (for lag metrics).
    pub last_flush: AtomicU64,
    pub last_anchor: AtomicU64,
    /// The last round of health I/O checks (see `api::health`).
    pub health_cache: parking_lot::Mutex<Option<(Instant, Vec<crate::api::health::Check>)>>,
    request_seq: AtomicU64,
    request_prefix: String,
    /// tiny_http's accept loop: connections, back-offs for want of descriptors, and whether it
    /// died (liveness fails then, and the server exits).
    pub accept: Arc<tiny_http::AcceptStats>,
}

impl ServerState {
    pub fn new(app: Arc<App>, router: Router, accept: Arc<tiny_http::AcceptStats>) -> ServerState {
        let metrics =
            crate::metrics::Metrics::new(router.routes().iter().map(|r| (r.method.as_str(), r.template())).collect());
        let c = &app.config;
        let pool = WorkerPool::new(c.workers_min, c.workers_max(), Duration::from_secs(c.workers_idle_seconds));
        let now = crate::util::now_unix().max(0) as u64;
        ServerState {
            metrics,
            pool,
            fair: Default::default(),
            tarpit: start_tarpit(&app),
            last_flush: AtomicU64::new(now),
            last_anchor: AtomicU64::new(now),
            health_cache: parking_lot::Mutex::new(None),
            app,
            router,
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            started: Instant::now(),
            request_seq: AtomicU64::new(0),
            request_prefix: crate::util::random_hex(4),
            accept,
        }
    }

    /// Writes the answer, or hands it to the tarpit when it refuses a throttled tenant.
    fn respond(&self, rq: tiny_http::Request, resp: Resp, id: &str, tenant: Option<&TenantRecord>) {
        let hsts = self.app.config.hsts_max_age_seconds;
        let hold = match (&self.tarpit, super::tarpit::delay(self.app.config.limits.tarpit_ms)) {
            (Some(t), Some(d))
                if resp.status == 429 && tenant.is_some_and(|t| crate::limits::is_throttled(&self.app, &t.id)) =>
            {
                Some((t, d))
            }
            _ => None,
        };
        match hold {
            Some((tarpit, d)) => {
                let held = Box::new(super::tarpit::Held { rq, resp, id: id.to_string(), due: Instant::now() + d });
                if let Err(h) = tarpit.hold(held) {
                    write_response(h.rq, h.resp, &h.id, hsts, false);
                }
            }
            // While draining, each answer ends its connection, so clients move to another
            // server instead of sending more on a connection about to close.
            None => write_response(rq, resp, id, hsts, self.draining.load(Ordering::Relaxed)),
        }
    }

    fn next_request_id(&self) -> String {
        format!("{}{:08x}", self.request_prefix, self.request_seq.fetch_add(1, Ordering::Relaxed))
    }
}

pub use super::stop::StopReason;
use super::stop::ThreadGuard;

/// A started server; `http::stop` stops it.
/// A thread that runs `f` until the flag it is given is set (at shutdown).
fn stoppable(
    name: &str,
    f: impl FnOnce(&std::sync::atomic::AtomicBool) + Send + 'static,
) -> std::io::Result<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || f(&flag))?;
    Ok((handle, stop))
}

pub struct RunningServer {
    pub(super) http: Arc<tiny_http::Server>,
    pub state: Arc<ServerState>,
    pub(super) watcher: Option<JoinHandle<()>>,
    pub(super) watcher_stop: mpsc::Sender<()>,
    pub(super) scaler: Option<JoinHandle<()>>,
    pub(super) scaler_stop: mpsc::Sender<()>,
    pub(super) stop_rx: mpsc::Receiver<StopReason>,
    pub(super) stop_tx: mpsc::Sender<StopReason>,
    /// The replicator (`[replicas] count` > 0) and its stop flag.
    pub(super) replicator: Option<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)>,
    /// The CDN syncer (`[cdn] edges`) and its stop flag.
    pub(super) cdn_syncer: Option<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)>,
    /// The cluster directory's puller (`[cluster]`) and its stop flag.
    pub(super) cluster_sync: Option<(JoinHandle<()>, Arc<std::sync::atomic::AtomicBool>)>,
    addr: SocketAddr,
}

/// Binds `listen` and starts the workers and the catalog watcher.
pub fn start(app: Arc<App>, listen: &str) -> Result<RunningServer> {
    start_with_router(app, listen, crate::api::router())
}

/// `start` with another route table (tests add routes that panic or misbehave on purpose).
pub fn start_with_router(app: Arc<App>, listen: &str, router: Router) -> Result<RunningServer> {
    super::listen::check_fd_budget(app.config.max_open_tenants, super::listen::raise_fd_limit())?;
    let timeouts = tiny_http::Timeouts {
        idle: Duration::from_secs(app.config.keep_alive_idle_seconds),
        active: Duration::from_secs(app.config.read_timeout_seconds),
    };
    let http = super::listen::bind(listen, timeouts)?;
    let addr = http.server_addr().to_ip().ok_or_else(|| Error::Internal("server is not on an IP socket".into()))?;
    let http = Arc::new(http);
    crate::limits::alerts::start(&app);
    let state = Arc::new(ServerState::new(app.clone(), router, http.accept_stats().clone()));
    let (stop_tx, stop_rx) = mpsc::channel();
    for _ in 0..state.pool.min {
        add_worker(&http, &state, &stop_tx)?;
    }
    let (scaler_stop, scaler_rx) = mpsc::channel();
    let scaler = {
        let (http, state, stop_tx) = (http.clone(), state.clone(), stop_tx.clone());
        std::thread::Builder::new().name("tenantd-scaler".into()).spawn(move || {
            let _guard = ThreadGuard { stop: stop_tx.clone() };
            super::background::scale_workers(&http, &state, &stop_tx, &scaler_rx)
        })?
    };
    let (watcher_stop, watcher_rx) = mpsc::channel();
    let watcher = {
        let (state, stop_tx) = (state.clone(), stop_tx.clone());
        std::thread::Builder::new().name("tenantd-catalog-watch".into()).spawn(move || {
            let _guard = ThreadGuard { stop: stop_tx };
            super::background::watch_catalog(&state, &watcher_rx)
        })?
    };
    let replicator =
        app.replication.clone().map(|r| stoppable("tenantd-replicator", move |stop| r.run(stop))).transpose()?;
    let cdn_syncer = app.cdn.clone().map(|c| stoppable("tenantd-cdn-sync", move |stop| c.run(stop))).transpose()?;
    let cluster_sync = app
        .cluster
        .is_some()
        .then(|| {
            let app = app.clone();
            stoppable("tenantd-cluster-sync", move |stop| crate::cluster::run_sync(&app, stop))
        })
        .transpose()?;
    warm_platform_views(&app);
    crate::log::info(&format!(
        "listening on http://{addr} with {}..{} workers, data dir {}",
        state.pool.min,
        state.pool.max,
        app.config.data_dir.display()
    ));
    Ok(RunningServer {
        http,
        state,
        watcher: Some(watcher),
        watcher_stop,
        scaler: Some(scaler),
        scaler_stop,
        stop_rx,
        stop_tx,
        replicator,
        cdn_syncer,
        cluster_sync,
        addr,
    })
}

pub(super) fn add_worker(
    http: &Arc<tiny_http::Server>,
    state: &Arc<ServerState>,
    stop: &mpsc::Sender<StopReason>,
) -> Result<()> {
    let (http, state2, stop) = (http.clone(), state.clone(), stop.clone());
    state.pool.add(|i| {
        std::thread::Builder::new()
            .name(format!("tenantd-worker-{i}"))
            .spawn(move || worker_loop(&http, &state2, &stop))
    })?;
    Ok(())
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A free worker checks now and then whether the pool is shrinking.
const WORKER_POLL: Duration = Duration::from_secs(1);

fn worker_loop(http: &tiny_http::Server, state: &ServerState, stop: &mpsc::Sender<StopReason>) {
    use super::fair::Next;
    let _guard = ThreadGuard { stop: stop.clone() };
    loop {
        match state.fair.next(http, WORKER_POLL) {
            Next::Request(rq) => {
                state.pool.start_request();
                serve_one(state, *rq);
                state.pool.end_request();
                if state.pool.should_retire() {
                    return;
                }
            }
            // An unblock marker from `shutdown` (it reads like a timeout), or a retirement.
            Next::Idle if state.draining.load(Ordering::SeqCst) || state.pool.should_retire() => return,
            Next::Idle => {}
            Next::Failed(_) if state.draining.load(Ordering::SeqCst) => return,
            Next::Failed(e) => {
                crate::log::error(&format!(
                    "accept loop failed: {e}; shutting down so the service manager restarts us"
                ));
                let _ = stop.send(StopReason::AcceptFailed);
                return;
            }
        }
    }
}

/// On a large platform, computes the console's and the platform dashboard's documents in the
/// background (`api::platform_views::warm`), so that their first reads do not wait seconds.
fn warm_platform_views(app: &Arc<App>) {
    let app = app.clone();
    let spawned = std::thread::Builder::new().name("tenantd-analytics-warm".into()).spawn(move || {
        if let Err(e) = crate::api::platform_views::warm(&app) {
            crate::log::warn(&format!("could not precompute the platform analytics: {}", e.log_detail()));
        }
    });
    if let Err(e) = spawned {
        crate::log::warn(&format!("could not start precomputing the platform analytics: {e}"));
    }
}

fn start_tarpit(app: &App) -> Option<super::tarpit::Tarpit> {
    super::tarpit::delay(app.config.limits.tarpit_ms)?;
    let hsts = app.config.hsts_max_age_seconds;
    match super::tarpit::Tarpit::start(move |h| write_response(h.rq, h.resp, &h.id, hsts, false)) {
        Ok(t) => Some(t),
        Err(e) => {
            crate::log::warn(&format!(
                "could not start the tarpit thread (throttled tenants are answered at once): {e}"
            ));
            None
        }
    }
}

pub(super) fn serve_one(state: &ServerState, mut rq: tiny_http::Request) {
    state.inflight.fetch_add(1, Ordering::SeqCst);
    state.requests.fetch_add(1, Ordering::Relaxed);
    let id = state.next_request_id();
    let started = Instant::now();
    let method = rq.method().as_str().to_string();
    // The per-thread CPU clock is a syscall here (~0.5 µs, no vDSO): read it on one request in
    // CPU_SAMPLE and count that request's CPU time CPU_SAMPLE times. Over an hour of traffic the
    // estimate is close; for a single request it is not, and it is only reported per hour.
    let sampled = state.requests.load(Ordering::Relaxed).is_multiple_of(CPU_SAMPLE);
    let cpu = if sampled { cpu_time::ThreadTime::try_now().ok() } else { None };
    let mut who = Who::default();
    let mut bytes_in = 0;
    let mut client = None;
    let unmatched = state.metrics.label_index(crate::metrics::UNMATCHED);
    let (resp, route) = match read_request(state, &mut rq, &id) {
        Ok(req) => {
            bytes_in = req.body.len() as u64;
            client = req.client;
            dispatch(state, &req, &mut who)
        }
        Err(e) => (error_response(&e), unmatched),
    };
    let rows = crate::limits::meter::take_rows();
    if let Some(t) = &who.tenant {
        if state.app.config.limits.enabled {
            let sample = crate::limits::meter::Sample {
                status: resp.status,
                bytes_in,
                bytes_out: resp.body.len() as u64,
                latency_us: started.elapsed().as_micros() as u64,
                cpu_us: cpu.and_then(|c| c.try_elapsed().ok()).map(|d| d.as_micros() as u64 * CPU_SAMPLE).unwrap_or(0),
                user: who.user,
            };
            state.app.limits.meter.record(&t.id, crate::util::now_unix(), &sample, rows);
        }
        if let Some(p) = &who.principal {
            if matches!(resp.status, 403 | 404) {
                crate::security::threats::miss(&state.app, t, p.actor_str(), client, crate::util::now_unix());
            }
            if rows.0 > 0 {
                let now = crate::util::now_unix();
                crate::security::threats::rows_read(&state.app, t, p.actor_str(), client, rows.0, now);
            }
        }
    }
    if resp.status >= 500 {
        crate::log::request(
            "WARN",
            &id,
            &format!(
                "{method} {} -> {} in {:.1} ms",
                state.metrics.label(route),
                resp.status,
                started.elapsed().as_secs_f64() * 1000.0
            ),
        );
    }
    // Counted before the response is written: a client that reads its answer and then scrapes
    // /metrics must find it there (a test did not, once the server got faster).
    state.metrics.observe(route, resp.status, started.elapsed().as_micros() as u64, resp.error);
    state.respond(rq, resp, &id, who.tenant.as_deref());
    state.inflight.fetch_sub(1, Ordering::SeqCst);
}

/// One request in this many has its CPU time measured (see `serve_one`).
const CPU_SAMPLE: u64 = 8;

const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Headers, limits and body. Requests whose length is ambiguous are refused unread: a
/// front proxy and we could disagree about where the body ends (request smuggling).
fn read_request(state: &ServerState, rq: &mut tiny_http::Request, id: &str) -> Result<Req> {
    let method = Method::parse(rq.method().as_str())
        .ok_or_else(|| Error::MethodNotAllowed { allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".into() })?;
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
        .collect();
    // Our tiny_http fork stops reading a head past 64 KiB (431 and the connection closes);
    // within that, a request with an unreasonable number or size of headers is not acted on.
    let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Err(Error::HeadersTooLarge(format!(
            "at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes of them"
        )));
    }
    let count = |name: &str| headers.iter().filter(|(k, _)| k == name).count();
    if count("content-length") > 1 || (count("content-length") > 0 && count("transfer-encoding") > 0) {
        return Err(Error::invalid("ambiguous_length", "send either Content-Length or Transfer-Encoding, once"));
    }
    let limit = state.app.config.max_body_bytes;
    if rq.body_length().is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let mut body = Vec::new();
    rq.as_reader().take(limit as u64 + 1).read_to_end(&mut body).map_err(|e| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::RequestTimeout,
        _ => Error::invalid("bad_body", format!("could not read the request body: {e}")),
    })?;
    if body.len() > limit {
        return Err(Error::PayloadTooLarge { limit });
    }
    let (raw_path, segments, query) = resolve::split_target(rq.url())?;
    let remote = rq.remote_addr().copied();
    let forwarded = headers.iter().find(|(k, _)| k == "x-forwarded-for").map(|(_, v)| v.as_str());
    let client = crate::security::client_ip(remote.map(|a| a.ip()), forwarded, &state.app.trusted_proxies);
    Ok(Req { id: id.to_string(), method, raw_path, segments, query, headers, body, remote, client })
}

/// What the meter needs to know about a request once it is routed and authenticated.
#[derive(Default)]
struct Who {
    tenant: Option<Arc<TenantRecord>>,
    user: Option<i64>,
    principal: Option<Principal>,
}

/// Routes and runs a request; returns the response and the route's metrics label index.
fn dispatch(state: &ServerState, req: &Req, who: &mut Who) -> (Resp, usize) {
    let ui = req.segments.get(1).is_some_and(|s| s == "admin");
    let fail = |e: &Error| if ui { crate::ui::error_page(e, &req.raw_path) } else { error_response(e) };
    if req.method == Method::Options && !ui {
        let label = state.metrics.label_index(crate::metrics::PREFLIGHT);
        return (preflight(state, req).unwrap_or_else(|e| fail(&e)), label);
    }
    let (matched, tenant) = match route(state, req) {
        Ok(m) => m,
        Err(e) => return (fail(&e), state.metrics.label_index(crate::metrics::UNMATCHED)),
    };
    let label = matched.index;
    who.tenant = tenant.clone();
    if let Some(t) = &tenant {
        if t.status == TenantStatus::Suspended && req.method.is_write() {
            return (fail(&Error::TenantSuspended), label);
        }
        // Unpaid past the grace period: reads, exports and the billing routes (where paying
        // happens) keep working; other writes wait for payment.
        if t.billing_hold && req.method.is_write() && !matched.route.pattern.contains("billing") {
            return (fail(&Error::PaymentRequired { slug: t.slug.to_string() }), label);
        }
    }
    if let Some(t) = tenant.as_deref() {
        if let Err(e) = crate::auth::check_address(&state.app, t, &req.caller()) {
            return (fail(&e), label);
        }
    }
    let principal = match check_access(state, req, &matched, tenant.as_deref()) {
        Ok(p) => p,
        Err(e) => return (fail(&e), label),
    };
    who.user = principal.as_ref().and_then(|p| p.user()).map(|u| u.id);
    who.principal = principal.clone();
    // Limits: rate (tenant, then caller, then global), then a concurrency slot held until the
    // handler returns. Sign-in routes are limited per source address instead.
    let mut rate: Option<crate::limits::gcra::Decision> = None;
    let limited = state.app.config.limits.enabled;
    let admitted = match tenant.as_deref() {
        _ if !limited => Ok(None),
        Some(t) => crate::limits::admit(&state.app, t, principal.as_ref().map(|p| p.actor_str())).and_then(|d| {
            rate = Some(d);
            crate::limits::enter(&state.app, t).map(Some)
        }),
        None if is_sign_in(matched.route) => crate::limits::admit_address(&state.app, req.client).map(|d| {
            rate = d;
            None
        }),
        None => Ok(None),
    };
    let _slot = match admitted {
        Ok(slot) => slot,
        Err(e) => return (fail(&e), label),
    };
    let ctx = Ctx { app: &state.app, state, params: matched.params, tenant, principal, req };
    let handler = matched.route.handler;
    let result = catch_unwind(AssertUnwindSafe(|| handler(&ctx, req)));
    let mut resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let e = crate::limits::storage_refusal(&state.app, e);
            if response::error_parts(&e).0 >= 500 {
                let route = state.metrics.label(label);
                crate::log::request("ERROR", &req.id, &format!("{route}: {}", e.log_detail()));
            }
            fail(&e)
        }
        Err(panic) => {
            state.panics.fetch_add(1, Ordering::Relaxed);
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            let route = state.metrics.label(label);
            crate::log::request("ERROR", &req.id, &format!("handler for {route} panicked: {msg}"));
            fail(&Error::Internal(msg))
        }
    };
    if let Some(t) = who.tenant.as_deref() {
        cors_headers(state, t, req, &mut resp);
    }
    // Every answer of a limited route says where its caller stands, refusals included (the
    // IETF RateLimit header fields draft: clients read them on the 429 first).
    if let (Some(d), None) = (rate, resp.rate_limit) {
        let remaining = if resp.status == 429 { 0 } else { d.remaining };
        resp.rate_limit = Some([d.limit, remaining, d.reset_s]);
    }
    (resp, label)
}

fn write_response(rq: tiny_http::Request, resp: Resp, id: &str, hsts: Option<u64>, close: bool) {
    let mut framing = framing(&rq);
    if close || (resp.status >= 400 && body_left_unread(&rq)) {
        framing.connection = Some("close");
    }
    let wire = response::encode(resp, id, hsts, framing);
    // `into_writer` hands over the connection's writer; dropping it lets tiny_http send the next
    // pipelined answer and read the next request, as `respond` would.
    let mut writer = rq.into_writer();
    let sent = writer.write_all(&wire).and_then(|()| writer.flush());
    drop(writer);
    match sent {
        Err(e)
            if !matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            crate::log::request("INFO", id, &format!("response not sent: {e}"))
        }
        _ => {}
    }
}

/// A body that, if refused unread (413, or an error found before the body is read), our
/// tiny_http fork will not drain: a chunked one, or more than its `DRAIN_LIMIT` declared. The fork ends such a connection after the answer (a lingering close),
/// rather than hold a worker for as long as the client keeps sending.
fn body_left_unread(rq: &tiny_http::Request) -> bool {
    match rq.body_length() {
        Some(n) => n > tiny_http::DRAIN_LIMIT,
        None => rq.headers().iter().any(|h| h.field.equiv("Transfer-Encoding")),
    }
}

/// What tiny_http decided about the request that the encoder must mirror: HEAD, HTTP/1.0, and
/// whether the connection stays open after this answer (tiny_http's `ClientConnection` rules).
fn framing(rq: &tiny_http::Request) -> response::Framing {
    let http10 = *rq.http_version() == tiny_http::HTTPVersion(1, 0);
    let header = rq.headers().iter().find(|h| h.field.equiv("Connection")).map(|h| h.value.as_str());
    let says = |word: &str| header.is_some_and(|v| v.to_ascii_lowercase().contains(word));
    let count = |name: &'static str| rq.headers().iter().filter(|h| h.field.equiv(name)).count();
    // Ambiguous length: the (patched) tiny_http closes after this answer (vendor/tiny_http/PATCHES.md).
    let ambiguous = count("Content-Length") > 1 || (count("Content-Length") > 0 && count("Transfer-Encoding") > 0);
    let connection = if says("close") || says("upgrade") || ambiguous {
        Some("close")
    } else if http10 && says("keep-alive") {
        Some("keep-alive")
    } else if http10 {
        Some("close")
    } else {
        None
    };
    response::Framing { head: *rq.method() == tiny_http::Method::Head, http10, connection }
}
