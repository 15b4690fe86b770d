//! The control plane: `catalog.db`. Owns tenants, domains, configs, plans, subscriptions, the
//! platform audit chain, deletion records and the schema ledger. Everything here is plain SQL
//! over a small pool; callers get typed records back.

pub mod audit;
pub mod billing;
pub mod identity;
pub mod imports;
pub mod ledger;
pub mod tenants;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use scheduled_thread_pool::ScheduledThreadPool;

use crate::db::{self, Durability, Pool, PooledConn};
use crate::error::{Error, Result};

/// Catalog schema version (PRAGMA user_version of catalog.db). Bump with a migration step in
/// `upgrade` when `schema.sql` changes shape in a way `IF NOT EXISTS` cannot express.
pub const CATALOG_VERSION: i64 = 5;

const SCHEMA_SQL: &str = include_str!("../../schema.sql");

#[derive(Clone)]
pub struct Catalog {
    pool: Pool,
    path: PathBuf,
    /// Connections handed out: lets tests and metrics prove warm requests skip the catalog.
    checkouts: Arc<std::sync::atomic::AtomicU64>,
}

impl Catalog {
    /// Opens `catalog.db`, creating it (and its directory) only when `create` is set.
    pub fn open(path: &Path, create: bool, threads: Arc<ScheduledThreadPool>) -> Result<Catalog> {
        db::check_sqlite_version()?;
        if !path.is_file() {
            if !create {
                return Err(Error::invalid(
                    "no_catalog",
                    format!(
                        "no catalog at {}: run `tenantd init` first, or point --data-dir / data_dir at an existing data directory",
                        path.display()
                    ),
                ));
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let flags =
            if create { db::existing_file_flags() | OpenFlags::SQLITE_OPEN_CREATE } else { db::existing_file_flags() };
        // Apply the schema on a plain connection first so pool connections find it in place.
        let conn = Connection::open_with_flags(path, flags)?;
        db::configure(&conn, Durability::Full)?;
        apply_schema(&conn)?;
        drop(conn);
        let manager = SqliteConnectionManager::file(path)
            .with_flags(db::existing_file_flags())
            .with_init(|c| db::configure(c, Durability::Full));
        let pool = db::build_pool(manager, 8, threads)?;
        Ok(Catalog { pool, path: path.to_path_buf(), checkouts: Arc::default() })
    }

    pub fn conn(&self) -> Result<PooledConn> {
        self.checkouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.pool.get()?)
    }

    /// How many times a catalog connection was checked out since start.
    pub fn checkouts(&self) -> u64 {
        self.checkouts.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an IMMEDIATE transaction (takes the write lock up front so two writers never
    /// deadlock on upgrade) and commits when it returns Ok.
    pub fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// `write` for background work (the usage flush): not counted in `checkouts`, which is
    /// about what requests cost.
    pub fn background_write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// A connection of its own for bulk background work (usage downsampling, generated
    /// history) with a page cache of `cache_bytes`: the pooled ones keep 2 MB, which makes a
    /// pass over a year of usage mostly reads from the OS. Closed (and its cache freed) on drop.
    pub fn bulk_conn(&self, cache_bytes: u64) -> Result<rusqlite::Connection> {
        let conn = db::open_existing(&self.path, db::Durability::Full)?;
        conn.execute_batch(&format!("PRAGMA cache_size=-{}", cache_bytes / 1024))?;
        Ok(conn)
    }

    /// Runs `f` in an IMMEDIATE transaction on `conn` (a `bulk_conn`) and commits when it
    /// returns Ok.
    pub fn write_on<T>(
        conn: &mut rusqlite::Connection,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Flushes the WAL into the main file (at shutdown), waiting for no reader: Litestream holds
    /// a read transaction on every file it replicates, and a shutdown must not wait a busy
    /// timeout for it (the WAL then stays, and the next start reads it back).
    pub fn checkpoint(&self) -> Result<()> {
        // A connection of its own: the pool's keep their busy handler.
        let conn = crate::db::open_existing(self.path(), crate::db::Durability::Full)?;
        conn.busy_handler(None)?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    }

    /// Records the configured plans (`config::PlanConfig`s, stored as JSON) so reports can name
    /// their limits.
    pub fn sync_plans<L: serde::Serialize>(&self, plans: &std::collections::BTreeMap<String, L>) -> Result<()> {
        let now = crate::util::now_unix();
        self.write(|tx| {
            for (name, limits) in plans {
                let json = serde_json::to_string(limits).map_err(|e| Error::Internal(e.to_string()))?;
                tx.execute(
                    "INSERT INTO plans(name, limits_json, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET limits_json = excluded.limits_json,
                       updated_at = excluded.updated_at WHERE limits_json <> excluded.limits_json",
                    rusqlite::params![name, json, now],
                )?;
            }
            Ok(())
        })
    }
}

fn apply_schema(conn: &Connection) -> Result<()> {
    let version = db::user_version(conn)?;
    if version > CATALOG_VERSION {
        return Err(Error::Internal(format!(
            "catalog version {version} is newer than this tenantd understands ({CATALOG_VERSION}): \
             run the newer tenantd or restore a backup"
        )));
    }
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA_SQL}\n PRAGMA user_version = {CATALOG_VERSION}; COMMIT;"))?;
    Ok(())
}

#[cfg(test)]
pub(crate) fn test_threads() -> Arc<ScheduledThreadPool> {
    Arc::new(ScheduledThreadPool::new(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_applies_twice_and_refuses_missing_without_create() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("catalog.db");
        assert!(Catalog::open(&p, false, test_threads()).is_err());
        assert!(!p.exists(), "open without create must not create a file");
        Catalog::open(&p, true, test_threads()).unwrap();
        let c = Catalog::open(&p, false, test_threads()).unwrap();
        let v = db::user_version(&c.conn().unwrap()).unwrap();
        assert_eq!(v, CATALOG_VERSION);
    }
}
