//! Users, memberships, custom roles, sessions, API keys and recovery codes. Lookups are scoped
//! and say so in their names (`membership_of`, `api_key_by_hash`).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::TenantId;

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_platform_admin: bool,
    #[serde(skip)]
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    #[serde(skip)]
    pub totp_last_step: Option<i64>,
    #[serde(skip)]
    pub failed_logins: i64,
    #[serde(skip)]
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

const USER_COLS: &str = "id, email, password_hash, is_platform_admin, totp_secret, totp_enabled, \
                         totp_last_step, failed_logins, locked_until, created_at";

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        is_platform_admin: r.get(3)?,
        totp_secret: r.get(4)?,
        totp_enabled: r.get(5)?,
        totp_last_step: r.get(6)?,
        failed_logins: r.get(7)?,
        locked_until: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub fn insert_user(conn: &Connection, email: &str, password_hash: &str, platform_admin: bool, now: i64) -> Result<i64> {
    conn.execute(
        "INSERT INTO users(email, password_hash, is_platform_admin, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![email, password_hash, platform_admin, now],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::conflict("email_taken", format!("a user with email {email:?} already exists"))
        } else {
            e.into()
        }
    })?;
    Ok(conn.last_insert_rowid())
}

pub fn user_by_email(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"))?
        .query_row([email], user_row)
        .optional()?)
}

pub fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
        .query_row([id], user_row)
        .optional()?)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY id"))?;
    let rows = stmt.query_map([], user_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn set_password(conn: &Connection, user_id: i64, hash: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL, updated_at = ?3 WHERE id = ?1",
        params![user_id, hash, now],
    )?;
    // A new password ends every session.
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now],
    )?;
    Ok(())
}

/// Replaces a verified legacy hash with argon2id: the same password, so unlike
/// `set_password` no session ends. Only while the stored hash is still `old` (a password reset
/// meanwhile wins); returns whether it was replaced.
pub fn rehash_password(conn: &Connection, user_id: i64, old: &str, new: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE id = ?1 AND password_hash = ?2",
        params![user_id, old, new, now],
    )?;
    Ok(n == 1)
}

pub fn record_login_failure(conn: &Connection, user_id: i64, failures: i64, locked_until: Option<i64>) -> Result<()> {
    conn.execute(
        "UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE id = ?1",
        params![user_id, failures, locked_until],
    )?;
    Ok(())
}

pub fn record_login_success(conn: &Connection, user_id: i64) -> Result<()> {
    conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?1", [user_id])?;
    Ok(())
}

pub fn set_totp(conn: &Connection, user_id: i64, secret: Option<&str>, enabled: bool) -> Result<()> {
    conn.execute(
        "UPDATE users SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = NULL WHERE id = ?1",
        params![user_id, secret, enabled],
    )?;
    Ok(())
}

/// Records the TOTP step just used; false if it was not newer than the last one (a replay).
pub fn claim_totp_step(conn: &Connection, user_id: i64, step: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
        params![user_id, step],
    )?;
    Ok(n == 1)
}

pub fn replace_recovery_codes(conn: &Connection, user_id: i64, hashes: &[String]) -> Result<()> {
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    for h in hashes {
        conn.execute("INSERT INTO recovery_codes(user_id, code_hash) VALUES (?1, ?2)", params![user_id, h])?;
    }
    Ok(())
}

/// Uses a recovery code once; false when unknown or already used.
pub fn use_recovery_code(conn: &Connection, user_id: i64, hash: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        params![user_id, hash, now],
    )?;
    Ok(n == 1)
}

// --- memberships and roles -------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    pub role: String,
    pub mfa_enabled: bool,
    pub created_at: i64,
}

pub fn add_membership(conn: &Connection, tenant: &TenantId, user_id: i64, role: &str, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO memberships(tenant_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![tenant.as_str(), user_id, role, now],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::conflict("already_member", "that user is already a member of this tenant")
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// The role of `user_id` in `tenant`, if a member.
pub fn membership_of(conn: &Connection, tenant: &TenantId, user_id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT role FROM memberships WHERE tenant_id = ?1 AND user_id = ?2")?
        .query_row(params![tenant.as_str(), user_id], |r| r.get(0))
        .optional()?)
}

pub fn members_of(conn: &Connection, tenant: &TenantId) -> Result<Vec<Member>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.email, m.role, u.totp_enabled, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = ?1 ORDER BY m.created_at, u.id",
    )?;
    let rows = stmt.query_map([tenant.as_str()], |r| {
        Ok(Member {
            user_id: r.get(0)?,
            email: r.get(1)?,
            role: r.get(2)?,
            mfa_enabled: r.get(3)?,
            created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn count_members(conn: &Connection, tenant: &TenantId) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM memberships WHERE tenant_id = ?1", [tenant.as_str()], |r| r.get(0))?)
}

pub fn count_role(conn: &Connection, tenant: &TenantId, role: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM memberships WHERE tenant_id = ?1 AND role = ?2",
        params![tenant.as_str(), role],
        |r| r.get(0),
    )?)
}

pub fn set_membership_role(conn: &Connection, tenant: &TenantId, user_id: i64, role: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE memberships SET role = ?3 WHERE tenant_id = ?1 AND user_id = ?2",
        params![tenant.as_str(), user_id, role],
    )? == 1)
}

pub fn remove_membership(conn: &Connection, tenant: &TenantId, user_id: i64) -> Result<bool> {
    Ok(conn
        .execute("DELETE FROM memberships WHERE tenant_id = ?1 AND user_id = ?2", params![tenant.as_str(), user_id])?
        == 1)
}

/// Tenants a user belongs to: (tenant id, slug, name, role), active and suspended only.
pub fn tenants_of(conn: &Connection, user_id: i64) -> Result<Vec<(String, String, String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, t.slug, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = ?1 AND t.status <> 'deleted' ORDER BY t.slug",
    )?;
    let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn custom_role(conn: &Connection, tenant: &TenantId, name: &str) -> Result<Option<Vec<String>>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT permissions FROM roles WHERE tenant_id = ?1 AND name = ?2")?
        .query_row(params![tenant.as_str(), name], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| Error::Internal(format!("role {name}: {e}")))).transpose()
}

pub fn custom_roles(conn: &Connection, tenant: &TenantId) -> Result<Vec<(String, Vec<String>)>> {
    let mut stmt = conn.prepare("SELECT name, permissions FROM roles WHERE tenant_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map([tenant.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, json) = row?;
        out.push((name, serde_json::from_str(&json).unwrap_or_default()));
    }
    Ok(out)
}

pub fn put_role(conn: &Connection, tenant: &TenantId, name: &str, perms: &[String], now: i64) -> Result<()> {
    let json = serde_json::to_string(perms).map_err(|e| Error::Internal(e.to_string()))?;
    conn.execute(
        "INSERT INTO roles(tenant_id, name, permissions, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(tenant_id, name) DO UPDATE SET permissions = excluded.permissions",
        params![tenant.as_str(), name, json, now],
    )?;
    Ok(())
}

pub fn delete_role(conn: &Connection, tenant: &TenantId, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM roles WHERE tenant_id = ?1 AND name = ?2", params![tenant.as_str(), name])? == 1)
}

// --- sessions --------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Session {
    pub token_hash: String,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub idle_seconds: i64,
    pub last_seen_at: i64,
    pub revoked: bool,
    pub csrf_token: String,
}

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub now: i64,
    pub expires_at: i64,
    pub idle_seconds: i64,
    pub csrf_token: &'a str,
    pub source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert_session(conn: &Connection, s: &NewSession<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO sessions(token_hash, user_id, created_at, expires_at, idle_seconds, last_seen_at, csrf_token, source, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?3, ?6, ?7, ?8)",
        params![s.token_hash, s.user_id, s.now, s.expires_at, s.idle_seconds, s.csrf_token, s.source, s.user_agent],
    )?;
    Ok(())
}

pub fn session_by_hash(conn: &Connection, hash: &str) -> Result<Option<Session>> {
    Ok(conn
        .prepare_cached(
            "SELECT token_hash, user_id, expires_at, idle_seconds, last_seen_at, revoked_at IS NOT NULL, csrf_token, created_at
             FROM sessions WHERE token_hash = ?1",
        )?
        .query_row([hash], |r| {
            Ok(Session {
                token_hash: r.get(0)?,
                user_id: r.get(1)?,
                expires_at: r.get(2)?,
                idle_seconds: r.get(3)?,
                last_seen_at: r.get(4)?,
                revoked: r.get(5)?,
                csrf_token: r.get(6)?,
                created_at: r.get(7)?,
            })
        })
        .optional()?)
}

pub fn touch_session(conn: &Connection, hash: &str, now: i64) -> Result<()> {
    conn.execute("UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1", params![hash, now])?;
    Ok(())
}

pub fn revoke_session(conn: &Connection, hash: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL",
        params![hash, now],
    )?;
    Ok(())
}

// --- API keys --------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub name: String,
    pub scope: String,
    pub tables: Option<Vec<String>>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let tables: Option<String> = r.get(4)?;
    Ok(ApiKey {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        scope: r.get(3)?,
        tables: tables.and_then(|t| serde_json::from_str(&t).ok()),
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

const KEY_COLS: &str = "id, tenant_id, name, scope, tables, created_at, last_used_at, revoked_at";

pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub tenant: &'a TenantId,
    pub name: &'a str,
    pub key_hash: &'a str,
    pub scope: &'a str,
    pub tables: Option<&'a [String]>,
    pub created_by: Option<i64>,
    pub now: i64,
}

pub fn insert_api_key(conn: &Connection, k: &NewApiKey<'_>) -> Result<()> {
    let tables = k.tables.map(|t| serde_json::to_string(t).unwrap_or_default());
    conn.execute(
        "INSERT INTO api_keys(id, tenant_id, name, key_hash, scope, tables, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![k.id, k.tenant.as_str(), k.name, k.key_hash, k.scope, tables, k.created_by, k.now],
    )?;
    Ok(())
}

pub fn api_key_by_hash(conn: &Connection, hash: &str) -> Result<Option<ApiKey>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = ?1"))?
        .query_row([hash], key_row)
        .optional()?)
}

pub fn api_keys_of(conn: &Connection, tenant: &TenantId) -> Result<Vec<ApiKey>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id"))?;
    let rows = stmt.query_map([tenant.as_str()], key_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Revokes a key of this tenant; false when the tenant has no such key.
pub fn revoke_api_key(conn: &Connection, tenant: &TenantId, id: &str, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2",
        params![tenant.as_str(), id, now],
    )? == 1)
}

pub fn touch_api_key(conn: &Connection, id: &str, now: i64) -> Result<()> {
    conn.execute("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", params![id, now])?;
    Ok(())
}

// --- tenant settings -------------------------------------------------------------------------

pub fn tenant_settings(conn: &Connection, tenant: &TenantId) -> Result<serde_json::Value> {
    let s: Option<String> = conn
        .prepare_cached("SELECT settings_json FROM tenant_configs WHERE tenant_id = ?1")?
        .query_row([tenant.as_str()], |r| r.get(0))
        .optional()?;
    Ok(s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_else(|| serde_json::json!({})))
}

pub fn update_tenant_config(
    conn: &Connection,
    tenant: &TenantId,
    display_name: Option<&str>,
    brand_color: Option<&str>,
    settings: &serde_json::Value,
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO tenant_configs(tenant_id, display_name, brand_color, settings_json, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(tenant_id) DO UPDATE SET display_name = coalesce(?2, display_name),
           brand_color = coalesce(?3, brand_color), settings_json = ?4, updated_at = ?5",
        params![tenant.as_str(), display_name, brand_color, settings.to_string(), now],
    )?;
    Ok(())
}
