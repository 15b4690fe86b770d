//! SQLite plumbing shared by the catalog and the tenant store: version gate, connection pragmas,
//! pool construction. Numbers here come from measurements in DESIGN §4.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::error::{Error, Result};

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<SqliteConnectionManager>;

/// SQLite 3.51.3 fixed a WAL-reset bug that can corrupt a database when a checkpoint races
/// a writer (sqlite.org/wal.html#walresetbug); refuse anything older.
pub const MIN_SQLITE: i32 = 3_051_003;

pub fn check_sqlite_version() -> Result<()> {
    let v = rusqlite::version_number();
    if v < MIN_SQLITE {
        return Err(Error::Internal(format!(
            "linked SQLite {} is older than 3.51.3 (WAL-reset bug); rebuild with the bundled SQLite",
            rusqlite::version()
        )));
    }
    Ok(())
}

/// How hard a database syncs. The catalog and audit-heavy control plane use `Full`; tenant data
/// uses `Normal`, which in WAL mode is durable against application crashes and loses at most
/// the last transactions on power loss (sqlite.org/pragma.html#pragma_synchronous).
#[derive(Clone, Copy, Debug)]
pub enum Durability {
    Normal,
    Full,
}

/// Times a connection found the database locked and waited to retry (for metrics).
pub static BUSY_RETRIES: AtomicU64 = AtomicU64::new(0);
/// Pool checkouts that waited more than `POOL_WAIT_THRESHOLD`, and the time they waited.
pub static POOL_WAITS: AtomicU64 = AtomicU64::new(0);
pub static POOL_WAIT_MICROS: AtomicU64 = AtomicU64::new(0);
pub const POOL_WAIT_THRESHOLD: Duration = Duration::from_millis(1);

/// SQLite's own busy-timeout schedule (sqliteDefaultBusyCallback), counted: retry after 1, 2,
/// 5, ... 100 ms, giving up once 5 s have been spent waiting.
fn busy_wait(attempt: i32) -> bool {
    const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    const TOTAL_MS: u64 = 5000;
    let n = attempt.max(0) as usize;
    let spent: u64 = DELAYS_MS.iter().take(n).sum::<u64>() + (n.saturating_sub(DELAYS_MS.len()) as u64) * 100;
    if spent >= TOTAL_MS {
        return false;
    }
    BUSY_RETRIES.fetch_add(1, Ordering::Relaxed);
    let delay = DELAYS_MS.get(n).copied().unwrap_or(100).min(TOTAL_MS - spent);
    std::thread::sleep(Duration::from_millis(delay));
    true
}

/// Bytes a `-wal` file is cut back to after a checkpoint resets it. SQLite otherwise keeps the
/// file at its largest, and storage quotas count it: one burst of writes would shrink a
/// tenant's room for good.
pub const WAL_SIZE_LIMIT: u64 = 4 * 1024 * 1024;

/// WAL pages after which a tenant write checkpoints (SQLite's own autocheckpoint default).
pub const CHECKPOINT_PAGES: i32 = 1000;

thread_local! {
    /// Set by `note_wal_commit` when this thread's last commit left the WAL past
    /// `CHECKPOINT_PAGES`; taken by `take_checkpoint_due`.
    static CHECKPOINT_DUE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// WAL hook of tenant writer connections, replacing SQLite's autocheckpoint, which runs inside
/// `COMMIT` on the writer: its syncs (~2 ms each on this machine's disk) would stall every other
/// writer of the tenant. The commit only notes that a checkpoint is due (`take_checkpoint_due`)
/// and the store runs it in the background. If that falls behind, past four times the threshold
/// the hook checkpoints inline as SQLite would, so the WAL stays bounded whatever happens.
pub fn note_wal_commit(wal: &rusqlite::hooks::Wal, pages: std::os::raw::c_int) -> rusqlite::Result<()> {
    if pages >= 4 * CHECKPOINT_PAGES {
        // As SQLite's own hook: busy means another connection is checkpointing right now.
        let _ = wal.checkpoint();
    } else if pages >= CHECKPOINT_PAGES {
        CHECKPOINT_DUE.with(|d| d.set(true));
    }
    Ok(())
}

/// Marks a checkpoint due for this thread's commit (the capturing hook, `replica::capture`).
pub fn mark_checkpoint_due() {
    CHECKPOINT_DUE.with(|d| d.set(true));
}

/// Whether this thread's last commit asked for a checkpoint (and forgets the request).
pub fn take_checkpoint_due() -> bool {
    CHECKPOINT_DUE.with(|d| d.replace(false))
}

/// A `BEGIN IMMEDIATE` … `COMMIT` transaction whose two statements are prepared once per
/// connection. rusqlite's `Transaction` parses them again on every use: measured with callgrind,
/// ~20,000 instructions per write, 7% of a record create. Rolls back if dropped uncommitted.
pub struct WriteTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    pub fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn, open: true })
    }

    pub fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
        }
    }
}

/// Closing the last connection to a file normally checkpoints the WAL, syncs the file twice and
/// deletes `-wal` and `-shm`: for a tenant evicted from the open set that was most of the ~2 ms an
/// eviction cost, paid by whichever request caused it. Tenant connections skip it: the WAL stays
/// beside the file (SQLite reads it back when the tenant is opened again, and the next
/// checkpoint folds it in), which is what WAL mode with `synchronous = NORMAL` promises anyway.
pub fn keep_wal_on_close(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// Settings for a database whose schema came from outside (a migrated app kept on its own
/// schema): functions with side effects never run from its views, triggers or defaults, and
/// SQLite's defensive mode refuses writes that could corrupt the file on purpose.
pub fn distrust_schema(conn: &Connection) -> Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    Ok(())
}

/// Page cache per connection (`PRAGMA cache_size`).
pub const PAGE_CACHE_BYTES: u64 = 2000 * 1024;

/// Pragmas every connection gets when it is opened.
pub fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.busy_handler(Some(busy_wait))?;
    // journal_mode returns a row; pragma_update ignores it correctly.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA cache_size=-{}; PRAGMA temp_store=MEMORY; \
         PRAGMA journal_size_limit={WAL_SIZE_LIMIT};",
        PAGE_CACHE_BYTES / 1024
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Flags for opening an existing file: never create (a missing tenant file is an error, not a
/// new empty database), never follow a symlink in its place (issue 18: a tenant file replaced
/// by a link would be served, and written beside, wherever the link points).
pub fn existing_file_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
}

/// What `refuse_link` expects to find at a path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    File,
    Dir,
}

/// Refuses a path that is a symlink or not what is expected (issue 18: a tenant's file or
/// directory replaced by a link would be read and written wherever the link points). A missing
/// path is an error when `required`, else fine. One `lstat`.
pub fn refuse_link(path: &Path, expect: Expect, required: bool) -> Result<()> {
    let (what, is) = match expect {
        Expect::File => ("a regular file", std::fs::Metadata::is_file as fn(&std::fs::Metadata) -> bool),
        Expect::Dir => ("a directory", std::fs::Metadata::is_dir as fn(&std::fs::Metadata) -> bool),
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(Error::unavailable(format!("{} is a symlink; tenantd never follows one", path.display())))
        }
        Ok(m) if !is(&m) => Err(Error::unavailable(format!("{} is not {what}", path.display()))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::unavailable(format!("{} is missing", path.display())))
        }
        Err(e) => Err(Error::unavailable(format!("cannot inspect {}: {e}", path.display()))),
    }
}

/// Refuses a database file, or its `-wal`/`-shm` companion, that is a symlink or not a regular
/// file: SQLite's `SQLITE_OPEN_NOFOLLOW` covers the database file only, and would write the
/// companions through a link. Their directories are the caller's to check (`Paths`).
pub fn check_regular_files(path: &Path) -> Result<()> {
    refuse_link(path, Expect::File, true)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        refuse_link(Path::new(&p), Expect::File, false)?;
    }
    Ok(())
}

/// Opens an existing database file without creating it.
pub fn open_existing(path: &Path, durability: Durability) -> Result<Connection> {
    check_regular_files(path)?;
    let conn = Connection::open_with_flags(path, existing_file_flags())?;
    configure(&conn, durability)?;
    Ok(conn)
}

/// Opens a file for reading only (schema status, export checks).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    check_regular_files(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// A pooled connection unused this long is closed (the catalog's by r2d2's reaper, which looks
/// every 30 s; tenants' by `TenantStore::close_idle_readers`).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request waits for a pooled connection when all are busy (then a 503 `busy`).
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a small pool for one database file. r2d2's defaults are wrong for thousands of pools
/// (10 connections up front, 3 threads each, `SELECT 1` on every checkout): no idle minimum,
/// no checkout test, and one shared reaper thread pool.
pub fn build_pool(manager: SqliteConnectionManager, max_size: u32, threads: Arc<ScheduledThreadPool>) -> Result<Pool> {
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .idle_timeout(Some(POOL_IDLE_TIMEOUT))
        .max_lifetime(None)
        .connection_timeout(POOL_WAIT_TIMEOUT)
        .thread_pool(threads)
        .build(manager)
        .map_err(Error::from)
}

/// Integrity check; returns the first problem SQLite reports.
pub fn integrity_check(conn: &Connection) -> Result<()> {
    let msg: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if msg == "ok" {
        Ok(())
    } else {
        Err(Error::invalid("corrupt_database", format!("integrity check failed: {msg}")))
    }
}

/// `PRAGMA schema_version`: SQLite bumps it on every schema change.
pub fn schema_cookie(conn: &Connection) -> Result<i64> {
    Ok(conn.prepare_cached("PRAGMA schema_version")?.query_row([], |r| r.get(0))?)
}

pub fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// A fingerprint of the schema: SHA-256 over the sorted `sqlite_master` entries of the app's
/// objects (SQLite's, tenantd's own `_tenantd_*` and Litestream's `_litestream_*` tables excluded, and indexes a tenant admin
/// applied from the index advisor, `idx_advised_*`). Two databases at the same migration
/// version must agree; a difference is drift.
pub fn schema_fingerprint(conn: &Connection) -> Result<String> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' AND tbl_name NOT LIKE '\\_tenantd\\_%' ESCAPE '\\' \
         AND tbl_name NOT LIKE '\\_litestream\\_%' ESCAPE '\\' \
         AND NOT (type = 'index' AND name LIKE 'idx\\_advised\\_%' ESCAPE '\\') ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "{}|{}|{}|{}\n",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            normalize_sql(&r.get::<_, String>(3)?)
        ))
    })?;
    let mut text = String::new();
    for row in rows {
        text.push_str(&row?);
    }
    Ok(crate::util::sha256_hex(text.as_bytes()))
}

/// Folds whitespace so formatting differences are not drift.
fn normalize_sql(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_wal_mode_and_a_wal_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        configure(&conn, Durability::Normal).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let limit: i64 = conn.query_row("PRAGMA journal_size_limit", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(limit as u64, WAL_SIZE_LIMIT);
    }
}

#[cfg(test)]
mod wal_tests {
    use super::*;

    /// A writer connection as the store makes one, with a table of ~3-page rows.
    fn writer(path: &Path) -> Connection {
        let w = Connection::open(path).unwrap();
        configure(&w, Durability::Normal).unwrap();
        w.wal_hook(Some(note_wal_commit));
        w.execute_batch("CREATE TABLE IF NOT EXISTS t(x BLOB)").unwrap();
        w
    }

    /// Bytes of `frames` WAL frames of a 4 KiB page (and the WAL header).
    fn wal_bytes(frames: u64) -> u64 {
        32 + frames * (24 + 4096)
    }

    #[test]
    fn deferred_checkpoints_keep_the_wal_near_the_threshold_with_a_reader_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = writer(&path);
        let r = Connection::open(&path).unwrap();
        // ~3 frames per commit: 4,500 frames in all, which unchecked would be a ~18 MB WAL.
        for i in 0..1500 {
            let tx = WriteTx::begin(&w).unwrap();
            tx.execute("INSERT INTO t VALUES (zeroblob(8000))", []).unwrap();
            tx.commit().unwrap_or_else(|e| panic!("commit {i}: {e:?}"));
            if take_checkpoint_due() {
                w.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).unwrap();
            }
            let _: i64 = r.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len();
        assert!(wal <= wal_bytes(CHECKPOINT_PAGES as u64 + 8), "WAL grew to {wal} bytes");
    }

    #[test]
    fn a_write_path_that_never_checkpoints_still_stops_at_four_times_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = writer(&path);
        // ~7,500 frames (a ~31 MB WAL unchecked), nobody taking the due checkpoints.
        for _ in 0..2500 {
            let tx = WriteTx::begin(&w).unwrap();
            tx.execute("INSERT INTO t VALUES (zeroblob(8000))", []).unwrap();
            tx.commit().unwrap();
        }
        let _ = take_checkpoint_due();
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len();
        assert!(wal <= wal_bytes(4 * CHECKPOINT_PAGES as u64 + 8), "WAL grew to {wal} bytes");
        let n: i64 = w.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2500);
    }

    #[test]
    fn write_tx_commits_or_rolls_back_when_dropped() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        for keep in [true, false, true] {
            let tx = WriteTx::begin(&conn).unwrap();
            tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
            if keep {
                tx.commit().unwrap();
            } else {
                drop(tx);
            }
            assert!(conn.is_autocommit());
        }
        let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }
}
