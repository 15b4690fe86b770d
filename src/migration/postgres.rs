//! PostgreSQL as a migration source (issue 19, item 4). One read-only REPEATABLE READ
//! transaction (one snapshot for every table, as pg_dump takes it) copies the tables of a
//! schema into a new SQLite file: the same kind of snapshot `source::snapshot` makes of a SQLite
//! source, so inspect, map, build and validate read PostgreSQL data as they read SQLite data.
//! Values are converted in the SELECT (casts, `to_char`, `to_json`) so rows arrive as i64, f64,
//! text or bytes; `pgtypes::Conv` is the one implementation of the mapping documented in
//! docs/migration.md ("PostgreSQL sources"). The password never leaves this module: sources
//! are shown through `source::redact_url` and errors name the host and database only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

// `::postgres`: the client crate, not this module.
use ::postgres::config::{Host, SslMode};
use ::postgres::error::SqlState;
use ::postgres::{Client, IsolationLevel, NoTls, Row, Transaction};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;
use serde::Serialize;

pub use super::config::PgOptions;
use super::inspect::q;
use super::pgtypes::{create_index_sql, create_table_sql, Conv, IndexDef, Storage, TableDef};
use super::source::{redact_url, Budget};
use crate::error::{Error, Result};

/// Rows fetched per round trip from a table's portal: a bounded batch, never a whole table.
const FETCH_ROWS: i32 = 2_000;
/// A connection attempt's limit when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `attgenerated` (read below) appeared in PostgreSQL 12.
const OLDEST_SERVER: i32 = 120_000;

/// One table copied.
#[derive(Debug, Serialize)]
pub struct TableCopy {
    pub name: String,
    /// Counted in the snapshot's transaction; the copy holds exactly these.
    pub rows: u64,
    pub ms: f64,
    /// Per column, the NaNs stored as NULL (SQLite has no NaN: binding one stores NULL).
    #[serde(skip)]
    nans: Vec<(String, u64)>,
}

/// One PostgreSQL type as the snapshot stores it, and the columns that have it.
#[derive(Debug, Serialize)]
pub struct TypeUse {
    pub postgres: String,
    pub sqlite: &'static str,
    pub how: &'static str,
    pub exact: bool,
    pub columns: Vec<String>,
}

/// What a PostgreSQL snapshot read, how it mapped it, and what it could not carry over exactly.
#[derive(Debug, Serialize)]
pub struct PgReport {
    /// The URL with its password replaced by `***`.
    pub source: String,
    pub database: String,
    pub schema: String,
    pub server_version: String,
    pub tables: Vec<TableCopy>,
    pub rows: u64,
    pub types: Vec<TypeUse>,
    /// Columns whose values are not carried exactly (a type shown as text, numeric as REAL,
    /// generated columns as plain values).
    pub not_exact: Vec<String>,
    /// Objects left behind: views, CHECK constraints, triggers, indexes SQLite cannot express,
    /// foreign keys to other schemas, domains' constraints.
    pub not_copied: Vec<String>,
    pub elapsed_ms: f64,
}

impl PgReport {
    pub fn database(&self) -> &str {
        &self.database
    }

    /// One line per finding, for the human report.
    pub fn notes(&self) -> Vec<String> {
        let per_s = self.rows as f64 / (self.elapsed_ms / 1000.0).max(0.001);
        let mut out = vec![format!(
            "read from PostgreSQL {} (database {}, schema {}) in one REPEATABLE READ snapshot: {} tables, {} rows in {:.1} s ({per_s:.0} rows/s)",
            self.server_version,
            self.database,
            self.schema,
            self.tables.len(),
            self.rows,
            self.elapsed_ms / 1000.0
        )];
        out.extend(self.not_exact.iter().map(|n| format!("not exact: {n}")));
        out.extend(self.not_copied.iter().map(|n| format!("not copied: {n}")));
        out
    }
}

/// Where a URL points, for messages: hosts, ports, database and user; never the password.
pub(super) struct Target {
    config: ::postgres::Config,
    pub(super) shown: String,
    database: String,
    /// The password, to scrub from any message that would echo it.
    secret: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let mut config = ::postgres::Config::from_str(url).map_err(|e| {
            Error::invalid(
                "bad_source_url",
                format!("{} is not a usable PostgreSQL URL: {}", redact_url(url), chain(&e)),
            )
        })?;
        let placeholder = config.get_password() == Some(b"***".as_slice());
        if config.get_password().is_none() || placeholder {
            // libpq's convention: a URL without a password takes it from PGPASSWORD, so the
            // secret need not be on a command line or in a config file (`analyze-schema
            // --emit-config` writes the URL with `***`).
            match std::env::var("PGPASSWORD") {
                Ok(p) if !p.is_empty() => {
                    config.password(p);
                }
                _ if placeholder => {
                    return Err(Error::invalid(
                        "bad_source_url",
                        format!(
                            "{} has the placeholder *** for a password: put the real one in the URL or in PGPASSWORD",
                            redact_url(url)
                        ),
                    ))
                }
                _ => {}
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tenantd migration");
        }
        let user = config.get_user().unwrap_or_default().to_string();
        let database = config.get_dbname().map(str::to_string).unwrap_or_else(|| user.clone());
        let ports = config.get_ports();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect();
        let shown = format!(
            "{} (database {database}{})",
            if hosts.is_empty() { "localhost:5432".to_string() } else { hosts.join(",") },
            if user.is_empty() { String::new() } else { format!(", user {user}") }
        );
        let secret = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Target { config, shown, database, secret })
    }

    /// Connects without TLS (DESIGN §7: `postgres` with `NoTls`); a URL that demands TLS is
    /// refused before any byte is sent.
    fn connect(&self) -> Result<Client> {
        if matches!(self.config.get_ssl_mode(), SslMode::Require) {
            return Err(Error::invalid(
                "source_needs_tls",
                format!(
                    "cannot connect to PostgreSQL at {}: the URL asks for sslmode=require and this build connects without TLS; use sslmode=disable on a trusted network or a tunnel",
                    self.shown
                ),
            ));
        }
        self.config.connect(NoTls).map_err(|e| self.error("cannot connect to PostgreSQL at", e))
    }

    /// A one-line error naming the host and database, never the password.
    pub(super) fn error(&self, doing: &str, e: ::postgres::Error) -> Error {
        let (code, reason) = match e.as_db_error() {
            Some(db) => {
                let code = match db.code() {
                    c if *c == SqlState::QUERY_CANCELED => {
                        return Error::invalid(
                            "source_timeout",
                            format!(
                                "{doing} {}: a statement ran past the time budget (--statement-timeout)",
                                self.shown
                            ),
                        )
                    }
                    c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                        "source_auth_failed"
                    }
                    c if *c == SqlState::INVALID_CATALOG_NAME => "source_unreadable",
                    c if *c == SqlState::INSUFFICIENT_PRIVILEGE => "source_permission",
                    _ => "source_error",
                };
                (code, db.message().to_string())
            }
            None => ("source_unreadable", chain(&e)),
        };
        let mut message = format!("{doing} {}: {reason}", self.shown);
        // Messages come from the server and the client library; neither should echo the
        // password, but a short or reused one is not worth betting on (4+ characters: a
        // shorter one would blank out ordinary words).
        if let Some(secret) = self.secret.as_deref().filter(|s| s.len() >= 4) {
            message = message.replace(secret, "***");
        }
        Error::invalid(code, message.replace(['\n', '\r'], " "))
    }
}

/// An error and its causes on one line ("error connecting to server: Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Session settings for the read: the budget as `statement_timeout`; `search_path` reduced to
/// pg_catalog so the source's own functions and operators cannot stand in for the built-ins
/// the SELECTs call (CVE-2018-1058); fixed formats; and `row_security = off`, which makes a
/// read that row-level security would filter fail instead of copying a subset (as pg_dump).
fn session_sql(limit: Duration) -> String {
    let ms = limit.as_millis().clamp(1, i32::MAX as u128);
    format!(
        "SET statement_timeout = {ms}; SET search_path = pg_catalog; SET TimeZone = 'UTC'; \
         SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; \
         SET bytea_output = 'hex'; SET row_security = off"
    )
}

/// One table to copy: its oid in pg_catalog and its SQLite definition.
pub(super) struct Source {
    pub(super) oid: u32,
    pub(super) def: TableDef,
}

/// The schema's tables, indexes and the report's findings, read from pg_catalog.
pub(super) struct Catalog {
    pub(super) tables: Vec<Source>,
    pub(super) indexes: Vec<IndexDef>,
    pub(super) types: BTreeMap<(String, Conv), Vec<String>>,
    pub(super) not_exact: Vec<String>,
    pub(super) not_copied: Vec<String>,
}

/// Copies the tables of `opts.schema()` (default `public`) at `url` into a new SQLite file at
/// `dest`, in one read-only REPEATABLE READ transaction, streaming rows in batches of
/// `FETCH_ROWS`. The file appears only when complete (written beside `dest`, then renamed).
pub fn snapshot(url: &str, dest: &Path, opts: &PgOptions, budget: &Budget) -> Result<PgReport> {
    let started = Instant::now();
    let target = Target::parse(url)?;
    let mut client = target.connect()?;
    let fail = |e: ::postgres::Error| target.error("reading PostgreSQL at", e);
    client.batch_execute(&session_sql(budget.limit())).map_err(fail)?;
    let version = client
        .query_one("SELECT current_setting('server_version'), current_setting('server_version_num')::int4", &[])
        .map_err(fail)?;
    let server_version: String = version.try_get(0).map_err(fail)?;
    if version.try_get::<_, i32>(1).map_err(fail)? < OLDEST_SERVER {
        return Err(Error::invalid(
            "source_unsupported",
            format!("PostgreSQL at {} is version {server_version}; sources must be 12 or newer", target.shown),
        ));
    }
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(fail)?;
    let catalog = super::pgcatalog::read_catalog(&mut tx, opts, &target)?;
    let partial = partial_path(dest)?;
    let _ = std::fs::remove_file(&partial);
    let copied = write_file(&mut tx, &partial, opts.schema(), &catalog, &target);
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    tx.commit().map_err(fail)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, dest)?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    let mut not_exact = catalog.not_exact;
    for t in &copied {
        for (column, n) in &t.nans {
            not_exact.push(format!("{}.{column}: {n} NaN value(s) stored as NULL (SQLite has no NaN)", t.name));
        }
    }
    let types = catalog
        .types
        .into_iter()
        .map(|((postgres, conv), columns)| TypeUse {
            postgres,
            sqlite: conv.sqlite_type(),
            how: conv.how(),
            exact: conv.exact(),
            columns,
        })
        .collect();
    Ok(PgReport {
        source: redact_url(url),
        database: target.database.clone(),
        schema: opts.schema().to_string(),
        server_version,
        rows: copied.iter().map(|t| t.rows).sum(),
        tables: copied,
        types,
        not_exact,
        not_copied: catalog.not_copied,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn partial_path(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid("bad_path", format!("{} names no file", dest.display())))?;
    Ok(dest.with_file_name(format!("{name}.partial")))
}

/// Writes the SQLite file: every table, then every row (one transaction, no journal: a failed
/// copy is deleted, never repaired), then the indexes. Returns each table's count.
fn write_file(
    tx: &mut Transaction<'_>,
    path: &Path,
    schema: &str,
    cat: &Catalog,
    target: &Target,
) -> Result<Vec<TableCopy>> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF; BEGIN;")?;
    for t in &cat.tables {
        conn.execute_batch(&create_table_sql(&t.def))?;
    }
    let mut copied = Vec::new();
    for t in &cat.tables {
        copied.push(copy_table(tx, &conn, schema, &t.def, target)?);
    }
    for i in &cat.indexes {
        conn.execute_batch(&create_index_sql(i))?;
    }
    conn.execute_batch("COMMIT")?;
    // A snapshot is read, never written again: a rollback journal leaves no side files.
    conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get::<_, String>(0))?;
    conn.close().map_err(|(_, e)| Error::Sqlite(e))?;
    Ok(copied)
}

fn copy_table(
    tx: &mut Transaction<'_>,
    conn: &Connection,
    schema: &str,
    t: &TableDef,
    target: &Target,
) -> Result<TableCopy> {
    let started = Instant::now();
    let fail = |e: ::postgres::Error| target.error(&format!("reading table {} from PostgreSQL at", t.name), e);
    let from = format!("{}.{}", q(schema), q(&t.name));
    let counted: i64 =
        tx.query_one(format!("SELECT count(*) FROM {from}").as_str(), &[]).map_err(fail)?.try_get(0).map_err(fail)?;
    let exprs: Vec<String> = t.columns.iter().map(|c| c.conv.select(&q(&c.name))).collect();
    let portal = tx.bind(format!("SELECT {} FROM {from}", exprs.join(", ")).as_str(), &[]).map_err(fail)?;
    let marks = vec!["?"; t.columns.len()].join(", ");
    let mut insert = conn.prepare(&format!("INSERT INTO {} VALUES ({marks})", q(&t.name)))?;
    let storage: Vec<Storage> = t.columns.iter().map(|c| c.conv.storage()).collect();
    let mut rows_copied = 0u64;
    let mut nans = vec![0u64; storage.len()];
    loop {
        let rows = tx.query_portal(&portal, FETCH_ROWS).map_err(fail)?;
        for row in &rows {
            insert.execute(rusqlite::params_from_iter(values(row, &storage, &mut nans).map_err(fail)?))?;
        }
        rows_copied += rows.len() as u64;
        if rows.len() < FETCH_ROWS as usize {
            break;
        }
    }
    if rows_copied != counted as u64 {
        return Err(Error::Internal(format!(
            "table {}: counted {counted} rows and copied {rows_copied} in the same snapshot",
            t.name
        )));
    }
    let nans = t.columns.iter().zip(nans).filter(|(_, n)| *n > 0).map(|(c, n)| (c.name.clone(), n)).collect();
    Ok(TableCopy { name: t.name.clone(), rows: rows_copied, ms: started.elapsed().as_secs_f64() * 1000.0, nans })
}

/// One row's values, borrowed from the row where they are text or bytes; NaNs counted per
/// column in `nans`.
fn values<'r>(
    row: &'r Row,
    storage: &[Storage],
    nans: &mut [u64],
) -> std::result::Result<Vec<ToSqlOutput<'r>>, ::postgres::Error> {
    let null = || ToSqlOutput::Borrowed(ValueRef::Null);
    storage
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(match s {
                Storage::Integer => {
                    row.try_get::<_, Option<i64>>(i)?.map_or_else(null, |v| ToSqlOutput::Owned(Value::Integer(v)))
                }
                Storage::Real => match row.try_get::<_, Option<f64>>(i)? {
                    Some(v) if v.is_nan() => {
                        nans[i] += 1;
                        null()
                    }
                    v => v.map_or_else(null, |v| ToSqlOutput::Owned(Value::Real(v))),
                },
                Storage::Text => row
                    .try_get::<_, Option<&str>>(i)?
                    .map_or_else(null, |v| ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes()))),
                Storage::Blob => {
                    row.try_get::<_, Option<&[u8]>>(i)?.map_or_else(null, |v| ToSqlOutput::Borrowed(ValueRef::Blob(v)))
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_budget_is_statement_timeout_in_ms() {
        assert!(session_sql(Duration::from_secs(600)).starts_with("SET statement_timeout = 600000;"));
        assert!(session_sql(Duration::ZERO).starts_with("SET statement_timeout = 1;"), "0 would mean no limit");
        assert!(session_sql(Duration::from_secs(1)).contains("SET search_path = pg_catalog"));
    }

    #[test]
    fn a_placeholder_password_without_pgpassword_is_refused_by_name() {
        // PGPASSWORD is read, never set, here: run only when the environment has none.
        if std::env::var_os("PGPASSWORD").is_some() {
            return;
        }
        let Err(e) = Target::parse("postgresql://crm:***@db.example:5433/crm") else { panic!("accepted ***") };
        assert!(e.to_string().contains("placeholder ***"), "{e}");
        let t = Target::parse("postgresql://crm:s3cret-pw@db.example:5433/crm").unwrap();
        assert_eq!(t.shown, "db.example:5433 (database crm, user crm)");
        assert!(!t.shown.contains("s3cret"));
    }
}
