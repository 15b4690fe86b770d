//! Realistic usage history (`tenantd bench analytics-history`): D days of hourly rollups for N
//! tenants, as the meter would have written them, for tests and the analytics benchmarks.
//!
//! Each tenant gets a size drawn log-uniformly (peak hours from ~1 to ~1,000 requests), a
//! latency profile, an error rate, a pool of users and growing storage. Traffic follows the
//! day (quiet at night, busiest mid-afternoon UTC) and the week (weekends at 40%), grows over
//! the period, and varies hour to hour; hours without a request have no row, as with the meter.
//! Seven in ten tenants also get a subscription's life in the billing ledger (see
//! `subscription_history`), for the revenue benchmark. The same seed gives the same history.

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
    /// Billing ledger lines (the revenue benchmark's input).
    pub ledger_lines: usize,
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
            out.ledger_lines += subscription_history(tx, &mut rng, id, start, end)?;
            Ok(())
        })?;
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Synthetic plans of the generated subscriptions: (name, monthly price in cents).
const PLANS: [(&str, i64); 3] = [("starter", 1_000), ("pro", 2_900), ("business", 9_900)];

/// A subscription's life in the billing ledger, as `billing` writes it: seven in ten tenants
/// start one on a day of the period (a 14-day trial, then active; one in ten yearly, at ten
/// months' price); each later month one in thirty changes plan, one in forty cancels, and a
/// canceled one comes back with a chance of one in five.
fn subscription_history(
    tx: &rusqlite::Transaction<'_>,
    rng: &mut StdRng,
    tenant: &str,
    start: i64,
    end: i64,
) -> Result<usize> {
    use crate::catalog::billing::{append_ledger, LedgerEntry};
    // A second run replaces what the first wrote, as the usage rows are replaced.
    tx.execute("DELETE FROM billing_ledger WHERE tenant_id = ?1 AND actor = 'bench'", [tenant])?;
    if rng.random_range(0..10) >= 7 {
        return Ok(0);
    }
    let yearly = rng.random_range(0..10) == 0;
    let price = |plan: usize| if yearly { PLANS[plan].1 * 10 } else { PLANS[plan].1 };
    let mut plan = rng.random_range(0..PLANS.len());
    let mut status = "trialing";
    let mut at = start + rng.random_range(0..(end - start).max(1));
    let mut lines = 0;
    let mut write = |at: i64, kind: &str, from: Option<(usize, &str)>, to: (usize, &str)| -> Result<()> {
        append_ledger(
            tx,
            &LedgerEntry {
                tenant_id: tenant.to_string(),
                subscription_id: None,
                at,
                actor: "bench".into(),
                kind: kind.into(),
                from_plan: from.map(|f| PLANS[f.0].0.to_string()),
                to_plan: Some(PLANS[to.0].0.to_string()),
                from_amount_cents: from.map(|f| price(f.0)),
                to_amount_cents: Some(price(to.0)),
                from_status: from.map(|f| f.1.to_string()),
                to_status: Some(to.1.to_string()),
                interval: Some(if yearly { "year" } else { "month" }.into()),
                currency: Some("usd".into()),
                details: serde_json::json!({}),
            },
        )?;
        lines += 1;
        Ok(())
    };
    write(at, "created", None, (plan, status))?;
    at += 14 * 86_400;
    while at < end {
        let next = match status {
            "trialing" => Some(("status_changed", plan, "active")),
            "canceled" => (rng.random_range(0..5) == 0).then_some(("resumed", plan, "active")),
            _ => match rng.random_range(0..120) {
                0..=3 => Some(("plan_changed", (plan + 1).min(PLANS.len() - 1), status)),
                4..=6 => Some(("plan_changed", plan.saturating_sub(1), status)),
                7..=9 => Some(("canceled", plan, "canceled")),
                _ => None,
            },
        };
        if let Some((kind, to_plan, to_status)) = next {
            if to_plan != plan || to_status != status {
                write(at, kind, Some((plan, status)), (to_plan, to_status))?;
                (plan, status) = (to_plan, to_status);
            }
        }
        at += 30 * 86_400;
    }
    Ok(lines)
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
