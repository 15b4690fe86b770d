//! What a table demands of a row beyond its columns' types, NOT NULL and defaults: its UNIQUE
//! sets and foreign keys (from the pragmas) and its CHECK clauses (from its SQL text), for tools
//! that write rows (`tenantd loadtest`). The data API itself needs none of this.

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value as Json;

use super::query::Table;
use crate::error::Result;

/// A table's constraints, as `constraints` reads them.
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
    /// Every `column IN (literal, …)` in the expression (not `NOT IN`), with its values as a
    /// data API body would carry them.
    pub one_of: Vec<(String, Vec<Json>)>,
}

impl Constraints {
    /// The CHECK a SQLite CHECK failure message is about, if it is one of these.
    pub fn failed(&self, message: &str) -> Option<&Check> {
        let what = super::query::failed_check(message);
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
        .optional()?
        .flatten();
    let checks = sql.map(|s| check_clauses(&s, table)).unwrap_or_default();
    Ok(Constraints { unique, foreign_keys, checks })
}

/// A token of SQL text.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A bare word: keyword, identifier or function name.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unquoted.
    Ident(String),
    /// A string literal, unquoted.
    Str(String),
    Num(String),
    /// Any other byte, with its offset: a CHECK's parentheses delimit its text.
    Punct(u8, usize),
}

/// Splits SQL into tokens, skipping whitespace and comments (sqlite.org/lang_expr.html,
/// tokenizer rules in tokenize.c: quotes double to escape themselves).
fn lex(sql: &str) -> Vec<Tok> {
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
            out.push(if c == b'\'' { Tok::Str(text) } else { Tok::Ident(text) });
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                // An exponent's sign belongs to the number: 1e-3.
                let signed = matches!(b[i], b'e' | b'E') && matches!(b.get(i + 1), Some(b'+' | b'-'));
                i += if signed { 2 } else { 1 };
            }
            out.push(Tok::Num(sql[start..i.min(b.len())].to_string()));
        } else if word(c) {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i].to_string()));
        } else {
            i += 1;
            out.push(Tok::Punct(c, start));
        }
    }
    out
}

fn is_word(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
}

fn is_punct(tok: Option<&Tok>, c: u8) -> bool {
    matches!(tok, Some(Tok::Punct(p, _)) if *p == c)
}

/// The CHECK clauses of a CREATE TABLE statement, each with the columns it mentions and its
/// `column IN (…)` value lists.
fn check_clauses(sql: &str, table: &Table) -> Vec<Check> {
    let toks = lex(sql);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if !is_word(toks.get(i), "CHECK") {
            continue;
        }
        let Some(Tok::Punct(b'(', open)) = toks.get(i + 1) else { continue };
        // The matching `)`: its index in `toks[i + 1..]` and its offset in `sql`.
        let mut depth = 0usize;
        let Some((close, end)) = toks[i + 1..].iter().enumerate().find_map(|(k, t)| {
            match t {
                Tok::Punct(b'(', _) => depth += 1,
                Tok::Punct(b')', at) => {
                    depth -= 1;
                    return (depth == 0).then_some((k, *at));
                }
                _ => {}
            }
            None
        }) else {
            continue;
        };
        let body = &toks[i + 2..i + 1 + close];
        let name = match (i.checked_sub(2).map(|k| &toks[k]), i.checked_sub(1).map(|k| &toks[k])) {
            (Some(Tok::Word(c)), Some(Tok::Word(n) | Tok::Ident(n))) if c.eq_ignore_ascii_case("CONSTRAINT") => {
                Some(n.clone())
            }
            _ => None,
        };
        out.push(Check {
            name,
            expr: sql[open + 1..end].trim().to_string(),
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

fn mentioned(body: &[Tok], table: &Table) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for (k, t) in body.iter().enumerate() {
        // A word before `(` calls a function, even one named like a column.
        let call = matches!(t, Tok::Word(_)) && is_punct(body.get(k + 1), b'(');
        if let Some(c) = column_of(t, table).filter(|_| !call) {
            if !cols.iter().any(|x| x == c) {
                cols.push(c.to_string());
            }
        }
    }
    cols
}

/// Every `column IN (literal, …)` of a CHECK body (not `NOT IN`, not lists with anything but
/// literals).
fn one_of(body: &[Tok], table: &Table) -> Vec<(String, Vec<Json>)> {
    let mut out = Vec::new();
    for k in 0..body.len() {
        let Some(col) = column_of(&body[k], table) else { continue };
        let negated = k > 0 && is_word(body.get(k - 1), "NOT");
        if negated || !is_word(body.get(k + 1), "IN") || !is_punct(body.get(k + 2), b'(') {
            continue;
        }
        // `at` is the `(`, then each `,`: a literal follows each.
        let mut at = k + 2;
        let mut values = Vec::new();
        while let Some((v, len)) = body.get(at + 1..).and_then(literal) {
            values.push(v);
            at += 1 + len;
            if !is_punct(body.get(at), b',') {
                break;
            }
        }
        if !values.is_empty() && is_punct(body.get(at), b')') {
            out.push((col.to_string(), values));
        }
    }
    out
}

/// The literal `toks` start with (`'text'`, `5`, `-1.5`) as the JSON a data API body carries,
/// and how many tokens it takes.
fn literal(toks: &[Tok]) -> Option<(Json, usize)> {
    match toks {
        [Tok::Str(s), ..] => Some((Json::from(s.as_str()), 1)),
        [Tok::Num(n), ..] => number(n, false).map(|v| (v, 1)),
        [Tok::Punct(b'-', _), Tok::Num(n), ..] => number(n, true).map(|v| (v, 2)),
        _ => None,
    }
}

/// An integer if it is one, else a finite real (JSON has no infinity).
fn number(text: &str, negative: bool) -> Option<Json> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Json::from(if negative { -i } else { i }));
    }
    let f = text.parse::<f64>().ok()?;
    serde_json::Number::from_f64(if negative { -f } else { f }).map(Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::query::introspect;
    use serde_json::json;

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
        assert_eq!(k.checks[2].one_of, vec![("kind".into(), vec![json!(-1), json!(0), json!(3)])]);
        assert_eq!(k.checks[4].name.as_deref(), Some("short_title"));
        assert_eq!(k.checks[4].columns, ["isbn", "pages"]);

        // A failure message names the check by its name, or by its text.
        let err = c.execute("INSERT INTO books (author_id, isbn, pages) VALUES (1, 'x', 9000)", []).unwrap_err();
        assert_eq!(k.failed(&err.to_string()).map(|c| c.expr.as_str()), Some("pages BETWEEN 1 AND 5000"));
        let err = c
            .execute("INSERT INTO books (author_id, isbn, pages) VALUES (1, 'a-very-long-isbn-number', 9)", [])
            .unwrap_err();
        assert_eq!(k.failed(&err.to_string()).and_then(|c| c.name.as_deref()), Some("short_title"));
    }

    #[test]
    fn value_lists_name_the_column_as_the_table_spells_it_and_hold_only_literals() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (
                 id INTEGER PRIMARY KEY,
                 Size TEXT CHECK (SIZE IN ('s', 'm') OR size IS NULL),
                 r REAL CHECK (r IN (-1.5, 2e0, .5)),
                 n INTEGER CHECK (n IN (1, n + 1) AND n IN (1,2) AND n NOT IN (3)),
                 -- \"w\" is no column, so a string to SQLite: not a value list of any column.
                 w TEXT CHECK (\"w2\" IN ('w2') AND w IN ())
             );",
        )
        .unwrap();
        let info = introspect(&c).unwrap();
        let k = constraints(&c, info.tables.get("t").unwrap()).unwrap();
        let one_of: Vec<_> = k.checks.iter().map(|c| c.one_of.clone()).collect();
        assert_eq!(
            one_of,
            [
                vec![("Size".to_string(), vec![json!("s"), json!("m")])],
                vec![("r".to_string(), vec![json!(-1.5), json!(2.0), json!(0.5)])],
                vec![("n".to_string(), vec![json!(1), json!(2)])],
                vec![],
            ]
        );
        assert_eq!(k.checks[0].columns, ["Size"]);
        assert_eq!(k.checks[3].columns, ["w"]);
    }
}
