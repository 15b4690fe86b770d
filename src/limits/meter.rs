//! Usage metering: per tenant and hour — requests, errors, bytes in and out, rows read and
//! written, CPU time, a latency histogram (p50/p95/p99), storage, active users. Counted in memory
//! on the hot path (sharded), flushed to the catalog in one transaction every second and at
//! shutdown, so a hard kill loses at most the last second.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use parking_lot::Mutex;
use rusqlite::params;
use serde::Serialize;

use crate::error::Result;
use crate::ids::TenantId;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is open).
pub const BUCKETS_US: [u64; 16] = [
    100,
    200,
    400,
    700,
    1_000,
    2_000,
    4_000,
    7_000,
    10_000,
    20_000,
    40_000,
    70_000,
    100_000,
    300_000,
    1_000_000,
    u64::MAX,
];

#[derive(Clone, Default, Debug)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub cpu_us: u64,
    pub hist: [u64; 16],
    pub users: HashSet<i64>,
}

impl Counts {
    fn merge_hist(&mut self, other: &[u64]) {
        for (a, b) in self.hist.iter_mut().zip(other) {
            *a += b;
        }
    }
}

/// One finished request, as the meter sees it.
pub struct Sample {
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_us: u64,
    pub cpu_us: u64,
    pub user: Option<i64>,
}

thread_local! {
    static ROWS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Handlers report rows they read and wrote; the worker collects them after the request.
pub fn rows(read: u64, written: u64) {
    ROWS.with(|r| {
        let (a, b) = r.get();
        r.set((a + read, b + written));
    });
}

/// Takes (and resets) this thread's row counts.
pub fn take_rows() -> (u64, u64) {
    ROWS.with(|r| r.replace((0, 0)))
}

const SHARDS: usize = 16;

/// Per tenant, counts by hour (usually one hour; two around the turn of an hour).
type Shard = crate::util::IdMap<TenantId, HashMap<i64, Counts>>;

pub struct Meter {
    shards: Vec<Mutex<Shard>>,
    /// Requests this month per tenant (loaded from the catalog once, then counted here).
    month: Mutex<crate::util::IdMap<TenantId, (i64, u64)>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            month: Mutex::default(),
            hasher: Default::default(),
        }
    }
}

pub fn hour_of(unix: i64) -> i64 {
    unix - unix.rem_euclid(3600)
}

impl Meter {
    pub fn record(&self, tenant: &TenantId, now: i64, s: &Sample, rows: (u64, u64)) {
        let shard = &self.shards[(self.hasher.hash_one(tenant) as usize) % SHARDS];
        let mut map = shard.lock();
        // Look up by reference first: the tenant id is cloned only for its first request of a
        // flush interval, not on every request.
        let hours = match map.get_mut(tenant) {
            Some(h) => h,
            None => map.entry(tenant.clone()).or_default(),
        };
        let c = hours.entry(hour_of(now)).or_default();
        c.requests += 1;
        c.errors += u64::from(s.status >= 400);
        c.bytes_in += s.bytes_in;
        c.bytes_out += s.bytes_out;
        c.rows_read += rows.0;
        c.rows_written += rows.1;
        c.cpu_us += s.cpu_us;
        let b = BUCKETS_US.iter().position(|&u| s.latency_us <= u).unwrap_or(BUCKETS_US.len() - 1);
        c.hist[b] += 1;
        if let Some(u) = s.user {
            c.users.insert(u);
        }
        drop(map);
        if let Some(m) = self.month.lock().get_mut(tenant) {
            m.1 += 1;
        }
    }

    /// Everything counted since the last drain (the backlog a flush writes).
    pub fn drain(&self) -> Vec<((TenantId, i64), Counts)> {
        self.shards
            .iter()
            .flat_map(|s| std::mem::take(&mut *s.lock()))
            .flat_map(|(t, hours)| hours.into_iter().map(move |(h, c)| ((t.clone(), h), c)))
            .collect()
    }

    /// Puts counts back after a failed flush, so they are written next time.
    pub fn restore(&self, items: Vec<((TenantId, i64), Counts)>) {
        for ((t, h), c) in items {
            let shard = &self.shards[(self.hasher.hash_one(&t) as usize) % SHARDS];
            let mut map = shard.lock();
            let e = map.entry(t).or_default().entry(h).or_default();
            e.requests += c.requests;
            e.errors += c.errors;
            e.bytes_in += c.bytes_in;
            e.bytes_out += c.bytes_out;
            e.rows_read += c.rows_read;
            e.rows_written += c.rows_written;
            e.cpu_us += c.cpu_us;
            e.merge_hist(&c.hist);
            e.users.extend(c.users);
        }
    }

    /// Tenant-hours counted and not yet flushed (the metering backlog).
    pub fn backlog(&self) -> usize {
        self.shards.iter().map(|s| s.lock().values().map(HashMap::len).sum::<usize>()).sum()
    }

    /// Requests of `tenant` in the calendar month (UTC) containing `now`; `load` reads what the
    /// catalog already has, once per tenant and month.
    pub fn month_requests(
        &self,
        tenant: &TenantId,
        month_start: i64,
        load: impl FnOnce() -> Result<u64>,
    ) -> Result<u64> {
        if let Some((m, n)) = self.month.lock().get(tenant) {
            if *m == month_start {
                return Ok(*n);
            }
        }
        let stored = load()?;
        let unflushed: u64 = self
            .shards
            .iter()
            .map(|s| {
                s.lock()
                    .get(tenant)
                    .map(|hours| hours.iter().filter(|(h, _)| **h >= month_start).map(|(_, c)| c.requests).sum::<u64>())
                    .unwrap_or(0)
            })
            .sum();
        let n = stored + unflushed;
        let mut month = self.month.lock();
        if month.len() > 200_000 {
            month.clear();
        }
        month.insert(tenant.clone(), (month_start, n));
        Ok(n)
    }
}

/// Writes drained counts in one transaction.
pub fn flush(
    conn: &rusqlite::Transaction<'_>,
    items: &[((TenantId, i64), Counts)],
    storage: &HashMap<TenantId, u64>,
) -> Result<()> {
    let mut read_hist =
        conn.prepare_cached("SELECT latency_hist FROM usage_hourly WHERE tenant_id = ?1 AND hour = ?2")?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO usage_hourly(tenant_id, hour, requests, errors, bytes_in, bytes_out, rows_read, rows_written, cpu_us, latency_hist, storage_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(tenant_id, hour) DO UPDATE SET requests = requests + excluded.requests, errors = errors + excluded.errors,
           bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
           rows_read = rows_read + excluded.rows_read, rows_written = rows_written + excluded.rows_written,
           cpu_us = cpu_us + excluded.cpu_us, latency_hist = excluded.latency_hist,
           storage_bytes = max(storage_bytes, excluded.storage_bytes)",
    )?;
    let mut user =
        conn.prepare_cached("INSERT OR IGNORE INTO usage_users(tenant_id, hour, user_id) VALUES (?1, ?2, ?3)")?;
    for ((t, hour), c) in items {
        let mut hist = c.hist;
        if let Some(old) = read_hist
            .query_row(params![t.as_str(), hour], |r| r.get::<_, String>(0))
            .ok()
            .and_then(|j| serde_json::from_str::<Vec<u64>>(&j).ok())
        {
            for (a, b) in hist.iter_mut().zip(old) {
                *a += b;
            }
        }
        let hist_json = serde_json::to_string(&hist.to_vec()).unwrap_or_else(|_| "[]".into());
        upsert.execute(params![
            t.as_str(),
            hour,
            c.requests as i64,
            c.errors as i64,
            c.bytes_in as i64,
            c.bytes_out as i64,
            c.rows_read as i64,
            c.rows_written as i64,
            c.cpu_us as i64,
            hist_json,
            storage.get(t).copied().unwrap_or(0) as i64
        ])?;
        for u in &c.users {
            user.execute(params![t.as_str(), hour, u])?;
        }
    }
    Ok(())
}

/// One row of the usage report.
#[derive(Debug, Serialize)]
pub struct Bucket {
    pub start: String,
    pub requests: i64,
    pub errors: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub rows_read: i64,
    pub rows_written: i64,
    pub cpu_ms: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub storage_bytes: i64,
    pub active_users: i64,
}

/// The quantile's bucket upper bound, in milliseconds (`hist`: counts per `BUCKETS_US` bucket).
pub fn quantile(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            let us = if BUCKETS_US[i] == u64::MAX { BUCKETS_US[i - 1] * 2 } else { BUCKETS_US[i] };
            return Some(us as f64 / 1000.0);
        }
    }
    None
}

/// Usage of a tenant between `from` and `to` (Unix seconds), by hour or day.
pub fn report(conn: &rusqlite::Connection, tenant: &TenantId, from: i64, to: i64, day: bool) -> Result<Vec<Bucket>> {
    let width = if day { 86_400 } else { 3600 };
    let mut stmt = conn.prepare(
        "SELECT hour, requests, errors, bytes_in, bytes_out, rows_read, rows_written, cpu_us, latency_hist, storage_bytes,
                (SELECT count(*) FROM usage_users u WHERE u.tenant_id = h.tenant_id AND u.hour = h.hour)
         FROM usage_hourly h WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour",
    )?;
    let rows = stmt.query_map(params![tenant.as_str(), from - from.rem_euclid(3600), to], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            [r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
            r.get::<_, String>(8)?,
            r.get::<_, i64>(9)?,
            r.get::<_, i64>(10)?,
        ))
    })?;
    // (bucket start, summed counters, merged histogram, storage)
    let mut out: Vec<(i64, [i64; 7], Vec<u64>, i64)> = Vec::new();
    let mut users_by_bucket: HashMap<i64, i64> = HashMap::new();
    for row in rows {
        let (hour, n, hist, storage, users) = row?;
        let start = hour - hour.rem_euclid(width);
        let hist: Vec<u64> = serde_json::from_str(&hist).unwrap_or_default();
        *users_by_bucket.entry(start).or_default() = users_by_bucket.get(&start).copied().unwrap_or(0).max(users);
        match out.last_mut().filter(|b| b.0 == start) {
            Some(b) => {
                for (a, x) in b.1.iter_mut().zip(n) {
                    *a += x;
                }
                for (a, x) in b.2.iter_mut().zip(&hist) {
                    *a += x;
                }
                b.3 = b.3.max(storage);
            }
            None => out.push((start, n, if hist.is_empty() { vec![0; 16] } else { hist }, storage)),
        }
    }
    Ok(out
        .into_iter()
        .map(|(start, n, hist, storage)| Bucket {
            start: crate::util::rfc3339(start),
            requests: n[0],
            errors: n[1],
            bytes_in: n[2],
            bytes_out: n[3],
            rows_read: n[4],
            rows_written: n[5],
            cpu_ms: n[6] as f64 / 1000.0,
            p50_ms: quantile(&hist, 0.50),
            p95_ms: quantile(&hist, 0.95),
            p99_ms: quantile(&hist, 0.99),
            storage_bytes: storage,
            // For days this is the busiest hour's distinct users (a lower bound of the day's).
            active_users: users_by_bucket.get(&start).copied().unwrap_or(0),
        })
        .collect())
}

/// Requests stored for the month starting at `month_start`.
pub fn stored_month_requests(conn: &rusqlite::Connection, tenant: &TenantId, month_start: i64) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT coalesce(sum(requests), 0) FROM usage_hourly WHERE tenant_id = ?1 AND hour >= ?2",
        params![tenant.as_str(), month_start],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let mut h = [0u64; 16];
        h[0] = 90; // <= 100 us
        h[5] = 9; // <= 2 ms
        h[9] = 1; // <= 20 ms
        assert_eq!(quantile(&h, 0.5), Some(0.1));
        assert_eq!(quantile(&h, 0.95), Some(2.0));
        assert_eq!(quantile(&h, 0.995), Some(20.0));
    }

    #[test]
    fn drain_and_restore_keep_counts() {
        let m = Meter::default();
        let t = TenantId::mint();
        for _ in 0..3 {
            m.record(
                &t,
                7200,
                &Sample { status: 500, bytes_in: 1, bytes_out: 2, latency_us: 50, cpu_us: 1, user: Some(4) },
                (2, 1),
            );
        }
        let d = m.drain();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1.requests, 3);
        assert_eq!(m.backlog(), 0);
        m.restore(d);
        let d = m.drain();
        assert_eq!((d[0].1.errors, d[0].1.rows_read, d[0].1.users.len()), (3, 6, 1));
    }
}
