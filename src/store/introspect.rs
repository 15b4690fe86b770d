//! Reading a tenant's tables from its schema: what the data API may serve (tables with one
//! INTEGER primary key and plain identifiers), and a hash of the schema text so tenants with
//! the same schema share one reading.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::Connection;

use super::query::{Affinity, Column, SchemaInfo, Table};
use crate::error::Result;

/// A hash of the schema's text (every `sqlite_master` row): tenants created from the same
/// template and migrated alike have the same one, and can share one introspection.
pub fn schema_text_hash(conn: &Connection) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut stmt =
        conn.prepare_cached("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")?;
    let mut rows = stmt.query([])?;
    // Schema text comes from migrations and the index advisor, not from requests: the fast hash.
    let mut h = crate::util::IdHasher::default();
    while let Some(r) = rows.next()? {
        for i in 0..4 {
            r.get_ref(i)?.as_str().unwrap_or("").hash(&mut h);
        }
    }
    Ok(h.finish())
}

pub fn introspect(conn: &Connection) -> Result<SchemaInfo> {
    let cookie: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_tenantd\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for name in names {
        let mut info =
            conn.prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")?;
        let columns: Vec<Column> = info
            .query_map([&name], |r| {
                let decl: String = r.get(1)?;
                Ok(Column {
                    name: r.get(0)?,
                    affinity: Affinity::of(&decl),
                    decl_type: decl,
                    not_null: r.get(2)?,
                    has_default: r.get(3)?,
                    primary_key: r.get::<_, i64>(4)? > 0,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let pks: Vec<&Column> = columns.iter().filter(|c| c.primary_key).collect();
        if pks.len() == 1 && pks[0].decl_type.eq_ignore_ascii_case("INTEGER") && valid_ident(&name) {
            let pk = pks[0].name.clone();
            tables.insert(name.clone(), Table::new(name, columns, pk));
        }
    }
    Ok(SchemaInfo { tables: Arc::new(tables), cookie })
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
