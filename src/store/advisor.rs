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
}
