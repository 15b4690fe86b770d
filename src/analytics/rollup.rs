//! Downsampling of the usage rollups (issue 21): whole days of `usage_hourly` are summed into
//! `usage_daily`, whole months of those into `usage_monthly`; hourly rows older than
//! `analytics_hourly_days` and daily rows older than `analytics_daily_days` (rounded down to
//! the month) are then deleted, and `usage_users` rows are coarsened the same way (distinct
//! users per day, then per month). A year of history is ~365 rows a tenant instead of 8,760.
//!
//! The job is idempotent and resumable: days are re-rolled from the hours that are still kept
//! (the last rolled day included, for a flush that landed after midnight), nothing is deleted
//! before the marks that tell readers where each grain starts are written, and each chunk of
//! tenants is one transaction, so usage flushes are never held up for long.
//!
//! Readers (`scan`) take each stretch of a range from the coarsest grain that covers it:
//! months before `usage_monthly_until` (monthly granularity only), days before
//! `usage_daily_until`, hours after.

use std::collections::BTreeSet;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use super::Granularity;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::ids::TenantId;
use crate::util::{month_bounds, rfc3339};

/// How long each grain is kept, in days (`analytics_hourly_days`, `analytics_daily_days`).
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub hourly_days: i64,
    pub daily_days: i64,
}

impl Retention {
    pub fn of(config: &crate::config::Config) -> Retention {
        Retention { hourly_days: config.analytics_hourly_days as i64, daily_days: config.analytics_daily_days as i64 }
    }
}

/// Where each grain starts and ends (catalog_meta; 0 until the job first ran).
#[derive(Clone, Copy, Debug, Default)]
pub struct Marks {
    /// Every whole day before this is in `usage_daily`.
    pub daily_until: i64,
    /// Every whole month before this is in `usage_monthly`.
    pub monthly_until: i64,
    /// Hourly rows older than this were deleted.
    pub hourly_from: i64,
    /// Daily rows older than this were deleted.
    pub daily_from: i64,
}

const MARK_KEYS: [&str; 4] = ["usage_daily_until", "usage_monthly_until", "usage_hourly_from", "usage_daily_from"];

pub fn marks(conn: &Connection) -> Result<Marks> {
    let get = |key: &str| -> Result<i64> {
        let v: Option<String> =
            conn.query_row("SELECT value FROM catalog_meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    Ok(Marks {
        daily_until: get(MARK_KEYS[0])?,
        monthly_until: get(MARK_KEYS[1])?,
        hourly_from: get(MARK_KEYS[2])?,
        daily_from: get(MARK_KEYS[3])?,
    })
}

fn set_mark(tx: &Transaction<'_>, key: &str, value: i64) -> Result<()> {
    tx.execute("INSERT OR REPLACE INTO catalog_meta (key, value) VALUES (?1, ?2)", params![key, value.to_string()])?;
    Ok(())
}

/// Points readers back at the hourly rows from `from` on (and the next run's rolling there):
/// for history written after the fact (`bench analytics-history`), never needed by the meter.
pub fn rewind(tx: &Transaction<'_>, from: i64) -> Result<()> {
    let m = marks(tx)?;
    if m.daily_until > day_floor(from) {
        set_mark(tx, MARK_KEYS[0], day_floor(from))?;
    }
    if m.monthly_until > month_floor(from) {
        set_mark(tx, MARK_KEYS[1], month_floor(from))?;
    }
    Ok(())
}

/// What one run did.
#[derive(Debug, Default, Serialize)]
pub struct Downsampled {
    pub tenants: usize,
    pub days_written: usize,
    pub months_written: usize,
    pub hourly_rows_deleted: usize,
    pub daily_rows_deleted: usize,
    pub user_rows_coarsened: usize,
    /// Hourly rows are kept from here on, daily ones from `daily_from`.
    pub hourly_from: String,
    pub daily_from: String,
    /// Of `seconds`, the rolling (the rest deletes and coarsens).
    pub roll_seconds: f64,
    pub seconds: f64,
}

/// The job's own page cache (freed when it ends).
const BULK_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Tenants per transaction: long enough to amortise the commit, short enough that the
/// usage flush (every second) never waits long for the write lock.
const CHUNK: usize = 50;

fn day_floor(t: i64) -> i64 {
    t - t.rem_euclid(86_400)
}

fn month_floor(t: i64) -> i64 {
    month_bounds(t).0
}

/// Rolls, then deletes what is past retention. `now` decides which days are complete.
pub fn downsample(catalog: &Catalog, now: i64, keep: Retention) -> Result<Downsampled> {
    let started = Instant::now();
    let today = day_floor(now);
    let hourly_cutoff = today - keep.hourly_days * 86_400;
    let month_cutoff = month_floor(today - keep.daily_days * 86_400);
    let mut conn = catalog.bulk_conn(BULK_CACHE_BYTES)?;
    let (before, tenants) = (marks(&conn)?, tenants_with_usage(&conn)?);
    // A flush can land a few ms after midnight: the last rolled day is rolled again.
    let day_from = (before.daily_until - 86_400).max(0);
    let mut out = Downsampled { tenants: tenants.len(), ..Downsampled::default() };
    for chunk in tenants.chunks(CHUNK) {
        Catalog::write_on(&mut conn, |tx| {
            for t in chunk {
                out.days_written += roll(tx, t, Grain::Day, day_from, today)?;
                out.months_written += roll(tx, t, Grain::Month, before.monthly_until, month_cutoff)?;
            }
            Ok(())
        })?;
    }
    out.roll_seconds = started.elapsed().as_secs_f64();
    Catalog::write_on(&mut conn, |tx| {
        set_mark(tx, MARK_KEYS[0], today)?;
        set_mark(tx, MARK_KEYS[1], month_cutoff.max(before.monthly_until))
    })?;
    // Only now, with readers pointed at the coarser grains, is anything deleted.
    for chunk in tenants.chunks(CHUNK) {
        Catalog::write_on(&mut conn, |tx| {
            for t in chunk {
                out.hourly_rows_deleted += tx.execute(
                    "DELETE FROM usage_hourly WHERE tenant_id = ?1 AND hour < ?2",
                    params![t, hourly_cutoff],
                )?;
                out.daily_rows_deleted +=
                    tx.execute("DELETE FROM usage_daily WHERE tenant_id = ?1 AND day < ?2", params![t, month_cutoff])?;
                out.user_rows_coarsened += coarsen_users(tx, t, before, hourly_cutoff, month_cutoff)?;
            }
            Ok(())
        })?;
    }
    Catalog::write_on(&mut conn, |tx| {
        set_mark(tx, MARK_KEYS[2], hourly_cutoff.max(before.hourly_from))?;
        set_mark(tx, MARK_KEYS[3], month_cutoff.max(before.daily_from))
    })?;
    out.hourly_from = rfc3339(hourly_cutoff.max(before.hourly_from));
    out.daily_from = rfc3339(month_cutoff.max(before.daily_from));
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Every tenant id with a row in a usage table, deleted tenants' included (their history
/// still belongs to the platform's). One index seek per tenant, not a scan of the rows.
pub(crate) fn tenants_with_usage(conn: &Connection) -> Result<Vec<String>> {
    let mut all = BTreeSet::new();
    for table in ["usage_hourly", "usage_daily", "usage_users"] {
        let mut stmt =
            conn.prepare(&format!("SELECT tenant_id FROM {table} WHERE tenant_id > ?1 ORDER BY tenant_id LIMIT 1"))?;
        let mut last = String::new();
        while let Some(id) = stmt.query_row([&last], |r| r.get::<_, String>(0)).optional()? {
            all.insert(id.clone());
            last = id;
        }
    }
    Ok(all.into_iter().collect())
}

#[derive(Clone, Copy)]
enum Grain {
    Day,
    Month,
}

/// A roll's source table, its time column and how it reads (hours, storage byte-hours), the
/// target table and its time column, and the target's floor.
type RollTables = (&'static str, &'static str, &'static str, &'static str, &'static str, fn(i64) -> i64);

impl Grain {
    fn tables(self) -> RollTables {
        match self {
            Grain::Day => ("usage_hourly", "hour", "1, storage_bytes", "usage_daily", "day", day_floor),
            Grain::Month => ("usage_daily", "day", "hours, storage_byte_hours", "usage_monthly", "month", month_floor),
        }
    }
}

/// Sums a tenant's rows of `[from, to)` into the coarser grain (rows replaced whole).
fn roll(tx: &Transaction<'_>, tenant: &str, grain: Grain, from: i64, to: i64) -> Result<usize> {
    if from >= to {
        return Ok(0);
    }
    let (src, src_col, extra, dst, dst_col, floor) = grain.tables();
    let mut read = tx.prepare_cached(&format!(
        "SELECT {src_col}, requests, errors, bytes_in, bytes_out, rows_read, rows_written, cpu_us, {extra}, latency_hist, \
         storage_bytes FROM {src} WHERE tenant_id = ?1 AND {src_col} >= ?2 AND {src_col} < ?3 ORDER BY {src_col}"
    ))?;
    let mut write = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {dst} (tenant_id, {dst_col}, requests, errors, bytes_in, bytes_out, rows_read, rows_written, \
         cpu_us, hours, storage_byte_hours, latency_hist, storage_bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    let mut written = 0;
    // (period start, sums of the 9 counters, merged histogram, last storage)
    let mut cur: Option<(i64, [i64; 9], Vec<u64>, i64)> = None;
    let mut flush = |c: &(i64, [i64; 9], Vec<u64>, i64)| -> Result<()> {
        let s = &c.1;
        write.execute(params![
            tenant,
            c.0,
            s[0],
            s[1],
            s[2],
            s[3],
            s[4],
            s[5],
            s[6],
            s[7],
            s[8],
            hist_text(&c.2),
            c.3
        ])?;
        written += 1;
        Ok(())
    };
    let mut rows = read.query(params![tenant, from, to])?;
    while let Some(r) = rows.next()? {
        let at = floor(r.get::<_, i64>(0)?);
        if cur.as_ref().is_some_and(|c| c.0 != at) {
            if let Some(c) = cur.take() {
                flush(&c)?;
            }
        }
        let c = cur.get_or_insert_with(|| (at, [0; 9], Vec::new(), 0));
        for (i, sum) in c.1.iter_mut().enumerate() {
            *sum += r.get::<_, i64>(i + 1)?;
        }
        merge_hist(&mut c.2, r.get_ref(10)?.as_str().unwrap_or("[]"));
        let storage: i64 = r.get(11)?;
        if storage > 0 {
            c.3 = storage;
        }
    }
    if let Some(c) = cur.take() {
        flush(&c)?;
    }
    Ok(written)
}

/// Distinct users per day before the hourly cutoff and per month before the monthly one (the
/// same table, at the start of the period), so active-user counts stay exact at those grains.
/// Set-based: a year of a busy tenant's users is a few statements, not a round trip a row.
fn coarsen_users(
    tx: &Transaction<'_>,
    tenant: &str,
    before: Marks,
    hourly_cutoff: i64,
    month_cutoff: i64,
) -> Result<usize> {
    const DAY: &str = "(hour - hour % 86400)";
    const MONTH: &str = "CAST(strftime('%s', hour, 'unixepoch', 'start of month') AS INTEGER)";
    let mut n = 0;
    for (from, to, floor) in [(before.hourly_from, hourly_cutoff, DAY), (before.daily_from, month_cutoff, MONTH)] {
        if from >= to {
            continue;
        }
        let range = format!("tenant_id = ?1 AND hour >= ?2 AND hour < ?3 AND hour <> {floor}");
        tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO usage_users (tenant_id, hour, user_id) SELECT tenant_id, {floor}, user_id FROM usage_users WHERE {range}"
        ))?
        .execute(params![tenant, from, to])?;
        n +=
            tx.prepare_cached(&format!("DELETE FROM usage_users WHERE {range}"))?.execute(params![tenant, from, to])?;
    }
    Ok(n)
}

/// Adds a histogram written as `[1,2,3]` into `into`, bucket by bucket (ignores what is not a
/// number: a hand-edited row cannot stop the job).
pub(crate) fn merge_hist(into: &mut Vec<u64>, text: &str) {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.trim().is_empty() {
        return;
    }
    for (i, part) in inner.split(',').enumerate() {
        let v: u64 = part.trim().parse().unwrap_or(0);
        if into.len() <= i {
            into.resize(i + 1, 0);
        }
        into[i] += v;
    }
}

fn hist_text(h: &[u64]) -> String {
    let parts: Vec<String> = h.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Whose usage a scan reads.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Tenant(&'a TenantId),
    /// Every tenant (deleted ones included: the platform's past).
    All,
    /// The live tenants on a plan.
    Plan(&'a str),
}

/// One row of usage from whichever grain covered its period.
pub(crate) struct Row<'r> {
    pub tenant: &'r str,
    /// The start of the row's period (an hour, a day or a month).
    pub at: i64,
    pub requests: i64,
    pub errors: i64,
    pub hist: &'r str,
    pub storage: i64,
    /// Hours with usage in the row, and their storage summed (for exact averages).
    pub hours: i64,
    pub storage_byte_hours: i64,
}

/// Calls `f` with every usage row of `scope` in `[from, to)` (`from` floored to the hour), each
/// stretch from the coarsest grain kept for it: months before `usage_daily_from`, whole days
/// before `usage_daily_until`, hours after (and for a partial first or last day while its hours
/// are kept). `g` = hour reads hours only. Returns a notice when part of the range is older
/// than what `g` can show (a partial day or month is then counted whole).
pub(crate) fn scan(
    conn: &Connection,
    scope: Scope<'_>,
    from: i64,
    to: i64,
    g: Granularity,
    mut f: impl FnMut(Row<'_>),
) -> Result<Option<String>> {
    const HOURLY: (&str, &str) = ("usage_hourly", "hour");
    const DAILY: (&str, &str) = ("usage_daily", "day");
    const MONTHLY: (&str, &str) = ("usage_monthly", "month");
    let extra =
        |table: &str| if table == "usage_hourly" { "1, u.storage_bytes" } else { "u.hours, u.storage_byte_hours" };
    let m = marks(conn)?;
    let mut at = from - from.rem_euclid(3600);
    let mut stretches: Vec<((&str, &str), i64, i64)> = Vec::new();
    let mut notice = None;
    if g == Granularity::Hour {
        stretches.push((HOURLY, at, to));
        if at < m.hourly_from {
            notice = Some(format!(
                "hourly usage is kept from {} (analytics_hourly_days); ask for granularity=day before that",
                rfc3339(m.hourly_from)
            ));
        }
    } else {
        if at < m.daily_from {
            stretches.push((MONTHLY, month_floor(at), m.daily_from.min(to)));
            if g != Granularity::Month {
                notice = Some(format!(
                    "usage before {} is kept by month only (analytics_daily_days); ask for granularity=month",
                    rfc3339(m.daily_from)
                ));
            }
            at = m.daily_from;
        }
        // A partial first day: from its hours while they are kept, else the whole day.
        if at < m.daily_until && at < to && at != day_floor(at) {
            let end = (day_floor(at) + 86_400).min(to);
            stretches.push(if at >= m.hourly_from { (HOURLY, at, end) } else { (DAILY, day_floor(at), end) });
            at = end;
        }
        let whole_days_end = m.daily_until.min(day_floor(to));
        if at < whole_days_end {
            stretches.push((DAILY, at, whole_days_end));
            at = whole_days_end;
        }
        if at < to {
            let hours_kept = at >= m.hourly_from || at >= m.daily_until;
            stretches.push(if hours_kept { (HOURLY, at, to) } else { (DAILY, at, to) });
        }
    }
    // Every tenant: one range of the primary key per tenant. The tables have no index on the
    // time (it would slow the meter and the deletes), and a scan of a whole table to find a
    // day reads gigabytes at 10,000 tenants.
    let everyone = match scope {
        Scope::All => tenants_with_usage(conn)?,
        _ => Vec::new(),
    };
    let (join, filter, keys): (&str, &str, Vec<&str>) = match scope {
        Scope::Tenant(t) => ("", "u.tenant_id = ?1", vec![t.as_str()]),
        Scope::All => ("", "u.tenant_id = ?1", everyone.iter().map(String::as_str).collect()),
        Scope::Plan(p) => ("JOIN tenants t ON t.id = u.tenant_id", "t.plan = ?1 AND t.status <> 'deleted'", vec![p]),
    };
    for ((table, col), a, b) in stretches {
        if a >= b {
            continue;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT u.tenant_id, u.{col}, u.requests, u.errors, u.latency_hist, u.storage_bytes, {} FROM {table} u {join} \
             WHERE {filter} AND u.{col} >= ?2 AND u.{col} < ?3",
            extra(table)
        ))?;
        for key in &keys {
            let mut rows = stmt.query(params![key, a, b])?;
            while let Some(r) = rows.next()? {
                f(Row {
                    tenant: r.get_ref(0)?.as_str().unwrap_or(""),
                    at: r.get(1)?,
                    requests: r.get(2)?,
                    errors: r.get(3)?,
                    hist: r.get_ref(4)?.as_str().unwrap_or("[]"),
                    storage: r.get(5)?,
                    hours: r.get(6)?,
                    storage_byte_hours: r.get(7)?,
                });
            }
        }
    }
    Ok(notice)
}

/// Requests and average stored bytes of a tenant in `[from, to)` (over the hours with usage),
/// and how many such hours, from whichever grain keeps them: a yearly period outlives the
/// hourly retention, and the daily and monthly rollups carry the hours and byte-hours so the
/// average is the same as it was from the hours.
pub fn usage_between(conn: &Connection, tenant: &str, from: i64, to: i64) -> Result<(i64, f64, i64)> {
    let id = crate::ids::TenantId::parse(tenant)?;
    let (mut requests, mut byte_hours, mut hours) = (0i64, 0i64, 0i64);
    scan(conn, Scope::Tenant(&id), from, to, Granularity::Day, |r| {
        requests += r.requests;
        byte_hours += r.storage_byte_hours;
        hours += r.hours;
    })?;
    let avg = if hours > 0 { byte_hours as f64 / hours as f64 } else { 0.0 };
    Ok((requests, avg, hours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_sums_and_storage_averages_survive_downsampling() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("c.db"), true, crate::catalog::test_threads()).unwrap();
        let tenant = TenantId::mint();
        let now = crate::util::parse_time("2026-12-07T10:30:00Z").unwrap();
        let start = now - now % 86_400 - 100 * 86_400;
        // Sparse hours (every 5th), storage growing: the average is over hours with usage.
        catalog
            .write(|tx| {
                for i in 0..(100 * 24) {
                    if i % 5 == 0 {
                        tx.execute(
                            "INSERT INTO usage_hourly (tenant_id, hour, requests, storage_bytes, latency_hist) VALUES (?1, ?2, ?3, ?4, '[1,2]')",
                            params![tenant.as_str(), start + i * 3600, i % 7 + 1, 1_000 + i * 10],
                        )?;
                    }
                }
                Ok(())
            })
            .unwrap();
        // From a month's start, so that the months kept whole cover the same hours.
        let period = (month_bounds(start).1, now);
        let before = usage_between(&catalog.conn().unwrap(), tenant.as_str(), period.0, period.1).unwrap();
        let d = downsample(&catalog, now, Retention { hourly_days: 2, daily_days: 40 }).unwrap();
        assert!(d.months_written > 0 && d.hourly_rows_deleted > 0 && d.daily_rows_deleted > 0, "{d:?}");
        let after = usage_between(&catalog.conn().unwrap(), tenant.as_str(), period.0, period.1).unwrap();
        assert!(before.0 > 0 && before.2 > 100, "{before:?}");
        assert_eq!((after.0, after.2), (before.0, before.2), "requests and hours with usage");
        assert!((after.1 - before.1).abs() < 1e-6, "average storage {} then {}", before.1, after.1);
    }

    #[test]
    fn histograms_merge_bucket_by_bucket_and_round_trip() {
        let mut h = Vec::new();
        merge_hist(&mut h, "[1,2,3]");
        merge_hist(&mut h, "[0, 1]");
        merge_hist(&mut h, "[]");
        merge_hist(&mut h, "[x,1,0,0,4]");
        assert_eq!(h, vec![1, 4, 3, 0, 4]);
        assert_eq!(hist_text(&h), "[1,4,3,0,4]");
        let mut back = Vec::new();
        merge_hist(&mut back, &hist_text(&h));
        assert_eq!(back, h);
    }
}
