//! Migration runs and what each created (`import_runs`, `import_created`), and the tenants
//! that keep their own schema (`tenant_custom_schemas`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::ids::TenantId;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportRun {
    pub id: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub source: String,
    pub manifest: serde_json::Value,
    pub report: serde_json::Value,
}

pub fn start_run(conn: &Connection, id: &str, source: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO import_runs (id, started_at, status, source) VALUES (?1, ?2, 'running', ?3)",
        params![id, now, source],
    )?;
    Ok(())
}

pub fn finish_run(conn: &Connection, id: &str, status: &str, manifest: &str, report: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE import_runs SET status = ?2, manifest_json = ?3, report_json = ?4, finished_at = ?5 WHERE id = ?1",
        params![id, status, manifest, report, now],
    )?;
    Ok(())
}

pub fn set_status(conn: &Connection, id: &str, status: &str, now: i64) -> Result<()> {
    conn.execute("UPDATE import_runs SET status = ?2, finished_at = ?3 WHERE id = ?1", params![id, status, now])?;
    Ok(())
}

pub fn run(conn: &Connection, id: &str) -> Result<Option<ImportRun>> {
    Ok(conn
        .query_row(
            "SELECT id, started_at, finished_at, status, source, manifest_json, report_json FROM import_runs WHERE id = ?1",
            [id],
            |r| {
                Ok(ImportRun {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    status: r.get(3)?,
                    source: r.get(4)?,
                    manifest: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    report: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                })
            },
        )
        .optional()?)
}

pub fn record_created(
    conn: &Connection,
    run: &str,
    kind: &str,
    tenant: Option<&TenantId>,
    user: Option<i64>,
) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO import_created (run_id, kind, tenant_id, user_id) VALUES (?1, ?2, ?3, ?4)",
        params![run, kind, tenant.map(TenantId::as_str), user],
    )?;
    Ok(())
}

/// One thing a run created: a tenant, a user or a membership.
pub struct Created {
    pub kind: String,
    pub tenant_id: Option<String>,
    pub user_id: Option<i64>,
}

/// Everything a run created.
pub fn created(conn: &Connection, run: &str) -> Result<Vec<Created>> {
    let mut stmt = conn.prepare("SELECT kind, tenant_id, user_id FROM import_created WHERE run_id = ?1")?;
    let rows = stmt.query_map([run], |r| Ok(Created { kind: r.get(0)?, tenant_id: r.get(1)?, user_id: r.get(2)? }))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mark_custom_schema(conn: &Connection, tenant: &TenantId, run: Option<&str>, now: i64) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO tenant_custom_schemas (tenant_id, run_id, created_at) VALUES (?1, ?2, ?3)",
        params![tenant.as_str(), run, now],
    )?;
    Ok(())
}
