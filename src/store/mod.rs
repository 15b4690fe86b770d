//! Per-tenant SQLite files: paths, the template new tenants are copied from, and the bounded
//! set of open tenant pools. Request paths open files **without** create: a missing file is
//! `tenant_unavailable`, never a new empty database.

pub mod advisor;
pub mod audit_tables;
mod checkpoint;
pub mod constraints;
mod freeze;
pub mod group;
pub(crate) mod introspect;
mod paths;
pub mod query;
mod readers;
pub mod schema;
mod shapes;
mod sieve;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{ArcMutexGuard, Mutex, RawMutex};
use rusqlite::Connection;
use scheduled_thread_pool::ScheduledThreadPool;

use crate::db::{self, Durability};
use crate::error::{Error, Result};
use crate::ids::TenantId;
pub use paths::Paths;
pub use readers::ReaderConn;
use readers::Readers;
use schema::TenantSchema;
use shapes::{shaped, Shapes};
use sieve::Sieve;

/// One open tenant: its connections and its introspected schema.
pub struct TenantHandle {
    pub id: TenantId,
    /// Read connections beside the writer, for reads that overlap (`read_conn`).
    readers: Arc<Readers>,
    schema: Mutex<Option<Arc<query::SchemaInfo>>>,
    shapes: Arc<Shapes>,
    /// Statement statistics and slow queries since the tenant was opened.
    pub stats: stats::StatementStats,
    path: PathBuf,
    /// The tenant's one writer connection, opened on the first write; see `writer`.
    writer: Mutex<Option<Arc<Mutex<Connection>>>>,
    /// A background checkpoint of this tenant's WAL is queued or running.
    checkpoint_queued: AtomicBool,
    /// The storage ceiling (`PRAGMA max_page_count`) last set on the writer, `UNKNOWN` before
    /// the first; read and written only while holding the writer (`set_ceiling`).
    ceiling: AtomicU64,
    /// The file's page size, read once (0 before).
    page_size: AtomicU64,
    /// The transaction data API writes share on the writer (see `group`).
    pub group: group::Group,
    /// Writes are refused (`TenantMoving`): the tenant is being moved off this node
    /// (`TenantStore::freeze`). Checked while holding the writer, so nothing commits after the
    /// write that froze it.
    frozen: AtomicBool,
}

const UNKNOWN: u64 = u64::MAX;

/// The tenant's writer connection, locked (see `TenantHandle::writer`).
pub type Writer = ArcMutexGuard<RawMutex, Connection>;

/// A connection for one request: from the pool or the idle writer for reads, the tenant's
/// writer for writes.
#[allow(clippy::large_enum_variant, reason = "one per request on the stack; boxing would allocate per read")]
pub enum TenantConn {
    Pooled(ReaderConn),
    Writer(Writer),
    /// A read on the writer's connection, taken because it was free and no pooled one was idle.
    Borrowed(BorrowedWriter),
    /// A read answered by a read replica's copy of the file (`replica`).
    Mirror(crate::replica::MirrorRead),
}

impl std::ops::Deref for TenantConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            TenantConn::Pooled(c) => c,
            TenantConn::Writer(c) => c,
            TenantConn::Borrowed(c) => &c.guard,
            TenantConn::Mirror(c) => c,
        }
    }
}

impl std::ops::DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            TenantConn::Pooled(c) => c,
            TenantConn::Writer(c) => c,
            TenantConn::Borrowed(c) => &mut c.guard,
            TenantConn::Mirror(c) => c,
        }
    }
}

/// The writer lent to a read. While it is out, this thread's writers (by address) are listed in
/// `BORROWED`, so a write the same request attempts on the same tenant fails with an error
/// instead of waiting forever for a lock its own thread holds.
pub struct BorrowedWriter {
    guard: Writer,
    key: usize,
}

thread_local! {
    static BORROWED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for BorrowedWriter {
    fn drop(&mut self) {
        BORROWED.with(|b| {
            let mut b = b.borrow_mut();
            if let Some(i) = b.iter().rposition(|k| *k == self.key) {
                b.swap_remove(i);
            }
        });
    }
}

impl TenantHandle {
    /// A read connection other than the writer (see `Readers`).
    pub fn conn(&self) -> Result<ReaderConn> {
        let t0 = std::time::Instant::now();
        let conn = self.readers.get(db::POOL_WAIT_TIMEOUT)?;
        let waited = t0.elapsed();
        if waited > db::POOL_WAIT_THRESHOLD {
            db::POOL_WAITS.fetch_add(1, Ordering::Relaxed);
            db::POOL_WAIT_MICROS.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        }
        Ok(conn)
    }

    /// The tenant's writer connection, locked: every write of this process to the tenant file
    /// goes through it, one at a time. Why one connection and a mutex rather than any pooled
    /// connection and SQLite's locking:
    /// - SQLite admits one writer and makes the others poll with sleeps of 1, 2, 5… ms (its busy
    ///   handler): four workers creating records in one tenant slept 5,653 times in 8 s. The
    ///   mutex hands over as soon as the writer is done. (Other processes, the CLI, still meet
    ///   the busy handler.)
    /// - A connection drops its whole page cache when another connection wrote since its last
    ///   transaction. Writers taking turns on pooled connections re-read every b-tree page they
    ///   touch (13 `pread`s per create); the one writer keeps its cache.
    ///
    /// A group transaction that data API writes left open is committed before this returns
    /// (see `group`). Never call this while already holding it (the mutex is not reentrant).
    pub fn writer(&self) -> Result<Writer> {
        let w = self.lock_writer()?;
        self.group.settle(&w);
        Ok(w)
    }

    /// Waits for the group commit `generation` that a write left open (see `group`). The write
    /// that takes the writer next commits it; should that ever not happen, the waiter takes the
    /// writer itself after a while, which commits whatever group is open (`writer`), so no
    /// request can hang on a transaction nobody will end.
    pub fn wait_for_group(&self, generation: u64) -> Result<()> {
        loop {
            if let Some(outcome) = self.group.wait_for(generation, std::time::Duration::from_millis(200)) {
                return outcome;
            }
            drop(self.writer()?);
        }
    }

    /// `writer`, for a data API write that joins an open group transaction (`Work::write`).
    pub fn writer_for_group(&self) -> Result<Writer> {
        self.lock_writer()
    }

    fn lock_writer(&self) -> Result<Writer> {
        let cell = {
            let mut slot = self.writer.lock();
            match slot.as_ref() {
                Some(w) => w.clone(),
                None => {
                    let w = Arc::new(Mutex::new(open_writer(&self.path)?));
                    *slot = Some(w.clone());
                    w
                }
            }
        };
        let key = Arc::as_ptr(&cell) as usize;
        if BORROWED.with(|b| b.borrow().contains(&key)) {
            return Err(Error::Internal(format!(
                "write to tenant {} while this request reads on its writer connection",
                self.id
            )));
        }
        let w = match cell.try_lock_arc() {
            Some(w) => w,
            None => {
                // Counted while blocked: a write that sees someone queued may leave its group
                // transaction open for them (see `group`).
                self.group.queued.fetch_add(1, Ordering::AcqRel);
                let w = cell.lock_arc();
                self.group.queued.fetch_sub(1, Ordering::AcqRel);
                w
            }
        };
        if self.frozen.load(Ordering::Acquire) {
            return Err(Error::TenantMoving);
        }
        Ok(w)
    }

    /// A connection for a read: the writer's if no one holds it, else the pool's (an idle one,
    /// or a new one if the pool has room). A tenant used by one request at a time so keeps a
    /// single connection (three descriptors: file, WAL, shared memory) and parses its schema
    /// once; only tenants read concurrently open pooled connections beside it, and those go
    /// idle again when the overlap ends (and are closed after `POOL_IDLE_TIMEOUT`). Preferring
    /// an idle pooled connection instead kept it busy for good: under a Zipf load over 10,000
    /// tenants nearly every open tenant ended up holding two connections (~40 MiB more RSS).
    /// A read on the writer holds up the tenant's writes while it runs: long reads without a
    /// statement deadline use `scan_conn`.
    pub fn read_conn(&self) -> Result<TenantConn> {
        let writer = self.writer.lock().as_ref().and_then(|w| w.try_lock_arc());
        // Not while a group transaction is open on it: the read would see its writes before
        // they are committed.
        if let Some(guard) = writer.filter(|_| !self.group.is_open()) {
            let key = Arc::as_ptr(ArcMutexGuard::mutex(&guard)) as usize;
            BORROWED.with(|b| b.borrow_mut().push(key));
            return Ok(TenantConn::Borrowed(BorrowedWriter { guard, key }));
        }
        Ok(TenantConn::Pooled(self.conn()?))
    }

    /// A connection for a read that may take long and has no statement deadline (audit log
    /// scans, index advice): an idle pooled one if there is one, so that it does not hold up the
    /// tenant's writes, else as `read_conn`.
    pub fn scan_conn(&self) -> Result<TenantConn> {
        if self.readers.has_idle() {
            return Ok(TenantConn::Pooled(self.conn()?));
        }
        self.read_conn()
    }

    /// Sets the storage ceiling on the tenant's writer (`writer` must be this tenant's
    /// `writer()`) unless the last one set is the same. Consecutive writes of a tenant nearly
    /// always want the same ceiling, and asking SQLite costs a read transaction of its own
    /// (~7,000 instructions), setting it a fresh parse. A ceiling below the file's size is raised
    /// by SQLite to that size; such a ceiling is not remembered, so it is set again on the next
    /// write (the file may have shrunk meanwhile, e.g. restored by another process).
    pub fn set_ceiling(&self, writer: &Writer, pages: u64) -> Result<()> {
        if self.ceiling.load(Ordering::Relaxed) != pages {
            self.ceiling.store(UNKNOWN, Ordering::Relaxed);
            let set: i64 = writer.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?;
            if u64::try_from(set).is_ok_and(|set| set == pages) {
                self.ceiling.store(pages, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The tenant file's page size (the storage ceiling counts pages).
    pub fn page_size(&self, conn: &Connection) -> Result<u64> {
        match self.page_size.load(Ordering::Relaxed) {
            0 => {
                let size = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))?.max(512) as u64;
                self.page_size.store(size, Ordering::Relaxed);
                Ok(size)
            }
            size => Ok(size),
        }
    }

    /// (open connections, idle ones): the pool's and the writer.
    pub fn connections(&self) -> (u32, u32) {
        let (open, idle) = self.readers.state();
        let writer = self.writer.lock().as_ref().map(|w| (1, u32::from(!w.is_locked()))).unwrap_or((0, 0));
        (open as u32 + writer.0, idle as u32 + writer.1)
    }
}

/// Counters for health and metrics.
#[derive(Default)]
pub struct StoreStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub lazy_migrations: AtomicU64,
    /// Evicted tenants whose WAL was checkpointed and truncated as they closed (`retire`).
    pub close_checkpoints: Arc<AtomicU64>,
}

/// The open tenants (bounded, SIEVE eviction: `sieve`). The global lock is held only for map operations: opening a cold
/// tenant (disk, pragmas, maybe a lazy migration) happens outside it.
pub struct TenantStore {
    paths: Paths,
    schema: Arc<TenantSchema>,
    pool_size: u32,
    /// Runs WAL checkpoints (`after_write`), so no request waits for their syncs.
    checkpointer: ScheduledThreadPool,
    /// Evicted tenants queued on `checkpointer` for their closing checkpoint (`retire`).
    retiring: Arc<AtomicU64>,
    monitor: stats::QueryMonitorConfig,
    open: Mutex<Sieve<TenantId, Arc<TenantHandle>>>,
    pub stats: StoreStats,
    shapes: Arc<Shapes>,
    /// Schema digests from earlier opens, by schema cookie (skips re-reading `sqlite_master`).
    digests: introspect::Digests,
    /// Tenants whose last open failed, with why (readiness reports them as `warn`).
    unavailable: Mutex<std::collections::BTreeMap<TenantId, String>>,
    /// Tenants whose writes are refused while they move to another node (`freeze`).
    frozen: Mutex<std::collections::HashSet<TenantId>>,
}

/// What the store needs to know about a tenant to open it.
pub struct OpenRequest<'a> {
    pub id: &'a TenantId,
    /// Set by `schema rollback`: lazy migration must not go past this version.
    pub schema_hold: Option<i64>,
    /// The tenant keeps its own schema: never migrated with the fleet's files, and opened
    /// with the settings used for untrusted schemas (`trusted_schema` off, defensive).
    pub custom_schema: bool,
}

/// Result of opening: whether a lazy migration ran (the caller records it in the catalog).
pub struct Opened {
    pub handle: Arc<TenantHandle>,
    pub migrated_from: Option<i64>,
}

impl TenantStore {
    pub fn new(
        paths: Paths,
        schema: Arc<TenantSchema>,
        max_open: usize,
        pool_size: u32,
        monitor: stats::QueryMonitorConfig,
    ) -> Self {
        TenantStore {
            paths,
            schema,
            pool_size,
            checkpointer: ScheduledThreadPool::builder()
                .num_threads(1)
                .thread_name_pattern("tenantd-checkpoint-{}")
                .build(),
            retiring: Arc::default(),
            monitor,
            open: Mutex::new(Sieve::new(max_open)),
            stats: StoreStats::default(),
            unavailable: Mutex::default(),
            frozen: Mutex::default(),
            shapes: Arc::default(),
            digests: introspect::Digests::default(),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn schema(&self) -> &Arc<TenantSchema> {
        &self.schema
    }

    /// The open handle of a tenant, if it is open (without counting as a use).
    pub fn peek(&self, id: &TenantId) -> Option<Arc<TenantHandle>> {
        self.open.lock().peek(id).cloned()
    }

    /// Tenants whose last open failed, and why.
    pub fn unavailable(&self) -> Vec<(TenantId, String)> {
        self.unavailable.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    /// Closes the read connections that open tenants have not used for `idle_for`; returns how
    /// many (the background loop calls this; evicted tenants close theirs when dropped).
    pub fn close_idle_readers(&self, idle_for: std::time::Duration) -> usize {
        let open: Vec<Arc<TenantHandle>> = self.open.lock().iter().map(|(_, h)| h.clone()).collect();
        open.iter().map(|h| h.readers.close_idle(idle_for)).sum()
    }

    /// The open handle for a tenant, opening (and lazily migrating) it on a miss.
    pub fn get(&self, req: &OpenRequest<'_>) -> Result<Opened> {
        if let Some(h) = self.open.lock().get(req.id).cloned() {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Opened { handle: h, migrated_from: None });
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let (handle, migrated_from) = match self.open_cold(req) {
            Ok(opened) => {
                let mut broken = self.unavailable.lock();
                if !broken.is_empty() {
                    broken.remove(req.id);
                }
                opened
            }
            Err(e) => {
                let mut broken = self.unavailable.lock();
                // Bounded: a fleet of broken files is reported by count, not kept forever.
                if broken.len() < 1000 || broken.contains_key(req.id) {
                    broken.insert(req.id.clone(), e.log_detail());
                }
                return Err(e);
            }
        };
        let handle = Arc::new(handle);
        let evicted = {
            let mut open = self.open.lock();
            if let Some(existing) = open.get(req.id).cloned() {
                // Another thread opened it meanwhile: keep theirs, drop ours outside the lock.
                return Ok(Opened { handle: existing, migrated_from });
            }
            open.push(req.id.clone(), handle.clone())
        };
        if let Some((old_id, old)) = evicted {
            if old_id != *req.id {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                self.retire(old);
            }
        }
        Ok(Opened { handle, migrated_from })
    }

    fn open_cold(&self, req: &OpenRequest<'_>) -> Result<(TenantHandle, Option<i64>)> {
        let path = self.paths.tenant_db(req.id);
        self.paths.check_tenant_dirs(req.id)?;
        // The first connection becomes the tenant's writer (it also serves reads while it is
        // free, see `read_conn`); `readers` opens connections only when reads overlap.
        let mut conn = open_writer(&path)?;
        crate::replica::capture::opened(&path);
        let readers = Readers::new(
            path.clone(),
            self.pool_size,
            if req.custom_schema { open_distrusted_reader } else { open_reader },
        );
        // One read of sqlite_master serves the audit-table check and the schema's identity,
        // and only when the schema changed since this tenant was last open.
        let cookie = db::schema_cookie(&conn)?;
        let digest = self.digests.get(req.id, &conn, cookie)?;
        // tenantd's own tables (the audit chain) live beside the app schema in every file.
        if !digest.audit_current {
            conn.execute_batch(audit_tables::TENANT_AUDIT_DDL)?;
        }
        let version = db::user_version(&conn)?;
        if req.custom_schema {
            db::distrust_schema(&conn)?;
        }
        let target = match req.schema_hold {
            _ if req.custom_schema => version,
            Some(hold) => hold.min(self.schema.target()),
            None => self.schema.target(),
        };
        let mut migrated_from = None;
        if version < target {
            // Lazy safety net: a tenant still behind when opened is migrated before use.
            let from = self.schema.migrate(&mut conn, target)?;
            if from < target {
                migrated_from = Some(from);
                self.stats.lazy_migrations.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Unless DDL or a migration just changed it, the schema read above is the one requests
        // will see: resolve it now rather than read sqlite_master again on the first request.
        let schema = match digest.audit_current && version >= target {
            true => Some(shaped(&self.shapes, &conn, cookie, digest.hash)?),
            false => None,
        };
        let stats = stats::StatementStats::new(&self.monitor);
        let shapes = self.shapes.clone();
        Ok((
            TenantHandle {
                id: req.id.clone(),
                readers,
                schema: Mutex::new(schema),
                shapes,
                stats,
                path,
                writer: Mutex::new(Some(Arc::new(Mutex::new(conn)))),
                checkpoint_queued: AtomicBool::new(false),
                ceiling: AtomicU64::new(UNKNOWN),
                page_size: AtomicU64::new(0),
                group: Default::default(),
                frozen: AtomicBool::new(self.frozen.lock().contains(req.id)),
            },
            migrated_from,
        ))
    }

    /// Forgets an open tenant (before its file is replaced, moved or removed).
    pub fn evict(&self, id: &TenantId) {
        let old = self.open.lock().pop(id);
        drop(old);
        self.digests.forget(id);
    }

    /// Forgets every remembered schema digest: another process may have replaced tenant files
    /// (imports, rollbacks, restores), and a replaced file can repeat its predecessor's schema
    /// cookie.
    pub fn forget_digests(&self) {
        self.digests.clear();
    }

    /// Whether a reopen of the tenant would reuse a remembered schema digest (tests, diagnosis).
    pub fn remembers_digest(&self, id: &TenantId) -> bool {
        self.digests.remembers(id)
    }

    /// Makes sure the pre-migrated template for the current schema exists and returns its path.
    /// New tenants are a file copy of it, so signup never runs migrations.
    pub fn ensure_template(&self) -> Result<PathBuf> {
        let dir = self.paths.template_dir();
        // The audit tables' DDL is part of the name: a template built before it changed is not reused.
        let audit = crate::util::sha256_hex(audit_tables::TENANT_AUDIT_DDL.as_bytes());
        let path =
            dir.join(format!("tenant-v{}-{}-{}.db", self.schema.target(), &self.schema.set_hash[..12], &audit[..8]));
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".building-{}.db", crate::util::random_hex(6)));
        let build = || -> Result<()> {
            let mut conn = Connection::open(&tmp)?;
            db::configure(&conn, Durability::Normal)?;
            self.schema.migrate(&mut conn, self.schema.target())?;
            conn.execute_batch(audit_tables::TENANT_AUDIT_DDL)?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=WAL;")?;
            conn.close().map_err(|(_, e)| e)?;
            Ok(())
        };
        let res = build().and_then(|_| Ok(std::fs::rename(&tmp, &path)?));
        if res.is_err() {
            remove_db_files(&tmp);
        }
        res.map(|_| path)
    }
}

/// A tenant's writer connection: never creates the file, keeps the WAL on close, and reports
/// commits to the checkpoint scheduling (`db::note_wal_commit`).
fn open_reader(path: &Path) -> Result<Connection> {
    let conn = db::open_existing(path, Durability::Normal)?;
    db::keep_wal_on_close(&conn)?;
    Ok(conn)
}

/// A reader for a tenant on its own schema (see `OpenRequest::custom_schema`).
fn open_distrusted_reader(path: &Path) -> Result<Connection> {
    let conn = open_reader(path)?;
    db::distrust_schema(&conn)?;
    Ok(conn)
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = db::open_existing(path, Durability::Normal)?;
    db::keep_wal_on_close(&conn)?;
    crate::replica::capture::install(&conn, path)?;
    Ok(conn)
}

/// Removes a database file with its `-wal` and `-shm` companions, ignoring missing ones.
pub fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Consistent copy of an open database into a new file (`VACUUM INTO`), readable while
/// writers continue (it reads one snapshot).
pub fn snapshot_into(conn: &Connection, dest: &Path) -> Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let dest_str =
        dest.to_str().ok_or_else(|| Error::Internal(format!("non-UTF-8 snapshot path {}", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_str])?;
    Ok(())
}
