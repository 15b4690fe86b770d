//! Source databases are untrusted input: a file an operator was handed, or an app's live
//! database. They are opened read-only, with SQLite's defensive mode on, `trusted_schema` off
//! (functions with side effects never run from a view, trigger or default), no extension
//! loading (rusqlite's `load_extension` feature is off) and a time budget per statement.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

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
