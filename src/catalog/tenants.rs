//! Tenant rows, domains and configs. Lookups say what they are keyed by; a slug reaches SQL
//! only as a bound parameter after `Slug::parse`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            "deleted" => Ok(TenantStatus::Deleted),
            other => Err(rusqlite::Error::InvalidColumnType(0, other.to_string(), rusqlite::types::Type::Text)),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub slug: Slug,
    pub name: String,
    pub status: TenantStatus,
    pub plan: String,
    pub schema_version: i64,
    pub schema_hold: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub suspended_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub purge_after: Option<i64>,
    /// Keeps its own schema (`migration convert --schema-mode keep`): never fleet-migrated.
    pub custom_schema: bool,
    /// Unpaid past the grace period (`billing`): writes answer 402 until it pays.
    pub billing_hold: bool,
}

impl TenantRecord {
    /// A tenant as it is registered: active, created now.
    pub fn new_active(id: TenantId, slug: Slug, name: String, plan: String, schema_version: i64, now: i64) -> Self {
        TenantRecord {
            id,
            slug,
            name,
            status: TenantStatus::Active,
            plan,
            schema_version,
            schema_hold: None,
            created_at: now,
            updated_at: now,
            suspended_at: None,
            deleted_at: None,
            purge_after: None,
            custom_schema: false,
            billing_hold: false,
        }
    }
}

const COLUMNS: &str = "id, slug, name, status, plan, schema_version, schema_hold, created_at, \
                       updated_at, suspended_at, deleted_at, purge_after";
/// What reads select: the columns, then whether the tenant keeps its own schema.
const SELECTED: &str = "tenants.id, tenants.slug, tenants.name, tenants.status, tenants.plan, \
                        tenants.schema_version, tenants.schema_hold, tenants.created_at, tenants.updated_at, \
                        tenants.suspended_at, tenants.deleted_at, tenants.purge_after, \
                        EXISTS (SELECT 1 FROM tenant_custom_schemas c WHERE c.tenant_id = tenants.id), \
                        EXISTS (SELECT 1 FROM tenant_billing_holds h WHERE h.tenant_id = tenants.id)";

fn from_row(r: &Row<'_>) -> rusqlite::Result<TenantRecord> {
    let bad =
        |i: usize, e: Error| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e));
    Ok(TenantRecord {
        id: TenantId::parse(&r.get::<_, String>(0)?).map_err(|e| bad(0, e))?,
        slug: Slug::parse(&r.get::<_, String>(1)?).map_err(|e| bad(1, e))?,
        name: r.get(2)?,
        status: TenantStatus::parse(&r.get::<_, String>(3)?)?,
        plan: r.get(4)?,
        schema_version: r.get(5)?,
        schema_hold: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        suspended_at: r.get(9)?,
        deleted_at: r.get(10)?,
        purge_after: r.get(11)?,
        custom_schema: r.get(12)?,
        billing_hold: r.get(13)?,
    })
}

pub fn insert(conn: &Connection, t: &TenantRecord) -> Result<()> {
    let res = conn.execute(
        &format!("INSERT INTO tenants ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            t.id.as_str(),
            t.slug.as_str(),
            t.name,
            t.status.as_str(),
            t.plan,
            t.schema_version,
            t.schema_hold,
            t.created_at,
            t.updated_at,
            t.suspended_at,
            t.deleted_at,
            t.purge_after
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(Error::conflict("slug_taken", format!("a tenant with slug {:?} already exists", t.slug.as_str())))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn find_by_slug(conn: &Connection, slug: &Slug) -> Result<Option<TenantRecord>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {SELECTED} FROM tenants WHERE slug = ?1"))?
        .query_row([slug.as_str()], from_row)
        .optional()?)
}

/// Like `find_by_slug` but a missing tenant is `NotFound` naming the slug.
pub fn get_by_slug(conn: &Connection, slug: &Slug) -> Result<TenantRecord> {
    find_by_slug(conn, slug)?.ok_or_else(|| Error::NotFound(format!("tenant {:?}", slug.as_str())))
}

pub fn find_by_id(conn: &Connection, id: &TenantId) -> Result<Option<TenantRecord>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {SELECTED} FROM tenants WHERE id = ?1"))?
        .query_row([id.as_str()], from_row)
        .optional()?)
}

/// Custom-domain lookup for `Host` resolution.
pub fn find_by_domain(conn: &Connection, domain: &str) -> Result<Option<TenantRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SELECTED} FROM tenants JOIN tenant_domains d ON d.tenant_id = tenants.id WHERE d.domain = ?1"
        ))?
        .query_row([domain.to_ascii_lowercase()], from_row)
        .optional()?)
}

/// All tenants in a stable order (creation time, then id), deleted ones only when asked.
pub fn list(conn: &Connection, include_deleted: bool) -> Result<Vec<TenantRecord>> {
    let sql = if include_deleted {
        format!("SELECT {SELECTED} FROM tenants ORDER BY created_at, rowid")
    } else {
        format!("SELECT {SELECTED} FROM tenants WHERE status <> 'deleted' ORDER BY created_at, rowid")
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM tenants WHERE status <> 'deleted'", [], |r| r.get(0))?)
}

pub fn set_status(
    conn: &Connection,
    id: &TenantId,
    status: TenantStatus,
    now: i64,
    purge_after: Option<i64>,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE tenants SET status = ?2, updated_at = ?3,
            suspended_at = CASE WHEN ?2 = 'suspended' THEN ?3 ELSE NULL END,
            deleted_at = CASE WHEN ?2 = 'deleted' THEN ?3 ELSE NULL END,
            purge_after = ?4
         WHERE id = ?1",
        params![id.as_str(), status.as_str(), now, purge_after],
    )?;
    expect_one(n, id)
}

pub fn set_plan(conn: &Connection, id: &TenantId, plan: &str, now: i64) -> Result<()> {
    let n =
        conn.execute("UPDATE tenants SET plan = ?2, updated_at = ?3 WHERE id = ?1", params![id.as_str(), plan, now])?;
    expect_one(n, id)?;
    conn.execute(
        "UPDATE subscriptions SET ended_at = ?2 WHERE tenant_id = ?1 AND ended_at IS NULL",
        params![id.as_str(), now],
    )?;
    conn.execute(
        "INSERT INTO subscriptions(tenant_id, plan, started_at) VALUES (?1, ?2, ?3)",
        params![id.as_str(), plan, now],
    )?;
    Ok(())
}

/// Mirrors the file's `user_version` into the catalog; `hold` is kept or cleared as asked.
pub fn set_schema_version(conn: &Connection, id: &TenantId, version: i64, hold: Option<i64>) -> Result<()> {
    conn.execute(
        "UPDATE tenants SET schema_version = ?2, schema_hold = ?3 WHERE id = ?1",
        params![id.as_str(), version, hold],
    )?;
    Ok(())
}

pub fn delete_row(conn: &Connection, id: &TenantId) -> Result<()> {
    let n = conn.execute("DELETE FROM tenants WHERE id = ?1", [id.as_str()])?;
    expect_one(n, id)
}

pub fn insert_config(conn: &Connection, id: &TenantId, display_name: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO tenant_configs(tenant_id, display_name, updated_at) VALUES (?1, ?2, ?3)",
        params![id.as_str(), display_name, now],
    )?;
    Ok(())
}

/// Branding shown on a tenant's pages.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Branding {
    pub display_name: Option<String>,
    pub brand_color: Option<String>,
    pub logo_asset: Option<String>,
}

pub fn branding(conn: &Connection, id: &TenantId) -> Result<Branding> {
    Ok(conn
        .prepare_cached("SELECT display_name, brand_color, logo_asset FROM tenant_configs WHERE tenant_id = ?1")?
        .query_row([id.as_str()], |r| {
            Ok(Branding { display_name: r.get(0)?, brand_color: r.get(1)?, logo_asset: r.get(2)? })
        })
        .optional()?
        .unwrap_or_default())
}

pub fn add_domain(conn: &Connection, id: &TenantId, domain: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO tenant_domains(domain, tenant_id, created_at) VALUES (?1, ?2, ?3)",
        params![domain.to_ascii_lowercase(), id.as_str(), now],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            Error::conflict("domain_taken", format!("domain {domain:?} is already mapped"))
        }
        e => e.into(),
    })?;
    Ok(())
}

/// A tenant's custom domains.
pub fn domains_of(conn: &Connection, id: &TenantId) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT domain FROM tenant_domains WHERE tenant_id = ?1 ORDER BY domain")?;
    let rows = stmt.query_map([id.as_str()], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

#[derive(Clone, Debug, Serialize)]
pub struct DeletionRecord {
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    pub deleted_at: i64,
    pub purged_at: i64,
    pub actor: String,
    pub files_removed: i64,
    pub bytes_removed: i64,
}

pub fn insert_deletion(conn: &Connection, d: &DeletionRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO tenant_deletions(tenant_id, slug, name, deleted_at, purged_at, actor, files_removed, bytes_removed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![d.tenant_id, d.slug, d.name, d.deleted_at, d.purged_at, d.actor, d.files_removed, d.bytes_removed],
    )?;
    Ok(())
}

pub fn deletions(conn: &Connection) -> Result<Vec<DeletionRecord>> {
    let mut stmt = conn.prepare(
        "SELECT tenant_id, slug, name, deleted_at, purged_at, actor, files_removed, bytes_removed
         FROM tenant_deletions ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DeletionRecord {
            tenant_id: r.get(0)?,
            slug: r.get(1)?,
            name: r.get(2)?,
            deleted_at: r.get(3)?,
            purged_at: r.get(4)?,
            actor: r.get(5)?,
            files_removed: r.get(6)?,
            bytes_removed: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn expect_one(n: usize, id: &TenantId) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(Error::NotFound(format!("tenant {id}")))
    }
}
