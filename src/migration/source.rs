//! Source databases are untrusted input: a file an operator was handed, or an app's live
//! database. They are opened read-only, with SQLite's defensive mode on, `trusted_schema` off
//! (functions with side effects never run from a view, trigger or default), no extension
//! loading (rusqlite's `load_extension` feature is off) and a time budget per statement.
//! Every run reads a snapshot, never the live source: `VACUUM INTO` of a SQLite file, or a
//! PostgreSQL database copied into SQLite (`super::postgres`), which `snapshot_source` picks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::config::PgOptions;
use crate::error::{Error, Result};

/// What reading a PostgreSQL source found (tables, type mappings, what is not exact).
#[cfg(feature = "postgres")]
pub use super::postgres::PgReport;

/// A build without the `postgres` feature never reads PostgreSQL, so it has no such report.
#[cfg(not(feature = "postgres"))]
#[derive(Debug, serde::Serialize)]
pub enum PgReport {}

#[cfg(not(feature = "postgres"))]
impl PgReport {
    pub fn notes(&self) -> Vec<String> {
        match *self {}
    }

    pub fn database(&self) -> &str {
        match *self {}
    }
}

/// The time one statement against a source may take before it is interrupted.
#[derive(Clone)]
pub struct Budget {
    limit: Duration,
    started: Arc<Mutex<Instant>>,
}

impl Budget {
    pub fn new(limit: Duration) -> Self {
        Budget { limit, started: Arc::new(Mutex::new(Instant::now())) }
    }

    /// Starts the clock for the next statement.
    pub fn arm(&self) {
        *self.started.lock() = Instant::now();
    }

    fn exceeded(&self) -> bool {
        self.started.lock().elapsed() > self.limit
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// Defensive settings for any connection that reads a source (attached or main).
pub fn harden(conn: &Connection, budget: &Budget) -> Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = OFF;")?;
    let b = budget.clone();
    conn.progress_handler(100_000, Some(move || b.exceeded()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(())
}

/// Refuses what is not a readable SQLite database file, with a one-line reason.
pub fn check_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::invalid("source_unreadable", format!("cannot read source {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::invalid("source_unreadable", format!("source {} is not a file", path.display())));
    }
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| Error::invalid("source_unreadable", format!("cannot read source {}: {e}", path.display())))?;
    if n < 16 || &head != b"SQLite format 3\0" {
        return Err(Error::invalid(
            "not_sqlite",
            format!("source {} is not a SQLite database (no SQLite header)", path.display()),
        ));
    }
    Ok(())
}

/// Opens a source file read-only with the defensive settings, and checks it can be read.
pub fn open(path: &Path, budget: &Budget) -> Result<Connection> {
    check_file(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| source_error(path, e))?;
    harden(&conn, budget)?;
    budget.arm();
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
        .map_err(|e| source_error(path, e))?;
    Ok(conn)
}

/// A consistent copy of the source (`VACUUM INTO`): the run reads this snapshot, never the
/// live file twice, and rollback and `validate` can compare against it later.
pub fn snapshot(path: &Path, dest: &Path, budget: &Budget) -> Result<()> {
    let conn = open(path, budget)?;
    budget.arm();
    let dest_text =
        dest.to_str().ok_or_else(|| Error::invalid("bad_path", format!("{} is not valid UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_text]).map_err(|e| source_error(path, e))?;
    Ok(())
}

/// `sqlite:PATH`, `sqlite://PATH` or a plain path. A PostgreSQL URL names no file: it is read
/// through `snapshot_source`, or refused with what to do instead by a build without it.
pub fn source_path(url: &str) -> Result<PathBuf> {
    if is_postgres(url) {
        return Err(postgres_unavailable());
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    Ok(PathBuf::from(path))
}

#[cfg(not(feature = "postgres"))]
fn postgres_unavailable() -> Error {
    Error::invalid(
        "postgres_unavailable",
        "PostgreSQL sources are not in this build (built without the `postgres` feature): dump the database into SQLite first (see docs/migration.md)",
    )
}

#[cfg(feature = "postgres")]
fn postgres_unavailable() -> Error {
    Error::Internal("a PostgreSQL source has no file path: it is read through source::snapshot_source".into())
}

/// Refuses, before a run writes anything, a source it cannot read: a file that is not SQLite,
/// or a PostgreSQL URL in a build without the `postgres` feature (a URL is connected to when
/// the snapshot is made).
pub fn check_source(url: &str) -> Result<()> {
    if is_postgres(url) {
        return match cfg!(feature = "postgres") {
            true => Ok(()),
            false => Err(postgres_unavailable()),
        };
    }
    check_file(&source_path(url)?)
}

/// Makes `dest`, the snapshot a run reads instead of the source: `VACUUM INTO` for a SQLite
/// file, a copy in one REPEATABLE READ transaction for PostgreSQL (with its report).
pub fn snapshot_source(url: &str, pg: Option<&PgOptions>, dest: &Path, budget: &Budget) -> Result<Option<PgReport>> {
    if is_postgres(url) {
        #[cfg(feature = "postgres")]
        return super::postgres::snapshot(url, dest, pg.unwrap_or(&PgOptions::default()), budget).map(Some);
        #[cfg(not(feature = "postgres"))]
        {
            let _ = pg;
            return Err(postgres_unavailable());
        }
    }
    snapshot(&source_path(url)?, dest, budget)?;
    Ok(None)
}

/// A source as a SQLite file to read in place (`analyze-schema`): the file itself, or for
/// PostgreSQL a snapshot in the system's temporary directory, removed on drop.
pub struct LocalCopy {
    pub path: PathBuf,
    pub postgres: Option<PgReport>,
    temp_dir: Option<PathBuf>,
}

impl LocalCopy {
    pub fn new(url: &str, pg: Option<&PgOptions>, budget: &Budget) -> Result<LocalCopy> {
        if !is_postgres(url) {
            return Ok(LocalCopy { path: source_path(url)?, postgres: None, temp_dir: None });
        }
        let dir = std::env::temp_dir().join(format!("tenantd-analyze-pg-{}", crate::util::random_hex(6)));
        std::fs::create_dir_all(&dir)?;
        let mut copy = LocalCopy { path: dir.join("source.db"), postgres: None, temp_dir: Some(dir) };
        copy.postgres = snapshot_source(url, pg, &copy.path, budget)?;
        Ok(copy)
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A PostgreSQL URL (the only kind of source that is not a SQLite file).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A source URL as it may be shown, logged and stored: a PostgreSQL URL's password, in the
/// user info or in a `password=` parameter, becomes `***`. Other sources are returned as given.
pub fn redact_url(url: &str) -> String {
    if !is_postgres(url) {
        return url.to_string();
    }
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The last `@` ends the user info: a password with a bare `@` is hidden whole (libpq's
    // parser and ours may split such a URL differently; hiding too much is the safe side).
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{hosts}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Maps SQLite's refusals of a source to one-line errors naming the cause.
pub fn source_error(path: &Path, e: rusqlite::Error) -> Error {
    let shown = path.display();
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            Error::invalid("not_sqlite", format!("source {shown} is not a SQLite database"))
        }
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            Error::invalid("corrupt_source", format!("source {shown} is corrupt: {e}"))
        }
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => Error::invalid(
            "source_locked",
            format!("source {shown} is locked by another process (tried for 5 s); retry when its writer is idle"),
        ),
        // Not bad input: the run was stopped (exit 1).
        Some(rusqlite::ErrorCode::OperationInterrupted) => Error::Retry(format!(
            "a statement on source {shown} ran past the time budget (--statement-timeout); raise it for a large source"
        )),
        Some(rusqlite::ErrorCode::CannotOpen) => {
            Error::invalid("source_unreadable", format!("cannot open source {shown}: {e}"))
        }
        _ => Error::invalid("source_error", format!("reading source {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_pass_the_precheck_only_with_the_feature() {
        let r = check_source("postgresql://crm@db.example/crm");
        match cfg!(feature = "postgres") {
            true => assert!(r.is_ok(), "{r:?}"),
            false => assert!(r.unwrap_err().to_string().contains("not in this build")),
        }
        assert!(check_source("/nonexistent/app.db").unwrap_err().to_string().contains("cannot read source"));
    }

    #[test]
    fn redact_url_hides_every_password_form() {
        let cases = [
            ("postgresql://crm:s3cr%40t@127.0.0.1:5432/crm", "postgresql://crm:***@127.0.0.1:5432/crm"),
            ("postgres://crm:p@ss@db.example/crm?sslmode=disable", "postgres://crm:***@db.example/crm?sslmode=disable"),
            (
                "postgresql://crm@db/crm?password=hunter2&application_name=x",
                "postgresql://crm@db/crm?password=***&application_name=x",
            ),
            ("postgresql://crm:***@db/crm", "postgresql://crm:***@db/crm"),
            ("postgresql://db/crm", "postgresql://db/crm"),
            ("postgresql://crm:pw@h1:5432,h2:5433/crm", "postgresql://crm:***@h1:5432,h2:5433/crm"),
            ("/data/app:with:colons@x.db", "/data/app:with:colons@x.db"),
            ("sqlite:app.db", "sqlite:app.db"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
            assert_eq!(redact_url(&redact_url(url)), want, "idempotent: {url}");
        }
    }
}
