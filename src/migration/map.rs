//! The tenant map of a split run: for every table whose rows belong to tenants, which tenant
//! each row (by rowid) goes to. Built with SQL in a scratch database beside the source
//! snapshot (`map-N.db`, attached as `main`; the snapshot as `src`), a table once every
//! parent it is routed through is done, so a row's tenant is its parent's. The map stays on
//! disk, so a split of millions of rows never holds them in memory, and `validate` reuses it.
//!
//! Every row of a tenant table that gets no tenant is recorded in `left` with why, so nothing
//! is lost without a reason: `null` (a NULL key on its way to the root: left behind by rule),
//! `chain` (its parent was left behind by rule), `orphan` (its key points at a row that does not
//! exist), `cross` (it references rows of two tenants), `bad_parent` (its parent was an orphan
//! or crossed tenants). Only `null` and `chain` are by rule; the others are differences, and so
//! is any row without a tenant that `left` does not explain.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection};
use serde::Serialize;

use super::inspect::{q, ForeignKey, Schema, Table};
use super::plan::{Plans, TablePlan};
use super::roles::Role;
use super::source::Budget;
use crate::error::Result;

/// The map table of a source table (stable across runs: named by the table, not its position).
pub fn map_table(table: &str) -> String {
    q(&format!("map:{table}"))
}

/// What mapping found beyond the map itself, per table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MapReport {
    /// Rows that reach no tenant by rule (a NULL key on the way), with their dependents.
    pub left_behind: BTreeMap<String, u64>,
    /// Rows whose key on the way to the root points at a row that does not exist.
    pub orphans: BTreeMap<String, u64>,
    /// Rows that reference rows of two tenants (and rows reached only through such rows).
    pub cross_tenant: BTreeMap<String, u64>,
    /// Rows the map gave a tenant although another of their keys points at another tenant's row.
    pub cross_references: BTreeMap<String, u64>,
    /// Up to 10 primary keys per table of rows that got no tenant or cross tenants.
    pub samples: BTreeMap<String, Vec<String>>,
    /// System tables: rows no tenant references stay behind by rule.
    pub system_left: BTreeMap<String, u64>,
    /// Rows without a tenant that no rule explains (a defect of the map itself).
    pub unexplained: BTreeMap<String, u64>,
}

impl MapReport {
    /// Rows lost other than by rule: orphans, crossings and unexplained ones.
    pub fn differences(&self, table: &str) -> u64 {
        [&self.orphans, &self.cross_tenant, &self.unexplained].iter().map(|m| m.get(table).copied().unwrap_or(0)).sum()
    }

    pub fn by_rule(&self, table: &str) -> u64 {
        self.left_behind.get(table).copied().unwrap_or(0) + self.system_left.get(table).copied().unwrap_or(0)
    }

    pub fn blocked(&self) -> bool {
        !(self.orphans.is_empty()
            && self.cross_tenant.is_empty()
            && self.unexplained.is_empty()
            && self.cross_references.is_empty())
    }
}

pub struct TenantKey {
    pub tn: i64,
    pub key: rusqlite::types::Value,
    pub slug_source: Option<String>,
    pub name_source: Option<String>,
}

/// Builds the map and the tenant list. `slug_from`/`name_from` are columns of the root table.
pub fn build(
    conn: &Connection,
    schema: &Schema,
    plans: &Plans,
    slug_from: Option<&str>,
    name_from: Option<&str>,
    null_tenant: bool,
    budget: &Budget,
) -> Result<(Vec<TenantKey>, MapReport)> {
    let Some(split) = &plans.split else { return Ok((Vec::new(), MapReport::default())) };
    let root = schema.table(&split.root).ok_or_else(|| super::roles::unknown_table(schema, &split.root))?;
    for col in [slug_from, name_from].into_iter().flatten() {
        if root.column(col).is_none() {
            return Err(super::roles::unknown_column(root, col));
        }
    }
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE; PRAGMA cache_size = -16384;
         CREATE TABLE IF NOT EXISTS tenants (tn INTEGER PRIMARY KEY, key UNIQUE, slug_source, name_source);
         CREATE TABLE IF NOT EXISTS left (tbl TEXT NOT NULL, rid INTEGER NOT NULL, why TEXT NOT NULL, PRIMARY KEY (tbl, rid)) WITHOUT ROWID;",
    )?;
    for t in plans.tables.iter().filter(|t| t.mapped) {
        schema.tables[t.index].rowid_or_err()?;
        let m = map_table(&t.source);
        let idx = q(&format!("map:{}:rid", t.source));
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {m} (tn INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tn, rid)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS {idx} ON {m}(rid, tn);"
        ))?;
    }
    let key = q(&split.key);
    let pick = |c: Option<&str>| c.map(|c| format!("min(t.{})", q(c))).unwrap_or_else(|| "NULL".into());
    budget.arm();
    conn.execute(
        &format!(
            "INSERT INTO tenants (key, slug_source, name_source) SELECT t.{key}, {}, {} FROM src.{} t \
             WHERE t.{key} IS NOT NULL GROUP BY t.{key} ORDER BY t.{key}",
            pick(slug_from),
            pick(name_from),
            q(&root.name)
        ),
        [],
    )?;
    let null_tn: Option<i64> = if null_tenant {
        conn.execute("INSERT INTO tenants (key) VALUES (NULL)", [])?;
        Some(conn.last_insert_rowid())
    } else {
        None
    };
    let ctx = Ctx { conn, schema, plans, budget };
    for t in ready_order(schema, plans) {
        ctx.map_one(t, split.direct_column.as_deref().unwrap_or(&split.key), null_tn)?;
    }
    close_system_references(conn, schema, plans, budget)?;
    let mut report = MapReport::default();
    for t in plans.tables.iter().filter(|t| t.mapped) {
        ctx.account(t, &mut report)?;
    }
    ctx.cross_references(&mut report)?;
    let mut stmt = conn.prepare("SELECT tn, key, slug_source, name_source FROM tenants ORDER BY tn")?;
    let tenants = stmt
        .query_map([], |r| {
            Ok(TenantKey {
                tn: r.get(0)?,
                key: r.get(1)?,
                slug_source: r.get::<_, Option<rusqlite::types::Value>>(2)?.map(|v| value_text(&v)),
                name_source: r.get::<_, Option<rusqlite::types::Value>>(3)?.map(|v| value_text(&v)),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((tenants, report))
}

/// The foreign keys a tenant table is routed through: its first step to the root, or for a
/// junction every key into tenant data.
fn routing_keys(plans: &Plans, t: &TablePlan) -> Vec<usize> {
    let place = &plans.placements[t.index];
    match place.role {
        Role::Root => Vec::new(),
        _ if place.direct => Vec::new(),
        Role::Junction => place.via.clone(),
        _ => place.path.first().map(|s| vec![s.fk]).unwrap_or_default(),
    }
}

/// Tenant tables in an order where every table comes after the parents it is routed through
/// (breadth-first depth alone is not enough: a junction's deeper parent must be done first).
fn ready_order<'p>(schema: &Schema, plans: &'p Plans) -> Vec<&'p TablePlan> {
    let mut todo: Vec<&TablePlan> = plans.tables.iter().filter(|t| t.mapped && t.role != Role::System).collect();
    todo.sort_by_key(|t| plans.placements[t.index].depth);
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::with_capacity(todo.len());
    while !todo.is_empty() {
        let pos = todo
            .iter()
            .position(|t| {
                routing_keys(plans, t).iter().all(|&k| {
                    let parent = &schema.tables[t.index].foreign_keys[k].table;
                    match schema.index_of(parent) {
                        Some(pi) if pi != t.index => done.contains(&pi) || !todo.iter().any(|x| x.index == pi),
                        _ => true,
                    }
                })
            })
            .unwrap_or(0);
        let t = todo.remove(pos);
        done.insert(t.index);
        out.push(t);
    }
    out
}

struct Ctx<'a> {
    conn: &'a Connection,
    schema: &'a Schema,
    plans: &'a Plans,
    budget: &'a Budget,
}

impl Ctx<'_> {
    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
        self.budget.arm();
        Ok(self.conn.execute(sql, p)?)
    }

    /// `p.to = t.from` for every column of a key.
    fn join_on(fk: &ForeignKey, parent: &str, child: &str) -> String {
        fk.from
            .iter()
            .zip(&fk.to)
            .map(|(f, to)| format!("{parent}.{} = {child}.{}", q(to), q(f)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn any_null(fk: &ForeignKey, alias: &str) -> String {
        fk.from.iter().map(|f| format!("{alias}.{} IS NULL", q(f))).collect::<Vec<_>>().join(" OR ")
    }

    /// Maps one table's rows, then records why each row left without a tenant did.
    fn map_one(&self, t: &TablePlan, key_column: &str, null_tn: Option<i64>) -> Result<()> {
        let table = &self.schema.tables[t.index];
        let place = &self.plans.placements[t.index];
        let (m, src) = (map_table(&table.name), q(&table.name));
        let rid = table.rowid_or_err()?;
        let name = table.name.as_str();
        if place.role == Role::Root || place.direct {
            let col = q(key_column);
            self.exec(
                &format!(
                    "INSERT OR IGNORE INTO {m} SELECT k.tn, t.{rid} FROM src.{src} t JOIN tenants k ON k.key = t.{col}"
                ),
                [],
            )?;
            if let Some(tn) = null_tn {
                self.exec(
                    &format!("INSERT OR IGNORE INTO {m} SELECT ?1, t.{rid} FROM src.{src} t WHERE t.{col} IS NULL"),
                    [tn],
                )?;
            }
            self.exec(
                &format!("INSERT OR IGNORE INTO left SELECT ?1, t.{rid}, CASE WHEN t.{col} IS NULL THEN 'null' ELSE 'orphan' END FROM src.{src} t WHERE t.{rid} NOT IN (SELECT rid FROM {m})"),
                [name],
            )?;
            return Ok(());
        }
        let keys = routing_keys(self.plans, t);
        for &k in &keys {
            let fk = &table.foreign_keys[k];
            let Some(parent) = self.mapped_parent(fk) else { continue };
            let prid = parent.rowid_or_err()?;
            self.exec(
                &format!(
                    "INSERT OR IGNORE INTO {m} SELECT pm.tn, t.{rid} FROM src.{src} t JOIN src.{} p ON {} JOIN {} pm ON pm.rid = p.{prid}",
                    q(&parent.name),
                    Self::join_on(fk, "p", "t"),
                    map_table(&parent.name)
                ),
                [],
            )?;
        }
        if place.role == Role::Junction {
            // Two tenants: the row belongs to neither.
            self.exec(
                &format!(
                    "INSERT OR IGNORE INTO left SELECT ?1, rid, 'cross' FROM {m} GROUP BY rid HAVING count(*) > 1"
                ),
                [name],
            )?;
            self.exec(&format!("DELETE FROM {m} WHERE rid IN (SELECT rid FROM left WHERE tbl = ?1)"), [name])?;
            // Every key it holds into tenant data must point at that tenant's rows.
            for &k in &keys {
                let fk = &table.foreign_keys[k];
                let Some(parent) = self.mapped_parent(fk) else { continue };
                let prid = parent.rowid_or_err()?;
                let set: Vec<String> = fk.from.iter().map(|f| format!("t.{} IS NOT NULL", q(f))).collect();
                self.exec(
                    &format!(
                        "DELETE FROM {m} AS m WHERE EXISTS (SELECT 1 FROM src.{src} t WHERE t.{rid} = m.rid AND {} \
                         AND NOT EXISTS (SELECT 1 FROM src.{} p JOIN {} pm ON pm.rid = p.{prid} AND pm.tn = m.tn WHERE {}))",
                        set.join(" AND "),
                        q(&parent.name),
                        map_table(&parent.name),
                        Self::join_on(fk, "p", "t")
                    ),
                    [],
                )?;
            }
        }
        if let (Some(tn), Some(&k)) = (null_tn, keys.first()) {
            let fk = &table.foreign_keys[k];
            if place.role != Role::Junction {
                self.exec(
                    &format!(
                        "INSERT OR IGNORE INTO {m} SELECT ?1, t.{rid} FROM src.{src} t WHERE {}",
                        Self::any_null(fk, "t")
                    ),
                    [tn],
                )?;
            }
        }
        // Why the others got no tenant: judged on the first routing key (a junction's rows
        // left without a tenant that are not crossings are judged on each key in turn).
        for &k in &keys {
            let fk = &table.foreign_keys[k];
            let Some(parent) = self.mapped_parent(fk) else { continue };
            let prid = parent.rowid_or_err()?;
            self.exec(
                &format!(
                    "INSERT OR IGNORE INTO left SELECT ?1, t.{rid}, CASE \
                       WHEN {null} THEN 'null' \
                       WHEN NOT EXISTS (SELECT 1 FROM src.{p} p WHERE {on}) THEN 'orphan' \
                       WHEN EXISTS (SELECT 1 FROM src.{p} p JOIN left l ON l.tbl = ?2 AND l.rid = p.{prid} AND l.why IN ('null', 'chain') WHERE {on}) THEN 'chain' \
                       WHEN EXISTS (SELECT 1 FROM src.{p} p JOIN left l ON l.tbl = ?2 AND l.rid = p.{prid} WHERE {on}) THEN 'bad_parent' \
                       ELSE NULL END AS why \
                     FROM src.{src} t WHERE t.{rid} NOT IN (SELECT rid FROM {m}) AND why IS NOT NULL",
                    null = Self::any_null(fk, "t"),
                    p = q(&parent.name),
                    on = Self::join_on(fk, "p", "t"),
                ),
                params![name, parent.name],
            )?;
        }
        Ok(())
    }

    /// The parent of `fk` when it is a table whose rows are mapped.
    fn mapped_parent(&self, fk: &ForeignKey) -> Option<&Table> {
        let pi = self.schema.index_of(&fk.table)?;
        self.plans.tables.iter().any(|p| p.index == pi && p.mapped).then(|| &self.schema.tables[pi])
    }

    /// Counts rows without a tenant by reason, with sample keys.
    fn account(&self, t: &TablePlan, report: &mut MapReport) -> Result<()> {
        let table = &self.schema.tables[t.index];
        let (m, src) = (map_table(&table.name), q(&table.name));
        let rid = table.rowid_or_err()?;
        self.budget.arm();
        let unmapped: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM src.{src} t WHERE t.{rid} NOT IN (SELECT rid FROM {m})"),
            [],
            |r| r.get(0),
        )?;
        if unmapped == 0 {
            return Ok(());
        }
        let name = table.name.clone();
        if t.role == Role::System {
            report.system_left.insert(name, unmapped as u64);
            return Ok(());
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT why, count(*) FROM left WHERE tbl = ?1 AND rid NOT IN (SELECT rid FROM {m}) GROUP BY why"
        ))?;
        let mut explained = 0i64;
        for row in stmt.query_map([&name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (why, n) = row?;
            explained += n;
            let into = match why.as_str() {
                "null" | "chain" => &mut report.left_behind,
                "orphan" => &mut report.orphans,
                _ => &mut report.cross_tenant,
            };
            *into.entry(name.clone()).or_default() += n as u64;
        }
        if unmapped > explained {
            report.unexplained.insert(name.clone(), (unmapped - explained) as u64);
        }
        let pk = if table.pk.is_empty() {
            format!("t.{rid}")
        } else {
            table.pk.iter().map(|c| format!("t.{}", q(c))).collect::<Vec<_>>().join(" || ',' || ")
        };
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {pk} FROM src.{src} t WHERE t.{rid} NOT IN (SELECT rid FROM {m}) LIMIT 10"))?;
        let keys: Vec<String> = stmt
            .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))?
            .map(|v| v.map(|v| value_text(&v)))
            .collect::<rusqlite::Result<_>>()?;
        report.samples.insert(name, keys);
        Ok(())
    }

    /// Rows whose other keys into tenant data point at another tenant's rows (the key they
    /// were routed by agrees by construction): the tenant's foreign keys would not hold.
    fn cross_references(&self, report: &mut MapReport) -> Result<()> {
        for t in self.plans.tables.iter().filter(|t| t.mapped && t.role != Role::System) {
            let table = &self.schema.tables[t.index];
            let rid = table.rowid_or_err()?;
            let routed = routing_keys(self.plans, t);
            for (k, fk) in table.foreign_keys.iter().enumerate() {
                if routed.contains(&k) {
                    continue;
                }
                let Some(parent) = self.mapped_parent(fk) else { continue };
                // System rows are copied to every tenant that references them.
                if self.schema.index_of(&parent.name).is_some_and(|pi| self.plans.placements[pi].role == Role::System) {
                    continue;
                }
                let prid = parent.rowid_or_err()?;
                self.budget.arm();
                let n: i64 = self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM {cm} cm JOIN src.{c} t ON t.{rid} = cm.rid WHERE NOT ({null}) \
                         AND NOT EXISTS (SELECT 1 FROM src.{p} p JOIN {pm} pm ON pm.rid = p.{prid} AND pm.tn = cm.tn WHERE {on})",
                        cm = map_table(&table.name),
                        c = q(&table.name),
                        null = Self::any_null(fk, "t"),
                        p = q(&parent.name),
                        pm = map_table(&parent.name),
                        on = Self::join_on(fk, "p", "t"),
                    ),
                    [],
                    |r| r.get(0),
                )?;
                if n > 0 {
                    *report.cross_references.entry(format!("{}.{}", table.name, fk.from.join(","))).or_default() +=
                        n as u64;
                }
            }
        }
        Ok(())
    }
}

/// System tables (users, roles) get the rows that a tenant's copied rows reference, and then
/// the rows those reference, until nothing new is found: every foreign key in a tenant holds.
fn close_system_references(conn: &Connection, schema: &Schema, plans: &Plans, budget: &Budget) -> Result<()> {
    let copied = |i: usize| plans.tables.iter().find(|p| p.index == i);
    for _round in 0..50 {
        let mut added = 0;
        for s in plans.tables.iter().filter(|p| p.role == Role::System && p.mapped) {
            let sys = &schema.tables[s.index];
            let srid = sys.rowid_or_err()?;
            for (ci, child) in schema.tables.iter().enumerate() {
                let Some(cp) = copied(ci) else { continue };
                for fk in child.foreign_keys.iter().filter(|f| f.table.eq_ignore_ascii_case(&sys.name)) {
                    let on = Ctx::join_on(fk, "s", "c");
                    budget.arm();
                    let sql = if cp.mapped {
                        let crid = child.rowid_or_err()?;
                        format!(
                            "INSERT OR IGNORE INTO {} SELECT cm.tn, s.{srid} FROM {} cm JOIN src.{} c ON c.{crid} = cm.rid \
                             JOIN src.{} s ON {on}",
                            map_table(&sys.name),
                            map_table(&child.name),
                            q(&child.name),
                            q(&sys.name),
                        )
                    } else {
                        format!(
                            "INSERT OR IGNORE INTO {} SELECT k.tn, s.{srid} FROM tenants k, src.{} c JOIN src.{} s ON {on}",
                            map_table(&sys.name),
                            q(&child.name),
                            q(&sys.name),
                        )
                    };
                    added += conn.execute(&sql, [])?;
                }
            }
        }
        if added == 0 {
            break;
        }
    }
    Ok(())
}

/// A value as text for reports and slugs.
pub fn value_text(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("x'{}'", crate::util::hex(b)),
    }
}

/// Rows per tenant and table, for the plan (`--dry-run`) and the report.
pub fn counts(conn: &Connection, plans: &Plans) -> Result<BTreeMap<i64, BTreeMap<String, u64>>> {
    let mut out: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    for t in plans.tables.iter().filter(|t| t.mapped) {
        let mut stmt = conn.prepare(&format!("SELECT tn, count(*) FROM {} GROUP BY tn", map_table(&t.source)))?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (tn, n) = row?;
            out.entry(tn).or_default().insert(t.target.clone(), n as u64);
        }
    }
    Ok(out)
}
