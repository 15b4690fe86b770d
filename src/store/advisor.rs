//! Index advisor: for each tracked list statement whose plan scans its table, proposes an
//! index on the columns it filters (equality first, then one range column) or sorts on.
//!
//! Proposals are named `idx_advised_<table>_<cols>`; `db::schema_fingerprint` leaves indexes
//! with that prefix out, so a tenant that applied advice is not reported as drifted by
//! `schema status`, and the fleet can adopt the same statements through a migration file
//! (`tenantd schema advise --write`) that converges with tenants that applied them already
//! (`CREATE INDEX IF NOT EXISTS`).

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::query::{q, SchemaInfo};
use super::stats::{explain, Shape, StatementStat};
use crate::error::Result;

/// Name prefix of advised indexes (excluded from schema fingerprints).
pub const PREFIX: &str = "idx_advised_";
/// An index on more columns rarely pays for its writes.
const MAX_COLUMNS: usize = 4;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Advice {
    pub index: String,
    pub table: String,
    pub columns: Vec<String>,
    pub sql: String,
    /// The statements that would use it, with their calls and total time.
    pub statements: Vec<String>,
    pub calls: u64,
    pub total_ms: f64,
    /// The plan of the costliest of those statements today.
    pub plan: Vec<String>,
}

/// The columns an index for `shape` should have, in order: equality columns, then either one
/// range column or the sort column (an index serves one of them after the equalities).
pub fn columns_for(shape: &Shape) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    let mut push = |c: &String| {
        if !cols.contains(c) && cols.len() < MAX_COLUMNS {
            cols.push(c.clone());
        }
    };
    shape.equality.iter().for_each(&mut push);
    match (shape.range.first(), &shape.order_by) {
        (Some(r), _) => push(r),
        (None, Some(o)) => push(o),
        (None, None) => {}
    }
    cols
}

/// `idx_advised_<table>_<cols>`; characters outside `[A-Za-z0-9_]` become `_` and then a short
/// hash keeps distinct column lists apart.
pub fn index_name(table: &str, cols: &[String]) -> String {
    let raw = format!("{table}_{}", cols.join("_"));
    let clean: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if clean == raw && clean.len() <= 48 {
        format!("{PREFIX}{clean}")
    } else {
        let h = crate::util::sha256_hex(format!("{table}\0{}", cols.join("\0")).as_bytes());
        let keep: String = clean.chars().take(40).collect();
        format!("{PREFIX}{keep}_{}", &h[..8])
    }
}

pub fn create_sql(index: &str, table: &str, cols: &[String]) -> String {
    let list = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
    format!("CREATE INDEX IF NOT EXISTS {} ON {} ({list})", q(index), q(table))
}

/// Whether a plan reads every row of `table`: a bare `SCAN <table>` (a `SCAN … USING INDEX`
/// walks an index in order, which is what an index for a sort is for).
pub fn scans(plan: &[String], table: &str) -> bool {
    plan.iter().any(|l| {
        let l = l.trim();
        l == format!("SCAN {table}") || l == format!("SCAN {}", q(table))
    })
}

/// Proposals for the tracked statements on `conn`'s current schema, costliest first.
pub fn advise(conn: &Connection, schema: &SchemaInfo, statements: &[StatementStat]) -> Result<Vec<Advice>> {
    let mut by_index: BTreeMap<String, Advice> = BTreeMap::new();
    for st in statements {
        let Some(shape) = &st.shape else { continue };
        let Ok(table) = schema.table(&shape.table) else { continue };
        let cols = columns_for(shape);
        if cols.is_empty() || cols.iter().any(|c| table.column(c).is_none()) || cols == [table.pk.clone()] {
            continue;
        }
        let plan = match explain(conn, &st.sql, &[]) {
            Ok(p) => p,
            Err(_) => continue, // the statement no longer compiles (schema changed): nothing to advise
        };
        if !scans(&plan, &table.name) {
            continue;
        }
        let index = index_name(&table.name, &cols);
        let a = by_index.entry(index.clone()).or_insert_with(|| Advice {
            sql: create_sql(&index, &table.name, &cols),
            index,
            table: table.name.clone(),
            columns: cols.clone(),
            statements: Vec::new(),
            calls: 0,
            total_ms: 0.0,
            plan: plan.clone(),
        });
        a.statements.push(st.sql.clone());
        a.calls += st.calls;
        a.total_ms += st.total_ms;
    }
    let mut out: Vec<Advice> = by_index.into_values().collect();
    out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then_with(|| a.index.cmp(&b.index)));
    Ok(out)
}

// --- the fleet ---------------------------------------------------------------------------------

/// An advised index present in some tenants' files.
#[derive(Clone, Debug, Serialize)]
pub struct FleetIndex {
    pub index: String,
    pub table: String,
    pub columns: Vec<String>,
    pub sql: String,
    /// Slugs of the tenants that have it.
    pub tenants: Vec<String>,
}

/// The advised indexes tenant admins applied across the fleet, most widely adopted first.
/// Each is rebuilt from its table and plain columns (`pragma_index_info`) and kept only when
/// its name is exactly the one the advisor gives those columns, so a hand-made or imported
/// index (expressions, partial, `UNIQUE`, another name) never reaches a fleet migration.
pub fn fleet_applied(catalog: &crate::catalog::Catalog, paths: &super::Paths) -> Result<Vec<FleetIndex>> {
    let list = crate::catalog::tenants::list(&*catalog.conn()?, false)?;
    let per_tenant = crate::util::par_map(&list, 4, &|_| {}, |t| -> Result<Vec<(String, String, Vec<String>)>> {
        let conn = crate::db::open_read_only(&paths.tenant_db(&t.id))?;
        advised_in(&conn)
    });
    let mut by_name: BTreeMap<String, FleetIndex> = BTreeMap::new();
    for (t, found) in list.iter().zip(per_tenant) {
        // A missing or unreadable tenant file is reported by `schema status`; it has no advice.
        let Ok(found) = found else { continue };
        for (index, table, columns) in found {
            let e = by_name.entry(index.clone()).or_insert_with(|| FleetIndex {
                sql: create_sql(&index, &table, &columns),
                index,
                table,
                columns,
                tenants: Vec::new(),
            });
            e.tenants.push(t.slug.to_string());
        }
    }
    let mut out: Vec<FleetIndex> = by_name.into_values().collect();
    out.sort_by(|a, b| b.tenants.len().cmp(&a.tenants.len()).then_with(|| a.index.cmp(&b.index)));
    Ok(out)
}

/// (index, table, columns) of the well-formed advised indexes in one tenant file.
fn advised_in(conn: &Connection) -> Result<Vec<(String, String, Vec<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT m.name, m.tbl_name FROM sqlite_master m JOIN pragma_index_list(m.tbl_name) l ON l.name = m.name \
         WHERE m.type = 'index' AND m.name LIKE 'idx\\_advised\\_%' ESCAPE '\\' AND l.\"unique\" = 0 AND l.partial = 0",
    )?;
    let found: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (index, table) in found {
        let cols: Vec<Option<String>> = conn
            .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
            .query_map([&index], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // Expression columns have no name.
        let Some(cols) = cols.into_iter().collect::<Option<Vec<String>>>() else { continue };
        if !cols.is_empty() && index_name(&table, &cols) == index {
            out.push((index, table, cols));
        }
    }
    Ok(out)
}

/// Writes the next numbered migration (`NNNN_advised_indexes.sql`) into `dir` with one
/// `CREATE INDEX IF NOT EXISTS` per index; `tenantd schema migrate` then rolls it out with its
/// canaries, snapshots and ledger. Tenants that have an index already skip it.
pub fn write_migration(dir: &std::path::Path, target: i64, indexes: &[FleetIndex]) -> Result<std::path::PathBuf> {
    let mut text = String::from(
        "-- Index advice adopted for the whole fleet (written by `tenantd schema advise --write`).\n\
         -- Advised indexes (idx_advised_*) are left out of schema fingerprints, so tenants that\n\
         -- applied one already are not drift; IF NOT EXISTS makes this a no-op for them.\n",
    );
    for i in indexes {
        text.push_str(&format!("-- adopted by {} tenant(s)\n{};\n", i.tenants.len(), i.sql));
    }
    let path = dir.join(format!("{:04}_advised_indexes.sql", target + 1));
    if path.exists() {
        return Err(crate::error::Error::conflict("migration_exists", format!("{} already exists", path.display())));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(eq: &[&str], range: &[&str], order: Option<&str>) -> Shape {
        Shape {
            table: "t".into(),
            equality: eq.iter().map(|s| s.to_string()).collect(),
            range: range.iter().map(|s| s.to_string()).collect(),
            order_by: order.map(str::to_string),
        }
    }

    #[test]
    fn equality_then_range_or_order() {
        assert_eq!(columns_for(&shape(&["a", "b"], &["c", "d"], Some("e"))), ["a", "b", "c"]);
        assert_eq!(columns_for(&shape(&["a"], &[], Some("e"))), ["a", "e"]);
        assert_eq!(columns_for(&shape(&[], &[], Some("e"))), ["e"]);
        assert_eq!(columns_for(&shape(&["a", "b", "c", "d", "f"], &[], None)).len(), MAX_COLUMNS);
    }

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(index_name("customers", &["status".into()]), "idx_advised_customers_status");
        let odd = index_name("t", &["we\"ird col".into()]);
        assert!(odd.starts_with("idx_advised_t_we_ird_col_"), "{odd}");
        assert_ne!(odd, index_name("t", &["we ird\"col".into()]));
        assert_eq!(
            create_sql("i", "t", &["a\"b".into()]),
            "CREATE INDEX IF NOT EXISTS \"i\" ON \"t\" (\"a\"\"b\")",
            "identifiers are quoted, quotes doubled"
        );
    }

    #[test]
    fn advice_disappears_once_applied() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, n INTEGER)").unwrap();
        let schema = super::super::query::introspect(&conn).unwrap();
        let st = StatementStat {
            sql: "SELECT \"id\" FROM \"t\" WHERE \"status\" = ? ORDER BY \"id\" LIMIT ? OFFSET ?".into(),
            calls: 3,
            total_ms: 1.5,
            mean_ms: 0.5,
            max_ms: 1.0,
            rows: 0,
            shape: Some(shape(&["status"], &[], None)),
        };
        let advice = advise(&conn, &schema, std::slice::from_ref(&st)).unwrap();
        assert_eq!(advice.len(), 1);
        assert_eq!(advice[0].columns, ["status"]);
        assert!(scans(&advice[0].plan, "t"), "{:?}", advice[0].plan);
        conn.execute_batch(&advice[0].sql).unwrap();
        assert!(advise(&conn, &schema, &[st]).unwrap().is_empty());
    }

    #[test]
    fn only_well_formed_advised_indexes_reach_the_fleet() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT);
             CREATE INDEX IF NOT EXISTS \"idx_advised_t_a_b\" ON \"t\" (\"a\", \"b\");
             CREATE INDEX idx_advised_t_b ON t(lower(b));
             CREATE INDEX idx_advised_t_x ON t(a);
             CREATE UNIQUE INDEX idx_advised_t_a ON t(a);
             CREATE INDEX other ON t(b);",
        )
        .unwrap();
        let found = advised_in(&conn).unwrap();
        assert_eq!(found, [("idx_advised_t_a_b".to_string(), "t".to_string(), vec!["a".to_string(), "b".to_string()])]);
        let dir = tempfile::tempdir().unwrap();
        let idx = FleetIndex {
            index: "idx_advised_t_a_b".into(),
            table: "t".into(),
            columns: vec!["a".into(), "b".into()],
            sql: create_sql("idx_advised_t_a_b", "t", &["a".into(), "b".into()]),
            tenants: vec!["acme".into()],
        };
        let path = write_migration(dir.path(), 2, std::slice::from_ref(&idx)).unwrap();
        assert!(path.ends_with("0003_advised_indexes.sql"));
        conn.execute_batch(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(write_migration(dir.path(), 2, &[idx]).is_err(), "never overwrites");
    }
}
