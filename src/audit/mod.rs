//! Each tenant's tamper-evident audit trail, in its own file (`_tenantd_audit`):
//! `hash = SHA-256(prev_hash ‖ canonical JSON of the entry)`, the entry's id included, so an
//! edited, deleted, inserted or reordered entry breaks the chain. A data change and its entry
//! are written in the same transaction. The head of each chain is anchored in the catalog
//! (`audit_anchors`) every second and at shutdown, so a truncated tail or a chain rewritten
//! from scratch is detected too. The tables are a storage fact: the store creates them in
//! every tenant file (`store::audit_tables`); this module owns what goes in them.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub use crate::catalog::audit::GENESIS;

mod anchor;
pub use anchor::{
    anchor_dirty, anchor_of, platform_anchor_path, read_platform_anchor, verify_platform, verify_tenant, Dirty, Verdict,
};

/// One entry to append.
pub struct Entry<'a> {
    pub actor: &'a str,
    pub source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub action: &'a str,
    pub resource: Option<&'a str>,
    pub outcome: &'a str,
    pub risk: i64,
    /// Never passwords, tokens or secrets.
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Stored {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub source: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub outcome: String,
    pub risk: i64,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The entry's hash: SHA-256 of the previous hash and the entry's fields as a compact JSON
/// array. Serialized from a tuple of references, the same bytes `json!([...]).to_string()`
/// gives, without building a `Value` of cloned strings (a third of an audited create's
/// instructions outside SQLite).
fn hash_of(prev: &str, e: &Stored) -> Result<String> {
    let canonical = serde_json::to_vec(&(
        e.id,
        e.at,
        &e.actor,
        &e.source,
        &e.user_agent,
        &e.request_id,
        &e.action,
        &e.resource,
        &e.outcome,
        e.risk,
        &e.details,
    ))
    .map_err(|err| Error::Internal(format!("audit entry {}: {err}", e.id)))?;
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(&canonical);
    Ok(crate::util::hex(&h.finalize()))
}

/// Appends one entry to a tenant's chain in a transaction of its own: for events that change
/// no tenant data (sign-ins, denied addresses, alerts).
pub fn record(app: &crate::app::App, tenant: &crate::catalog::tenants::TenantRecord, e: &Entry<'_>) -> Result<()> {
    let opened = app.open_tenant(tenant)?;
    let conn = opened.handle.writer()?;
    crate::limits::lift_ceiling(&opened.handle, &conn)?;
    let tx = crate::db::WriteTx::begin(&conn)?;
    let head = append_head(&tx, crate::util::now_unix(), e)?;
    tx.commit()?;
    drop(conn);
    app.store.after_write(&opened.handle);
    app.audit_dirty.mark_head(&tenant.id, head);
    Ok(())
}

/// A chain's head: its last entry's id and hash.
pub type Head = (i64, String);

/// Appends inside the caller's transaction (the one that made the change).
pub fn append(tx: &Connection, at: i64, e: &Entry<'_>) -> Result<i64> {
    append_head(tx, at, e).map(|(id, _)| id)
}

/// `append`, returning the chain's new head (id, hash): once the transaction commits, the
/// caller can hand it to `Dirty::mark_head`, so anchoring need not read it back from the file.
pub fn append_head(tx: &Connection, at: i64, e: &Entry<'_>) -> Result<Head> {
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, hash FROM _tenantd_audit ORDER BY id DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (id, prev) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut stored = Stored {
        id,
        at,
        actor: e.actor.to_string(),
        source: e.source.map(str::to_string),
        user_agent: e.user_agent.map(|u| u.chars().take(300).collect()),
        request_id: e.request_id.map(str::to_string),
        action: e.action.to_string(),
        resource: e.resource.map(str::to_string),
        outcome: e.outcome.to_string(),
        risk: e.risk,
        details: e.details.to_string(),
        prev_hash: prev,
        hash: String::new(),
    };
    stored.hash = hash_of(&stored.prev_hash, &stored)?;
    tx.prepare_cached(
        "INSERT INTO _tenantd_audit(id, at, actor, source, user_agent, request_id, action, resource, outcome, risk, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        stored.id,
        stored.at,
        stored.actor,
        stored.source,
        stored.user_agent,
        stored.request_id,
        stored.action,
        stored.resource,
        stored.outcome,
        stored.risk,
        stored.details,
        stored.prev_hash,
        stored.hash
    ])?;
    Ok((id, stored.hash))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        source: r.get(3)?,
        user_agent: r.get(4)?,
        request_id: r.get(5)?,
        action: r.get(6)?,
        resource: r.get(7)?,
        outcome: r.get(8)?,
        risk: r.get(9)?,
        details: r.get(10)?,
        prev_hash: r.get(11)?,
        hash: r.get(12)?,
    })
}

const COLS: &str =
    "id, at, actor, source, user_agent, request_id, action, resource, outcome, risk, details, prev_hash, hash";

/// The chain's head: (last id, its hash), if any entry exists.
pub fn head(conn: &Connection) -> Result<Option<(i64, String)>> {
    Ok(conn
        .query_row("SELECT id, hash FROM _tenantd_audit ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Why a chain does not verify.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// The first entry whose link or hash is wrong (edited, deleted before it, inserted, reordered).
    Entry(i64),
    /// The anchored head is missing: the tail was truncated.
    Truncated { anchored_id: i64 },
    /// The anchored head's hash differs: the chain was rewritten.
    Rewritten { anchored_id: i64 },
}

/// Walks the whole chain (and checks it against the catalog anchor, when there is one).
/// Returns the number of entries checked.
pub fn verify(conn: &Connection, anchor: Option<(i64, &str)>) -> Result<std::result::Result<u64, Broken>> {
    // Archived entries left a checkpoint: the chain continues from its last id and hash.
    let checkpoint: Option<(i64, String)> = conn
        .query_row("SELECT last_id, last_hash FROM _tenantd_audit_checkpoint WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .unwrap_or(None);
    let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM _tenantd_audit ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let (mut prev, mut expected_id) = match &checkpoint {
        Some((id, hash)) => (hash.clone(), id + 1),
        None => (GENESIS.to_string(), 1),
    };
    let mut n = 0u64;
    let mut anchor_seen = false;
    while let Some(r) = rows.next()? {
        let e = row(r)?;
        if e.id != expected_id || e.prev_hash != prev || hash_of(&prev, &e)? != e.hash {
            return Ok(Err(Broken::Entry(e.id)));
        }
        if let Some((aid, ahash)) = anchor {
            if e.id == aid {
                if e.hash != ahash {
                    return Ok(Err(Broken::Rewritten { anchored_id: aid }));
                }
                anchor_seen = true;
            }
        }
        prev = e.hash;
        expected_id += 1;
        n += 1;
    }
    if let Some((aid, ahash)) = anchor {
        // An anchor inside the archived part is checked against the checkpoint instead.
        let archived = checkpoint.as_ref().is_some_and(|(cid, chash)| aid < *cid || (aid == *cid && chash == ahash));
        if !anchor_seen && !archived {
            return Ok(Err(Broken::Truncated { anchored_id: aid }));
        }
    }
    Ok(Ok(n))
}

/// Checks a run of consecutive entries as read back from the API (any order): each links to
/// the one before it and its hash is right. Returns how many were checked, or the id of the
/// first that is not. The window proves less than `verify` (no anchor, nothing before it), and
/// needs no access to the file: `tenantd check` runs it against a remote server.
pub fn verify_window(entries: &[Stored]) -> Result<u64, i64> {
    let mut sorted: Vec<&Stored> = entries.iter().collect();
    sorted.sort_by_key(|e| e.id);
    for (i, e) in sorted.iter().enumerate() {
        let linked = i == 0 || (sorted[i - 1].id + 1 == e.id && sorted[i - 1].hash == e.prev_hash);
        if !linked || hash_of(&e.prev_hash, e).map_or(true, |h| h != e.hash) {
            return Err(e.id);
        }
    }
    Ok(sorted.len() as u64)
}

/// Filters for listing.
#[derive(Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub page: i64,
    pub per_page: i64,
}

/// Newest first, filtered and paged; with the total.
pub fn list(conn: &Connection, f: &Filter) -> Result<(Vec<Stored>, i64)> {
    let cond = "(?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR outcome = ?3)
                AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5)";
    let p = params![f.actor, f.action, f.outcome, f.from, f.to];
    let total: i64 = conn.query_row(&format!("SELECT count(*) FROM _tenantd_audit WHERE {cond}"), p, |r| r.get(0))?;
    let mut stmt =
        conn.prepare(&format!("SELECT {COLS} FROM _tenantd_audit WHERE {cond} ORDER BY id DESC LIMIT ?6 OFFSET ?7"))?;
    let items = stmt
        .query_map(params![f.actor, f.action, f.outcome, f.from, f.to, f.per_page, (f.page - 1) * f.per_page], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((items, total))
}

/// Entries of `action` in `[from, to)`: how many by `details.reason` (`""` when none), and from
/// how many distinct sources. For the security metrics (issue 21), which count failed sign-ins.
pub fn count_by_reason(
    conn: &Connection,
    action: &str,
    from: i64,
    to: i64,
) -> Result<(std::collections::BTreeMap<String, i64>, i64)> {
    let mut by_reason = std::collections::BTreeMap::new();
    let mut sources = std::collections::BTreeSet::new();
    let mut stmt =
        conn.prepare_cached("SELECT source, details FROM _tenantd_audit WHERE action = ?1 AND at >= ?2 AND at < ?3")?;
    let rows =
        stmt.query_map(params![action, from, to], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (source, details) = row?;
        // Details are written by tenantd as JSON; one that is not still counts, reason unknown.
        let reason = serde_json::from_str::<serde_json::Value>(&details)
            .ok()
            .and_then(|d| d.get("reason").and_then(|r| r.as_str()).map(str::to_string))
            .unwrap_or_default();
        *by_reason.entry(reason).or_insert(0) += 1;
        if let Some(s) = source {
            sources.insert(s);
        }
    }
    Ok((by_reason, sources.len() as i64))
}

// --- retention ---

/// Moves entries older than `before` (Unix seconds) out of the chain: they are appended to
/// `archive` as JSON lines (kept under the tenant's backups), then deleted, and the checkpoint
/// records the last archived id and hash so the remaining chain still verifies. Returns how
/// many were archived.
pub fn archive(conn: &mut Connection, before: i64, archive: &std::path::Path) -> Result<u64> {
    use std::io::Write;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let old: Vec<Stored> = {
        let mut stmt = tx.prepare(&format!("SELECT {COLS} FROM _tenantd_audit WHERE at < ?1 ORDER BY id"))?;
        let rows = stmt.query_map([before], row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let Some(last) = old.last() else { return Ok(0) };
    if let Some(dir) = archive.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(archive)?;
    for e in &old {
        let line = serde_json::to_string(e).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
        writeln!(f, "{line}")?;
    }
    f.sync_all()?;
    let archived_before: i64 = tx
        .query_row("SELECT archived FROM _tenantd_audit_checkpoint WHERE id = 1", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    tx.execute("DELETE FROM _tenantd_audit WHERE id <= ?1", [last.id])?;
    tx.execute(
        "INSERT INTO _tenantd_audit_checkpoint(id, last_id, last_hash, archived, at) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT(id) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash,
           archived = excluded.archived, at = excluded.at",
        params![last.id, last.hash, archived_before + old.len() as i64, crate::util::now_unix()],
    )?;
    tx.commit()?;
    Ok(old.len() as u64)
}

/// Applies each tenant's plan retention (CLI `audit archive`, and hourly in the server).
pub fn archive_all(app: &crate::app::App) -> Result<Vec<(String, u64)>> {
    let now = crate::util::now_unix();
    let mut out = Vec::new();
    for t in crate::catalog::tenants::list(&*app.catalog.conn()?, false)? {
        let days = crate::limits::plan(app, &t)?.audit_retention_days as i64;
        let opened = app.open_tenant(&t)?;
        let mut conn = opened.handle.writer()?;
        crate::limits::lift_ceiling(&opened.handle, &conn)?;
        let file = app.paths.backups(&t.id).join(format!("audit-archive-{}.jsonl", crate::util::file_stamp(now)));
        let n = archive(&mut conn, now - days * 86_400, &file)?;
        if n > 0 {
            out.push((t.slug.to_string(), n));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit_tables::TENANT_AUDIT_DDL;
    use serde_json::json;

    #[test]
    fn the_hash_covers_the_same_bytes_as_the_json_array_it_replaced() {
        let e = Stored {
            id: 42,
            at: -7,
            actor: "user:1 \"quoted\" \\ é 😀 \u{1}".into(),
            source: None,
            user_agent: Some("curl/8\t\n".into()),
            request_id: Some(String::new()),
            action: "record.create".into(),
            resource: Some("customers/9".into()),
            outcome: "ok".into(),
            risk: i64::MAX,
            details: r#"{"columns":["name"]}"#.into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        let old = json!([
            e.id,
            e.at,
            e.actor,
            e.source,
            e.user_agent,
            e.request_id,
            e.action,
            e.resource,
            e.outcome,
            e.risk,
            e.details
        ]);
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(old.to_string().as_bytes());
        assert_eq!(hash_of(GENESIS, &e).unwrap(), crate::util::hex(&h.finalize()));
    }

    fn tenant_audit_schema_current(c: &Connection) -> Result<bool> {
        Ok(crate::store::query::schema_digest(c)?.audit_current)
    }

    #[test]
    fn audit_ddl_is_skipped_only_when_the_tables_are_current() {
        let c = Connection::open_in_memory().unwrap();
        assert!(!tenant_audit_schema_current(&c).unwrap(), "no tables yet");
        c.execute_batch(TENANT_AUDIT_DDL).unwrap();
        assert!(tenant_audit_schema_current(&c).unwrap());
        c.execute_batch("CREATE INDEX _tenantd_audit_action ON _tenantd_audit(action, at)").unwrap();
        assert!(!tenant_audit_schema_current(&c).unwrap(), "the old index must still be dropped");
        c.execute_batch(TENANT_AUDIT_DDL).unwrap();
        assert!(tenant_audit_schema_current(&c).unwrap());
    }

    fn chain(n: usize) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(TENANT_AUDIT_DDL).unwrap();
        for i in 0..n {
            let e = Entry {
                actor: "user:1",
                source: Some("127.0.0.1"),
                user_agent: None,
                request_id: Some("r"),
                action: "record.create",
                resource: Some(&format!("customers/{i}")),
                outcome: "ok",
                risk: 0,
                details: json!({"columns": ["name"]}),
            };
            append(&c, 1_000 + i as i64, &e).unwrap();
        }
        c
    }

    #[test]
    fn detects_edit_delete_insert_reorder_truncate_rewrite() {
        let ok = chain(5);
        assert_eq!(verify(&ok, None).unwrap(), Ok(5));
        let (id, hash) = head(&ok).unwrap().unwrap();
        assert_eq!(verify(&ok, Some((id, &hash))).unwrap(), Ok(5));

        let c = chain(5);
        c.execute("UPDATE _tenantd_audit SET actor = 'user:2' WHERE id = 3", []).unwrap();
        assert_eq!(verify(&c, None).unwrap(), Err(Broken::Entry(3)), "edited");

        let c = chain(5);
        c.execute("DELETE FROM _tenantd_audit WHERE id = 2", []).unwrap();
        assert_eq!(verify(&c, None).unwrap(), Err(Broken::Entry(3)), "deleted");

        let c = chain(5);
        c.execute("UPDATE _tenantd_audit SET id = id + 100 WHERE id >= 3", []).unwrap();
        c.execute(
            "INSERT INTO _tenantd_audit(id, at, actor, action, outcome, details, prev_hash, hash) SELECT 3, at, actor, action, outcome, details, prev_hash, hash FROM _tenantd_audit WHERE id = 103",
            [],
        )
        .unwrap();
        assert!(verify(&c, None).unwrap().is_err(), "inserted");

        let c = chain(5);
        c.execute("UPDATE _tenantd_audit SET id = 99 WHERE id = 2", []).unwrap();
        c.execute("UPDATE _tenantd_audit SET id = 2 WHERE id = 3", []).unwrap();
        c.execute("UPDATE _tenantd_audit SET id = 3 WHERE id = 99", []).unwrap();
        assert_eq!(verify(&c, None).unwrap(), Err(Broken::Entry(2)), "reordered");

        let c = chain(5);
        c.execute("DELETE FROM _tenantd_audit WHERE id >= 4", []).unwrap();
        assert_eq!(verify(&c, None).unwrap(), Ok(3), "a truncated tail alone still links up...");
        assert_eq!(
            verify(&c, Some((id, &hash))).unwrap(),
            Err(Broken::Truncated { anchored_id: id }),
            "...the anchor catches it"
        );

        let rewritten = chain(5);
        rewritten.execute("DELETE FROM _tenantd_audit", []).unwrap();
        for i in 0..5 {
            let e = Entry {
                actor: "mallory",
                source: None,
                user_agent: None,
                request_id: None,
                action: "record.create",
                resource: Some(&format!("customers/{i}")),
                outcome: "ok",
                risk: 0,
                details: json!({}),
            };
            append(&rewritten, 5_000, &e).unwrap();
        }
        assert_eq!(verify(&rewritten, Some((id, &hash))).unwrap(), Err(Broken::Rewritten { anchored_id: id }));
    }
}
