//! The platform audit chain in the catalog: tenant lifecycle and platform-admin actions.
//! `hash = SHA-256(prev_hash || canonical JSON of the entry)`, so editing, deleting, inserting or
//! reordering an entry breaks every hash after it.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::util::hex;

/// The hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One platform event to record.
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub tenant_id: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub outcome: &'a str,
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub tenant_id: Option<String>,
    pub resource: Option<String>,
    pub outcome: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Canonical encoding: a JSON array in a fixed field order (serde_json writes it
/// deterministically), so the hash does not depend on how the row is read back.
fn entry_hash(prev: &str, at: i64, e: &Event<'_>, details: &str) -> String {
    let canonical = json!([at, e.actor, e.action, e.tenant_id, e.resource, e.outcome, details]);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.to_string().as_bytes());
    hex(&h.finalize())
}

/// Appends an event. Call inside a write transaction so the chain head cannot move under us.
pub fn append(conn: &Connection, at: i64, e: &Event<'_>) -> Result<i64> {
    let prev: String = conn
        .prepare_cached("SELECT hash FROM platform_audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string());
    let details = e.details.to_string();
    let hash = entry_hash(&prev, at, e, &details);
    conn.prepare_cached(
        "INSERT INTO platform_audit(at, actor, action, tenant_id, resource, outcome, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![at, e.actor, e.action, e.tenant_id, e.resource, e.outcome, details, prev, hash])?;
    Ok(conn.last_insert_rowid())
}

/// Entries for one tenant (or all), oldest first.
pub fn list(conn: &Connection, tenant_id: Option<&str>, limit: i64) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare(
        "SELECT id, at, actor, action, tenant_id, resource, outcome, details, prev_hash, hash
         FROM platform_audit WHERE (?1 IS NULL OR tenant_id = ?1) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![tenant_id, limit], |r| {
        Ok(Entry {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            tenant_id: r.get(4)?,
            resource: r.get(5)?,
            outcome: r.get(6)?,
            details: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// Walks the whole chain; returns the id of the first entry that does not check out.
pub fn verify(conn: &Connection) -> Result<Option<i64>> {
    let mut stmt = conn.prepare(
        "SELECT id, at, actor, action, tenant_id, resource, outcome, details, prev_hash, hash
         FROM platform_audit ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = GENESIS.to_string();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let (actor, action, outcome): (String, String, String) = (r.get(2)?, r.get(3)?, r.get(6)?);
        let (tenant_id, resource): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
        let details: String = r.get(7)?;
        let e = Event {
            actor: &actor,
            action: &action,
            tenant_id: tenant_id.as_deref(),
            resource: resource.as_deref(),
            outcome: &outcome,
            details: serde_json::Value::Null,
        };
        let stored_prev: String = r.get(8)?;
        let stored: String = r.get(9)?;
        if stored_prev != prev || entry_hash(&prev, r.get(1)?, &e, &details) != stored {
            return Ok(Some(id));
        }
        prev = stored;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> (tempfile::TempDir, crate::catalog::Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::catalog::Catalog::open(&dir.path().join("c.db"), true, crate::catalog::test_threads()).unwrap();
        (dir, c)
    }

    fn ev(action: &str) -> Event<'_> {
        Event { actor: "cli", action, tenant_id: Some("t1"), resource: None, outcome: "ok", details: json!({"a": 1}) }
    }

    #[test]
    fn chain_verifies_and_detects_edit() {
        let (_d, c) = catalog();
        c.write(|tx| {
            for a in ["tenant.create", "tenant.suspend", "tenant.resume"] {
                append(tx, 1, &ev(a))?;
            }
            Ok(())
        })
        .unwrap();
        let conn = c.conn().unwrap();
        assert_eq!(verify(&conn).unwrap(), None);
        conn.execute("UPDATE platform_audit SET actor = 'mallory' WHERE id = 2", []).unwrap();
        assert_eq!(verify(&conn).unwrap(), Some(2));
    }

    #[test]
    fn chain_detects_deleted_entry() {
        let (_d, c) = catalog();
        c.write(|tx| {
            for a in ["a", "b", "c"] {
                append(tx, 1, &ev(a))?;
            }
            Ok(())
        })
        .unwrap();
        let conn = c.conn().unwrap();
        conn.execute("DELETE FROM platform_audit WHERE id = 2", []).unwrap();
        assert_eq!(verify(&conn).unwrap(), Some(3));
    }
}
