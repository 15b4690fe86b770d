//! The tenant data API's SQL: schema introspection and a safe query builder. Identifiers in SQL
//! come only from introspection (quoted); every value is a bound parameter.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use serde_json::{Map, Value as Json};

use super::stats::{Shape, StatementStats};
use crate::error::{Error, Result};

mod list;
pub use list::{list, parse_list, ListQuery, Page, MAX_PER_PAGE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Real,
    Text,
    Numeric,
    Blob,
}

impl Affinity {
    /// SQLite's affinity rules (sqlite.org/datatype3.html §3.1).
    pub fn of(decl: &str) -> Affinity {
        let d = decl.to_ascii_uppercase();
        if d.contains("INT") {
            Affinity::Integer
        } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
            Affinity::Text
        } else if d.contains("BLOB") || d.is_empty() {
            Affinity::Blob
        } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    pub fn json_type(self) -> &'static str {
        match self {
            Affinity::Integer => "integer",
            Affinity::Real | Affinity::Numeric => "number",
            Affinity::Text | Affinity::Blob => "string",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub affinity: Affinity,
    pub not_null: bool,
    pub has_default: bool,
    pub primary_key: bool,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The single-column INTEGER PRIMARY KEY (rowid alias) used as `{id}` in the API.
    pub pk: String,
    /// Column names in order, and `SELECT <all columns> FROM <table> WHERE <pk> = ?1`: built
    /// once per schema, not on every point read.
    pub names: Vec<String>,
    pub get_sql: String,
    /// Column positions in key order with their encoded `"name":`, so a point read writes its
    /// object straight to bytes, in the same order a `Map` would serialize it.
    json_keys: Vec<(usize, Vec<u8>)>,
}

impl Table {
    pub fn new(name: String, columns: Vec<Column>, pk: String) -> Table {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let select = names.iter().map(|f| q(f)).collect::<Vec<_>>().join(", ");
        let get_sql = format!("SELECT {select} FROM {} WHERE {} = ?1", q(&name), q(&pk));
        let mut json_keys: Vec<(usize, Vec<u8>)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut key = serde_json::to_vec(n).unwrap_or_default();
                key.push(b':');
                (i, key)
            })
            .collect();
        json_keys.sort_by(|a, b| names[a.0].cmp(&names[b.0]));
        Table { name, columns, pk, names, get_sql, json_keys }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn unknown_column(&self, name: &str) -> Error {
        Error::invalid(
            "unknown_column",
            format!("unknown column {:?} in table {}", crate::ids::truncate_for_message(name), self.name),
        )
    }
}

/// The tables a tenant exposes, from `sqlite_master` and `pragma_table_info`.
#[derive(Clone, Debug, Default)]
pub struct SchemaInfo {
    /// Shared between tenants whose schema text is identical (see `TenantStore`).
    pub tables: Arc<BTreeMap<String, Table>>,
    /// `PRAGMA schema_version` when read: a DDL change makes it stale.
    pub cookie: i64,
}

impl SchemaInfo {
    pub fn table(&self, name: &str) -> Result<&Table> {
        self.tables.get(name).ok_or_else(|| {
            Error::invalid(
                "unknown_table",
                format!(
                    "unknown table {:?}: this tenant has {}",
                    crate::ids::truncate_for_message(name),
                    self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

/// Reads the schema. Tables without a single INTEGER PRIMARY KEY, SQLite's own and tenantd's
/// internal (`_tenantd_*`) tables are not exposed.
pub use super::introspect::{introspect, schema_digest, SchemaDigest};

/// Quotes an identifier that came from introspection.
pub fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

// --- values ----------------------------------------------------------------------------------

/// A JSON value for a column, checked against its affinity.
pub fn json_to_sql(col: &Column, v: &Json) -> Result<Value> {
    let type_error = |want: &str| Error::invalid("type_error", format!("column {} expects {want}", col.name));
    Ok(match (v, col.affinity) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), Affinity::Integer | Affinity::Numeric) => Value::Integer(i64::from(*b)),
        (Json::Number(n), Affinity::Integer) => Value::Integer(n.as_i64().ok_or_else(|| type_error("an integer"))?),
        (Json::Number(n), Affinity::Real | Affinity::Numeric) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().ok_or_else(|| type_error("a number"))?),
        },
        (Json::String(s), Affinity::Text | Affinity::Blob | Affinity::Numeric) => Value::Text(s.clone()),
        (_, Affinity::Integer) => return Err(type_error("an integer")),
        (_, Affinity::Real) => return Err(type_error("a number")),
        _ => return Err(type_error("a string")),
    })
}

/// A query-string value for a column.
fn text_to_sql(col: &Column, s: &str) -> Result<Value> {
    let bad = |want: &str| {
        Error::invalid(
            "invalid_filter",
            format!("filter on {} expects {want}, got {:?}", col.name, crate::ids::truncate_for_message(s)),
        )
    };
    Ok(match col.affinity {
        Affinity::Integer => Value::Integer(s.trim().parse().map_err(|_| bad("an integer"))?),
        Affinity::Real => Value::Real(s.trim().parse().map_err(|_| bad("a number"))?),
        _ => Value::Text(s.to_string()),
    })
}

fn row_to_json(row: &rusqlite::Row<'_>, names: &[String]) -> rusqlite::Result<Map<String, Json>> {
    let mut obj = Map::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let v = match row.get_ref(i)? {
            ValueRef::Null => Json::Null,
            ValueRef::Integer(x) => Json::from(x),
            ValueRef::Real(x) => Json::from(x),
            ValueRef::Text(t) => Json::from(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Json::from(crate::util::hex(b)),
        };
        obj.insert(n.clone(), v);
    }
    Ok(obj)
}

/// One row as a JSON object written straight to `out`: the bytes `row_to_json` and
/// `serde_json::to_vec` would give, without building a `Map` of owned strings first.
fn write_row_json(row: &rusqlite::Row<'_>, keys: &[(usize, Vec<u8>)], out: &mut Vec<u8>) -> Result<()> {
    out.push(b'{');
    for (n, (i, key)) in keys.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        let written = match row.get_ref(*i)? {
            ValueRef::Null => serde_json::to_writer(&mut *out, &()),
            ValueRef::Integer(x) => serde_json::to_writer(&mut *out, &x),
            ValueRef::Real(x) => serde_json::to_writer(&mut *out, &Json::from(x)),
            ValueRef::Text(t) => serde_json::to_writer(&mut *out, &*String::from_utf8_lossy(t)),
            ValueRef::Blob(b) => serde_json::to_writer(&mut *out, &crate::util::hex(b)),
        };
        written.map_err(|e| Error::Internal(format!("encoding column {i}: {e}")))?;
    }
    out.push(b'}');
    Ok(())
}

/// What a CHECK failure message names: the constraint's name, or its expression as written
/// (SQLite says `CHECK constraint failed: <name or expression>`).
pub fn failed_check(message: &str) -> &str {
    message.strip_prefix("CHECK constraint failed: ").unwrap_or(message).trim()
}

/// Which of `columns` a CHECK failure message mentions: a guess at what the CHECK is about, as
/// the message gives only its name or text.
pub fn failed_check_columns<'a>(message: &str, columns: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let what = failed_check(message);
    columns.into_iter().filter(|c| what.contains(c)).collect()
}

/// SQLite constraint errors to API errors naming the column (sqlite.org/rescode.html).
pub fn map_constraint(table: &Table, e: rusqlite::Error) -> Error {
    let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e else {
        return e.into();
    };
    let col_after_dot = |m: &str| m.rsplit('.').next().unwrap_or_default().trim().to_string();
    match f.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => {
            let c = col_after_dot(msg);
            Error::invalid("not_null", format!("column {c} is required (NOT NULL)"))
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => Error::invalid(
            "check_failed",
            format!(
                "value rejected by a CHECK on column {}: {}",
                failed_check_columns(msg, table.columns.iter().map(|c| c.name.as_str())).first().unwrap_or(&""),
                failed_check(msg)
            ),
        ),
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            let cols: Vec<String> =
                msg.trim_start_matches("UNIQUE constraint failed: ").split(", ").map(col_after_dot).collect();
            Error::conflict("unique_violation", format!("a record with this {} already exists", cols.join(", ")))
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            Error::invalid("foreign_key", "a referenced record does not exist (or is still referenced)")
        }
        rusqlite::ffi::SQLITE_MISMATCH => Error::invalid("type_error", "value has the wrong type for its column"),
        _ => e.into(),
    }
}

/// Runs `run` (which returns its result and the rows it read or changed) and reports it to
/// `stats`: time, rows, and the plan when it was slow.
fn observed<T>(
    stats: &StatementStats,
    conn: &Connection,
    sql: &str,
    args: impl FnOnce() -> Vec<Value>,
    shape: impl FnOnce() -> Option<Shape>,
    run: impl FnOnce() -> Result<(T, u64)>,
) -> Result<T> {
    if !stats.enabled() {
        return run().map(|(out, _)| out);
    }
    let start = std::time::Instant::now();
    let (out, rows) = run()?;
    stats.record(sql, start.elapsed(), rows, shape, conn, args);
    Ok(out)
}

pub fn get(conn: &Connection, table: &Table, id: i64, stats: &StatementStats) -> Result<Map<String, Json>> {
    read_one(conn, table, id, stats, |r| Ok(row_to_json(r, &table.names)?))
}

/// A point read as the JSON object's bytes (the data API's `GET .../{table}/{id}`).
pub fn get_json(conn: &Connection, table: &Table, id: i64, stats: &StatementStats) -> Result<Vec<u8>> {
    read_one(conn, table, id, stats, |r| {
        let mut out = Vec::with_capacity(256);
        write_row_json(r, &table.json_keys, &mut out)?;
        Ok(out)
    })
}

fn read_one<T>(
    conn: &Connection,
    table: &Table,
    id: i64,
    stats: &StatementStats,
    convert: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<T> {
    let sql = &table.get_sql;
    let found = observed(
        stats,
        conn,
        sql,
        || vec![Value::Integer(id)],
        || None,
        || {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query([id])?;
            let found = match rows.next()? {
                Some(r) => Some(convert(r)?),
                None => None,
            };
            let n = u64::from(found.is_some());
            Ok((found, n))
        },
    )?;
    found.ok_or_else(|| Error::NotFound(format!("{} record {id}", table.name)))
}

/// Body of a create or update: an object of known columns (the primary key is not settable).
pub fn body_values(table: &Table, body: &Json) -> Result<Vec<(String, Value)>> {
    let obj = body.as_object().ok_or_else(|| Error::invalid("invalid_body", "send a JSON object of column values"))?;
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let col = table.column(k).ok_or_else(|| table.unknown_column(k))?;
        if col.name == table.pk {
            return Err(Error::invalid("read_only_column", format!("column {} is assigned by the server", table.pk)));
        }
        out.push((col.name.clone(), json_to_sql(col, v)?));
    }
    Ok(out)
}

/// `INSERT INTO table (cols…) VALUES (?1, …)`, or `DEFAULT VALUES` when there are no columns.
/// With `on_conflict`, a row whose value of that column exists is left alone (`ON CONFLICT DO
/// NOTHING`, which SQLite does not take after DEFAULT VALUES: that column must be in `cols`).
pub fn insert_sql<'a>(table: &str, cols: impl IntoIterator<Item = &'a str>, on_conflict: Option<&str>) -> String {
    let cols: Vec<String> = cols.into_iter().map(q).collect();
    let values = if cols.is_empty() {
        " DEFAULT VALUES".to_string()
    } else {
        let marks = (1..=cols.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        format!(" ({}) VALUES ({marks})", cols.join(", "))
    };
    let conflict = on_conflict.map(|c| format!(" ON CONFLICT({}) DO NOTHING", q(c))).unwrap_or_default();
    format!("INSERT INTO {}{values}{conflict}", q(table))
}

pub fn insert(
    conn: &Connection,
    table: &Table,
    values: &[(String, Value)],
    stats: &StatementStats,
) -> Result<Map<String, Json>> {
    let sql = insert_sql(&table.name, values.iter().map(|(c, _)| c.as_str()), None);
    let run = || {
        let n = conn
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values.iter().map(|(_, v)| v)))
            .map_err(|e| map_constraint(table, e))?;
        Ok(((), n as u64))
    };
    observed(stats, conn, &sql, || values.iter().map(|(_, v)| v.clone()).collect(), || None, run)?;
    get(conn, table, conn.last_insert_rowid(), stats)
}

pub fn update(
    conn: &Connection,
    table: &Table,
    id: i64,
    values: &[(String, Value)],
    stats: &StatementStats,
) -> Result<Map<String, Json>> {
    if values.is_empty() {
        return get(conn, table, id, stats);
    }
    let sets =
        values.iter().enumerate().map(|(i, (c, _))| format!("{} = ?{}", q(c), i + 2)).collect::<Vec<_>>().join(", ");
    let sql = format!("UPDATE {} SET {sets} WHERE {} = ?1", q(&table.name), q(&table.pk));
    let mut args: Vec<&Value> = Vec::with_capacity(values.len() + 1);
    let idv = Value::Integer(id);
    args.push(&idv);
    args.extend(values.iter().map(|(_, v)| v));
    let owned = || args.iter().map(|v| (*v).clone()).collect();
    let run = || {
        let n = conn
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(args.iter()))
            .map_err(|e| map_constraint(table, e))?;
        Ok((n, n as u64))
    };
    let n = observed(stats, conn, &sql, owned, || None, run)?;
    if n == 0 {
        return Err(Error::NotFound(format!("{} record {id}", table.name)));
    }
    get(conn, table, id, stats)
}

pub fn delete(conn: &Connection, table: &Table, id: i64, stats: &StatementStats) -> Result<()> {
    let sql = format!("DELETE FROM {} WHERE {} = ?1", q(&table.name), q(&table.pk));
    let run = || {
        let n = conn.prepare_cached(&sql)?.execute([id]).map_err(|e| map_constraint(table, e))?;
        Ok((n, n as u64))
    };
    let n = observed(stats, conn, &sql, || vec![Value::Integer(id)], || None, run)?;
    if n == 0 {
        return Err(Error::NotFound(format!("{} record {id}", table.name)));
    }
    Ok(())
}

/// Rows in `table`. Not reported to the query stats: it counts for the pages' furniture (the
/// tenant home page), not for a query of the tenant's, and has no index to advise.
pub fn count(conn: &Connection, table: &Table) -> Result<i64> {
    Ok(conn.query_row(&format!("SELECT count(*) FROM {}", q(&table.name)), [], |r| r.get(0))?)
}

/// Parses the `{id}` path segment.
pub fn parse_id(s: &str) -> Result<i64> {
    s.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
        Error::invalid(
            "invalid_id",
            format!("record id {:?} must be a positive integer", crate::ids::truncate_for_message(s)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_read_bytes_match_the_serialized_map() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, zeta TEXT, alpha REAL, \"quo\"\"te\" BLOB, mid INTEGER, n TEXT);
             INSERT INTO t VALUES (1, 'tab\there \"q\" \\ é 😀', 2.5, x'00ff', -7, NULL);
             INSERT INTO t VALUES (2, '', 1e300, x'', 9223372036854775807, 'x');",
        )
        .unwrap();
        let info = crate::store::introspect::introspect(&conn).unwrap();
        let table = info.tables.get("t").unwrap();
        let stats = StatementStats::new(&Default::default());
        for id in [1, 2] {
            let map = get(&conn, table, id, &stats).unwrap();
            assert_eq!(get_json(&conn, table, id, &stats).unwrap(), serde_json::to_vec(&map).unwrap(), "row {id}");
        }
        assert!(matches!(get_json(&conn, table, 3, &stats), Err(Error::NotFound(_))));
    }
}
