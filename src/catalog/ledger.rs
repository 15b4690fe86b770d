//! Schema ledger: migration runs, per-tenant outcomes and the hash each migration file had when
//! first applied (to report drift).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::Result;

#[derive(Clone, Debug, Serialize)]
pub struct TenantOutcome {
    pub tenant_id: String,
    pub slug: String,
    pub from_version: i64,
    pub to_version: i64,
    /// migrated | failed | would_migrate | would_fail | rolled_back
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: f64,
    pub snapshot: Option<String>,
}

pub fn start_run(conn: &Connection, target: i64, dry_run: bool, now: i64) -> Result<i64> {
    conn.execute(
        "INSERT INTO migration_runs(started_at, target_version, dry_run, status) VALUES (?1, ?2, ?3, 'running')",
        params![now, target, dry_run],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn record(conn: &Connection, run_id: i64, o: &TenantOutcome, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO tenant_migrations(run_id, tenant_id, from_version, to_version, status, error, duration_ms, snapshot, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![run_id, o.tenant_id, o.from_version, o.to_version, o.status, o.error, o.duration_ms, o.snapshot, now])?;
    Ok(())
}

pub fn finish_run(
    conn: &Connection,
    run_id: i64,
    status: &str,
    migrated: i64,
    failed: i64,
    skipped: i64,
    now: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE migration_runs SET status = ?2, migrated = ?3, failed = ?4, skipped = ?5, finished_at = ?6 WHERE id = ?1",
        params![run_id, status, migrated, failed, skipped, now],
    )?;
    Ok(())
}

/// The most recent real (not dry) run that changed something and was not yet rolled back.
pub fn last_rollbackable_run(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM migration_runs WHERE dry_run = 0 AND status IN ('done', 'failed', 'stopped') AND migrated > 0
             ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Rows of a run with the given status, joined to the tenant's current slug.
pub fn outcomes(conn: &Connection, run_id: i64, status: &str) -> Result<Vec<TenantOutcome>> {
    let mut stmt = conn.prepare(
        "SELECT m.tenant_id, coalesce(t.slug, '?'), m.from_version, m.to_version, m.status, m.error, m.duration_ms, m.snapshot
         FROM tenant_migrations m LEFT JOIN tenants t ON t.id = m.tenant_id
         WHERE m.run_id = ?1 AND m.status = ?2 ORDER BY m.at, m.tenant_id",
    )?;
    let rows = stmt.query_map(params![run_id, status], |r| {
        Ok(TenantOutcome {
            tenant_id: r.get(0)?,
            slug: r.get(1)?,
            from_version: r.get(2)?,
            to_version: r.get(3)?,
            status: r.get(4)?,
            error: r.get(5)?,
            duration_ms: r.get(6)?,
            snapshot: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The last outcome per tenant (for `schema status`).
pub fn last_outcome(conn: &Connection, tenant_id: &str) -> Result<Option<(i64, String, Option<String>)>> {
    Ok(conn
        .prepare_cached(
            "SELECT run_id, status, error FROM tenant_migrations WHERE tenant_id = ?1 ORDER BY run_id DESC LIMIT 1",
        )?
        .query_row([tenant_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// Stored hash of each migration file, by version.
pub fn file_hashes(conn: &Connection) -> Result<Vec<(i64, String, String)>> {
    let mut stmt = conn.prepare("SELECT version, name, sha256 FROM schema_files ORDER BY version")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn remember_file(conn: &Connection, version: i64, name: &str, sha256: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO schema_files(version, name, sha256, first_seen) VALUES (?1, ?2, ?3, ?4)",
        params![version, name, sha256, now],
    )?;
    Ok(())
}
