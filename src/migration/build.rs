//! Builds tenant files: the schema (the fleet's template, or the source's own DDL), then the
//! rows, streamed from the source snapshot in one pass per table for a batch of tenants, each
//! row routed to its tenant's open file. Triggers and indexes are set aside during the load
//! (triggers must not fire on imported rows) and recreated after it; foreign keys are off
//! during the load and `foreign_key_check` must come back empty before a tenant commits, which
//! also covers cycles and self-references without ordering the inserts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::SchemaMode;
use super::inspect::{q, Schema};
use super::map::map_table;
use super::plan::TablePlan;
use super::source::Budget;
use crate::error::{Error, Result};

/// Tenants built at once: each holds one open file and its page cache while its batch loads.
pub const BATCH: usize = 64;

/// Row count and order-independent content hash of a set of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub rows: u64,
    #[serde(serialize_with = "hex128")]
    pub hash: u128,
}

fn hex128<S: serde::Serializer>(v: &u128, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:032x}"))
}

impl Tally {
    pub fn add(&mut self, row_hash: u128) {
        self.rows += 1;
        self.hash = self.hash.wrapping_add(row_hash);
    }
}

/// SHA-256 of a row's values in a canonical encoding (type tag, length, bytes), cut to 128
/// bits. Summing these is independent of row order and counts duplicates. Columns the config
/// computes (`expr`, `default`) are left out (`hashed[i]` false): the target column's type
/// affinity may store them differently from how the source read them (an integer default in a
/// REAL column), so they are checked by the row count only.
pub fn row_hash(values: &[Value], hashed: &[bool]) -> u128 {
    let mut h = Sha256::new();
    for (i, v) in values.iter().enumerate() {
        if !hashed.get(i).copied().unwrap_or(true) {
            h.update([5u8]);
            continue;
        }
        match v {
            Value::Null => h.update([0u8]),
            Value::Integer(i) => {
                h.update([1u8]);
                h.update(i.to_le_bytes());
            }
            Value::Real(f) => {
                h.update([2u8]);
                h.update(f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                h.update([3u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Value::Blob(b) => {
                h.update([4u8]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_le_bytes(b)
}

/// Per tenant (by map number), per target table.
pub type Tallies = BTreeMap<i64, BTreeMap<String, Tally>>;

/// Reads the rows of `plan` for the tenants `lo..=hi` (or every row when the table is not
/// mapped) and hands each to `sink` with its tenant number (`None`: every tenant).
pub fn stream(
    reader: &Connection,
    plan: &TablePlan,
    lo: i64,
    hi: i64,
    budget: &Budget,
    mut sink: impl FnMut(Option<i64>, &[Value]) -> Result<()>,
) -> Result<()> {
    let cols = plan.select.join(", ");
    let sql = if plan.mapped {
        format!(
            "SELECT m.tn, {cols} FROM {} m JOIN src.{} t ON t.{} = m.rid WHERE m.tn BETWEEN ?1 AND ?2 ORDER BY m.rid",
            map_table(&plan.source),
            q(&plan.source),
            plan.rowid
        )
    } else {
        format!("SELECT NULL, {cols} FROM src.{} t", q(&plan.source))
    };
    budget.arm();
    let mut stmt = reader.prepare(&sql)?;
    let mut rows = if plan.mapped { stmt.query([lo, hi])? } else { stmt.query([])? };
    let n = plan.columns.len();
    let mut values: Vec<Value> = Vec::with_capacity(n);
    while let Some(row) = rows.next()? {
        values.clear();
        let tn: Option<i64> = row.get(0)?;
        for i in 0..n {
            values.push(row.get(i + 1)?);
        }
        sink(tn, &values)?;
    }
    Ok(())
}

/// A built tenant: what was loaded, the views and triggers left out, and (with post_sql) the
/// differences found before post_sql ran.
pub struct Finished {
    pub tallies: BTreeMap<String, Tally>,
    pub dropped: Vec<String>,
    pub differences: Vec<String>,
}

/// One tenant file being built.
pub struct Building {
    pub tn: i64,
    pub path: PathBuf,
    pub conn: Connection,
    /// Indexes and triggers set aside for the load: recreated after it.
    deferred: Vec<String>,
    pub tallies: BTreeMap<String, Tally>,
    pub dropped: Vec<String>,
    /// Why loading this tenant failed (a row the tenant's schema refused); its batch goes on.
    pub failed: Option<String>,
}

/// Opens a new tenant file at `path` with its schema: a copy of the fleet's template, or the
/// source's own DDL for the planned tables (renames and column drops applied).
pub fn start(
    tn: i64,
    path: &Path,
    mode: SchemaMode,
    template: &Path,
    source: &Schema,
    plans: &[TablePlan],
    audit_ddl: &str,
) -> Result<Building> {
    if mode == SchemaMode::Fleet {
        std::fs::copy(template, path)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -512; \
         PRAGMA trusted_schema = OFF; PRAGMA legacy_alter_table = OFF;",
    )?;
    let mut dropped = Vec::new();
    if mode == SchemaMode::Keep {
        conn.execute_batch("BEGIN")?;
        create_source_schema(&conn, source, plans, &mut dropped)?;
        conn.execute_batch(audit_ddl)?;
        conn.execute_batch("COMMIT")?;
    }
    // Set aside the app's indexes and triggers for the load.
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL \
         AND tbl_name NOT LIKE '\\_tenantd\\_%' ESCAPE '\\' ORDER BY type, name",
    )?;
    let objects: Vec<(String, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    let mut deferred = Vec::new();
    for (kind, name, sql) in objects {
        conn.execute_batch(&format!("DROP {} {}", kind.to_ascii_uppercase(), q(&name)))?;
        // Indexes first, then triggers (sorted by type: "index" < "trigger").
        deferred.push(sql);
    }
    conn.execute_batch("BEGIN")?;
    Ok(Building { tn, path: path.to_path_buf(), conn, deferred, tallies: BTreeMap::new(), dropped, failed: None })
}

/// Views and triggers of the source that could not move into a tenant (checked on an
/// in-memory copy of the planned schema), with why.
pub fn objects_that_cannot_move(source: &Schema, plans: &[TablePlan]) -> Result<Vec<String>> {
    let conn = Connection::open_in_memory()?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    let mut dropped = Vec::new();
    create_source_schema(&conn, source, plans, &mut dropped)?;
    Ok(dropped)
}

/// The source's tables, indexes, views and triggers in a new file; views and triggers only
/// when they touch nothing but the tenant's own tables (checked with SQLite's authorizer
/// while a statement that uses them is prepared, never run). Others are reported in `dropped`.
fn create_source_schema(
    conn: &Connection,
    source: &Schema,
    plans: &[TablePlan],
    dropped: &mut Vec<String>,
) -> Result<()> {
    let included = |name: &str| plans.iter().any(|p| p.source.eq_ignore_ascii_case(name));
    for t in source.tables.iter().filter(|t| included(&t.name)) {
        exec_one(conn, &t.sql, "table", &t.name)?;
    }
    for o in source.indexes.iter().filter(|o| included(&o.table) && !reserved(&o.name)) {
        exec_one(conn, &o.sql, "index", &o.name)?;
    }
    let allowed: Vec<String> = plans.iter().map(|p| p.source.to_ascii_lowercase()).collect();
    for v in &source.views {
        if reserved(&v.name) {
            dropped.push(format!("view {}: the name is reserved for tenantd's own tables", v.name));
            continue;
        }
        if exec_one(conn, &v.sql, "view", &v.name).is_err() {
            dropped.push(format!("view {}: its SQL does not prepare in the tenant", v.name));
            continue;
        }
        if let Err(why) = touches_only(conn, &format!("SELECT * FROM {}", q(&v.name)), &allowed, &v.name) {
            conn.execute_batch(&format!("DROP VIEW {}", q(&v.name)))?;
            dropped.push(format!("view {}: {why}", v.name));
        }
    }
    for tr in &source.triggers {
        if reserved(&tr.name) {
            dropped.push(format!("trigger {}: the name is reserved for tenantd's own tables", tr.name));
            continue;
        }
        if !included(&tr.table) || exec_one(conn, &tr.sql, "trigger", &tr.name).is_err() {
            dropped.push(format!("trigger {}: its table is not copied or its SQL does not prepare", tr.name));
            let _ = conn.execute_batch(&format!("DROP TRIGGER IF EXISTS {}", q(&tr.name)));
            continue;
        }
        let mut allowed_here = allowed.clone();
        allowed_here.extend(source.views.iter().map(|v| v.name.to_ascii_lowercase()));
        let refused = trigger_probes(conn, &tr.table)
            .iter()
            .find_map(|probe| touches_only(conn, probe, &allowed_here, &tr.name).err());
        if let Some(why) = refused {
            conn.execute_batch(&format!("DROP TRIGGER {}", q(&tr.name)))?;
            dropped.push(format!("trigger {}: {why}", tr.name));
        }
    }
    // Renames and drops from the config, done by SQLite so indexes, views, triggers and foreign
    // keys that name them follow.
    for p in plans {
        let t = q(&p.source);
        for (old, new) in &p.renames {
            conn.execute_batch(&format!("ALTER TABLE {t} RENAME COLUMN {} TO {}", q(old), q(new)))?;
        }
        for c in &p.drops {
            conn.execute_batch(&format!("ALTER TABLE {t} DROP COLUMN {}", q(c))).map_err(|e| {
                Error::invalid("cannot_drop_column", format!("cannot drop column {}.{c}: {e}", p.source))
            })?;
        }
        for c in &p.adds {
            conn.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {}", q(c)))?;
        }
        if p.target != p.source {
            conn.execute_batch(&format!("ALTER TABLE {} RENAME TO {}", q(&p.source), q(&p.target)))?;
        }
    }
    Ok(())
}

/// Names tenantd keeps for itself in every tenant file.
pub fn reserved(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("_tenantd_")
}

/// Runs one statement of the source's DDL, refusing anything but the expected kind of
/// `CREATE` (the text comes from an untrusted file).
fn exec_one(conn: &Connection, sql: &str, kind: &str, name: &str) -> Result<()> {
    let upper = sql.trim_start().to_ascii_uppercase();
    let ok = match kind {
        "table" => upper.starts_with("CREATE TABLE"),
        "index" => upper.starts_with("CREATE INDEX") || upper.starts_with("CREATE UNIQUE INDEX"),
        "view" => upper.starts_with("CREATE VIEW"),
        "trigger" => upper.starts_with("CREATE TRIGGER"),
        _ => false,
    };
    if !ok {
        return Err(Error::invalid("bad_source_schema", format!("{kind} {name}: its SQL is not a CREATE {kind}")));
    }
    // `prepare` refuses more than one statement.
    let mut stmt = conn.prepare(sql).map_err(|e| Error::invalid("bad_source_schema", format!("{kind} {name}: {e}")))?;
    stmt.raw_execute().map_err(|e| Error::invalid("bad_source_schema", format!("{kind} {name}: {e}")))?;
    Ok(())
}

/// Statements that fire every trigger a table or view can have (INSERT, UPDATE of every
/// column, DELETE), to prepare (never run) under the authorizer: whatever the trigger's head
/// says, its body is compiled by one of them.
fn trigger_probes(conn: &Connection, table: &str) -> Vec<String> {
    let t = q(table);
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut st| st.query_map([table], |r| r.get::<_, String>(0))?.collect())
        .unwrap_or_default();
    let set = if cols.is_empty() {
        "rowid = rowid".to_string()
    } else {
        cols.iter().map(|c| format!("{0} = {0}", q(c))).collect::<Vec<_>>().join(", ")
    };
    vec![format!("INSERT INTO {t} DEFAULT VALUES"), format!("UPDATE {t} SET {set}"), format!("DELETE FROM {t}")]
}

/// Prepares `probe` with an authorizer that records every table read or written; refuses
/// any outside `allowed` (lower-case names) and any ATTACH, PRAGMA or schema change.
fn touches_only(conn: &Connection, probe: &str, allowed: &[String], object: &str) -> std::result::Result<(), String> {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let allowed_owned: Vec<String> = allowed.to_vec();
    let object_l = object.to_ascii_lowercase();
    let hook = move |ctx: AuthContext<'_>| {
        let bad = |s: String| {
            log.lock().push(s);
            Authorization::Deny
        };
        // The tenant's own tables; SQLite's internal ones may be read, never written; tenantd's
        // (`_tenantd_*`, the audit chain) never touched.
        let table_ok = |t: &str, write: bool| {
            let l = t.to_ascii_lowercase();
            !l.starts_with("_tenantd_")
                && (allowed_owned.contains(&l) || l == object_l || (!write && l.starts_with("sqlite_")))
        };
        match ctx.action {
            AuthAction::Read { table_name, .. } => {
                if table_ok(table_name, false) && ctx.database_name.is_none_or(|d| d == "main") {
                    Authorization::Allow
                } else {
                    bad(format!("reads {table_name}, which is not one of the tenant's tables"))
                }
            }
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name } => {
                if table_ok(table_name, true) && ctx.database_name.is_none_or(|d| d == "main") {
                    Authorization::Allow
                } else {
                    bad(format!("writes {table_name}, which is not one of the tenant's tables"))
                }
            }
            AuthAction::Attach { .. } | AuthAction::Detach { .. } | AuthAction::Pragma { .. } => {
                bad("uses ATTACH or PRAGMA".into())
            }
            _ => Authorization::Allow,
        }
    };
    if conn.authorizer(Some(hook)).is_err() {
        return Err("cannot install the authorizer".into());
    }
    let prepared = conn.prepare(probe).map(|_| ()).map_err(|e| e.to_string());
    let _ = conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let seen = seen.lock().clone();
    match (seen.first(), prepared) {
        (Some(why), _) => Err(why.clone()),
        (None, Err(e)) => Err(format!("does not prepare: {e}")),
        (None, Ok(())) => Ok(()),
    }
}

impl Building {
    /// Recreates the indexes and triggers set aside, sets AUTOINCREMENT counters no lower than
    /// the source's, checks foreign keys, commits and returns the file to WAL mode.
    pub fn finish(
        self,
        sequences: &BTreeMap<String, i64>,
        plans: &[TablePlan],
        post_sql: &[String],
    ) -> Result<Finished> {
        let conn = &self.conn;
        for sql in &self.deferred {
            conn.execute_batch(sql)?;
        }
        let has_seq: bool =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'", [], |r| {
                r.get::<_, i64>(0)
            })? > 0;
        if has_seq {
            for p in plans {
                if let Some(seq) = sequences.get(&p.source) {
                    // An empty table has no row here yet: the counter must still not restart.
                    conn.execute(
                        "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 \
                         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
                        rusqlite::params![p.target, seq],
                    )?;
                    conn.execute(
                        "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                        rusqlite::params![p.target, seq],
                    )?;
                }
            }
        }
        // With post_sql, what the load wrote is compared now, before the statements change it.
        let mut differences = Vec::new();
        if !post_sql.is_empty() {
            let found = tenant_tallies(conn, plans)?;
            differences = super::validate::compare(&self.tallies, &found);
        }
        for sql in post_sql {
            conn.execute_batch(sql).map_err(|e| Error::invalid("post_sql_failed", format!("post_sql {sql:?}: {e}")))?;
        }
        let violations = foreign_key_violations(conn, 20)?;
        if !violations.is_empty() {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(Error::invalid(
                "foreign_key_violation",
                format!("foreign keys do not hold in the built tenant: {}", violations.join("; ")),
            ));
        }
        conn.execute_batch("COMMIT")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_checkpoint(TRUNCATE);")?;
        let Building { path, conn, tallies, dropped, .. } = self;
        drop(conn);
        std::fs::File::open(&path)?.sync_all()?;
        Ok(Finished { tallies, dropped, differences })
    }
}

/// Up to `limit` rows of `PRAGMA foreign_key_check`, described.
pub fn foreign_key_violations(conn: &Connection, limit: usize) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if out.len() >= limit {
            out.push("…".into());
            break;
        }
        let table: String = r.get(0)?;
        let rowid: Option<i64> = r.get(1)?;
        let parent: String = r.get(2)?;
        out.push(format!("{table} rowid {} → {parent} (missing)", rowid.map(|v| v.to_string()).unwrap_or("-".into())));
    }
    Ok(out)
}

/// Loads one batch of tenants: each planned table read once, rows routed by tenant number.
/// `loaded` is called after each table with the rows written by this batch so far.
pub fn load_batch(
    reader: &Connection,
    batch: &mut [Building],
    plans: &[TablePlan],
    budget: &Budget,
    loaded: &mut dyn FnMut(&str, u64),
) -> Result<()> {
    let mut written = 0u64;
    let (Some(lo), Some(hi)) = (batch.first().map(|b| b.tn), batch.last().map(|b| b.tn)) else { return Ok(()) };
    let slot: HashMap<i64, usize> = batch.iter().enumerate().map(|(i, b)| (b.tn, i)).collect();
    for p in plans {
        let placeholders = vec!["?"; p.columns.len()].join(", ");
        let cols: Vec<String> = p.columns.iter().map(|c| q(c)).collect();
        let sql = format!("INSERT INTO {} ({}) VALUES ({placeholders})", q(&p.target), cols.join(", "));
        // A tenant whose schema refuses a statement or a row fails alone; the batch goes on.
        let n = batch.len();
        let mut failures: Vec<Option<String>> = vec![None; n];
        let mut stmts = Vec::with_capacity(n);
        for (i, b) in batch.iter().enumerate() {
            match b.conn.prepare(&sql) {
                Ok(st) => stmts.push(Some(st)),
                Err(e) => {
                    failures[i] = Some(format!("table {}: {e}", p.target));
                    stmts.push(None);
                }
            }
        }
        let mut tallies = vec![Tally::default(); n];
        let mut insert = |i: usize, values: &[Value], h: u128, stmts: &mut [Option<rusqlite::Statement<'_>>]| {
            if failures[i].is_some() {
                return;
            }
            if let Some(st) = stmts[i].as_mut() {
                match st.execute(params_from_iter(values.iter())) {
                    Ok(_) => tallies[i].add(h),
                    Err(e) => failures[i] = Some(format!("table {}: {e}", p.target)),
                }
            }
        };
        stream(reader, p, lo, hi, budget, |tn, values| {
            let h = row_hash(values, &p.hashed);
            match tn.and_then(|tn| slot.get(&tn).copied()) {
                Some(i) => insert(i, values, h, &mut stmts),
                None if tn.is_none() => {
                    for i in 0..stmts.len() {
                        insert(i, values, h, &mut stmts);
                    }
                }
                None => {}
            }
            Ok(())
        })?;
        drop(stmts);
        for (b, f) in batch.iter_mut().zip(failures) {
            if let Some(f) = f {
                b.failed.get_or_insert(f);
            }
        }
        for (b, t) in batch.iter_mut().zip(tallies) {
            written += t.rows;
            b.tallies.insert(p.target.clone(), t);
        }
        loaded(&p.target, written);
    }
    Ok(())
}

/// Row count and content hash of each planned table in a built tenant file.
pub fn tenant_tallies(conn: &Connection, plans: &[TablePlan]) -> Result<BTreeMap<String, Tally>> {
    let mut out = BTreeMap::new();
    for p in plans {
        let cols: Vec<String> = p.columns.iter().map(|c| q(c)).collect();
        let mut stmt = conn.prepare(&format!("SELECT {} FROM {}", cols.join(", "), q(&p.target)))?;
        let mut rows = stmt.query([])?;
        let mut tally = Tally::default();
        let mut values = Vec::with_capacity(cols.len());
        while let Some(r) = rows.next()? {
            values.clear();
            for i in 0..cols.len() {
                values.push(r.get::<_, Value>(i)?);
            }
            tally.add(row_hash(&values, &p.hashed));
        }
        out.insert(p.target.clone(), tally);
    }
    Ok(out)
}
