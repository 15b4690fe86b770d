//! Realistic usage history (`tenantd bench analytics-history`): D days of hourly rollups for N
//! tenants, as the meter would have written them, for tests and the analytics benchmarks.
//!
//! Each tenant gets a size drawn log-uniformly (peak hours from ~1 to ~1,000 requests), a
//! latency profile, an error rate, a pool of users and growing storage. Traffic follows the
//! day (quiet at night, busiest mid-afternoon UTC) and the week (weekends at 40%), grows over
//! the period, and varies hour to hour; hours without a request have no row, as with the meter.
//! The same seed gives the same history.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::limits::meter::BUCKETS_US;

#[derive(Debug, Default, Serialize)]
pub struct Written {
    pub tenants: usize,
    pub hourly_rows: usize,
    pub user_rows: usize,
    pub requests: i64,
    pub seconds: f64,
}

/// Writes `days` days of hourly usage ending at the start of `now`'s hour for each of
/// `tenant_ids` (rows already there are replaced). One transaction per tenant.
pub fn write(catalog: &Catalog, tenant_ids: &[String], days: i64, now: i64, seed: u64) -> Result<Written> {
    let started = std::time::Instant::now();
    let end = now - now.rem_euclid(3600);
    let start = end - days * 86_400;
    let mut out = Written { tenants: tenant_ids.len(), ..Written::default() };
    let mut conn = catalog.bulk_conn(256 * 1024 * 1024)?;
    Catalog::write_on(&mut conn, |tx| super::rollup::rewind(tx, start))?;
    for (i, id) in tenant_ids.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let peak: f64 = 10f64.powf(rng.random_range(0.0..3.0));
        let median = rng.random_range(2..7usize).min(BUCKETS_US.len() - 3);
        let error_rate: f64 = rng.random_range(0.002..0.03);
        let pool = ((peak / 5.0).ceil() as i64).clamp(1, 200);
        let storage0 = (peak * 1_000_000.0) as i64;
        let growth_per_day = (peak * rng.random_range(1_000.0..20_000.0)) as i64;
        Catalog::write_on(&mut conn, |tx| {
            let mut hourly = tx.prepare_cached(
                "INSERT OR REPLACE INTO usage_hourly (tenant_id, hour, requests, errors, bytes_in, bytes_out, rows_read, \
                 rows_written, cpu_us, latency_hist, storage_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut users =
                tx.prepare_cached("INSERT OR IGNORE INTO usage_users (tenant_id, hour, user_id) VALUES (?1, ?2, ?3)")?;
            let mut hour = start;
            while hour < end {
                let day_index = (hour - start) / 86_400;
                let hod = (hour.rem_euclid(86_400) / 3600) as f64;
                let weekday = (hour.div_euclid(86_400) + 3).rem_euclid(7); // 0 = Monday
                let daylight = (std::f64::consts::PI * (hod - 6.0) / 16.0).sin().max(0.0);
                let week = if weekday >= 5 { 0.4 } else { 1.0 };
                let trend = 1.0 + 0.5 * (hour - start) as f64 / (end - start).max(1) as f64;
                let lambda = peak * (0.03 + 0.97 * daylight) * week * trend;
                let requests = (lambda * rng.random_range(0.6..1.4)).floor() as i64;
                if requests > 0 {
                    let errors = (requests as f64 * error_rate * rng.random_range(0.5..1.5)).round() as i64;
                    let hist = spread(requests as u64, median);
                    let storage = storage0 + growth_per_day * day_index;
                    hourly.execute(params![
                        id,
                        hour,
                        requests,
                        errors,
                        requests * 300,
                        requests * 1_500,
                        requests * 5,
                        requests / 4,
                        requests * 800,
                        hist,
                        storage
                    ])?;
                    out.hourly_rows += 1;
                    out.requests += requests;
                    // Signed-in users (API-key traffic has none): one to three of the pool.
                    let n = (1 + requests / 100).min(3).min(pool);
                    for _ in 0..n {
                        users.execute(params![id, hour, rng.random_range(1..=pool)])?;
                        out.user_rows += 1;
                    }
                }
                hour += 3600;
            }
            Ok(())
        })?;
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// `n` requests over the latency buckets around `median`: 10% one faster, 60% at it, 25% one
/// slower, 4% two slower, 1% four slower (the tail p99 sees).
fn spread(n: u64, median: usize) -> String {
    let mut h = vec![0u64; BUCKETS_US.len()];
    let shares = [(median - 1, 10), (median + 1, 25), (median + 2, 4), ((median + 4).min(BUCKETS_US.len() - 1), 1)];
    let mut left = n;
    for (bucket, pct) in shares {
        let k = n * pct / 100;
        h[bucket] += k;
        left -= k;
    }
    h[median] += left;
    let parts: Vec<String> = h.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_every_request() {
        for n in [1u64, 7, 100, 12_345] {
            let mut h = Vec::new();
            super::super::rollup::merge_hist(&mut h, &spread(n, 3));
            assert_eq!(h.iter().sum::<u64>(), n);
        }
    }
}
