//! Reading a tenant's tables from its schema: what the data API may serve (tables with one
//! INTEGER primary key and plain identifiers), a hash of the schema text so tenants with
//! the same schema share one reading, and on request a table's constraints beyond
//! `pragma_table_info` (UNIQUE sets, foreign keys, CHECK clauses) for tools that write rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::query::{Affinity, Column, SchemaInfo, Table};
use crate::error::Result;
use crate::ids::TenantId;

/// What a cold open learns from one read of `sqlite_master`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaDigest {
    /// A hash of the schema's text (every row): tenants created from the same template and
    /// migrated alike have the same one, and can share one introspection.
    pub hash: u64,
    /// Whether tenantd's audit tables are as `audit_tables::TENANT_AUDIT_DDL` leaves them.
    pub audit_current: bool,
}

/// Reads `sqlite_master` once for both answers of `SchemaDigest`. Measured with callgrind on
/// a 10,000-tenant Zipf load: the two separate reads this replaces (one sorted) cost ~150k
/// instructions per cold open, a quarter of what the open costs besides SQLite's own parse.
pub fn schema_digest(conn: &Connection) -> Result<SchemaDigest> {
    use std::hash::{Hash, Hasher};
    let mut stmt = conn.prepare_cached("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master")?;
    let mut rows = stmt.query([])?;
    let mut hash = 0u64;
    let mut audit = super::audit_tables::AuditSchemaCheck::default();
    while let Some(r) = rows.next()? {
        // Schema text comes from migrations and the index advisor, not from requests: the fast
        // hash. Rows arrive in rowid order, which VACUUM may change; summing per-row hashes
        // makes the order irrelevant (names are unique, so no two rows cancel out).
        let mut h = crate::util::IdHasher::default();
        for i in 0..4 {
            r.get_ref(i)?.as_str().unwrap_or("").hash(&mut h);
        }
        hash = hash.wrapping_add(h.finish());
        audit.see(r.get_ref(0)?.as_str().unwrap_or(""), r.get_ref(1)?.as_str().unwrap_or(""));
    }
    Ok(SchemaDigest { hash, audit_current: audit.current() })
}

/// Tenants' digests from earlier opens, each with the schema cookie it was read at. SQLite bumps
/// the cookie with every schema change, so a tenant reopened with the same cookie has the same
/// `sqlite_master` and skips reading it again (callgrind, Zipf over 10,000 tenants: that read
/// was ~60k instructions per cold open, 6% of all). A file replaced by a different one with
/// the same cookie is the one case the cookie misses: `forget` the tenant whenever its file is
/// replaced, and `clear` when another process may have replaced files.
#[derive(Default)]
pub struct Digests {
    known: parking_lot::Mutex<HashMap<TenantId, (i64, SchemaDigest)>>,
}

/// Tenants remembered at most (~100 bytes each); past it the map starts over.
const DIGESTS_MAX: usize = 100_000;

impl Digests {
    /// The tenant's digest for `cookie`, read from `conn` unless an earlier open left it.
    pub fn get(&self, id: &TenantId, conn: &Connection, cookie: i64) -> Result<SchemaDigest> {
        if let Some(&(seen, digest)) = self.known.lock().get(id) {
            if seen == cookie {
                return Ok(digest);
            }
        }
        let digest = schema_digest(conn)?;
        let mut known = self.known.lock();
        if known.len() >= DIGESTS_MAX {
            known.clear();
        }
        known.insert(id.clone(), (cookie, digest));
        Ok(digest)
    }

    pub fn forget(&self, id: &TenantId) {
        self.known.lock().remove(id);
    }

    pub fn clear(&self) {
        self.known.lock().clear();
    }

    pub fn remembers(&self, id: &TenantId) -> bool {
        self.known.lock().contains_key(id)
    }
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

/// What a table demands of a row beyond its columns' types, NOT NULL and defaults.
#[derive(Clone, Debug, Default)]
pub struct Constraints {
    /// Column sets of its UNIQUE constraints and unique indexes (expression parts left out; a
    /// unique index on expressions only is not listed).
    pub unique: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<Check>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKey {
    pub column: String,
    pub table: String,
    /// The parent's column; `None` when the key names only the table (its primary key).
    pub to: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// `CONSTRAINT name CHECK (…)`: SQLite reports a failure by this name, else by `expr`.
    pub name: Option<String>,
    /// The expression as written in the CREATE TABLE (or ALTER TABLE ADD COLUMN) text.
    pub expr: String,
    /// The table's columns the expression mentions, in order of first mention.
    pub columns: Vec<String>,
    /// Every `column IN (literal, …)` in the expression (not `NOT IN`), with its values.
    pub one_of: Vec<(String, Vec<Value>)>,
}

impl Constraints {
    /// The CHECK a SQLite `CHECK constraint failed: …` message is about, if it is one of these.
    pub fn failed_check(&self, message: &str) -> Option<&Check> {
        let what = message.strip_prefix("CHECK constraint failed: ").unwrap_or(message).trim();
        self.checks.iter().find(|c| c.name.as_deref() == Some(what) || c.expr == what)
    }
}

/// Reads `table`'s UNIQUE sets and foreign keys from the pragmas, and its CHECK clauses from
/// its SQL text in `sqlite_master` (SQLite keeps no parsed form of them).
pub fn constraints(conn: &Connection, table: &Table) -> Result<Constraints> {
    let mut unique = Vec::new();
    let mut list = conn.prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1")?;
    let indexes: Vec<String> = list.query_map([&table.name], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut info = conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
    for index in indexes {
        // Expression parts of an index have no column name.
        let cols: Vec<Option<String>> = info.query_map([&index], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let named: Vec<String> = cols.into_iter().flatten().collect();
        if !named.is_empty() {
            unique.push(named);
        }
    }
    let mut fks =
        conn.prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")?;
    let foreign_keys = fks
        .query_map([&table.name], |r| Ok(ForeignKey { column: r.get(0)?, table: r.get(1)?, to: r.get(2)? }))?
        .collect::<rusqlite::Result<_>>()?;
    let sql: Option<String> = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [&table.name], |r| r.get(0))
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let checks = sql.map(|s| check_clauses(&s, table)).unwrap_or_default();
    Ok(Constraints { unique, foreign_keys, checks })
}

/// A token of SQL text, with its byte span.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A bare word: keyword, identifier or function name.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unquoted.
    Ident(String),
    /// A string literal, unquoted.
    Str(String),
    Num(String),
    Punct(u8),
}

/// Splits SQL into tokens, skipping whitespace and comments (sqlite.org/lang_expr.html,
/// tokenizer rules in tokenize.c: quotes double to escape themselves).
fn lex(sql: &str) -> Vec<(Tok, usize, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        let start = i;
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = sql[i + 2..].find("*/").map_or(b.len(), |at| i + 2 + at + 2);
        } else if matches!(c, b'\'' | b'"' | b'`' | b'[') {
            let close = if c == b'[' { b']' } else { c };
            let mut text = Vec::new();
            i += 1;
            while i < b.len() {
                if b[i] == close {
                    if close != b']' && b.get(i + 1) == Some(&close) {
                        text.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(b[i]);
                i += 1;
            }
            i = (i + 1).min(b.len());
            let text = String::from_utf8_lossy(&text).into_owned();
            out.push((if c == b'\'' { Tok::Str(text) } else { Tok::Ident(text) }, start, i));
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                // An exponent's sign belongs to the number: 1e-3.
                let signed = matches!(b[i], b'e' | b'E') && matches!(b.get(i + 1), Some(b'+' | b'-'));
                i += if signed { 2 } else { 1 };
            }
            out.push((Tok::Num(sql[start..i.min(b.len())].to_string()), start, i.min(b.len())));
        } else if word(c) {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            out.push((Tok::Word(sql[start..i].to_string()), start, i));
        } else {
            i += 1;
            out.push((Tok::Punct(c), start, i));
        }
    }
    out
}

/// The CHECK clauses of a CREATE TABLE statement, each with the columns it mentions and its
/// `column IN (…)` value lists.
fn check_clauses(sql: &str, table: &Table) -> Vec<Check> {
    let toks = lex(sql);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        let is_check = matches!(&toks[i].0, Tok::Word(w) if w.eq_ignore_ascii_case("CHECK"));
        if !is_check || toks.get(i + 1).map(|t| &t.0) != Some(&Tok::Punct(b'(')) {
            continue;
        }
        let mut depth = 0usize;
        let Some(close) = toks[i + 1..].iter().position(|(t, ..)| {
            match t {
                Tok::Punct(b'(') => depth += 1,
                Tok::Punct(b')') => depth -= 1,
                _ => {}
            }
            depth == 0
        }) else {
            continue;
        };
        let body = &toks[i + 2..i + 1 + close];
        let (from, to) = (toks[i + 1].2, toks[i + 1 + close].1);
        let name = match (i.checked_sub(2).map(|k| &toks[k].0), i.checked_sub(1).map(|k| &toks[k].0)) {
            (Some(Tok::Word(c)), Some(Tok::Word(n) | Tok::Ident(n))) if c.eq_ignore_ascii_case("CONSTRAINT") => {
                Some(n.clone())
            }
            _ => None,
        };
        out.push(Check {
            name,
            expr: sql[from..to].trim().to_string(),
            columns: mentioned(body, table),
            one_of: one_of(body, table),
        });
    }
    out
}

/// The table's column a token names, if any (SQLite matches column names case-insensitively).
fn column_of<'t>(tok: &Tok, table: &'t Table) -> Option<&'t str> {
    let (Tok::Word(w) | Tok::Ident(w)) = tok else { return None };
    table.columns.iter().map(|c| c.name.as_str()).find(|c| c.eq_ignore_ascii_case(w))
}

fn mentioned(body: &[(Tok, usize, usize)], table: &Table) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for (k, (t, ..)) in body.iter().enumerate() {
        // A word before `(` calls a function, even one named like a column.
        let call = matches!(t, Tok::Word(_)) && body.get(k + 1).map(|n| &n.0) == Some(&Tok::Punct(b'('));
        if let Some(c) = column_of(t, table).filter(|_| !call) {
            if !cols.iter().any(|x| x == c) {
                cols.push(c.to_string());
            }
        }
    }
    cols
}

fn one_of(body: &[(Tok, usize, usize)], table: &Table) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let kw = |k: usize, s: &str| matches!(body.get(k).map(|t| &t.0), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(s));
    for k in 0..body.len() {
        let Some(col) = column_of(&body[k].0, table) else { continue };
        if !kw(k + 1, "IN") || body.get(k + 2).map(|t| &t.0) != Some(&Tok::Punct(b'(')) {
            continue;
        }
        if k > 0 && kw(k - 1, "NOT") {
            continue;
        }
        let mut values = Vec::new();
        let mut j = k + 3;
        let complete = loop {
            let negative = body.get(j).map(|t| &t.0) == Some(&Tok::Punct(b'-'));
            if negative {
                j += 1;
            }
            let v = match body.get(j).map(|t| &t.0) {
                Some(Tok::Str(s)) if !negative => Value::Text(s.clone()),
                Some(Tok::Num(n)) => match (n.parse::<i64>(), n.parse::<f64>()) {
                    (Ok(i), _) => Value::Integer(if negative { -i } else { i }),
                    (_, Ok(f)) => Value::Real(if negative { -f } else { f }),
                    _ => break false,
                },
                _ => break false,
            };
            values.push(v);
            match body.get(j + 1).map(|t| &t.0) {
                Some(Tok::Punct(b',')) => j += 2,
                Some(Tok::Punct(b')')) => break true,
                _ => break false,
            }
        };
        if complete {
            out.push((col.to_string(), values));
        }
    }
    out
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(ddl: &str) -> SchemaDigest {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(ddl).unwrap();
        schema_digest(&c).unwrap()
    }

    #[test]
    fn the_digest_names_the_schema_text_whatever_order_it_was_created_in() {
        let a = digest_of("CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, x);");
        let b = digest_of("CREATE TABLE b(id INTEGER PRIMARY KEY, x); CREATE TABLE a(id INTEGER PRIMARY KEY);");
        assert_eq!(a.hash, b.hash);
        let indexed = digest_of(
            "CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, x); CREATE INDEX bx ON b(x);",
        );
        assert_ne!(a.hash, indexed.hash);
        let renamed = digest_of("CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, y);");
        assert_ne!(a.hash, renamed.hash);
        assert!(!a.audit_current);
        let audited = digest_of(crate::store::audit_tables::TENANT_AUDIT_DDL);
        assert!(audited.audit_current);
    }

    #[test]
    fn constraints_name_unique_sets_foreign_keys_and_checks() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE authors (id INTEGER PRIMARY KEY, code TEXT UNIQUE);
             CREATE TABLE books (
                 id INTEGER PRIMARY KEY,
                 author_id INTEGER NOT NULL REFERENCES authors,
                 author_code TEXT REFERENCES authors(code),
                 isbn TEXT NOT NULL UNIQUE, -- a comment with CHECK (x) in it
                 \"Status\" TEXT CHECK (status IN ('draft', 'it''s', \"published\")) /* CHECK (no) */,
                 pages INTEGER CHECK ( pages BETWEEN 1 AND 5000 ),
                 kind INTEGER CHECK (kind NOT IN (1, 2) AND kind IN (-1, 0, 3)),
                 CONSTRAINT short_title CHECK (length(isbn) < 20 AND pages > 0),
                 UNIQUE (author_id, pages)
             );
             CREATE UNIQUE INDEX books_lower ON books(lower(isbn));
             ALTER TABLE books ADD COLUMN price REAL CHECK (price >= 0.5);",
        )
        .unwrap();
        let info = introspect(&c).unwrap();
        let books = info.tables.get("books").unwrap();
        let k = constraints(&c, books).unwrap();
        let mut unique = k.unique.clone();
        unique.sort();
        assert_eq!(unique, vec![vec!["author_id".to_string(), "pages".into()], vec!["isbn".into()]]);
        let mut fks = k.foreign_keys.clone();
        fks.sort_by(|a, b| a.column.cmp(&b.column));
        assert_eq!(
            fks,
            vec![
                ForeignKey { column: "author_code".into(), table: "authors".into(), to: Some("code".into()) },
                ForeignKey { column: "author_id".into(), table: "authors".into(), to: None },
            ]
        );
        let exprs: Vec<&str> = k.checks.iter().map(|c| c.expr.as_str()).collect();
        assert_eq!(
            exprs,
            [
                "status IN ('draft', 'it''s', \"published\")",
                "pages BETWEEN 1 AND 5000",
                "kind NOT IN (1, 2) AND kind IN (-1, 0, 3)",
                // ALTER TABLE ADD COLUMN writes the column after the last column definition.
                "price >= 0.5",
                "length(isbn) < 20 AND pages > 0",
            ]
        );
        // A double-quoted word that is no column is a string literal to SQLite; a list with
        // anything but literals is not read as a value list.
        assert_eq!(k.checks[0].columns, ["Status"]);
        assert!(k.checks[0].one_of.is_empty());
        assert_eq!(
            k.checks[2].one_of,
            vec![("kind".into(), vec![Value::Integer(-1), Value::Integer(0), Value::Integer(3)])]
        );
        assert_eq!(k.checks[4].name.as_deref(), Some("short_title"));
        assert_eq!(k.checks[4].columns, ["isbn", "pages"]);

        // A failure message names the check by its name, or by its text.
        let err = c.execute("INSERT INTO books (author_id, isbn, pages) VALUES (1, 'x', 9000)", []).unwrap_err();
        assert_eq!(k.failed_check(&err.to_string()).map(|c| c.expr.as_str()), Some("pages BETWEEN 1 AND 5000"));
        let err = c
            .execute("INSERT INTO books (author_id, isbn, pages) VALUES (1, 'a-very-long-isbn-number', 9)", [])
            .unwrap_err();
        assert_eq!(k.failed_check(&err.to_string()).and_then(|c| c.name.as_deref()), Some("short_title"));
        let simple = info.tables.get("authors").unwrap();
        let demo_in = check_clauses("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT CHECK (s IN ('a','b')))", simple);
        assert!(demo_in[0].one_of.is_empty(), "s is not a column of authors");
    }

    #[test]
    fn a_remembered_digest_serves_only_the_cookie_it_was_read_at() {
        let cookie = |c: &Connection| crate::db::schema_cookie(c).unwrap();
        let id = TenantId::parse("0123456789abcdef").unwrap();
        let digests = Digests::default();
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY);").unwrap();
        let first = digests.get(&id, &c, cookie(&c)).unwrap();
        assert_eq!(first, schema_digest(&c).unwrap());

        // Another file for the same tenant, same cookie: the remembered digest answers (this
        // is why a replaced file must be forgotten)...
        let other = Connection::open_in_memory().unwrap();
        other.execute_batch("CREATE TABLE b(id INTEGER PRIMARY KEY, x);").unwrap();
        assert_eq!(cookie(&other), cookie(&c));
        assert_eq!(digests.get(&id, &other, cookie(&other)).unwrap(), first);
        // ...and after `forget`, or `clear`, it is read again.
        digests.forget(&id);
        let read = digests.get(&id, &other, cookie(&other)).unwrap();
        assert_eq!(read, schema_digest(&other).unwrap());
        assert_ne!(read, first);
        digests.clear();
        assert_eq!(digests.get(&id, &c, cookie(&c)).unwrap(), first);

        // A schema change moves the cookie, so the digest is read again without being told.
        c.execute_batch("CREATE INDEX a_id ON a(id);").unwrap();
        let changed = digests.get(&id, &c, cookie(&c)).unwrap();
        assert_eq!(changed, schema_digest(&c).unwrap());
        assert_ne!(changed, first);
    }
}
