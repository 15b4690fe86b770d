//! Reading a PostgreSQL schema's tables, columns, keys and indexes from pg_catalog, inside the
//! snapshot transaction `postgres::snapshot` holds, into the SQLite definitions it writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ::postgres::Transaction;

use super::config::PgOptions;
use super::pgtypes::{ColumnDef, Conv, ForeignKeyDef, IndexDef, TableDef};
use super::postgres::{Catalog, Source, Target};
use crate::error::{Error, Result};

const Q_TABLES: &str = "SELECT c.oid, c.relname::text, c.relkind::text FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition ORDER BY c.relname";

/// Columns with their type after one level of domain: `b` is the base type.
const Q_COLUMNS: &str = "SELECT a.attrelid, a.attnum, a.attname::text, a.attnotnull, a.attgenerated::text, \
    format_type(a.atttypid, NULL), b.typname::text, bn.nspname = 'pg_catalog', b.typtype::text, \
    b.typcategory = 'A', b.oid, CASE WHEN t.typtype = 'd' THEN t.typname::text END \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_type t ON t.oid = a.atttypid \
    JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
    JOIN pg_namespace bn ON bn.oid = b.typnamespace \
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attrelid, a.attnum";

const Q_ENUMS: &str = "SELECT enumtypid, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder";

const Q_CONSTRAINTS: &str = "SELECT con.conrelid, con.conname::text, con.contype::text, con.conkey, con.confkey, \
    con.confupdtype::text, con.confdeltype::text, con.condeferrable AND con.condeferred, \
    fn.nspname::text, fc.relname::text, pg_get_constraintdef(con.oid) \
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
    WHERE n.nspname = $1 AND con.contype IN ('p', 'f', 'c', 'x') ORDER BY c.relname, con.conname";

const Q_INDEXES: &str = "SELECT i.indrelid, ic.relname::text, i.indisunique, i.indisprimary, i.indkey::int2[], \
    i.indnkeyatts, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL, am.amname::text, pg_get_indexdef(i.indexrelid) \
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
    JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 ORDER BY c.relname, ic.relname";

const Q_TRIGGERS: &str = "SELECT c.relname::text, t.tgname::text FROM pg_trigger t \
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY c.relname, t.tgname";

/// Reads the schema's tables, columns, keys and indexes from pg_catalog, inside the snapshot.
pub(super) fn read_catalog(tx: &mut Transaction<'_>, opts: &PgOptions, target: &Target) -> Result<Catalog> {
    let fail = |e: ::postgres::Error| target.error("reading the catalog of PostgreSQL at", e);
    let schema = opts.schema();
    let exists = tx.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema]).map_err(fail)?;
    if exists.is_empty() {
        return Err(Error::invalid(
            "source_unreadable",
            format!("PostgreSQL at {} has no schema {schema:?}", target.shown),
        ));
    }
    let mut cat = Catalog {
        tables: Vec::new(),
        indexes: Vec::new(),
        types: BTreeMap::new(),
        not_exact: Vec::new(),
        not_copied: Vec::new(),
    };
    for r in tx.query(Q_TABLES, &[&schema]).map_err(fail)? {
        let (oid, name, kind): (u32, String, String) =
            (r.try_get(0).map_err(fail)?, r.try_get(1).map_err(fail)?, r.try_get(2).map_err(fail)?);
        match kind.as_str() {
            "r" | "p" => cat.tables.push(Source {
                oid,
                def: TableDef { name, columns: Vec::new(), pk: Vec::new(), foreign_keys: Vec::new() },
            }),
            "v" => cat.not_copied.push(format!("view {name}")),
            "m" => cat.not_copied.push(format!("materialized view {name}")),
            _ => cat.not_copied.push(format!("foreign table {name}")),
        }
    }
    let by_oid: HashMap<u32, usize> = cat.tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    let attnames = read_columns(tx, &mut cat, &by_oid, opts, target)?;
    read_constraints(tx, &mut cat, &attnames, &by_oid, schema, target)?;
    read_indexes(tx, &mut cat, &attnames, &by_oid, schema, target)?;
    for r in tx.query(Q_TRIGGERS, &[&schema]).map_err(fail)? {
        let (table, name): (String, String) = (r.try_get(0).map_err(fail)?, r.try_get(1).map_err(fail)?);
        cat.not_copied.push(format!("trigger {name} on {table} (PostgreSQL functions do not run in SQLite)"));
    }
    check_names(&cat, target)?;
    Ok(cat)
}

/// Column names by (table oid, attnum), for keys and indexes.
type AttNames = HashMap<(u32, i16), String>;

/// Every table's columns with their mapping; the types used and what is not exact go to the
/// report.
fn read_columns(
    tx: &mut Transaction<'_>,
    cat: &mut Catalog,
    by_oid: &HashMap<u32, usize>,
    opts: &PgOptions,
    target: &Target,
) -> Result<AttNames> {
    let fail = |e: ::postgres::Error| target.error("reading the catalog of PostgreSQL at", e);
    let schema = opts.schema();
    let mut labels: HashMap<u32, Vec<String>> = HashMap::new();
    for r in tx.query(Q_ENUMS, &[]).map_err(fail)? {
        labels.entry(r.try_get(0).map_err(fail)?).or_default().push(r.try_get(1).map_err(fail)?);
    }
    let mut attnames: AttNames = HashMap::new();
    for r in tx.query(Q_COLUMNS, &[&schema]).map_err(fail)? {
        let oid: u32 = r.try_get(0).map_err(fail)?;
        let Some(&ti) = by_oid.get(&oid) else { continue };
        let name: String = r.try_get(2).map_err(fail)?;
        let generated: String = r.try_get(4).map_err(fail)?;
        let family: String = r.try_get(5).map_err(fail)?;
        let base: String = r.try_get(6).map_err(fail)?;
        let typtype: String = r.try_get(8).map_err(fail)?;
        let domain: Option<String> = r.try_get(11).map_err(fail)?;
        let conv = Conv::for_type(&base, r.try_get(7).map_err(fail)?, &typtype, r.try_get(9).map_err(fail)?, opts);
        let table = &mut cat.tables[ti].def;
        let here = format!("{}.{name}", table.name);
        if !conv.exact() {
            cat.not_exact.push(format!("{here}: {family} stored as {}", conv.how()));
        }
        if !generated.is_empty() {
            cat.not_exact.push(format!("{here}: generated column, copied as plain values"));
        }
        if let Some(d) = domain {
            cat.not_copied.push(format!("{here}: domain {d} stored as its base type; its constraints are not copied"));
        }
        cat.types.entry((family, conv)).or_default().push(here);
        attnames.insert((oid, r.try_get(1).map_err(fail)?), name.clone());
        let type_oid: u32 = r.try_get(10).map_err(fail)?;
        let labels = if conv == Conv::Enum { labels.get(&type_oid).cloned() } else { None };
        table.columns.push(ColumnDef {
            name,
            conv,
            not_null: r.try_get(3).map_err(fail)?,
            labels: labels.unwrap_or_default(),
        });
    }
    Ok(attnames)
}

/// Primary keys and foreign keys into the table definitions; CHECK and exclusion constraints,
/// and foreign keys to tables not copied, into the report.
fn read_constraints(
    tx: &mut Transaction<'_>,
    cat: &mut Catalog,
    attnames: &AttNames,
    by_oid: &HashMap<u32, usize>,
    schema: &str,
    target: &Target,
) -> Result<()> {
    let fail = |e: ::postgres::Error| target.error("reading the catalog of PostgreSQL at", e);
    let names_of = |oid: u32, keys: &[i16]| -> Option<Vec<String>> {
        keys.iter().map(|k| attnames.get(&(oid, *k)).cloned()).collect()
    };
    let copied: BTreeSet<&str> = cat.tables.iter().map(|t| t.def.name.as_str()).collect();
    let mut fks: Vec<(usize, ForeignKeyDef)> = Vec::new();
    let mut pks: Vec<(usize, Vec<String>)> = Vec::new();
    for r in tx.query(Q_CONSTRAINTS, &[&schema]).map_err(fail)? {
        let oid: u32 = r.try_get(0).map_err(fail)?;
        let Some(&ti) = by_oid.get(&oid) else { continue };
        let table = cat.tables[ti].def.name.clone();
        let cname: String = r.try_get(1).map_err(fail)?;
        let kind: String = r.try_get(2).map_err(fail)?;
        let key: Option<Vec<i16>> = r.try_get(3).map_err(fail)?;
        let from = names_of(oid, key.as_deref().unwrap_or_default());
        let definition: String = r.try_get(10).map_err(fail)?;
        match (kind.as_str(), from) {
            ("p", Some(cols)) => pks.push((ti, cols)),
            ("f", Some(from)) => {
                let parent_schema: Option<String> = r.try_get(8).map_err(fail)?;
                let parent: Option<String> = r.try_get(9).map_err(fail)?;
                let fkey: Option<Vec<i16>> = r.try_get(4).map_err(fail)?;
                let parent_oid =
                    parent.as_deref().and_then(|p| cat.tables.iter().find(|t| t.def.name == p)).map(|t| t.oid);
                let to = parent_oid.and_then(|p| names_of(p, fkey.as_deref().unwrap_or_default()));
                match (parent, to) {
                    (Some(parent), Some(to))
                        if parent_schema.as_deref() == Some(schema) && copied.contains(parent.as_str()) =>
                    {
                        let on_update = first_char(&r.try_get::<_, String>(5).map_err(fail)?);
                        let on_delete = first_char(&r.try_get::<_, String>(6).map_err(fail)?);
                        if on_update == 'd' || on_delete == 'd' {
                            cat.not_copied
                                .push(format!("{table}.{cname}: SET DEFAULT action (defaults are not copied)"));
                        }
                        let deferred = r.try_get(7).map_err(fail)?;
                        fks.push((ti, ForeignKeyDef { from, table: parent, to, on_update, on_delete, deferred }));
                    }
                    _ => cat
                        .not_copied
                        .push(format!("{table}.{cname}: {definition} (its table is not in schema {schema})")),
                }
            }
            _ => cat.not_copied.push(format!("{table}.{cname}: {definition}")),
        }
    }
    for (ti, cols) in pks {
        cat.tables[ti].def.pk = cols;
    }
    for (ti, fk) in fks {
        cat.tables[ti].def.foreign_keys.push(fk);
    }
    Ok(())
}

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or('a')
}

/// Unique and plain b-tree indexes on columns become SQLite indexes; the rest are reported.
fn read_indexes(
    tx: &mut Transaction<'_>,
    cat: &mut Catalog,
    attnames: &AttNames,
    by_oid: &HashMap<u32, usize>,
    schema: &str,
    target: &Target,
) -> Result<()> {
    let fail = |e: ::postgres::Error| target.error("reading the catalog of PostgreSQL at", e);
    let mut found: Vec<IndexDef> = Vec::new();
    for r in tx.query(Q_INDEXES, &[&schema]).map_err(fail)? {
        let oid: u32 = r.try_get(0).map_err(fail)?;
        let Some(&ti) = by_oid.get(&oid) else { continue };
        let table = cat.tables[ti].def.name.clone();
        let name: String = r.try_get(1).map_err(fail)?;
        let unique: bool = r.try_get(2).map_err(fail)?;
        if r.try_get::<_, bool>(3).map_err(fail)? {
            continue;
        }
        let keys: Vec<i16> = r.try_get(4).map_err(fail)?;
        let n_keys: i16 = r.try_get(5).map_err(fail)?;
        let expression: bool = r.try_get(6).map_err(fail)?;
        let method: String = r.try_get(7).map_err(fail)?;
        let definition: String = r.try_get(8).map_err(fail)?;
        let keys = &keys[..(n_keys.max(0) as usize).min(keys.len())];
        let columns: Option<Vec<String>> = keys.iter().map(|k| attnames.get(&(oid, *k)).cloned()).collect();
        let why_not = match &columns {
            _ if method != "btree" => Some(format!("a {method} index")),
            _ if expression => Some("an expression or partial index".to_string()),
            _ if name.to_ascii_lowercase().starts_with("sqlite_") => Some("SQLite reserves the name".to_string()),
            None => Some("an index on columns not copied".to_string()),
            Some(_) => None,
        };
        match (why_not, columns) {
            (None, Some(columns)) => found.push(IndexDef { name, table, columns, unique }),
            (Some(why), _) => cat.not_copied.push(format!("index {name} on {table}, {why}: {definition}")),
            (None, None) => {}
        }
    }
    cat.indexes = dedupe_indexes(&cat.tables, found);
    Ok(())
}

/// Indexes SQLite would hold twice: a plain index on the same columns as the primary key, a
/// unique index or an earlier plain index (Django adds `_like` pattern-ops indexes beside the
/// plain ones; operator classes mean nothing to SQLite).
fn dedupe_indexes(tables: &[Source], found: Vec<IndexDef>) -> Vec<IndexDef> {
    let mut covered: BTreeSet<(String, Vec<String>)> =
        tables.iter().map(|t| (t.def.name.clone(), t.def.pk.clone())).collect();
    let mut out: Vec<IndexDef> = Vec::new();
    for i in found.iter().filter(|i| i.unique) {
        if covered.insert((i.table.clone(), i.columns.clone())) {
            out.push(i.clone());
        }
    }
    for i in found.into_iter().filter(|i| !i.unique) {
        if covered.insert((i.table.clone(), i.columns.clone())) {
            out.push(i);
        }
    }
    out
}

/// SQLite reserves `sqlite_` names and compares names without case: refuse what it cannot
/// hold rather than copy part of it.
pub(super) fn check_names(cat: &Catalog, target: &Target) -> Result<()> {
    let refuse =
        |what: String| Err(Error::invalid("source_unsupported", format!("PostgreSQL at {}: {what}", target.shown)));
    let mut tables: HashMap<String, &str> = HashMap::new();
    for t in &cat.tables {
        let name = &t.def.name;
        if name.to_ascii_lowercase().starts_with("sqlite_") {
            return refuse(format!(
                "table {name} cannot be created in SQLite (names starting with sqlite_ are reserved)"
            ));
        }
        if let Some(other) = tables.insert(name.to_lowercase(), name) {
            return refuse(format!("tables {other} and {name} differ only in case, which SQLite does not tell apart"));
        }
        if t.def.columns.is_empty() {
            return refuse(format!("table {name} has no columns, which SQLite cannot hold"));
        }
        let mut columns: HashMap<String, &str> = HashMap::new();
        for c in &t.def.columns {
            if let Some(other) = columns.insert(c.name.to_lowercase(), &c.name) {
                return refuse(format!(
                    "columns {name}.{other} and {name}.{} differ only in case, which SQLite does not tell apart",
                    c.name
                ));
            }
        }
    }
    Ok(())
}
