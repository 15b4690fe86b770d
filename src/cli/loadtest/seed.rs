//! What loadtest writes before the clock starts: the table it loads (`--table`, else the first
//! table the data API serves, by name), the tables that table's foreign keys point at, and
//! their rows.
//!
//! `plan` works on the tenant schema replayed into an in-memory database, so bad options fail
//! before any tenant is touched and the constraints are tried on real SQLite: for each table,
//! parents first, it inserts probe rows (seed-like and write-like) and lets every CHECK failure
//! move a column to its next candidate value (`TableGen::advance`). `seed` then writes ids
//! 1..=rows into each tenant file, and 1..=min(rows, 1000) (at least 1) into each parent.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::Value as Json;

use super::super::{CliError, CliResult};
use super::rows::{write_token_base, Source, TableGen, CYCLE};
use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::error::Error;
use crate::store::constraints::{self, Constraints};
use crate::store::query::{self, q, SchemaInfo, Table};
use crate::store::schema::TenantSchema;

/// Parents get as many rows as the loaded table, capped here: enough for foreign keys to
/// spread over, cheap to seed in 10,000 tenants.
const PARENT_ROWS: u64 = 1000;

/// A table to seed with ids 1..=rows: its rows' model and (from the schema files) its primary
/// key.
#[derive(Clone)]
pub struct Seeded {
    pub gen: Arc<TableGen>,
    pub pk: String,
    pub rows: u64,
}

pub struct Plan {
    /// The tables the targets' foreign keys lead to, each before the tables that point at it.
    pub parents: Vec<Seeded>,
    /// The loaded tables, seeded last, in the order they were asked for.
    pub targets: Vec<Seeded>,
}

impl Plan {
    /// `1000 rows of books each (and 1000 of authors)`, for the ready line.
    pub fn describe(&self) -> String {
        let rows = self.targets.first().map_or(0, |t| t.rows);
        let names: Vec<&str> = self.targets.iter().map(|t| t.gen.name.as_str()).collect();
        let loaded = format!("{rows} rows of {} each", names.join(", "));
        let parents: Vec<String> = self
            .parents
            .iter()
            .rev()
            .filter(|p| !names.contains(&p.gen.name.as_str()))
            .map(|p| format!("{} of {}", p.rows, p.gen.name))
            .collect();
        if parents.is_empty() {
            loaded
        } else {
            format!("{loaded} (and {})", parents.join(", "))
        }
    }

    /// The loaded tables' row models, by index.
    pub fn tables(&self) -> Vec<&TableGen> {
        self.targets.iter().map(|t| t.gen.as_ref()).collect()
    }
}

fn sql_error(e: impl Into<Error>) -> CliError {
    CliError::from(e.into())
}

/// Picks the table and models it and its parents on the schema replayed in memory.
pub fn plan(schema: &TenantSchema, want: Option<&str>, rows: u64) -> CliResult<Plan> {
    let want: Vec<String> = want.map(str::to_string).into_iter().collect();
    plan_tables(schema, &want, rows)
}

/// `plan` for several loaded tables (a scenario's mixes); none = the first served table.
pub fn plan_tables(schema: &TenantSchema, want: &[String], rows: u64) -> CliResult<Plan> {
    let conn = Connection::open_in_memory().map_err(sql_error)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sql_error)?;
    schema.apply_in(&conn, 0, schema.target())?;
    let info = query::introspect(&conn)?;
    let names = if want.is_empty() {
        vec![choose(&conn, &info, None)?]
    } else {
        want.iter().map(|w| choose(&conn, &info, Some(w))).collect::<CliResult<Vec<_>>>()?
    };
    let mut planner = Planner {
        conn: &conn,
        info: &info,
        parent_rows: rows.clamp(1, PARENT_ROWS),
        visiting: Vec::new(),
        parents: Vec::new(),
    };
    let mut targets = Vec::new();
    for name in &names {
        targets.push(planner.build(name, rows)?);
    }
    Ok(Plan { parents: planner.parents, targets })
}

/// `want` if the data API serves it, else the first served table by name. The errors name the
/// flag and list the tables as a remote run's do (`rows::pick_table`), not as the data API's
/// `SchemaInfo::table` does.
fn choose(conn: &Connection, info: &SchemaInfo, want: Option<&str>) -> CliResult<String> {
    let Some(first) = info.tables.keys().next() else {
        return Err(CliError::usage(
            "the tenant schema has no table with an INTEGER PRIMARY KEY for loadtest to read and write",
        ));
    };
    let Some(want) = want else { return Ok(first.clone()) };
    if info.tables.contains_key(want) {
        return Ok(want.to_string());
    }
    let exists: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [want], |r| r.get(0))
        .map_err(sql_error)?;
    let shown = crate::ids::truncate_for_message(want);
    let served = info.tables.keys().cloned().collect::<Vec<_>>().join(", ");
    Err(CliError::usage(if exists > 0 {
        format!(
            "--table {shown} is not served by the data API, which loadtest goes through (it needs one INTEGER PRIMARY KEY and a plain name): the tenant schema has tables {served}"
        )
    } else {
        format!("unknown --table {shown:?}: the tenant schema has tables {served}")
    }))
}

struct Planner<'a> {
    conn: &'a Connection,
    info: &'a SchemaInfo,
    parent_rows: u64,
    /// Tables whose parents are being built: a key back into one of them is a cycle.
    visiting: Vec<String>,
    /// The parents built so far, each after its own parents.
    parents: Vec<Seeded>,
}

impl Planner<'_> {
    /// Models table `name` (building its parents first) and finds values its CHECKs pass.
    fn build(&mut self, name: &str, rows: u64) -> CliResult<Seeded> {
        let info = self.info;
        let table = info.table(name)?;
        let cons = constraints::constraints(self.conn, table)?;
        self.visiting.push(name.to_string());
        let mut keys = HashMap::new();
        for fk in &cons.foreign_keys {
            let optional = table.column(&fk.column).is_none_or(|c| !c.not_null || c.has_default);
            // SQLite matches the parent's name case-insensitively.
            let parent = info.tables.keys().find(|k| k.eq_ignore_ascii_case(&fk.table)).cloned();
            let cannot = |why: String| -> CliResult<Option<Source>> {
                if optional {
                    Ok(None)
                } else {
                    Err(CliError::failed(format!("cannot seed {name}: its NOT NULL column {} {why}", fk.column)))
                }
            };
            let source = match parent {
                Some(p) if p == name => (!optional).then_some(Source::SelfRef),
                Some(p) if self.visiting.contains(&p) => {
                    cannot(format!("references {p}, whose own foreign keys lead back to {name}"))?
                }
                Some(p) => {
                    let Seeded { gen, pk, rows } = self.parent(&p)?;
                    let source = Source::parent(gen, &pk, fk.to.as_deref(), rows)
                        .map_err(|why| CliError::failed(format!("{name}.{} {why}", fk.column)))?;
                    Some(source)
                }
                None => cannot(format!(
                    "references {}, which loadtest cannot seed (it needs one INTEGER PRIMARY KEY)",
                    fk.table
                ))?,
            };
            keys.insert(fk.column.clone(), source);
        }
        let mut gen = TableGen::new(table, &cons, &keys);
        calibrate(self.conn, table, &mut gen, &cons, rows)?;
        self.visiting.pop();
        Ok(Seeded { gen: Arc::new(gen), pk: table.pk.clone(), rows })
    }

    /// Parent `name` with `parent_rows` rows, built on first use.
    fn parent(&mut self, name: &str) -> CliResult<Seeded> {
        if let Some(built) = self.parents.iter().find(|p| p.gen.name == name) {
            return Ok(built.clone());
        }
        let built = self.build(name, self.parent_rows)?;
        self.parents.push(built.clone());
        Ok(built)
    }
}

/// Why a probe row failed.
enum Probe {
    Check(String),
    Other(String),
}

/// Inserts probe rows until they all pass, advancing columns past values a CHECK rejects.
fn calibrate(conn: &Connection, table: &Table, gen: &mut TableGen, cons: &Constraints, rows: u64) -> CliResult<()> {
    // Every failure advances one column by one candidate, so this bounds the tries.
    let tries = 1 + gen.candidate_count();
    let write_base = write_token_base();
    for _ in 0..tries {
        conn.execute(&format!("DELETE FROM {}", q(&gen.name)), []).map_err(sql_error)?;
        match probe(conn, table, gen, rows, write_base) {
            Ok(()) => return Ok(()),
            Err(Probe::Check(message)) => gen.advance(cons, &message).map_err(CliError::failed)?,
            Err(Probe::Other(message)) => {
                return Err(CliError::failed(format!("cannot generate a row of {}: {message}", gen.name)))
            }
        }
    }
    Err(CliError::failed(format!("cannot generate a row of {} that passes its CHECK constraints", gen.name)))
}

/// Seed rows 1..=min(rows, 2 × CYCLE), then CYCLE rows as writes make them (tokens from
/// `write_base`, the size a run's writes use; ids from SQLite). Not through `query::insert`,
/// which words the error for the API: `advance` needs SQLite's own message.
fn probe(conn: &Connection, table: &Table, gen: &TableGen, rows: u64, write_base: u64) -> Result<(), Probe> {
    let seeded = (1..=rows.min(2 * CYCLE)).map(|id| (Some(id), id, id));
    let written = (1..=CYCLE).map(|n| (None, n, write_base + n));
    for (id, n, token) in seeded.chain(written) {
        let values = row_values(table, gen, id, n, token).map_err(Probe::Other)?;
        let sql = insert_sql(table, &values, id.is_some());
        conn.execute(&sql, rusqlite::params_from_iter(values.iter().map(|(_, v)| v))).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, Some(m)) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => {
                Probe::Check(m)
            }
            e => Probe::Other(e.to_string()),
        })?;
    }
    Ok(())
}

/// Row (n, token) of `gen` as the data API takes it in a POST body to `table`
/// (`query::body_values`), with primary key `id` first when given.
fn row_values(
    table: &Table,
    gen: &TableGen,
    id: Option<u64>,
    n: u64,
    token: u64,
) -> Result<Vec<(String, Value)>, String> {
    let mut values = query::body_values(table, &Json::Object(gen.row(n, token))).map_err(|e| e.to_string())?;
    if let Some(id) = id {
        let id = i64::try_from(id).map_err(|_| format!("row id {id} is too large"))?;
        values.insert(0, (table.pk.clone(), Value::Integer(id)));
    }
    Ok(values)
}

/// The INSERT of `values` (from `row_values`); with the primary key, a row whose id exists is
/// left alone.
fn insert_sql(table: &Table, values: &[(String, Value)], with_pk: bool) -> String {
    query::insert_sql(&table.name, values.iter().map(|(c, _)| c.as_str()), with_pk.then_some(table.pk.as_str()))
}

/// Makes sure every table of the plan holds ids 1..=its rows in tenant `t`.
pub fn seed(app: &App, t: &TenantRecord, plan: &Plan) -> CliResult<()> {
    let opened = app.open_tenant(t)?;
    let mut conn = opened.handle.conn()?;
    let info = opened.handle.schema_info(&conn)?;
    for Seeded { gen, pk, rows } in plan.parents.iter().chain(&plan.targets) {
        // The plan came from the schema files; a tenant held at another version may differ.
        let have = info
            .tables
            .get(&gen.name)
            .filter(|have| have.pk == *pk && gen.columns.iter().all(|c| have.column(&c.name).is_some()))
            .ok_or_else(|| {
                CliError::failed(format!(
                    "tenant {}: its table {} is not the tenant schema's (held at an older schema version?)",
                    t.slug, gen.name
                ))
            })?;
        seed_table(&mut conn, t, have, gen, *rows)?;
    }
    Ok(())
}

fn seed_table(conn: &mut Connection, t: &TenantRecord, table: &Table, gen: &TableGen, rows: u64) -> CliResult<()> {
    if rows == 0 {
        return Ok(());
    }
    let fail = |e: rusqlite::Error| CliError::failed(format!("seeding {}: {}: {e}", t.slug, gen.name));
    let fail_at = |id: u64, e: String| CliError::failed(format!("seeding {}: {} row {id}: {e}", t.slug, gen.name));
    // --rows is bounded (<= 10,000,000) before we get here.
    let last = i64::try_from(rows).map_err(|_| CliError::usage("--rows is too large"))?;
    let count = format!("SELECT count(*) FROM {} WHERE {} BETWEEN 1 AND ?1", q(&table.name), q(&table.pk));
    let have: i64 = conn.query_row(&count, [last], |r| r.get(0)).map_err(fail)?;
    if have == last {
        return Ok(());
    }
    let tx = conn.transaction().map_err(fail)?;
    {
        // Every row has the same columns (`TableGen::row`), so one statement inserts them all.
        let first = row_values(table, gen, Some(1), 1, 1).map_err(|e| fail_at(1, e))?;
        let mut stmt = tx.prepare(&insert_sql(table, &first, true)).map_err(fail)?;
        for id in 1..=rows {
            let values = row_values(table, gen, Some(id), id, id).map_err(|e| fail_at(id, e))?;
            stmt.execute(rusqlite::params_from_iter(values.iter().map(|(_, v)| v)))
                .map_err(|e| fail_at(id, e.to_string()))?;
        }
    }
    tx.commit().map_err(fail)?;
    Ok(())
}
