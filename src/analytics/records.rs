//! Records per table and their growth (issue 21): a tenant's rows per table are counted in its
//! own file, and a snapshot per tenant, table and day is kept in the catalog (`usage_tables`),
//! so growth over a range compares now with the snapshot at (or nearest after) its start.
//! Snapshots are taken when a tenant's overview is read and, for every tenant that wrote
//! anything, by the daily downsampling run.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::error::Result;
use crate::util::rfc3339;

#[derive(Debug, Serialize)]
pub struct TableRecords {
    pub table: String,
    pub rows: i64,
    /// The count at the range's start (or the first snapshot after it: `since`).
    pub rows_before: Option<i64>,
    pub since: Option<String>,
    pub growth: Option<i64>,
    pub growth_per_day: Option<f64>,
}

/// Rows per user table of an open tenant, now.
fn count(app: &App, t: &TenantRecord) -> Result<Vec<(String, i64)>> {
    let opened = app.open_tenant(t)?;
    let conn = opened.handle.read_conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let mut out = Vec::with_capacity(schema.tables.len());
    for name in schema.tables.keys() {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))?;
        out.push((name.clone(), n));
    }
    Ok(out)
}

/// Counts a tenant's tables and records them as today's snapshot (the day's first count stays,
/// so growth within a day is measured from it).
pub fn snapshot(app: &App, t: &TenantRecord, now: i64) -> Result<Vec<(String, i64)>> {
    let counts = count(app, t)?;
    let day = now - now.rem_euclid(86_400);
    // Once a day per tenant, not a catalog write per read of the overview.
    let have: Vec<String> = app
        .catalog
        .conn()?
        .prepare_cached("SELECT table_name FROM usage_tables WHERE tenant_id = ?1 AND day = ?2")?
        .query_map(params![t.id.as_str(), day], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if counts.iter().all(|(name, _)| have.contains(name)) {
        return Ok(counts);
    }
    app.catalog.background_write(|tx| {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO usage_tables (tenant_id, table_name, day, at, rows) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (name, n) in &counts {
            stmt.execute(params![t.id.as_str(), name, day, now, n])?;
        }
        Ok(())
    })?;
    Ok(counts)
}

/// Each table's rows now and its growth since `from` (from the snapshots).
pub fn growth(
    conn: &Connection,
    t: &TenantRecord,
    now_counts: &[(String, i64)],
    from: i64,
    now: i64,
) -> Result<Vec<TableRecords>> {
    let mut before = conn.prepare_cached(
        "SELECT at, rows FROM usage_tables WHERE tenant_id = ?1 AND table_name = ?2 \
         ORDER BY (at <= ?3) DESC, CASE WHEN at <= ?3 THEN -at ELSE at END LIMIT 1",
    )?;
    let mut out = Vec::with_capacity(now_counts.len());
    for (name, rows) in now_counts {
        let then: Option<(i64, i64)> =
            before.query_map(params![t.id.as_str(), name, from], |r| Ok((r.get(0)?, r.get(1)?)))?.next().transpose()?;
        let (since, rows_before) = match then {
            Some((at, n)) => (Some(at.max(from)), Some(n)),
            None => (None, None),
        };
        let growth = rows_before.map(|b| rows - b);
        let days = since.map(|s| (now - s) as f64 / 86_400.0).filter(|d| *d >= 1.0);
        out.push(TableRecords {
            table: name.clone(),
            rows: *rows,
            rows_before,
            since: since.map(rfc3339),
            growth,
            growth_per_day: growth.zip(days).map(|(g, d)| (g as f64 / d * 10.0).round() / 10.0),
        });
    }
    Ok(out)
}

/// The daily run: a snapshot of every live tenant that wrote rows since `since` (one index
/// seek per tenant: usage_hourly has no index on the hour).
pub fn snapshot_writers(app: &App, since: i64, now: i64) -> Result<usize> {
    let writers: Vec<TenantRecord> = {
        let conn = app.catalog.conn()?;
        let mut wrote = conn.prepare_cached(
            "SELECT 1 FROM usage_hourly WHERE tenant_id = ?1 AND hour >= ?2 AND rows_written > 0 LIMIT 1",
        )?;
        let mut out = Vec::new();
        for t in crate::catalog::tenants::list(&conn, false)? {
            if t.status == crate::catalog::tenants::TenantStatus::Active
                && wrote.exists(params![t.id.as_str(), since - since.rem_euclid(3600)])?
            {
                out.push(t);
            }
        }
        out
    };
    for t in &writers {
        snapshot(app, t, now)?;
    }
    Ok(writers.len())
}
