//! List queries of the data API: query parameters parsed and checked against the table, then
//! one `SELECT` with bound filters, a page and (optionally) the total.

use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::{Map, Value as Json};

use super::{observed, q, row_to_json, text_to_sql, Table};
use crate::error::{Error, Result};
use crate::store::stats::{Shape, StatementStats};

#[derive(Debug)]
pub struct ListQuery {
    pub page: i64,
    pub per_page: i64,
    pub order_by: Option<(String, bool)>,
    pub fields: Option<Vec<String>>,
    pub count: bool,
    pub filters: Vec<(String, String, String)>,
}

pub const MAX_PER_PAGE: i64 = 100;
const RESERVED: [&str; 5] = ["page", "per_page", "order_by", "fields", "count"];
const OPS: [&str; 10] = ["eq", "ne", "gt", "ge", "lt", "le", "like", "in", "isnull", "neq"];

/// Parses and validates query parameters against the table.
pub fn parse_list(table: &Table, params: &[(String, String)]) -> Result<ListQuery> {
    let mut q = ListQuery { page: 1, per_page: 20, order_by: None, fields: None, count: true, filters: Vec::new() };
    let int = |k: &str, v: &str| -> Result<i64> {
        v.parse().map_err(|_| Error::invalid("invalid_parameter", format!("{k} must be a whole number")))
    };
    for (k, v) in params {
        match k.as_str() {
            "page" => {
                q.page = int(k, v)?;
                if q.page < 1 {
                    return Err(Error::invalid("invalid_parameter", "page starts at 1"));
                }
            }
            "per_page" => {
                q.per_page = int(k, v)?;
                if q.per_page < 1 {
                    return Err(Error::invalid("invalid_parameter", "per_page must be at least 1"));
                }
                q.per_page = q.per_page.min(MAX_PER_PAGE);
            }
            "order_by" => {
                let (name, desc) = match v.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (v.as_str(), false),
                };
                table.column(name).ok_or_else(|| table.unknown_column(name))?;
                q.order_by = Some((name.to_string(), desc));
            }
            "fields" => {
                let list: Vec<String> = v.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
                for f in &list {
                    table.column(f).ok_or_else(|| table.unknown_column(f))?;
                }
                if list.is_empty() {
                    return Err(Error::invalid("invalid_parameter", "fields needs at least one column"));
                }
                q.fields = Some(list);
            }
            "count" => {
                q.count = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Error::invalid("invalid_parameter", "count is true or false")),
                }
            }
            _ => {
                let (col, op) = match k.split_once("__") {
                    Some((c, o)) => (c, o),
                    None => (k.as_str(), "eq"),
                };
                table.column(col).ok_or_else(|| table.unknown_column(col))?;
                if !OPS.contains(&op) {
                    return Err(Error::invalid(
                        "unknown_operator",
                        format!(
                            "unknown operator {:?}: use eq ne gt ge lt le like in isnull",
                            crate::ids::truncate_for_message(op)
                        ),
                    ));
                }
                q.filters.push((col.to_string(), op.to_string(), v.clone()));
            }
        }
    }
    debug_assert!(RESERVED.iter().all(|r| !r.is_empty()));
    Ok(q)
}

fn where_clause(table: &Table, q: &ListQuery) -> Result<(String, Vec<Value>)> {
    let mut parts = Vec::new();
    let mut args = Vec::new();
    for (col, op, raw) in &q.filters {
        let c = table.column(col).ok_or_else(|| table.unknown_column(col))?;
        let qc = q_col(col);
        match op.as_str() {
            "isnull" => match raw.as_str() {
                "true" | "1" => parts.push(format!("{qc} IS NULL")),
                "false" | "0" => parts.push(format!("{qc} IS NOT NULL")),
                _ => return Err(Error::invalid("invalid_filter", format!("{col}__isnull takes true or false"))),
            },
            "in" => {
                let vals: Vec<&str> = raw.split(',').collect();
                if vals.len() > 100 {
                    return Err(Error::invalid("invalid_filter", format!("{col}__in takes at most 100 values")));
                }
                let marks = vec!["?"; vals.len()].join(", ");
                parts.push(format!("{qc} IN ({marks})"));
                for v in vals {
                    args.push(text_to_sql(c, v)?);
                }
            }
            "like" => {
                parts.push(format!("{qc} LIKE ? ESCAPE '\\'"));
                args.push(Value::Text(raw.clone()));
            }
            other => {
                let sym = match other {
                    "eq" => "=",
                    "ne" | "neq" => "<>",
                    "gt" => ">",
                    "ge" => ">=",
                    "lt" => "<",
                    _ => "<=",
                };
                parts.push(format!("{qc} {sym} ?"));
                args.push(text_to_sql(c, raw)?);
            }
        }
    }
    let sql = if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) };
    Ok((sql, args))
}

fn q_col(c: &str) -> String {
    q(c)
}

pub struct Page {
    pub items: Vec<Map<String, Json>>,
    pub total: Option<i64>,
}

impl ListQuery {
    /// The query in a canonical form: same text = same SQL, same bound values, same page and
    /// same columns (filters sorted, defaults spelled out). The query result cache keys on it.
    pub fn normalized(&self, table: &Table) -> String {
        let fields: Vec<&str> = match &self.fields {
            Some(f) => f.iter().map(String::as_str).collect(),
            None => table.columns.iter().map(|c| c.name.as_str()).collect(),
        };
        let mut filters: Vec<&(String, String, String)> = self.filters.iter().collect();
        filters.sort();
        // JSON keeps every part unambiguous whatever characters the values hold.
        serde_json::json!([self.page, self.per_page, self.order_by, fields, self.count, filters]).to_string()
    }

    /// What the advisor needs: which columns this query filters and sorts on.
    pub fn shape(&self, table: &Table) -> Option<Shape> {
        let mut shape = Shape { table: table.name.clone(), ..Default::default() };
        for (col, op, _) in &self.filters {
            let list = match op.as_str() {
                "eq" | "in" | "isnull" => &mut shape.equality,
                "gt" | "ge" | "lt" | "le" => &mut shape.range,
                _ => continue,
            };
            if !list.contains(col) {
                list.push(col.clone());
            }
        }
        shape.order_by = self.order_by.as_ref().map(|(c, _)| c.clone()).filter(|c| *c != table.pk);
        (!shape.equality.is_empty() || !shape.range.is_empty() || shape.order_by.is_some()).then_some(shape)
    }
}

/// Runs a list query inside one read transaction (items and total agree).
pub fn list(conn: &Connection, table: &Table, lq: &ListQuery, stats: &StatementStats) -> Result<Page> {
    let fields: Vec<String> = match &lq.fields {
        Some(f) => f.clone(),
        None => table.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let select = fields.iter().map(|f| q(f)).collect::<Vec<_>>().join(", ");
    let (wsql, args) = where_clause(table, lq)?;
    let order = match &lq.order_by {
        Some((c, desc)) => format!(" ORDER BY {} {}, {}", q(c), if *desc { "DESC" } else { "ASC" }, q(&table.pk)),
        None => format!(" ORDER BY {}", q(&table.pk)),
    };
    let tx = conn.unchecked_transaction()?;
    let sql = format!("SELECT {select} FROM {}{wsql}{order} LIMIT ? OFFSET ?", q(&table.name));
    let mut all_args: Vec<Value> = args.clone();
    all_args.push(Value::Integer(lq.per_page));
    all_args.push(Value::Integer((lq.page - 1).saturating_mul(lq.per_page)));
    let items = observed(
        stats,
        &tx,
        &sql,
        || all_args.clone(),
        || lq.shape(table),
        || {
            let items = tx
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(all_args.iter()), |r| row_to_json(r, &fields))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = items.len() as u64;
            Ok((items, n))
        },
    )?;
    let total = if lq.count {
        let sql = format!("SELECT count(*) FROM {}{wsql}", q(&table.name));
        let run = || {
            let n: i64 = tx.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            Ok((n, 1))
        };
        Some(observed(
            stats,
            &tx,
            &sql,
            || args.clone(),
            || lq.shape(table).map(|s| Shape { order_by: None, ..s }),
            run,
        )?)
    } else {
        None
    };
    tx.commit()?;
    Ok(Page { items, total })
}
