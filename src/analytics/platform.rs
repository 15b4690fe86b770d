//! The platform's overview: every tenant's usage together over a range, and the busiest tenants
//! (`GET /api/v1/platform/analytics/overview`, the platform dashboard and console).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{last_hour, rollup, Acc, Granularity};
use crate::error::Result;
use crate::util::rfc3339;

#[derive(Debug, Serialize)]
pub struct PlatformOverview {
    pub from: String,
    pub to: String,
    pub data_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub tenants: i64,
    /// Tenants with at least one request in the range.
    pub active_tenants: i64,
    pub requests: i64,
    pub errors: i64,
    pub error_rate: Option<f64>,
    pub latency_ms: BTreeMap<&'static str, Option<f64>>,
    pub active_users: i64,
    /// The ten busiest tenants: (slug, requests, error rate).
    pub top_tenants: Vec<(String, i64, Option<f64>)>,
}

/// Every tenant together over `[from, to)`.
pub fn platform_overview(conn: &Connection, from: i64, to: i64) -> Result<PlatformOverview> {
    // One pass: the platform's totals and each tenant's.
    let mut total = Acc::default();
    let mut per: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    let mut last: Option<i64> = None;
    let notice = rollup::scan(conn, rollup::Scope::All, from, to, Granularity::Day, |r| {
        last = last.max(Some(r.at));
        total.requests += r.requests;
        total.errors += r.errors;
        rollup::merge_hist(&mut total.hist, r.hist);
        match per.get_mut(r.tenant) {
            Some(t) => {
                t.0 += r.requests;
                t.1 += r.errors;
            }
            None => {
                per.insert(r.tenant.to_string(), (r.requests, r.errors));
            }
        }
    })?;
    let start = from - from.rem_euclid(3600);
    let tenants: i64 = conn.query_row("SELECT count(*) FROM tenants WHERE status <> 'deleted'", [], |r| r.get(0))?;
    let mut users = std::collections::HashSet::new();
    let mut distinct = conn
        .prepare_cached("SELECT DISTINCT user_id FROM usage_users WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3")?;
    for t in per.keys() {
        for user in distinct.query_map(params![t, start, to], |r| r.get::<_, i64>(0))? {
            users.insert(user?);
        }
    }
    let active_users = users.len() as i64;
    let active_tenants = per.values().filter(|t| t.0 > 0).count() as i64;
    let mut busiest: Vec<(&String, &(i64, i64))> = per.iter().filter(|t| t.1 .0 > 0).collect();
    busiest.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    let mut slug = conn.prepare_cached("SELECT slug FROM tenants WHERE id = ?1")?;
    let mut top = Vec::new();
    for (id, (n, e)) in busiest.into_iter().take(10) {
        let name: Option<String> = slug.query_row([id], |r| r.get(0)).optional()?;
        top.push((name.unwrap_or_else(|| id.clone()), *n, (*n > 0).then(|| *e as f64 / *n as f64)));
    }
    Ok(PlatformOverview {
        from: rfc3339(from),
        to: rfc3339(to),
        data_until: last_hour(conn, None, last)?.map(rfc3339),
        notice,
        tenants,
        active_tenants,
        requests: total.requests,
        errors: total.errors,
        error_rate: total.value("error_rate"),
        latency_ms: total.latency_ms(),
        active_users,
        top_tenants: top,
    })
}
