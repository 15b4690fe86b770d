//! A tenant's catalog side when it changes nodes: its row, settings, domains, custom roles,
//! members' accounts and API keys. Accounts are matched by email on the target, so a person
//! who is already there keeps the one account (and its password) they have; sessions are not
//! carried (members sign in again on the new node).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Everything of tenant `id` in a catalog, as JSON (password hashes included: this goes only
/// between nodes, over the cluster's authenticated calls).
pub fn export(conn: &Connection, id: &str) -> Result<Value> {
    let tenant = conn
        .query_row(
            "SELECT slug, name, status, plan, schema_version, created_at FROM tenants WHERE id = ?1",
            [id],
            |r| {
                Ok(json!({"slug": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "status": r.get::<_, String>(2)?,
                          "plan": r.get::<_, String>(3)?, "schema_version": r.get::<_, i64>(4)?, "created_at": r.get::<_, i64>(5)?}))
            },
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("tenant {id}")))?;
    let config = conn
        .query_row(
            "SELECT display_name, brand_color, logo_asset, settings_json FROM tenant_configs WHERE tenant_id = ?1",
            [id],
            |r| {
                Ok(json!({"display_name": r.get::<_, Option<String>>(0)?, "brand_color": r.get::<_, Option<String>>(1)?,
                          "logo_asset": r.get::<_, Option<String>>(2)?, "settings_json": r.get::<_, String>(3)?}))
            },
        )
        .optional()?;
    let rows = |sql: &str, f: &dyn Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Value>| -> Result<Vec<Value>> {
        let mut stmt = conn.prepare(sql)?;
        let out = stmt.query_map([id], |r| f(r))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    };
    let domains =
        rows("SELECT domain FROM tenant_domains WHERE tenant_id = ?1", &|r| Ok(json!(r.get::<_, String>(0)?)))?;
    let roles = rows("SELECT name, permissions, created_at FROM roles WHERE tenant_id = ?1", &|r| {
        Ok(
            json!({"name": r.get::<_, String>(0)?, "permissions": r.get::<_, String>(1)?, "created_at": r.get::<_, i64>(2)?}),
        )
    })?;
    let members = rows(
        "SELECT u.email, u.password_hash, u.totp_secret, u.totp_enabled, m.role, m.created_at, u.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ?1",
        &|r| {
            Ok(json!({"email": r.get::<_, String>(0)?, "password_hash": r.get::<_, String>(1)?,
                      "totp_secret": r.get::<_, Option<String>>(2)?, "totp_enabled": r.get::<_, bool>(3)?,
                      "role": r.get::<_, String>(4)?, "member_since": r.get::<_, i64>(5)?, "user_created_at": r.get::<_, i64>(6)?}))
        },
    )?;
    // Recovery codes (hashed) go with the second factor they back.
    let codes = rows(
        "SELECT u.email, r.code_hash, r.used_at FROM recovery_codes r JOIN users u ON u.id = r.user_id
         JOIN memberships m ON m.user_id = u.id WHERE m.tenant_id = ?1",
        &|r| {
            Ok(
                json!({"email": r.get::<_, String>(0)?, "code_hash": r.get::<_, String>(1)?, "used_at": r.get::<_, Option<i64>>(2)?}),
            )
        },
    )?;
    let keys = rows(
        "SELECT k.id, k.name, k.key_hash, k.scope, k.tables, u.email, k.created_at, k.last_used_at, k.revoked_at
         FROM api_keys k LEFT JOIN users u ON u.id = k.created_by WHERE k.tenant_id = ?1",
        &|r| {
            Ok(json!({"id": r.get::<_, String>(0)?, "name": r.get::<_, String>(1)?, "key_hash": r.get::<_, String>(2)?,
                      "scope": r.get::<_, String>(3)?, "tables": r.get::<_, Option<String>>(4)?,
                      "created_by": r.get::<_, Option<String>>(5)?, "created_at": r.get::<_, i64>(6)?,
                      "last_used_at": r.get::<_, Option<i64>>(7)?, "revoked_at": r.get::<_, Option<i64>>(8)?}))
        },
    )?;
    Ok(
        json!({"id": id, "tenant": tenant, "config": config, "domains": domains, "roles": roles, "members": members, "recovery_codes": codes, "api_keys": keys}),
    )
}

fn text<'v>(v: &'v Value, key: &str) -> Result<&'v str> {
    v[key].as_str().ok_or_else(|| Error::invalid("invalid_identity", format!("the tenant's {key} is missing")))
}

/// Enters an exported tenant in this node's catalog (inside the caller's transaction): the
/// tenant row under the same id, its settings, domains, roles, members (an account whose email
/// exists here is reused, never duplicated) and API keys. Returns how many accounts were new.
pub fn import(tx: &Connection, doc: &Value, now: i64) -> Result<usize> {
    let id = text(doc, "id")?;
    crate::ids::TenantId::parse(id)?;
    let t = &doc["tenant"];
    // A copy this node kept from an earlier move away (soft-deleted) gives way to the new one.
    tx.execute("DELETE FROM tenants WHERE id = ?1 AND status = 'deleted'", [id])?;
    tx.execute("DELETE FROM tenants WHERE slug = ?1 AND status = 'deleted'", [text(t, "slug")?])?;
    tx.execute(
        "INSERT INTO tenants (id, slug, name, status, plan, schema_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            text(t, "slug")?,
            text(t, "name")?,
            if text(t, "status")? == "suspended" { "suspended" } else { "active" },
            text(t, "plan")?,
            t["schema_version"].as_i64().unwrap_or(0),
            t["created_at"].as_i64().unwrap_or(now),
            now
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            Error::conflict("slug_taken", format!("this node already has a tenant {:?} or id {id}", t["slug"]))
        }
        e => e.into(),
    })?;
    if let Some(c) = doc["config"].as_object() {
        tx.execute(
            "INSERT INTO tenant_configs (tenant_id, display_name, brand_color, logo_asset, settings_json, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                c.get("display_name").and_then(Value::as_str),
                c.get("brand_color").and_then(Value::as_str),
                c.get("logo_asset").and_then(Value::as_str),
                c.get("settings_json").and_then(Value::as_str).unwrap_or("{}"),
                now
            ],
        )?;
    }
    for d in doc["domains"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        tx.execute(
            "INSERT OR REPLACE INTO tenant_domains (domain, tenant_id, created_at) VALUES (?1, ?2, ?3)",
            params![d, id, now],
        )?;
    }
    for r in doc["roles"].as_array().into_iter().flatten() {
        tx.execute(
            "INSERT OR REPLACE INTO roles (tenant_id, name, permissions, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, text(r, "name")?, text(r, "permissions")?, r["created_at"].as_i64().unwrap_or(now)],
        )?;
    }
    let mut created = 0;
    let mut new_accounts: Vec<(String, i64)> = Vec::new();
    for m in doc["members"].as_array().into_iter().flatten() {
        let email = text(m, "email")?;
        let existing: Option<i64> =
            tx.query_row("SELECT id FROM users WHERE email = ?1", [email], |r| r.get(0)).optional()?;
        let user_id = match existing {
            Some(u) => u,
            None => {
                tx.execute(
                    "INSERT INTO users (email, password_hash, totp_secret, totp_enabled, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        email,
                        text(m, "password_hash")?,
                        m["totp_secret"].as_str(),
                        m["totp_enabled"].as_bool().unwrap_or(false),
                        m["user_created_at"].as_i64().unwrap_or(now),
                        now
                    ],
                )?;
                created += 1;
                new_accounts.push((email.to_string(), tx.last_insert_rowid()));
                tx.last_insert_rowid()
            }
        };
        tx.execute(
            "INSERT OR REPLACE INTO memberships (tenant_id, user_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, user_id, text(m, "role")?, m["member_since"].as_i64().unwrap_or(now)],
        )?;
    }
    // Only accounts created here take the codes: one that existed keeps its own second factor.
    for r in doc["recovery_codes"].as_array().into_iter().flatten() {
        let email = text(r, "email")?;
        if let Some((_, user_id)) = new_accounts.iter().find(|(e, _)| e == email) {
            tx.execute(
                "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash, used_at) VALUES (?1, ?2, ?3)",
                params![user_id, text(r, "code_hash")?, r["used_at"].as_i64()],
            )?;
        }
    }
    for k in doc["api_keys"].as_array().into_iter().flatten() {
        let by: Option<i64> = match k["created_by"].as_str() {
            Some(email) => tx.query_row("SELECT id FROM users WHERE email = ?1", [email], |r| r.get(0)).optional()?,
            None => None,
        };
        tx.execute(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, scope, tables, created_by, created_at, last_used_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                text(k, "id")?,
                id,
                text(k, "name")?,
                text(k, "key_hash")?,
                text(k, "scope")?,
                k["tables"].as_str(),
                by,
                k["created_at"].as_i64().unwrap_or(now),
                k["last_used_at"].as_i64(),
                k["revoked_at"].as_i64()
            ],
        )?;
    }
    Ok(created)
}

/// The platform admins of a catalog, as the directory document carries them.
pub fn platform_admins(conn: &Connection) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(
        "SELECT email, password_hash, totp_secret, totp_enabled FROM users WHERE is_platform_admin = 1 ORDER BY email",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(json!({"email": r.get::<_, String>(0)?, "password_hash": r.get::<_, String>(1)?,
                      "totp_secret": r.get::<_, Option<String>>(2)?, "totp_enabled": r.get::<_, bool>(3)?}))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Makes the directory node's platform admins platform admins here too, with the same password
/// and second factor (an account with the same email is promoted, never duplicated). Admins
/// this node has that the directory node lacks are left alone.
pub fn upsert_admins(tx: &Connection, admins: &[Value], now: i64) -> Result<usize> {
    let mut changed = 0;
    for a in admins {
        let email = text(a, "email")?;
        let updated = tx.execute(
            "UPDATE users SET is_platform_admin = 1, password_hash = ?2, totp_secret = ?3, totp_enabled = ?4, updated_at = ?5
             WHERE email = ?1 AND (is_platform_admin = 0 OR password_hash != ?2 OR totp_secret IS NOT ?3 OR totp_enabled != ?4)",
            params![email, text(a, "password_hash")?, a["totp_secret"].as_str(), a["totp_enabled"].as_bool().unwrap_or(false), now],
        )?;
        let inserted = tx.execute(
            "INSERT INTO users (email, password_hash, is_platform_admin, totp_secret, totp_enabled, created_at, updated_at)
             SELECT ?1, ?2, 1, ?3, ?4, ?5, ?5 WHERE NOT EXISTS (SELECT 1 FROM users WHERE email = ?1)",
            params![email, text(a, "password_hash")?, a["totp_secret"].as_str(), a["totp_enabled"].as_bool().unwrap_or(false), now],
        )?;
        changed += updated + inserted;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../schema.sql")).unwrap();
        c
    }

    const ID: &str = "00000000000000c1";

    #[test]
    fn a_tenant_and_its_members_arrive_without_duplicate_accounts() {
        let src = catalog();
        src.execute_batch(&format!(
            "INSERT INTO tenants (id, slug, name, status, plan, created_at, updated_at) VALUES ('{ID}', 'carry', 'Carry', 'active', 'pro', 1, 1);
             INSERT INTO tenant_configs (tenant_id, display_name, settings_json, updated_at) VALUES ('{ID}', 'Carry Co', '{{\"x\":1}}', 1);
             INSERT INTO tenant_domains (domain, tenant_id, created_at) VALUES ('carry.test', '{ID}', 1);
             INSERT INTO roles (tenant_id, name, permissions, created_at) VALUES ('{ID}', 'auditor', '[\"can_read:*\"]', 1);
             INSERT INTO users (id, email, password_hash, totp_secret, totp_enabled, created_at, updated_at)
               VALUES (1, 'own@x.test', 'h-own', 'SECRET', 1, 1, 1), (2, 'both@x.test', 'h-both-src', NULL, 0, 1, 1);
             INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ('{ID}', 1, 'owner', 1), ('{ID}', 2, 'auditor', 1);
             INSERT INTO recovery_codes (user_id, code_hash) VALUES (1, 'c1'), (2, 'c2');
             INSERT INTO api_keys (id, tenant_id, name, key_hash, scope, created_by, created_at) VALUES ('k1', '{ID}', 'ci', 'kh', 'write', 1, 1);"
        ))
        .unwrap();
        let doc = export(&src, ID).unwrap();
        let dst = catalog();
        dst.execute_batch(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (7, 'both@x.test', 'h-both-dst', 1, 1);",
        )
        .unwrap();
        assert_eq!(import(&dst, &doc, 5).unwrap(), 1, "one new account; the other email exists here");
        let one = |sql: &str| dst.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap();
        let count = |sql: &str| dst.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(one(&format!("SELECT slug || '/' || plan FROM tenants WHERE id = '{ID}'")), "carry/pro");
        assert_eq!(one("SELECT password_hash FROM users WHERE email = 'both@x.test'"), "h-both-dst", "kept");
        assert_eq!(one("SELECT password_hash || totp_secret FROM users WHERE email = 'own@x.test'"), "h-ownSECRET");
        assert_eq!(count("SELECT count(*) FROM users"), 2);
        assert_eq!(count(&format!("SELECT count(*) FROM memberships WHERE tenant_id = '{ID}'")), 2);
        assert_eq!(one("SELECT role FROM memberships WHERE user_id = 7"), "auditor");
        assert_eq!(count("SELECT count(*) FROM recovery_codes"), 1, "codes only for the account created here");
        assert_eq!(one("SELECT u.email FROM api_keys k JOIN users u ON u.id = k.created_by"), "own@x.test");
        assert_eq!(one("SELECT display_name FROM tenant_configs"), "Carry Co");
        assert_eq!(one("SELECT tenant_id FROM tenant_domains WHERE domain = 'carry.test'"), ID);
        assert_eq!(count("SELECT count(*) FROM roles"), 1);
        // The same tenant again is refused (it is here now), and bad documents are errors.
        assert!(import(&dst, &doc, 6).is_err());
        assert!(import(&catalog(), &json!({"id": "nope"}), 6).is_err());
        assert!(export(&src, "00000000000000ff").is_err());
    }
}
