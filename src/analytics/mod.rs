//! Analytics (issue 21), first slice: a tenant's KPIs over a range (`overview`) and its series
//! at a granularity with period-over-period change (`trends`), read from the hourly usage
//! rollups (the current hour included: the meter is flushed first). Latency percentiles are
//! merged from the hourly histograms, never averaged. See docs/analytics.md.

mod comparative;
pub mod health;
pub mod history;
mod platform;
pub mod records;
pub mod revenue;
pub mod rollup;
pub mod security;

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::util::{now_unix, parse_time, rfc3339};
pub use comparative::{comparative, Comparison, Standing};
pub use platform::{platform_overview, PlatformOverview};

/// The metrics a trend can show.
pub const METRICS: &[&str] =
    &["requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "active_users", "storage_bytes"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

impl Granularity {
    pub fn parse(s: &str) -> Result<Granularity> {
        match s {
            "hour" => Ok(Granularity::Hour),
            "day" => Ok(Granularity::Day),
            "week" => Ok(Granularity::Week),
            "month" => Ok(Granularity::Month),
            other => Err(Error::invalid(
                "invalid_parameter",
                format!("granularity={:?}: use hour, day, week or month", crate::ids::truncate_for_message(other)),
            )),
        }
    }

    /// The start of the bucket holding `t` (weeks start on Monday, UTC).
    pub fn floor(self, t: i64) -> i64 {
        match self {
            Granularity::Hour => t - t.rem_euclid(3600),
            Granularity::Day => t - t.rem_euclid(86_400),
            // 1970-01-05 was a Monday.
            Granularity::Week => t - (t - 4 * 86_400).rem_euclid(7 * 86_400),
            Granularity::Month => crate::util::month_bounds(t).0,
        }
    }

    pub fn next(self, start: i64) -> i64 {
        match self {
            Granularity::Hour => start + 3600,
            Granularity::Day => start + 86_400,
            Granularity::Week => start + 7 * 86_400,
            Granularity::Month => crate::util::month_bounds(start).1,
        }
    }
}

/// `from`/`to`: RFC 3339, a date, or relative to now (`-30d`, `-12h`, `-2w`); defaults to the
/// last 30 days. At most 10 years (hourly series: 31 days; daily: 2 years).
pub fn range(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64)> {
    let parse = |name: &str, v: &str| -> Result<i64> {
        let bad = || {
            Error::invalid(
                "invalid_parameter",
                format!(
                    "{name}={:?}: use an RFC 3339 time, a date or -30d / -12h / -2w",
                    crate::ids::truncate_for_message(v)
                ),
            )
        };
        if let Some(rel) = v.strip_prefix('-') {
            return crate::util::ago(rel, now, &[("h", 3600), ("d", 86_400), ("w", 7 * 86_400)]).ok_or_else(bad);
        }
        parse_time(v).ok_or_else(bad)
    };
    let to = to.map(|v| parse("to", v)).transpose()?.unwrap_or(now);
    let from = from.map(|v| parse("from", v)).transpose()?.unwrap_or(to - 30 * 86_400);
    if from >= to {
        return Err(Error::invalid("invalid_parameter", "from must be before to"));
    }
    // Monthly usage is kept for good: a decade by month is 120 points.
    if to - from > 3653 * 86_400 {
        return Err(Error::invalid("invalid_parameter", "the range is at most 10 years"));
    }
    Ok((from, to))
}

/// Which metrics a request asked for (`metrics=a,b`; all when absent).
pub fn metrics(list: Option<&str>) -> Result<Vec<&'static str>> {
    let Some(list) = list.filter(|l| !l.is_empty()) else { return Ok(METRICS.to_vec()) };
    list.split(',')
        .map(|m| {
            METRICS.iter().find(|k| **k == m.trim()).copied().ok_or_else(|| {
                Error::invalid(
                    "invalid_parameter",
                    format!(
                        "metrics: unknown metric {:?}; known: {}",
                        crate::ids::truncate_for_message(m),
                        METRICS.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Requests, errors and the merged latency histogram of several buckets.
fn sum<'a>(buckets: impl Iterator<Item = &'a Acc>) -> Acc {
    let mut total = Acc::default();
    for b in buckets {
        total.requests += b.requests;
        total.errors += b.errors;
        if total.hist.len() < b.hist.len() {
            total.hist.resize(b.hist.len(), 0);
        }
        for (a, x) in total.hist.iter_mut().zip(&b.hist) {
            *a += x;
        }
    }
    total
}

/// One bucket of usage: sums, a merged latency histogram, distinct users, peak storage.
#[derive(Clone, Debug, Default)]
struct Acc {
    requests: i64,
    errors: i64,
    hist: Vec<u64>,
    users: i64,
    storage: i64,
}

impl Acc {
    /// p50, p95 and p99 in ms, from the merged histogram.
    fn latency_ms(&self) -> BTreeMap<&'static str, Option<f64>> {
        BTreeMap::from([("p50", self.value("p50_ms")), ("p95", self.value("p95_ms")), ("p99", self.value("p99_ms"))])
    }

    fn value(&self, metric: &str) -> Option<f64> {
        match metric {
            "requests" => Some(self.requests as f64),
            "errors" => Some(self.errors as f64),
            "error_rate" => (self.requests > 0).then(|| self.errors as f64 / self.requests as f64),
            "p50_ms" => quantile(&self.hist, 0.50),
            "p95_ms" => quantile(&self.hist, 0.95),
            "p99_ms" => quantile(&self.hist, 0.99),
            "active_users" => Some(self.users as f64),
            "storage_bytes" => Some(self.storage as f64),
            _ => None,
        }
    }
}

/// The upper bound of the bucket holding quantile `q` of a merged histogram, in ms.
fn quantile(hist: &[u64], q: f64) -> Option<f64> {
    crate::limits::meter::quantile(hist, q)
}

/// Buckets by start, the notice for a range older than its grain, the last period with data.
type Buckets = (BTreeMap<i64, Acc>, Option<String>, Option<i64>);

/// Usage of `tenant` in `[from, to)` by bucket of `g` (buckets with no data are absent), and a
/// notice when part of the range is older than `g`'s grain is kept. `tenant` none: every tenant
/// together (the platform's view). Storage is each tenant's last measured value in the bucket
/// (summed over tenants): the same whether the bucket is read from hours, days or months.
fn buckets(conn: &Connection, tenant: Option<&TenantId>, from: i64, to: i64, g: Granularity) -> Result<Buckets> {
    let mut out: BTreeMap<i64, Acc> = BTreeMap::new();
    // bucket -> tenant -> (when, storage) of its last measurement
    let mut storage: BTreeMap<i64, std::collections::HashMap<String, (i64, i64)>> = BTreeMap::new();
    let scope = tenant.map_or(rollup::Scope::All, rollup::Scope::Tenant);
    let mut last: Option<i64> = None;
    let notice = rollup::scan(conn, scope, from, to, g, |r| {
        last = last.max(Some(r.at));
        let b = out.entry(g.floor(r.at)).or_default();
        b.requests += r.requests;
        b.errors += r.errors;
        rollup::merge_hist(&mut b.hist, r.hist);
        if r.storage > 0 {
            let tenants = storage.entry(g.floor(r.at)).or_default();
            match tenants.get_mut(r.tenant) {
                Some(m) if m.0 < r.at => *m = (r.at, r.storage),
                Some(_) => {}
                None => {
                    tenants.insert(r.tenant.to_string(), (r.at, r.storage));
                }
            }
        }
    })?;
    for (start, tenants) in storage {
        out.entry(start).or_default().storage = tenants.values().map(|m| m.1).sum();
    }
    // Distinct users per bucket (not a sum of hourly counts).
    let seen = match tenant {
        Some(t) => distinct_users_by(conn, std::iter::once(t.as_str()), g.floor(from), to, |h| g.floor(h))?,
        None => {
            let ids = rollup::tenants_with_usage(conn)?;
            distinct_users_by(conn, ids.iter().map(String::as_str), g.floor(from), to, |h| g.floor(h))?
        }
    };
    for (start, users) in seen {
        out.entry(start).or_default().users = users.len() as i64;
    }
    Ok((out, notice, last))
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub start: String,
    pub values: BTreeMap<&'static str, Option<f64>>,
    /// Change against the previous bucket, in percent (none when it had no value or zero).
    pub change_percent: BTreeMap<&'static str, Option<f64>>,
}

#[derive(Debug, Serialize)]
pub struct Trends {
    pub from: String,
    pub to: String,
    pub granularity: Granularity,
    /// The last hour with data (the current one included).
    pub data_until: Option<String>,
    /// Set when part of the range is older than the granularity is kept (analytics_*_days).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub metrics: Vec<&'static str>,
    pub points: Vec<Point>,
}

/// Series of `metrics` at `g` over `[from, to)`, every bucket present (empty ones as 0/none).
pub fn trends(
    conn: &Connection,
    tenant: Option<&TenantId>,
    from: i64,
    to: i64,
    g: Granularity,
    metrics: &[&'static str],
) -> Result<Trends> {
    if g == Granularity::Hour && to - from > 31 * 86_400 {
        return Err(Error::invalid(
            "invalid_parameter",
            "granularity=hour covers at most 31 days; use day, week or month",
        ));
    }
    if g == Granularity::Day && to - from > 731 * 86_400 {
        return Err(Error::invalid("invalid_parameter", "granularity=day covers at most 2 years; use week or month"));
    }
    let (data, notice, last) = buckets(conn, tenant, from, to, g)?;
    let mut points = Vec::new();
    let mut prev: Option<BTreeMap<&'static str, Option<f64>>> = None;
    let empty = Acc::default();
    let mut start = g.floor(from);
    while start < to {
        let acc = data.get(&start).unwrap_or(&empty);
        let values: BTreeMap<&'static str, Option<f64>> = metrics.iter().map(|m| (*m, acc.value(m))).collect();
        let change = metrics
            .iter()
            .map(|m| {
                let before = prev.as_ref().and_then(|p| p.get(m).copied().flatten());
                let now = values.get(m).copied().flatten();
                let pct = match (before, now) {
                    (Some(b), Some(n)) if b != 0.0 => Some(((n - b) / b * 1000.0).round() / 10.0),
                    _ => None,
                };
                (*m, pct)
            })
            .collect();
        points.push(Point { start: rfc3339(start), values: values.clone(), change_percent: change });
        prev = Some(values);
        start = g.next(start);
    }
    Ok(Trends {
        from: rfc3339(from),
        to: rfc3339(to),
        granularity: g,
        data_until: last_hour(conn, tenant, last)?.map(rfc3339),
        notice,
        metrics: metrics.to_vec(),
        points,
    })
}

/// The last hour with data: a tenant's (one index seek), or for the platform the last of the
/// range's rows (`scanned`; a scan of every tenant's hours for this alone would be a full one).
pub(crate) fn last_hour(conn: &Connection, tenant: Option<&TenantId>, scanned: Option<i64>) -> Result<Option<i64>> {
    match tenant {
        Some(t) => {
            Ok(conn.query_row("SELECT max(hour) FROM usage_hourly WHERE tenant_id = ?1", [t.as_str()], |r| r.get(0))?)
        }
        None => Ok(scanned),
    }
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub from: String,
    pub to: String,
    pub data_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub error_rate: Option<f64>,
    pub latency_ms: BTreeMap<&'static str, Option<f64>>,
    /// Distinct users active in the day, week and 30 days ending at `to`.
    pub active_users: BTreeMap<&'static str, i64>,
    pub storage_bytes: i64,
    /// Bytes per day, from the range's first and last measured storage.
    pub storage_growth_bytes_per_day: Option<f64>,
    pub quotas: Vec<Quota>,
    pub api_keys: ApiKeys,
}

#[derive(Debug, Serialize)]
pub struct Quota {
    pub name: &'static str,
    pub used: f64,
    pub limit: f64,
    pub headroom_percent: f64,
    /// When it runs out at the rate of the last 7 days (none when it would not this period).
    pub runs_out: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApiKeys {
    pub active: i64,
    pub used_in_range: i64,
    pub unused_30_days: i64,
}

/// A tenant's KPIs over `[from, to)`. `plan` gives the quotas their limits.
pub fn overview(
    conn: &Connection,
    tenant: &TenantId,
    plan: &crate::config::PlanConfig,
    from: i64,
    to: i64,
) -> Result<Overview> {
    let (days, notice, _) = buckets(conn, Some(tenant), from, to, Granularity::Day)?;
    let total = sum(days.values());
    let distinct = |since: i64| -> Result<i64> {
        Ok(conn.query_row(
            "SELECT count(DISTINCT user_id) FROM usage_users WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3",
            params![tenant.as_str(), since, to],
            |r| r.get(0),
        )?)
    };
    let active_users = BTreeMap::from([
        ("daily", distinct(to - 86_400)?),
        ("weekly", distinct(to - 7 * 86_400)?),
        ("monthly", distinct(to - 30 * 86_400)?),
    ]);
    // Storage: the last measured in the range, and its growth per day from the first one.
    let storage: Vec<(i64, i64)> = days.iter().filter(|(_, a)| a.storage > 0).map(|(d, a)| (*d, a.storage)).collect();
    let (first, last) = (storage.first().copied(), storage.last().copied());
    let growth = match (first, last) {
        (Some((h0, s0)), Some((h1, s1))) if h1 > h0 => Some((s1 - s0) as f64 / ((h1 - h0) as f64 / 86_400.0)),
        _ => None,
    };
    let storage_now = last.map(|l| l.1).unwrap_or(0);
    // Quotas: this month's requests against the plan, and storage against its limit, each with
    // when it runs out at the pace of the last 7 days.
    let (month_start, month_end) = crate::util::month_bounds(to);
    let month_requests = requests_between(conn, tenant, month_start, to)?;
    let week_requests = requests_between(conn, tenant, to - 7 * 86_400, to)?;
    let per_second = week_requests as f64 / (7.0 * 86_400.0);
    let runs_out = |left: f64, rate: f64, by: Option<i64>| -> Option<String> {
        if rate <= 0.0 || left <= 0.0 {
            return (left <= 0.0).then(|| rfc3339(to));
        }
        let at = to + (left / rate) as i64;
        by.is_none_or(|b| at < b).then(|| rfc3339(at))
    };
    let mut quotas = Vec::new();
    let req_limit = plan.monthly_requests as f64;
    quotas.push(Quota {
        name: "monthly_requests",
        used: month_requests as f64,
        limit: req_limit,
        headroom_percent: headroom(month_requests as f64, req_limit),
        runs_out: runs_out(req_limit - month_requests as f64, per_second, Some(month_end)),
    });
    let st_limit = plan.storage_bytes as f64;
    quotas.push(Quota {
        name: "storage_bytes",
        used: storage_now as f64,
        limit: st_limit,
        headroom_percent: headroom(storage_now as f64, st_limit),
        runs_out: runs_out(st_limit - storage_now as f64, growth.unwrap_or(0.0) / 86_400.0, None),
    });
    let keys: (i64, i64, i64) = conn.query_row(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL), \
                count(*) FILTER (WHERE revoked_at IS NULL AND last_used_at >= ?2 AND last_used_at < ?3), \
                count(*) FILTER (WHERE revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at < ?4)) \
         FROM api_keys WHERE tenant_id = ?1",
        params![tenant.as_str(), from, to, to - 30 * 86_400],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Overview {
        from: rfc3339(from),
        to: rfc3339(to),
        data_until: last_hour(conn, Some(tenant), None)?.map(rfc3339),
        notice,
        requests: total.requests,
        errors: total.errors,
        error_rate: total.value("error_rate"),
        latency_ms: total.latency_ms(),
        active_users,
        storage_bytes: storage_now,
        storage_growth_bytes_per_day: growth,
        quotas,
        api_keys: ApiKeys { active: keys.0, used_in_range: keys.1, unused_30_days: keys.2 },
    })
}

/// Distinct users of `tenants` active in `[from, to)`, per bucket (`bucket` maps an hour to its
/// bucket's start), read tenant by tenant along the primary key (usage_users has no index on
/// the hour: it made downsampling 4x slower).
fn distinct_users_by<'a>(
    conn: &Connection,
    tenants: impl Iterator<Item = &'a str>,
    from: i64,
    to: i64,
    bucket: impl Fn(i64) -> i64,
) -> Result<BTreeMap<i64, std::collections::BTreeSet<i64>>> {
    let mut stmt =
        conn.prepare_cached("SELECT hour, user_id FROM usage_users WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3")?;
    let mut seen: BTreeMap<i64, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for t in tenants {
        for row in stmt.query_map(params![t, from, to], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (hour, user) = row?;
            seen.entry(bucket(hour)).or_default().insert(user);
        }
    }
    Ok(seen)
}

/// A tenant's requests in `[from, to)`, from whichever grain keeps them.
pub fn requests_between(conn: &Connection, tenant: &TenantId, from: i64, to: i64) -> Result<i64> {
    let mut n = 0;
    rollup::scan(conn, rollup::Scope::Tenant(tenant), from, to, Granularity::Day, |r| n += r.requests)?;
    Ok(n)
}

/// Tenants with at least one request per bucket of `[from, to)`, every bucket present (the
/// platform dashboard's "active tenants" sparkline; the points line up with `trends`').
pub fn active_tenants(conn: &Connection, from: i64, to: i64, g: Granularity) -> Result<Vec<(String, i64)>> {
    let mut seen: BTreeMap<i64, std::collections::HashSet<String>> = BTreeMap::new();
    rollup::scan(conn, rollup::Scope::All, from, to, g, |r| {
        if r.requests > 0 {
            let set = seen.entry(g.floor(r.at)).or_default();
            if !set.contains(r.tenant) {
                set.insert(r.tenant.to_string());
            }
        }
    })?;
    let mut out = Vec::new();
    let mut start = g.floor(from);
    while start < to {
        out.push((rfc3339(start), seen.get(&start).map_or(0, |s| s.len() as i64)));
        start = g.next(start);
    }
    Ok(out)
}

pub(crate) fn headroom(used: f64, limit: f64) -> f64 {
    if limit <= 0.0 {
        return 0.0;
    }
    ((1.0 - used / limit) * 1000.0).round().clamp(0.0, 1000.0) / 10.0
}

/// The current time, for callers (the API flushes the meter first so the current hour counts).
pub fn now() -> i64 {
    now_unix()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let wed = parse_time("2026-12-09T15:00:00Z").unwrap();
        assert_eq!(rfc3339(Granularity::Week.floor(wed)), "2026-12-07T00:00:00Z");
        assert_eq!(rfc3339(Granularity::Month.floor(wed)), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(Granularity::Month.next(Granularity::Month.floor(wed))), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn ranges_and_metrics_name_what_is_wrong() {
        let now = parse_time("2026-12-07T00:00:00Z").unwrap();
        assert_eq!(range(Some("-30d"), None, now).unwrap(), (now - 30 * 86_400, now));
        assert!(range(Some("-3y"), None, now).unwrap_err().to_string().contains("from="));
        // Months are kept for good: years are fine, a century is not.
        assert_eq!(range(Some("-1500d"), None, now).unwrap().0, now - 1500 * 86_400);
        assert!(range(Some("-5000d"), None, now).unwrap_err().to_string().contains("10 years"));
        assert!(range(Some("2026-12-08"), Some("2026-12-01"), now).is_err());
        assert!(metrics(Some("requests,bogus")).unwrap_err().to_string().contains("bogus"));
        assert_eq!(metrics(None).unwrap().len(), METRICS.len());
    }

    #[test]
    fn percentiles_come_from_the_merged_histogram() {
        // 99 fast requests (first bucket) and 1 slow: p50 fast, p99 fast, p100 slow.
        use crate::limits::meter::BUCKETS_US;
        let mut h = vec![0u64; BUCKETS_US.len()];
        h[0] = 99;
        h[10] = 1;
        assert_eq!(quantile(&h, 0.50), Some(BUCKETS_US[0] as f64 / 1000.0));
        assert_eq!(quantile(&h, 0.99), Some(BUCKETS_US[0] as f64 / 1000.0));
        assert_eq!(quantile(&h, 1.0), Some(BUCKETS_US[10] as f64 / 1000.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
