//! Resource isolation: plans turned into enforced limits. Rate limits (GCRA) per tenant, per
//! (tenant, user or API key), per source address on sign-in, and one global; per-tenant
//! concurrency caps; seats; storage (SQLite `max_page_count`); per-query time budgets
//! (SQLite's progress handler). Time comes from an injectable clock.

pub mod alerts;
pub mod gcra;
pub mod meter;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::config::PlanConfig;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::store::{TenantConn, TenantHandle, Writer};
use crate::util::IdBuild;
use gcra::{Clock, Decision, Limiter, Quota};

/// Keys each limiter keeps at most (memory bound; idle keys are pruned first).
const MAX_KEYS: usize = 200_000;

/// How long the usage flush reuses a tenant's measured file sizes while the tenant writes no
/// rows: reads do not change them; schema changes and checkpoints show within this bound.
const FILES_REMEASURE: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct LimitStats {
    pub rate_limited: AtomicU64,
    pub concurrency_rejected: AtomicU64,
    pub quota_rejected: AtomicU64,
    pub query_timeouts: AtomicU64,
}

pub struct Limits {
    tenants: Limiter<TenantId, IdBuild>,
    /// Keyed by a hash of (tenant id, caller): both are ids tenantd minted, so the key needs
    /// no allocation per request.
    principals: Limiter<u64, IdBuild>,
    addresses: Limiter<IpAddr>,
    global: Limiter<()>,
    inflight: Mutex<crate::util::IdMap<TenantId, Arc<AtomicUsize>>>,
    plans: Mutex<crate::util::IdMap<TenantId, Arc<PlanConfig>>>,
    assets: Mutex<crate::util::IdMap<TenantId, u64>>,
    /// Each tenant's file bytes (database + WAL) as the usage flush last measured them, and when.
    files: Mutex<crate::util::IdMap<TenantId, (u64, Instant)>>,
    pub meter: meter::Meter,
    pub alerts: alerts::Alerts,
    /// Tenants that kept hammering past their limit: throttled to `throttle_factor` of their
    /// rate until the instant stored here (monotonic ns), plus recent refusal counts.
    throttled: Mutex<crate::util::IdMap<TenantId, (u64, u64, u64)>>,
    clock: Arc<dyn Clock>,
    pub stats: LimitStats,
    /// When usage was last flushed, and each tenant's request rate over that interval.
    rates: Mutex<(Option<std::time::Instant>, crate::util::IdMap<TenantId, f64>)>,
}

impl Limits {
    pub fn new(clock: Arc<dyn Clock>) -> Limits {
        Limits {
            tenants: Limiter::new(clock.clone(), MAX_KEYS),
            principals: Limiter::new(clock.clone(), MAX_KEYS),
            addresses: Limiter::new(clock.clone(), MAX_KEYS),
            global: Limiter::new(clock.clone(), 16),
            inflight: Mutex::default(),
            plans: Mutex::default(),
            assets: Mutex::default(),
            files: Mutex::default(),
            meter: meter::Meter::default(),
            alerts: alerts::Alerts::default(),
            throttled: Mutex::default(),
            clock: clock.clone(),
            stats: LimitStats::default(),
            rates: Mutex::default(),
        }
    }

    /// Plans are re-read after any catalog change (a plan change takes effect without restart).
    pub fn invalidate(&self) {
        self.plans.lock().clear();
        self.assets.lock().clear();
    }

    /// Keys held by the limiters (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.tenants.len() + self.principals.len() + self.addresses.len()
    }
}

/// The tenant's effective limits: its plan, with per-tenant overrides from its settings
/// (`"limits": {...}`), cached until the catalog changes.
pub fn plan(app: &App, t: &TenantRecord) -> Result<Arc<PlanConfig>> {
    if let Some(p) = app.limits.plans.lock().get(&t.id) {
        return Ok(p.clone());
    }
    let base = app
        .config
        .plans
        .get(&t.plan)
        .or_else(|| app.config.plans.get(&app.config.default_plan))
        .cloned()
        .unwrap_or_default();
    let settings = crate::catalog::identity::tenant_settings(&*app.catalog.conn()?, &t.id)?;
    let effective = match settings.get("limits").filter(|v| v.is_object()) {
        Some(over) => apply_overrides(&base, over)?,
        None => base,
    };
    let p = Arc::new(effective);
    let mut plans = app.limits.plans.lock();
    if plans.len() >= MAX_KEYS {
        plans.clear();
    }
    plans.insert(t.id.clone(), p.clone());
    Ok(p)
}

/// Overrides are plan keys with new values; the result is validated like a plan.
pub fn apply_overrides(base: &PlanConfig, over: &serde_json::Value) -> Result<PlanConfig> {
    let mut v = serde_json::to_value(base).map_err(|e| Error::Internal(e.to_string()))?;
    if let (Some(obj), Some(o)) = (v.as_object_mut(), over.as_object()) {
        for (k, val) in o {
            if !obj.contains_key(k) {
                return Err(Error::invalid("unknown_limit", format!("unknown limit {k:?}")));
            }
            obj.insert(k.clone(), val.clone());
        }
    }
    let plan: PlanConfig =
        serde_json::from_value(v).map_err(|e| Error::invalid("invalid_limit", format!("limits: {e}")))?;
    if plan.requests_per_second.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || plan.max_concurrent_requests == 0
        || plan.query_timeout_ms == 0
    {
        return Err(Error::invalid("invalid_limit", "limits must be positive"));
    }
    Ok(plan)
}

fn rate_limited(d: Decision, what: &str) -> Error {
    Error::TooManyRequests {
        code: "rate_limited",
        message: format!("{what} rate limit reached: retry after {} s", d.retry_after_s),
        retry_after: d.retry_after_s as i64,
        rate: Some([d.limit, 0, d.reset_s.max(d.retry_after_s)]),
    }
}

/// Rate limits for one tenant request: the tenant's own first (a request it refuses uses none
/// of the global budget), then the caller's share, then the global limit. Returns the tenant
/// decision for the `RateLimit-*` headers.
pub fn admit(app: &App, t: &TenantRecord, principal: Option<&str>) -> Result<Decision> {
    let plan = plan(app, t)?;
    check_month(app, t, &plan)?;
    let factor = throttle_factor(app, &t.id);
    let quota = Quota { per_second: plan.requests_per_second * factor, burst: plan.burst };
    let d = app.limits.tenants.check(&t.id, quota);
    if !d.allowed {
        app.limits.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        refused(app, t);
        return Err(rate_limited(d, "tenant"));
    }
    if let Some(p) = principal {
        let share = app.config.limits.principal_share;
        let q = Quota {
            per_second: plan.requests_per_second * share,
            burst: ((plan.burst as f64) * share).ceil().max(1.0) as u64,
        };
        // The caller is authenticated (a user or key id tenantd minted): the fast hash will do.
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = crate::util::IdHasher::default();
            (t.id.as_str(), p).hash(&mut h);
            h.finish()
        };
        let pd = app.limits.principals.check(&key, q);
        if !pd.allowed {
            app.limits.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(rate_limited(pd, "per-user"));
        }
    }
    admit_global(app)?;
    Ok(d)
}

/// Whether a tenant is in an auto-throttle cool-down.
pub fn is_throttled(app: &App, t: &TenantId) -> bool {
    throttle_factor(app, t) < 1.0
}

/// The rate factor in force for a tenant: 1, or `throttle_factor` while it cools down.
fn throttle_factor(app: &App, t: &TenantId) -> f64 {
    match app.limits.throttled.lock().get(t) {
        Some((until, _, _)) if *until > app.limits.clock.now_ns() => app.config.limits.throttle_factor,
        _ => 1.0,
    }
}

/// Counts a refusal; a tenant refused `throttle_after_refusals` times within a minute is
/// alerted about and, when `auto_throttle` is on, held to a lower rate for the cool-down.
fn refused(app: &App, t: &TenantRecord) {
    let cfg = &app.config.limits;
    let now = app.limits.clock.now_ns();
    let minute = 60_000_000_000;
    let mut map = app.limits.throttled.lock();
    if map.len() > MAX_KEYS {
        map.retain(|_, (until, start, _)| *until > now || now - *start < minute);
    }
    let e = map.entry(t.id.clone()).or_insert((0, now, 0));
    if now - e.1 >= minute {
        e.1 = now;
        e.2 = 0;
    }
    e.2 += 1;
    if e.2 == cfg.throttle_after_refusals {
        if cfg.auto_throttle {
            e.0 = now + cfg.throttle_cooldown_seconds * 1_000_000_000;
        }
        drop(map);
        let period = crate::util::now_unix() / 600;
        let what = if cfg.auto_throttle {
            format!(
                "refused {} requests within a minute: throttled to {:.0}% of its rate for {} s",
                cfg.throttle_after_refusals,
                cfg.throttle_factor * 100.0,
                cfg.throttle_cooldown_seconds
            )
        } else {
            format!("refused {} requests within a minute", cfg.throttle_after_refusals)
        };
        app.limits.alerts.raise(&t.id, t.slug.as_str(), "throttled", period, what);
    }
}

/// The monthly request quota (429 `quota_exceeded`, saying when it resets).
fn check_month(app: &App, t: &TenantRecord, plan: &PlanConfig) -> Result<()> {
    let now = crate::util::now_unix();
    let (start, next) = crate::util::month_bounds(now);
    let used = app
        .limits
        .meter
        .month_requests(&t.id, start, || meter::stored_month_requests(&*app.catalog.conn()?, &t.id, start))?;
    let quota = plan.monthly_requests.max(1);
    for (pct, kind) in [(80, "requests_80"), (100, "requests_100")] {
        if used + 1 >= quota * pct / 100 {
            let msg = format!("{} of {quota} monthly requests used ({pct}%)", used + 1);
            app.limits.alerts.raise(&t.id, t.slug.as_str(), kind, start, msg);
        }
    }
    if used >= plan.monthly_requests {
        app.limits.stats.quota_rejected.fetch_add(1, Ordering::Relaxed);
        return Err(Error::TooManyRequests {
            code: "quota_exceeded",
            message: format!(
                "the monthly quota of {} requests is used up; it resets at {}",
                plan.monthly_requests,
                crate::util::rfc3339(next)
            ),
            retry_after: next - now,
            rate: Some([plan.monthly_requests, 0, (next - now).max(1) as u64]),
        });
    }
    Ok(())
}

/// Writes the metered usage and the last use of API keys and sessions to the catalog (every second and at
/// shutdown). Counts and uses that fail to write are kept for the next attempt.
pub fn flush_usage(app: &App) -> Result<usize> {
    let items = app.limits.meter.drain();
    record_rates(app, &items);
    let touches = app.auth.take_touches();
    if items.is_empty() && touches.is_empty() {
        return Ok(0);
    }
    let storage = flush_storage(app, &items, Instant::now());
    storage_alerts(app, &storage);
    let write = |tx: &rusqlite::Transaction<'_>| {
        meter::flush(tx, &items, &storage)?;
        touches.write(tx)
    };
    match app.catalog.background_write(write) {
        Ok(()) => Ok(items.len()),
        Err(e) => {
            app.limits.meter.restore(items);
            app.auth.restore_touches(touches);
            Err(e)
        }
    }
}

/// Each tenant's request rate over the interval since the previous flush (about a second):
/// the resource monitor's "current rate", at no cost on the request path.
fn record_rates(app: &App, items: &[((TenantId, i64), meter::Counts)]) {
    let now = std::time::Instant::now();
    let mut rates = app.limits.rates.lock();
    let secs = rates.0.map(|t| now.duration_since(t).as_secs_f64()).unwrap_or(1.0).max(0.001);
    let mut counts: HashMap<TenantId, u64> = HashMap::new();
    for ((t, _), c) in items {
        *counts.entry(t.clone()).or_default() += c.requests;
    }
    rates.1 = counts.into_iter().map(|(t, n)| (t, n as f64 / secs)).collect();
    rates.0 = Some(now);
}

/// Requests per second of a tenant over the last flush interval.
pub fn current_rate(app: &App, t: &TenantId) -> f64 {
    app.limits.rates.lock().1.get(t).copied().unwrap_or(0.0)
}

/// Storage of each tenant in a flush. Most tenants in a flush only read, which changes no file,
/// so a tenant's file sizes (two `stat`s) are measured again only when it wrote rows since the
/// last flush or its last measure is older than `FILES_REMEASURE`: with thousands of tenants
/// active per second, measuring each of them every second was a cost per tenant, not per write.
fn flush_storage(app: &App, items: &[((TenantId, i64), meter::Counts)], now: Instant) -> HashMap<TenantId, u64> {
    let mut wrote: HashMap<&TenantId, bool> = HashMap::new();
    for ((t, _), c) in items {
        *wrote.entry(t).or_default() |= c.rows_written > 0;
    }
    // Only flushes take this lock (the background one and the usage API's), so holding it
    // across the `stat`s delays nobody else.
    let mut files = app.limits.files.lock();
    if files.len() >= MAX_KEYS {
        files.clear();
    }
    wrote
        .into_iter()
        .map(|(t, wrote)| {
            let bytes = match files.get(t) {
                Some(&(bytes, at)) if !remeasure(at, wrote, now) => bytes,
                _ => {
                    let bytes = file_bytes(app, t);
                    files.insert(t.clone(), (bytes, now));
                    bytes
                }
            };
            (t.clone(), bytes + asset_bytes(app, t))
        })
        .collect()
}

/// Whether the usage flush measures a tenant's files again (it always does for one it never
/// measured): when it wrote rows since the last flush, or was last measured `FILES_REMEASURE` ago.
fn remeasure(measured_at: Instant, wrote: bool, now: Instant) -> bool {
    wrote || now.saturating_duration_since(measured_at) >= FILES_REMEASURE
}

/// Alerts at 80% and 100% of the storage quota (once a day per tenant and threshold). The
/// quota comes from the plan the request path cached; the catalog is read only for a tenant
/// whose plan is not cached, or to name one that crossed a threshold.
fn storage_alerts(app: &App, storage: &HashMap<TenantId, u64>) {
    let day = crate::util::now_unix() / 86_400;
    let record = |id: &TenantId| app.catalog.conn().and_then(|c| crate::catalog::tenants::find_by_id(&c, id));
    for (id, bytes) in storage {
        let cached = app.limits.plans.lock().get(id).cloned();
        let (quota, mut found) = match cached {
            Some(p) => (p.storage_bytes, None),
            None => {
                let Ok(Some(t)) = record(id) else { continue };
                let Ok(p) = plan(app, &t) else { continue };
                (p.storage_bytes, Some(t))
            }
        };
        for (pct, kind) in [(80, "storage_80"), (100, "storage_100")] {
            if *bytes < quota / 100 * pct {
                continue;
            }
            if found.is_none() {
                found = record(id).ok().flatten();
            }
            let Some(t) = &found else { break };
            let msg = format!("{bytes} of {quota} storage bytes used ({pct}%)");
            app.limits.alerts.raise(id, t.slug.as_str(), kind, day, msg);
        }
    }
}

/// The platform-wide limit (off when `global_requests_per_second` is 0).
pub fn admit_global(app: &App) -> Result<()> {
    let l = &app.config.limits;
    if l.global_requests_per_second > 0.0 {
        let g = app.limits.global.check(&(), Quota { per_second: l.global_requests_per_second, burst: l.global_burst });
        if !g.allowed {
            app.limits.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(rate_limited(g, "server"));
        }
    }
    Ok(())
}

/// Sign-in routes: per source address.
pub fn admit_address(app: &App, ip: Option<IpAddr>) -> Result<Option<Decision>> {
    let Some(ip) = ip else { return Ok(None) };
    let l = &app.config.limits;
    let d = app.limits.addresses.check(&ip, Quota { per_second: l.auth_requests_per_second, burst: l.auth_burst });
    if !d.allowed {
        app.limits.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(rate_limited(d, "sign-in"));
    }
    admit_global(app)?;
    Ok(Some(d))
}

/// An in-flight slot of a tenant; released on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes one of the tenant's `max_concurrent_requests` slots or refuses with 429.
pub fn enter(app: &App, t: &TenantRecord) -> Result<Slot> {
    let max = plan(app, t)?.max_concurrent_requests as usize;
    let counter = {
        // Look up by reference: the id is cloned only for the tenant's first request.
        let mut inflight = app.limits.inflight.lock();
        match inflight.get(&t.id) {
            Some(c) => c.clone(),
            None => inflight.entry(t.id.clone()).or_default().clone(),
        }
    };
    let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
    let slot = Slot(counter);
    if now > max {
        app.limits.stats.concurrency_rejected.fetch_add(1, Ordering::Relaxed);
        return Err(Error::TooManyRequests {
            code: "too_many_concurrent_requests",
            message: format!("this tenant already has {max} requests in flight"),
            retry_after: 1,
            rate: Some([max as u64, 0, 1]),
        });
    }
    Ok(slot)
}

/// Requests in flight per tenant right now.
pub fn inflight(app: &App, t: &TenantId) -> usize {
    app.limits.inflight.lock().get(t).map(|c| c.load(Ordering::SeqCst)).unwrap_or(0)
}

/// Seats: refuses a new member when the plan's `max_users` are taken (409 `seat_limit`).
pub fn check_seat(app: &App, t: &TenantRecord) -> Result<()> {
    let max = plan(app, t)?.max_users as i64;
    let used = crate::catalog::identity::count_members(&*app.catalog.conn()?, &t.id)?;
    if used >= max {
        app.limits.stats.quota_rejected.fetch_add(1, Ordering::Relaxed);
        return Err(Error::conflict(
            "seat_limit",
            format!("the {} plan allows {max} members; this tenant has {used}", t.plan),
        ));
    }
    Ok(())
}

/// Pages a delete may still use past the storage limit, so removing data (and writing its
/// audit entry) always works on a full tenant.
const DELETE_HEADROOM_PAGES: u64 = 256;

/// Storage a tenant uses: its file, its WAL and its assets.
pub fn storage_bytes(app: &App, t: &TenantId) -> u64 {
    file_bytes(app, t) + asset_bytes(app, t)
}

/// Bytes of the tenant's database file and its WAL.
fn file_bytes(app: &App, t: &TenantId) -> u64 {
    let db = app.paths.tenant_db(t);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    [db.as_os_str(), wal.as_os_str()].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// Bytes of the tenant's assets (they count toward its storage). Cached until the catalog
/// changes: every asset write goes through `App::change`.
pub fn asset_bytes(app: &App, t: &TenantId) -> u64 {
    if let Some(b) = app.limits.assets.lock().get(t) {
        return *b;
    }
    let bytes = std::fs::read_dir(app.paths.tenant_assets(t))
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let mut cache = app.limits.assets.lock();
    if cache.len() >= MAX_KEYS {
        cache.clear();
    }
    cache.insert(t.clone(), bytes);
    bytes
}

/// Applies the tenant's budgets to a pooled connection for one request: a storage ceiling
/// (`PRAGMA max_page_count`, writes only; `unbudget` lifts it again) and
/// a deadline for every statement (the progress handler interrupts past `query_timeout_ms`;
/// the connection stays usable).
pub fn budget(
    app: &App,
    t: &TenantRecord,
    handle: &TenantHandle,
    conn: &TenantConn,
    write: Option<bool>,
) -> Result<()> {
    let plan = plan(app, t)?;
    if let (Some(is_delete), TenantConn::Writer(writer)) = (write, conn) {
        // The demo and template schemas use SQLite's default; a tenant file keeps its page size.
        let page_size = handle.page_size(writer)?;
        let room = plan.storage_bytes.saturating_sub(asset_bytes(app, &t.id));
        let pages = room / page_size + if is_delete { DELETE_HEADROOM_PAGES } else { 0 };
        handle.set_ceiling(writer, pages.clamp(1, NO_CEILING))?;
    }
    let deadline = Instant::now() + Duration::from_millis(plan.query_timeout_ms);
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))?;
    Ok(())
}

/// SQLite's own upper bound for `max_page_count`: no ceiling.
const NO_CEILING: u64 = 4294967294;

/// Removes any storage ceiling a data write left on the tenant's writer connection, for writes
/// that must always fit (audit entries of sign-ins, policy changes).
pub fn lift_ceiling(handle: &TenantHandle, writer: &Writer) -> Result<()> {
    handle.set_ceiling(writer, NO_CEILING)
}

/// Removes the statement deadline before the connection is reused. The storage ceiling stays:
/// only writes set it, they run on the tenant's writer connection, and every use of that
/// connection sets its own (`budget`) or lifts it (`lift_ceiling`).
pub fn unbudget(conn: &Connection) {
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
}

/// Under this much free space on the data dir's file system, SQLITE_FULL means the disk, not a
/// tenant's `max_page_count`: a quota refusal leaves the disk with room to spare.
const DISK_FULL_BELOW: u64 = 16 << 20;

/// Tells the operator's storage refusing a write (full disk, file-size limit: 507
/// `insufficient_storage`) from a tenant's storage quota (507 `storage_quota_exceeded`, which
/// tells the tenant to upgrade). SQLite reports both a full disk and a reached
/// `max_page_count` as SQLITE_FULL, so the free space decides; EFBIG under a file-size limit
/// arrives as an I/O error on write.
pub fn storage_refusal(app: &App, e: Error) -> Error {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    const WRITE_ERRORS: [i32; 3] =
        [rusqlite::ffi::SQLITE_IOERR_WRITE, rusqlite::ffi::SQLITE_IOERR_TRUNCATE, rusqlite::ffi::SQLITE_IOERR_SHMSIZE];
    let (write_refused, full) = match &e {
        Error::StorageQuota => (false, true),
        Error::Sqlite(s) => (
            s.sqlite_error_code() == Some(SystemIoFailure)
                && s.sqlite_extended_error_code().is_some_and(|c| WRITE_ERRORS.contains(&c)),
            s.sqlite_error_code() == Some(DiskFull),
        ),
        _ => (false, false),
    };
    // Only a refusal that looks like a full disk costs a `statvfs`; other errors pass as they are.
    let disk_full = full && crate::util::free_space(&app.config.data_dir).map_or(true, |free| free < DISK_FULL_BELOW);
    if write_refused || disk_full {
        Error::InsufficientStorage
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_validate() {
        let base = PlanConfig::default();
        let p = apply_overrides(&base, &serde_json::json!({"burst": 99})).unwrap();
        assert_eq!(p.burst, 99);
        assert!(apply_overrides(&base, &serde_json::json!({"bogus": 1})).is_err());
        assert!(apply_overrides(&base, &serde_json::json!({"burst": "lots"})).is_err());
        assert!(apply_overrides(&base, &serde_json::json!({"requests_per_second": 0})).is_err());
    }

    #[test]
    fn a_tenant_that_only_reads_keeps_its_measured_size_until_it_is_stale() {
        let at = Instant::now();
        assert!(!remeasure(at, false, at + Duration::from_secs(1)), "read only, measured a second ago");
        assert!(remeasure(at, true, at + Duration::from_secs(1)), "wrote rows");
        assert!(remeasure(at, false, at + FILES_REMEASURE), "stale");
        assert!(!remeasure(at + Duration::from_secs(1), false, at), "a clock that went back is not stale");
    }
}
