//! What a source database holds: tables with their columns, keys and foreign keys, and the
//! indexes, views and triggers around them, read from `sqlite_master` and the table pragmas.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use crate::error::Result;

#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub decl_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pub pk: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForeignKey {
    pub from: Vec<String>,
    pub table: String,
    /// The referenced columns (the parent's primary key when the declaration names none).
    pub to: Vec<String>,
    /// Every referencing column may be NULL: the edge can break a cycle.
    pub nullable: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Object {
    pub name: String,
    pub table: String,
    pub sql: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub name: String,
    pub sql: String,
    pub columns: Vec<Column>,
    pub pk: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    pub without_rowid: bool,
    pub autoincrement: bool,
    pub rows: i64,
    pub bytes: Option<i64>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The name that reaches this table's rowid: `rowid`, or `_rowid_`/`oid` when a column is
    /// called `rowid` (a declared column shadows the name); none for WITHOUT ROWID tables or
    /// when all three are columns.
    pub fn rowid(&self) -> Option<&'static str> {
        if self.without_rowid {
            return None;
        }
        ["rowid", "_rowid_", "oid"].into_iter().find(|n| self.column(n).is_none())
    }

    /// `rowid`, or a one-line error saying why this table has none to use.
    pub fn rowid_or_err(&self) -> crate::error::Result<&'static str> {
        self.rowid().ok_or_else(|| {
            crate::error::Error::invalid(
                "unsupported_table",
                format!(
                    "table {} has no usable rowid (WITHOUT ROWID, or columns named rowid, _rowid_ and oid): \
                     it can be copied whole (action lookup) or excluded, not split",
                    self.name
                ),
            )
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Schema {
    pub tables: Vec<Table>,
    pub indexes: Vec<Object>,
    pub views: Vec<Object>,
    pub triggers: Vec<Object>,
    /// `sqlite_sequence` values of AUTOINCREMENT tables.
    pub sequences: BTreeMap<String, i64>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Foreign keys pointing at `table`: (child table, its key).
    pub fn incoming<'a>(&'a self, table: &'a str) -> impl Iterator<Item = (&'a Table, &'a ForeignKey)> + 'a {
        self.tables.iter().flat_map(move |t| {
            t.foreign_keys.iter().filter(move |f| f.table.eq_ignore_ascii_case(table)).map(move |f| (t, f))
        })
    }
}

/// Quotes an identifier for SQL (names come from the source, never from a request).
pub fn q(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Reads the schema of database `db` (`main`, or an attached name) on `conn`.
pub fn read(conn: &Connection, db: &str, count_rows: bool) -> Result<Schema> {
    let mut stmt = conn.prepare(&format!(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM {}.sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        q(db)
    ))?;
    let objects: Vec<(String, String, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
    let bytes = table_bytes(conn, db);
    let mut schema = Schema {
        tables: Vec::new(),
        indexes: Vec::new(),
        views: Vec::new(),
        triggers: Vec::new(),
        sequences: sequences(conn, db)?,
    };
    for (kind, name, table, sql) in objects {
        let object = Object { name: name.clone(), table, sql: sql.clone() };
        match kind.as_str() {
            "table" if !sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") => {
                let mut t = read_table(conn, db, &name, &sql)?;
                t.autoincrement =
                    schema.sequences.contains_key(&name) || sql.to_ascii_uppercase().contains("AUTOINCREMENT");
                t.bytes = bytes.get(&name).copied();
                if count_rows {
                    t.rows =
                        conn.query_row(&format!("SELECT count(*) FROM {}.{}", q(db), q(&name)), [], |r| r.get(0))?;
                }
                schema.tables.push(t);
            }
            // Automatic indexes (UNIQUE, PRIMARY KEY) have no SQL: they come with their table.
            "index" if !sql.is_empty() => schema.indexes.push(object),
            "view" => schema.views.push(object),
            "trigger" => schema.triggers.push(object),
            _ => {}
        }
    }
    resolve_targets(&mut schema);
    Ok(schema)
}

fn read_table(conn: &Connection, db: &str, name: &str, sql: &str) -> Result<Table> {
    let mut stmt =
        conn.prepare(&format!("SELECT name, type, \"notnull\", dflt_value, pk FROM {}.pragma_table_info(?1)", q(db)))?;
    let columns: Vec<Column> = stmt
        .query_map([name], |r| {
            Ok(Column {
                name: r.get(0)?,
                decl_type: r.get(1)?,
                not_null: r.get::<_, i64>(2)? != 0,
                default: r.get(3)?,
                pk: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    let pk = pk.into_iter().map(|c| c.name.clone()).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT id, seq, \"table\", \"from\", \"to\" FROM {}.pragma_foreign_key_list(?1) ORDER BY id, seq",
        q(db)
    ))?;
    let rows: Vec<(i64, String, String, Option<String>)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut fks: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, parent, from, to) in rows {
        if fks.last().map(|(i, _)| *i) != Some(id) {
            fks.push((id, ForeignKey { from: Vec::new(), table: parent, to: Vec::new(), nullable: true }));
        }
        if let Some((_, fk)) = fks.last_mut() {
            fk.from.push(from);
            fk.to.extend(to);
        }
    }
    let mut foreign_keys: Vec<ForeignKey> = fks.into_iter().map(|(_, f)| f).collect();
    for fk in &mut foreign_keys {
        fk.nullable = fk.from.iter().all(|c| columns.iter().any(|col| col.name == *c && !col.not_null && col.pk == 0));
    }
    // `wr` of pragma_table_list (SQLite 3.37+), not a search of the SQL text.
    let without_rowid: bool = conn
        .query_row(&format!("SELECT wr FROM {}.pragma_table_list(?1)", q(db)), [name], |r| r.get::<_, i64>(0))
        .map(|wr| wr != 0)?;
    Ok(Table {
        name: name.to_string(),
        sql: sql.to_string(),
        columns,
        pk,
        foreign_keys,
        without_rowid,
        autoincrement: false,
        rows: 0,
        bytes: None,
    })
}

/// A foreign key that names no parent columns references the parent's primary key.
fn resolve_targets(schema: &mut Schema) {
    let pks: BTreeMap<String, Vec<String>> =
        schema.tables.iter().map(|t| (t.name.to_ascii_lowercase(), t.pk.clone())).collect();
    for t in &mut schema.tables {
        for fk in &mut t.foreign_keys {
            if fk.to.is_empty() {
                fk.to = pks.get(&fk.table.to_ascii_lowercase()).cloned().unwrap_or_default();
                if fk.to.is_empty() {
                    fk.to = vec!["rowid".into()];
                }
            }
        }
    }
}

fn sequences(conn: &Connection, db: &str) -> Result<BTreeMap<String, i64>> {
    let exists: bool = conn.query_row(
        &format!("SELECT count(*) FROM {}.sqlite_master WHERE name = 'sqlite_sequence'", q(db)),
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !exists {
        return Ok(BTreeMap::new());
    }
    let mut stmt = conn.prepare(&format!("SELECT name, seq FROM {}.sqlite_sequence", q(db)))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Bytes per table (with its indexes) from the `dbstat` table when SQLite has it; else none.
fn table_bytes(conn: &Connection, db: &str) -> BTreeMap<String, i64> {
    let sql = format!(
        "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat({}) s JOIN {}.sqlite_master m ON m.name = s.name GROUP BY m.tbl_name",
        quote_literal(db),
        q(db)
    );
    let mut out = BTreeMap::new();
    if let Ok(mut stmt) = conn.prepare(&sql) {
        if let Ok(rows) = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))) {
            out.extend(rows.flatten());
        }
    }
    out
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
