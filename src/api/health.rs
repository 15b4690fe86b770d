//! Health endpoints in the `application/health+json` shape (draft-inadarei-api-health-check):
//! liveness never touches tenant files; readiness checks the catalog, the data dir and draining.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

const CONTENT_TYPE: &str = "application/health+json";

fn health_response(status: &str, mut body: Value) -> Resp {
    body["status"] = json!(status);
    body["serviceId"] = json!("tenantd");
    body["version"] = json!(env!("CARGO_PKG_VERSION"));
    let code = if status == "fail" { 503 } else { 200 };
    let mut r = Resp::json(code, &body);
    r.content_type = CONTENT_TYPE;
    // Short max-age: load balancers may cache a probe for a second, never longer.
    r.with_header("Cache-Control", "max-age=1")
}

/// The process is up, its workers answer and it still accepts connections. No I/O.
pub fn liveness(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let uptime = ctx.state.started.elapsed().as_secs();
    if ctx.state.accept.failed() {
        // Reachable only over a connection opened before the accept loop died; the server is
        // exiting (see `http::server`), and a probe must not call it alive meanwhile.
        let check = json!({"componentType": "system", "status": "fail", "output": "the accept loop has ended"});
        return Ok(health_response("fail", json!({"checks": {"server:accepting": [check]}})));
    }
    Ok(health_response(
        "pass",
        json!({"checks": {"uptime": [{"componentType": "system", "observedValue": uptime, "observedUnit": "s", "status": "pass"}]}}),
    ))
}

/// One `component:measurement` entry of a health document.
#[derive(Clone)]
pub struct Check {
    key: &'static str,
    status: &'static str,
    value: Value,
    unit: &'static str,
    output: Option<String>,
}

impl Check {
    fn pass(key: &'static str, value: Value, unit: &'static str) -> Check {
        Check { key, status: "pass", value, unit, output: None }
    }

    fn with(mut self, status: &'static str, output: String) -> Check {
        self.status = status;
        self.output = Some(output);
        self
    }
}

/// How long the I/O checks (catalog query, write probe, free space) are reused: a flood of
/// probes costs one round of I/O a second.
const CHECK_TTL: Duration = Duration::from_secs(1);

/// Catalog, data dir and disk, computed at most once per `CHECK_TTL`.
fn io_checks(ctx: &Ctx<'_>) -> Vec<Check> {
    let mut cache = ctx.state.health_cache.lock();
    if let Some((at, checks)) = cache.as_ref() {
        if at.elapsed() < CHECK_TTL {
            return checks.clone();
        }
    }
    let checks = vec![catalog_check(ctx), writable_check(ctx), disk_check(ctx)];
    *cache = Some((Instant::now(), checks.clone()));
    checks
}

fn catalog_check(ctx: &Ctx<'_>) -> Check {
    let t0 = Instant::now();
    let catalog = ctx
        .app
        .catalog
        .conn()
        .and_then(|c| Ok(c.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0))?));
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let check = Check::pass("catalog:responseTime", json!(ms), "ms");
    match catalog {
        Ok(_) => check,
        Err(e) => check.with("fail", format!("catalog query failed: {e}")),
    }
}

fn writable_check(ctx: &Ctx<'_>) -> Check {
    let probe = ctx.app.paths.tmp().join(format!(".ready-{}", crate::util::random_hex(4)));
    let writable = std::fs::create_dir_all(ctx.app.paths.tmp())
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    match writable {
        Ok(()) => Check::pass("datadir:writable", json!(true), ""),
        Err(e) => {
            let dir = ctx.app.config.data_dir.display();
            Check::pass("datadir:writable", json!(false), "")
                .with("fail", format!("cannot write to the data dir {dir}: {e}"))
        }
    }
}

/// Free space on the file system that really holds the data dir (`statvfs` on it, so a tmpfs
/// or a bind mount counts as itself): `fail` under `min_free_disk_bytes`, `warn` under four
/// times that.
fn disk_check(ctx: &Ctx<'_>) -> Check {
    let min = ctx.app.config.min_free_disk_bytes;
    let dir = &ctx.app.config.data_dir;
    let free = match crate::util::free_space(dir) {
        Ok(free) => free,
        Err(e) => {
            return Check::pass("datadir:freeSpace", Value::Null, "bytes")
                .with("fail", format!("cannot measure free space on {}: {e}", dir.display()))
        }
    };
    let check = Check::pass("datadir:freeSpace", json!(free), "bytes");
    if free < min {
        check.with(
            "fail",
            format!("{free} bytes free for the data dir {}, under min_free_disk_bytes = {min}", dir.display()),
        )
    } else if free < min.saturating_mul(4) {
        check.with(
            "warn",
            format!("{free} bytes free for the data dir {}, under 4 x min_free_disk_bytes", dir.display()),
        )
    } else {
        check
    }
}

fn readiness_checks(ctx: &Ctx<'_>) -> Vec<Check> {
    let mut checks = io_checks(ctx);
    let broken = ctx.app.store.unavailable();
    let tenants = Check::pass("tenants:unavailable", json!(broken.len()), "");
    checks.push(match broken.first() {
        // One broken tenant file is that tenant's problem, not the server's.
        Some((id, why)) => tenants.with("warn", format!("{} tenant(s) failed to open, e.g. {id}: {why}", broken.len())),
        None => tenants,
    });
    if let Some(r) = &ctx.app.replication {
        checks.extend(replica_checks(r));
    }
    let draining = ctx.state.draining.load(Ordering::SeqCst);
    let check = Check::pass("server:draining", json!(draining), "");
    checks.push(if draining { check.with("fail", "shutting down".into()) } else { check });
    checks
}

/// One check per replica: `warn` once some tenant's mirror has been past `max_lag_ms` for a
/// minute (its reads go to the primary meanwhile), with the replica's errors.
fn replica_checks(r: &crate::replica::Replication) -> Vec<Check> {
    // `replicas.count` is at most 8; the keys are static like every other check's.
    const KEYS: [&str; 8] = [
        "replica:replica-1:behindSeconds",
        "replica:replica-2:behindSeconds",
        "replica:replica-3:behindSeconds",
        "replica:replica-4:behindSeconds",
        "replica:replica-5:behindSeconds",
        "replica:replica-6:behindSeconds",
        "replica:replica-7:behindSeconds",
        "replica:replica-8:behindSeconds",
    ];
    r.names
        .iter()
        .zip(&r.stats)
        .zip(KEYS)
        .map(|((name, s), key)| {
            let since = s.behind_since.lock().map(|at| at.elapsed().as_secs()).unwrap_or(0);
            let c = Check::pass(key, json!(since), "s");
            if since >= 60 {
                let errors = s.errors.load(Ordering::Relaxed);
                c.with("warn", format!("{name} has been past max_lag_ms for {since} s ({errors} errors)"))
            } else {
                c
            }
        })
        .collect()
}

fn render(checks: &[Check]) -> (String, Value) {
    let status = if checks.iter().any(|c| c.status == "fail") {
        "fail"
    } else if checks.iter().any(|c| c.status == "warn") {
        "warn"
    } else {
        "pass"
    };
    let mut map = serde_json::Map::new();
    for c in checks {
        let mut v = json!({"status": c.status, "observedValue": c.value});
        if !c.unit.is_empty() {
            v["observedUnit"] = json!(c.unit);
        }
        if let Some(o) = &c.output {
            v["output"] = json!(o);
        }
        map.insert(c.key.to_string(), json!([v]));
    }
    (status.to_string(), json!({"checks": map}))
}

/// Ready to take traffic: catalog answers, data dir writable, not draining. 503 otherwise.
pub fn readiness(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let (status, body) = render(&readiness_checks(ctx));
    Ok(health_response(&status, body))
}

/// `GET /health/`: the readiness verdict plus counts an operator glances at.
pub fn summary(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let (status, mut body) = render(&readiness_checks(ctx));
    body["output"] = json!(format!(
        "{} open tenants, {} requests served, {} in flight",
        ctx.app.store.open_count(),
        ctx.state.requests.load(Ordering::Relaxed),
        ctx.state.inflight.load(Ordering::Relaxed)
    ));
    Ok(health_response(&status, body))
}

/// Ratio of hits to lookups, `null` before the first lookup.
pub fn hit_ratio(hits: u64, misses: u64) -> Value {
    if hits + misses == 0 {
        Value::Null
    } else {
        json!(hits as f64 / (hits + misses) as f64)
    }
}

/// Seconds since a unix time stored by the server's background loop.
pub fn lag_seconds(at: &std::sync::atomic::AtomicU64) -> u64 {
    (crate::util::now_unix().max(0) as u64).saturating_sub(at.load(Ordering::Relaxed))
}

/// `GET /health/detailed` (platform admins): readiness plus what the process is doing, each
/// as `component:measurement` with its observed value.
pub fn detailed(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let (app, st) = (ctx.app, ctx.state);
    let mut checks = readiness_checks(ctx);
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut push = |key, value: Value, unit| checks.push(Check::pass(key, value, unit));
    if let Some(p) = crate::metrics::process_stats() {
        push("memory:residentBytes", json!(p.resident_bytes), "bytes");
        push("cpu:processSeconds", json!(p.cpu_seconds), "s");
        push("process:openFds", json!(p.open_fds), "");
        push("process:threads", json!(p.threads), "");
    }
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    push("memory:systemUsedBytes", json!(sys.used_memory()), "bytes");
    push("memory:systemTotalBytes", json!(sys.total_memory()), "bytes");
    push("cpu:loadAverage1m", json!(sysinfo::System::load_average().one), "");
    let store = &app.store.stats;
    push("tenants:open", json!(app.store.open_count()), "");
    push("tenants:capacity", json!(app.config.max_open_tenants), "");
    push("tenants:cacheHitRatio", hit_ratio(n(&store.hits), n(&store.misses)), "");
    push("tenants:evictions", json!(n(&store.evictions)), "");
    push("pool:waits", json!(n(&crate::db::POOL_WAITS)), "");
    push("pool:waitSeconds", json!(n(&crate::db::POOL_WAIT_MICROS) as f64 / 1e6), "s");
    push("sqlite:busyRetries", json!(n(&crate::db::BUSY_RETRIES)), "");
    push("sqlite:groupCommits", json!(n(&crate::store::group::GROUPS)), "");
    if let Some(r) = &app.replication {
        let status = r.status(&[]);
        push("replicas:lagMsP99", json!(status.iter().map(|s| s.lag_ms_p99).max()), "ms");
        push("replicas:shippedBytes", json!(status.iter().map(|s| s.shipped_bytes).sum::<u64>()), "bytes");
        push("replicas:errors", json!(status.iter().map(|s| s.errors).sum::<u64>()), "");
    }
    push("cache:directoryHitRatio", hit_ratio(n(&app.directory.hits), n(&app.directory.misses)), "");
    push("cache:authHitRatio", hit_ratio(n(&app.auth.hits), n(&app.auth.misses)), "");
    let caches = app.cache_stats();
    push("cache:queryHitRatio", hit_ratio(caches.query.hits, caches.query.misses), "");
    push("cache:queryBytes", json!(caches.query.bytes), "bytes");
    push("cache:tenantConfigHitRatio", hit_ratio(caches.tenant_config.hits, caches.tenant_config.misses), "");
    push("workers:size", json!(st.pool.size()), "");
    push("workers:busy", json!(st.pool.busy()), "");
    push("workers:max", json!(st.pool.max), "");
    push("workers:grown", json!(n(&st.pool.grown)), "");
    push("workers:shrunk", json!(n(&st.pool.shrunk)), "");
    push("requests:inFlight", json!(st.inflight.load(Ordering::Relaxed)), "");
    push("requests:total", json!(n(&st.requests)), "");
    push("requests:panics", json!(n(&st.panics)), "");
    push("metering:backlog", json!(app.limits.meter.backlog()), "tenant-hours");
    push("alerts:raised", json!(n(&app.limits.alerts.raised)), "");
    // The background loop flushes every second: a lag of many seconds means it is stuck or failing.
    for (key, at) in [("metering:flushLag", &st.last_flush), ("audit:anchorLag", &st.last_anchor)] {
        let lag = lag_seconds(at);
        let c = Check::pass(key, json!(lag), "s");
        checks.push(if lag > 10 { c.with("warn", format!("last success {lag} s ago")) } else { c });
    }
    if let Some(r) = &app.replication {
        checks.extend(replica_checks(r));
    }
    let (status, body) = render(&checks);
    let mut resp = health_response(&status, body);
    // Platform-admin data: never kept by shared caches.
    resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("cache-control"));
    Ok(resp.with_header("Cache-Control", "private, max-age=1"))
}
