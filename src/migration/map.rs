//! The tenant map of a split run: for every table whose rows belong to tenants, which tenant
//! each row (by rowid) goes to. Built with SQL in a scratch database beside the source
//! snapshot (`map.db`, attached as `main`; the snapshot as `src`), table by table in order of
//! distance from the root, so a row's tenant is its parent's. The map stays on disk, so a
//! split of millions of rows never holds them in memory, and `validate` reuses it.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::Serialize;

use super::inspect::{q, Schema};
use super::plan::Plans;
use super::roles::Role;
use super::source::Budget;
use crate::error::Result;

pub fn map_table(index: usize) -> String {
    format!("map_{index}")
}

/// What mapping found beyond the map itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MapReport {
    /// Rows of tenant tables that reach no tenant (a NULL or dangling key on the way).
    pub left_behind: BTreeMap<String, u64>,
    /// Rows that reach two tenants at once (a junction row joining two tenants' rows).
    pub cross_tenant: BTreeMap<String, u64>,
    /// Up to 10 primary keys per table of rows left behind or crossing tenants.
    pub samples: BTreeMap<String, Vec<String>>,
    /// System tables: rows no tenant references stay behind by rule.
    pub system_left: BTreeMap<String, u64>,
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
         CREATE TABLE IF NOT EXISTS cross_tenant (tbl TEXT, rid INTEGER, PRIMARY KEY (tbl, rid)) WITHOUT ROWID;",
    )?;
    for t in &plans.tables {
        if t.mapped {
            let m = map_table(t.index);
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {m} (tn INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (tn, rid)) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS {m}_rid ON {m}(rid, tn);"
            ))?;
        }
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
    let mut report = MapReport::default();
    let mut order: Vec<&super::plan::TablePlan> = plans.tables.iter().filter(|t| t.mapped).collect();
    order.sort_by_key(|t| plans.placements[t.index].depth);
    for t in order.iter().filter(|t| t.role != Role::System) {
        let place = &plans.placements[t.index];
        let table = &schema.tables[t.index];
        let m = map_table(t.index);
        let src = q(&table.name);
        budget.arm();
        if place.role == Role::Root || place.direct {
            let col = split.direct_column.as_deref().unwrap_or(&split.key);
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO {m} SELECT k.tn, t.rowid FROM src.{src} t JOIN tenants k ON k.key = t.{}",
                    q(col)
                ),
                [],
            )?;
        } else {
            let fks: Vec<usize> = match place.role {
                Role::Junction => place.via.clone(),
                _ => place.path.first().map(|s| vec![s.fk]).unwrap_or_default(),
            };
            for k in fks {
                let fk = &table.foreign_keys[k];
                let Some(pi) = schema.index_of(&fk.table) else { continue };
                if !plans.tables.iter().any(|p| p.index == pi && p.mapped) {
                    continue;
                }
                let on: Vec<String> =
                    fk.from.iter().zip(&fk.to).map(|(f, to)| format!("p.{} = t.{}", q(to), q(f))).collect();
                conn.execute(
                    &format!(
                        "INSERT OR IGNORE INTO {m} SELECT pm.tn, t.rowid FROM src.{src} t JOIN src.{} p ON {} \
                         JOIN {} pm ON pm.rid = p.rowid",
                        q(&schema.tables[pi].name),
                        on.join(" AND "),
                        map_table(pi)
                    ),
                    [],
                )?;
            }
            // A row reaching two tenants belongs to neither.
            let crossing = conn.execute(
                &format!("INSERT OR IGNORE INTO cross_tenant SELECT ?1, rid FROM {m} GROUP BY rid HAVING count(*) > 1"),
                [&table.name],
            )?;
            if crossing > 0 {
                conn.execute(
                    &format!("DELETE FROM {m} WHERE rid IN (SELECT rid FROM cross_tenant WHERE tbl = ?1)"),
                    [&table.name],
                )?;
                report.cross_tenant.insert(table.name.clone(), crossing as u64);
            }
            // A junction row goes to its tenant only if every key it holds into tenant data
            // points at that tenant's rows (a link to a row left behind stays behind too).
            if place.role == Role::Junction {
                for &k in &place.via {
                    let fk = &table.foreign_keys[k];
                    let Some(pi) = schema.index_of(&fk.table) else { continue };
                    let on: Vec<String> =
                        fk.from.iter().zip(&fk.to).map(|(f, to)| format!("p.{} = t.{}", q(to), q(f))).collect();
                    let set: Vec<String> = fk.from.iter().map(|f| format!("t.{} IS NOT NULL", q(f))).collect();
                    conn.execute(
                        &format!(
                            "DELETE FROM {m} AS m WHERE EXISTS (SELECT 1 FROM src.{src} t WHERE t.rowid = m.rid AND {} \
                             AND NOT EXISTS (SELECT 1 FROM src.{} p JOIN {} pm ON pm.rid = p.rowid AND pm.tn = m.tn WHERE {}))",
                            set.join(" AND "),
                            q(&schema.tables[pi].name),
                            map_table(pi),
                            on.join(" AND ")
                        ),
                        [],
                    )?;
                }
            }
        }
        if let Some(tn) = null_tn {
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO {m} SELECT ?1, t.rowid FROM src.{src} t WHERE t.rowid NOT IN (SELECT rid FROM {m}) \
                     AND t.rowid NOT IN (SELECT rid FROM cross_tenant WHERE tbl = ?2)"
                ),
                params![tn, table.name],
            )?;
        }
    }
    close_system_references(conn, schema, plans, budget)?;
    // What stayed behind, with sample keys for the report.
    for t in plans.tables.iter().filter(|t| t.mapped) {
        let table = &schema.tables[t.index];
        let m = map_table(t.index);
        budget.arm();
        let left: i64 = conn.query_row(
            &format!("SELECT count(*) FROM src.{} t WHERE t.rowid NOT IN (SELECT rid FROM {m})", q(&table.name)),
            [],
            |r| r.get(0),
        )?;
        if left == 0 {
            continue;
        }
        if t.role == Role::System {
            report.system_left.insert(table.name.clone(), left as u64);
            continue;
        }
        let crossing = report.cross_tenant.get(&table.name).copied().unwrap_or(0);
        if left as u64 > crossing {
            report.left_behind.insert(table.name.clone(), left as u64 - crossing);
        }
        let pk = if table.pk.is_empty() {
            "t.rowid".to_string()
        } else {
            table.pk.iter().map(|c| format!("t.{}", q(c))).collect::<Vec<_>>().join(" || ',' || ")
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT {pk} FROM src.{} t WHERE t.rowid NOT IN (SELECT rid FROM {m}) LIMIT 10",
            q(&table.name)
        ))?;
        let keys: Vec<String> = stmt
            .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))?
            .map(|v| v.map(|v| value_text(&v)))
            .collect::<rusqlite::Result<_>>()?;
        report.samples.insert(table.name.clone(), keys);
    }
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

/// System tables (users, roles) get the rows that a tenant's copied rows reference, and then
/// the rows those reference, until nothing new is found: every foreign key in a tenant holds.
fn close_system_references(conn: &Connection, schema: &Schema, plans: &Plans, budget: &Budget) -> Result<()> {
    let copied = |i: usize| plans.tables.iter().find(|p| p.index == i);
    for _round in 0..50 {
        let mut added = 0;
        for s in plans.tables.iter().filter(|p| p.role == Role::System && p.mapped) {
            let sys = &schema.tables[s.index];
            for (ci, child) in schema.tables.iter().enumerate() {
                let Some(cp) = copied(ci) else { continue };
                for fk in child.foreign_keys.iter().filter(|f| f.table.eq_ignore_ascii_case(&sys.name)) {
                    let on: Vec<String> =
                        fk.from.iter().zip(&fk.to).map(|(f, to)| format!("s.{} = c.{}", q(to), q(f))).collect();
                    budget.arm();
                    let sql = if cp.mapped {
                        format!(
                            "INSERT OR IGNORE INTO {} SELECT cm.tn, s.rowid FROM {} cm JOIN src.{} c ON c.rowid = cm.rid \
                             JOIN src.{} s ON {}",
                            map_table(s.index),
                            map_table(ci),
                            q(&child.name),
                            q(&sys.name),
                            on.join(" AND ")
                        )
                    } else {
                        format!(
                            "INSERT OR IGNORE INTO {} SELECT k.tn, s.rowid FROM tenants k, src.{} c JOIN src.{} s ON {}",
                            map_table(s.index),
                            q(&child.name),
                            q(&sys.name),
                            on.join(" AND ")
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
        let mut stmt = conn.prepare(&format!("SELECT tn, count(*) FROM {} GROUP BY tn", map_table(t.index)))?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (tn, n) = row?;
            out.entry(tn).or_default().insert(t.target.clone(), n as u64);
        }
    }
    Ok(out)
}
