//! Comparative benchmarking: where a tenant stands among its plan's peers (k-anonymous), and
//! the cached cohort values of large plans.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{rollup, Acc, Granularity};
use crate::error::Result;
use crate::ids::TenantId;
use crate::util::rfc3339;

/// Where a tenant stands among its plan's other tenants, per metric: its percentile and the
/// peers' p25/p50/p75. No individual peer is ever shown; with fewer than `min_cohort` peers the
/// comparison is withheld with the reason; the tenant is not part of its own cohort.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub from: String,
    pub to: String,
    pub plan: String,
    pub cohort_size: usize,
    pub min_cohort: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    pub metrics: BTreeMap<&'static str, Standing>,
}

#[derive(Debug, Serialize)]
pub struct Standing {
    pub value: Option<f64>,
    /// Share of peers below the tenant's value, in percent.
    pub percentile: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    /// Peers with a value for this metric (peers with no traffic have no latency).
    pub peers: usize,
}

pub fn comparative(
    conn: &Connection,
    tenant: &TenantId,
    plan: &str,
    min_cohort: u64,
    from: i64,
    to: i64,
) -> Result<Comparison> {
    let (values, notice) = cohort(conn, plan, from, to)?;
    let own = values.get(tenant.as_str()).cloned().unwrap_or_default();
    let per: Vec<&Acc> = values.iter().filter(|(id, _)| *id != tenant.as_str()).map(|(_, a)| a).collect();
    let cohort = per.len();
    let mut out = Comparison {
        from: rfc3339(from),
        to: rfc3339(to),
        plan: plan.to_string(),
        cohort_size: cohort,
        min_cohort,
        notice,
        withheld: None,
        metrics: BTreeMap::new(),
    };
    if (cohort as u64) < min_cohort {
        out.withheld = Some(format!(
            "plan {plan} has {cohort} other tenants; peer comparisons need at least {min_cohort} so that no single tenant can be read off them"
        ));
        return Ok(out);
    }
    for m in ["requests", "error_rate", "p95_ms", "active_users", "storage_bytes"] {
        let mut peers: Vec<f64> = per.iter().filter_map(|a| a.value(m)).collect();
        peers.sort_by(f64::total_cmp);
        let value = own.value(m);
        // Too few peers with a value (e.g. latency, which idle tenants have none of): withheld.
        let enough = peers.len() as u64 >= min_cohort;
        let band = |q: f64| enough.then(|| peers[((peers.len() - 1) as f64 * q).round() as usize]);
        let percentile = value.filter(|_| enough).map(|v| {
            let below = peers.iter().filter(|p| **p < v).count();
            (below as f64 / peers.len() as f64 * 1000.0).round() / 10.0
        });
        out.metrics.insert(
            m,
            Standing { value, percentile, p25: band(0.25), p50: band(0.50), p75: band(0.75), peers: peers.len() },
        );
    }
    Ok(out)
}

/// Cohort values: each live tenant of a plan's sums over a range (every tenant's
/// `comparative` on the plan reads the same ones, less its own).
type Cohort = (Arc<BTreeMap<String, Acc>>, Option<String>);

/// Plans with at least this many tenants have their cohort values reused for `COHORT_TTL`
/// (smaller ones are read fresh: a few ms); at most `COHORTS_KEPT` ranges are kept.
const COHORT_CACHED_FROM: usize = 500;
const COHORT_TTL: std::time::Duration = std::time::Duration::from_secs(300);
const COHORTS_KEPT: usize = 64;

/// Cohort values by (catalog file, plan, start hour, end hour), with when they were read.
type CohortCache = parking_lot::Mutex<BTreeMap<(String, String, i64, i64), (std::time::Instant, Cohort)>>;
static COHORTS: std::sync::OnceLock<CohortCache> = std::sync::OnceLock::new();

/// A plan's cohort values over `[from, to)` with both ends taken to whole hours. A large plan's
/// are read once per range every `COHORT_TTL` (measured at 10,000 tenants, ~3,300 on a plan:
/// ~1 s to read; every tenant's dashboard asks for the same), so its bands may leave out the
/// last few minutes.
fn cohort(conn: &Connection, plan: &str, from: i64, to: i64) -> Result<Cohort> {
    let start = from - from.rem_euclid(3600);
    let end = to + (3600 - to.rem_euclid(3600)) % 3600;
    let key = (conn.path().unwrap_or_default().to_string(), plan.to_string(), start, end);
    let cache = COHORTS.get_or_init(Default::default);
    if let Some((at, c)) = cache.lock().get(&key) {
        if at.elapsed() < COHORT_TTL {
            return Ok(c.clone());
        }
    }
    let ids: Vec<String> = conn
        .prepare_cached("SELECT id FROM tenants WHERE plan = ?1 AND status <> 'deleted'")?
        .query_map([plan], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut per: BTreeMap<String, Acc> = ids.iter().map(|id| (id.clone(), Acc::default())).collect();
    let notice = rollup::scan(conn, rollup::Scope::Plan(plan), start, end, Granularity::Day, |r| {
        let a = match per.get_mut(r.tenant) {
            Some(a) => a,
            None => per.entry(r.tenant.to_string()).or_default(),
        };
        a.requests += r.requests;
        a.errors += r.errors;
        rollup::merge_hist(&mut a.hist, r.hist);
        a.storage = a.storage.max(r.storage);
    })?;
    // Tenant by tenant along usage_users' primary key (no index on the hour, see below).
    let mut users = conn.prepare_cached(
        "SELECT count(DISTINCT user_id) FROM usage_users WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3",
    )?;
    for (id, a) in per.iter_mut() {
        a.users = users.query_row(params![id, start, end], |r| r.get(0))?;
    }
    let c: Cohort = (Arc::new(per), notice);
    if ids.len() < COHORT_CACHED_FROM {
        return Ok(c);
    }
    let mut cached = cache.lock();
    if cached.len() >= COHORTS_KEPT {
        cached.retain(|_, (at, _)| at.elapsed() < COHORT_TTL);
        if cached.len() >= COHORTS_KEPT {
            cached.clear();
        }
    }
    cached.insert(key, (std::time::Instant::now(), c.clone()));
    Ok(c)
}
