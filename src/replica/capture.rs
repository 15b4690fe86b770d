//! Change capture: every commit on a tenant file is copied out of its WAL into the tenant's
//! change log (`log`) by the committing connection itself, in SQLite's WAL hook, before that
//! connection can write again. Its frames cannot have been overwritten by then: SQLite starts
//! the WAL over only in a write after a checkpoint, and tenantd's checkpoints never run inside
//! a commit (the hook's own inline checkpoint comes after the capture). So the log holds every
//! transaction in commit order, whichever tenantd process committed it (server or CLI: the
//! hook is installed on every connection tenantd writes a tenant file with).
//!
//! What it cannot see is a write by another program. A log that does not fit the WAL (frames
//! from another generation where ours should be, no log yet) makes the tenant need an image:
//! the replicator copies the whole file under SQLite's write lock, and capture goes on from
//! the WAL position the image was taken at. `replica verify` finds what slipped past anyway.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::c_int;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use super::log::{Appender, Kind, Log, Record, Tail};
use super::wal;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::util::now_millis as now_ms;

/// Capture for this process, set once at start when replication is on (`enable`).
static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();

/// Capture in this process: which data dirs it is on for (several in one test process),
/// each tenant's state, and what each data dir's replicator has yet to look at.
pub struct Capture {
    /// Canonical data dirs with capture on.
    enabled: Mutex<HashSet<PathBuf>>,
    tenants: Mutex<HashMap<PathBuf, Arc<TenantLog>>>,
    /// By data dir: tenants with records its replicator has not seen (or needing an image).
    dirty: Mutex<HashMap<PathBuf, BTreeSet<TenantId>>>,
    wake: Condvar,
}

/// A data dir's handle on capture (what its replicator and CLI use).
#[derive(Clone)]
pub struct DataDir {
    pub dir: PathBuf,
    capture: Arc<Capture>,
}

/// One tenant's capture state in this process.
pub struct TenantLog {
    pub id: TenantId,
    data_dir: PathBuf,
    pub db: PathBuf,
    pub log: Log,
    /// This process's appender (its mutex serialises our appends; the file lock, everyone's).
    appender: Mutex<Option<Appender>>,
    /// The last position this process knows of.
    pub position: AtomicU64,
    /// Capture lost track of the WAL: the next record must be an image.
    pub needs_image: AtomicBool,
    /// (position, commit time in ms) of the last `RECENT` records this process wrote: how far
    /// behind a mirror is in time (`commit_time`).
    recent: Mutex<std::collections::VecDeque<(u64, i64)>>,
    /// The tenant's WAL, kept open for `capture` (locked inside `appender`).
    wal: Mutex<Option<File>>,
    /// When `capture` last ran (ms): the files of a tenant idle for a while are closed
    /// (`DataDir::close_idle`), so they do not add up to the fd limit over a fleet.
    used_ms: std::sync::atomic::AtomicI64,
    /// The log's position as its lock file last said (other processes' commits count), and
    /// when that was read, in ms (`latest_position`).
    logged: AtomicU64,
    logged_read_ms: std::sync::atomic::AtomicI64,
}

const RECENT: usize = 256;

/// Turns capture on for the tenant files under `data_dir` (idempotent; `changes/` goes there).
pub fn enable(data_dir: &Path) -> Result<DataDir> {
    let capture = CAPTURE
        .get_or_init(|| {
            Arc::new(Capture {
                enabled: Mutex::default(),
                tenants: Mutex::default(),
                dirty: Mutex::default(),
                wake: Condvar::new(),
            })
        })
        .clone();
    let dir = std::fs::canonicalize(data_dir)?;
    capture.enabled.lock().insert(dir.clone());
    Ok(DataDir { dir, capture })
}

/// Turns capture off for `data_dir` (see `replica::turn_off`).
pub fn disable(data_dir: &Path) -> Result<()> {
    if let Some(c) = CAPTURE.get() {
        let dir = std::fs::canonicalize(data_dir)?;
        c.enabled.lock().remove(&dir);
        c.tenants.lock().retain(|db, _| !db.starts_with(&dir));
    }
    Ok(())
}

/// The data dir a tenant file is in (`<data_dir>/tenants/<id>/data.db`).
/// Tenants are known by their file's canonical path (the hooks get it from `install`), so a
/// data dir given as a relative path or through a symlink still finds them.
fn canonical(db: &Path) -> PathBuf {
    std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf())
}

fn data_dir_of(db: &Path) -> Option<&Path> {
    db.parent()?.parent()?.parent()
}

thread_local! {
    /// The file whose commit this thread is in: set by the commit hook just before SQLite
    /// commits, taken by the WAL hook just after (both run inside the same `sqlite3_step`).
    static COMMITTING: std::cell::RefCell<Option<Arc<Path>>> = const { std::cell::RefCell::new(None) };
}

/// Installs the capturing hooks on a connection that may write the tenant file `db` (the WAL
/// hook also does `db::note_wal_commit`'s checkpoint scheduling); without capture, just that.
/// rusqlite's WAL hook is a plain function that is not told which file committed, so a commit
/// hook (a closure) names it first.
pub fn install(conn: &Connection, db: &Path) -> Result<()> {
    if CAPTURE.get().is_none() {
        conn.wal_hook(Some(crate::db::note_wal_commit));
        return Ok(());
    }
    let path: Arc<Path> = Arc::from(std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf()));
    conn.commit_hook(Some(move || {
        COMMITTING.with(|c| *c.borrow_mut() = Some(path.clone()));
        false
    }))?;
    conn.wal_hook(Some(on_commit));
    Ok(())
}

fn on_commit(wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    let path = COMMITTING.with(|c| c.borrow_mut().take());
    if let (Some(path), Some(c)) = (path, CAPTURE.get()) {
        if let Err(e) = c.committed(&path, pages.max(0) as u32) {
            crate::log::warn(&format!("change capture of {} failed: {}", path.display(), e.log_detail()));
        }
    }
    if pages >= 4 * crate::db::CHECKPOINT_PAGES {
        // As SQLite's own autocheckpoint hook: busy means another connection is checkpointing.
        let _ = wal.checkpoint();
    } else if pages >= crate::db::CHECKPOINT_PAGES {
        crate::db::mark_checkpoint_due();
    }
    Ok(())
}

pub use super::log::recorded_position;

impl Capture {
    /// The capture state of the tenant whose file is `db`, if capture is on for its data dir.
    fn tenant(&self, db: &Path) -> Option<Arc<TenantLog>> {
        if let Some(t) = self.tenants.lock().get(db) {
            return Some(t.clone());
        }
        let data_dir = data_dir_of(db)?;
        if !self.enabled.lock().contains(data_dir) {
            return None;
        }
        let id = db.parent()?.file_name()?.to_str().and_then(|s| TenantId::parse(s).ok())?;
        let t = Arc::new(TenantLog {
            log: Log::new(super::log::root(data_dir).join(id.as_str())),
            data_dir: data_dir.to_path_buf(),
            id,
            db: db.to_path_buf(),
            appender: Mutex::new(None),
            position: AtomicU64::new(0),
            needs_image: AtomicBool::new(false),
            recent: Mutex::default(),
            wal: Mutex::default(),
            logged: AtomicU64::new(0),
            logged_read_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            used_ms: std::sync::atomic::AtomicI64::new(0),
        });
        t.position.store(recorded_position(&t.log), Ordering::Relaxed);
        Some(self.tenants.lock().entry(db.to_path_buf()).or_insert(t).clone())
    }

    fn committed(&self, db: &Path, frames: u32) -> Result<()> {
        let Some(t) = self.tenant(db) else { return Ok(()) };
        if t.needs_image.load(Ordering::Acquire) {
            self.mark_dirty(&t);
            return Ok(());
        }
        let res = t.capture(Some(frames));
        if res.is_err() {
            t.needs_image.store(true, Ordering::Release);
        }
        self.mark_dirty(&t);
        res
    }

    fn mark_dirty(&self, t: &TenantLog) {
        self.dirty.lock().entry(t.data_dir.clone()).or_default().insert(t.id.clone());
        self.wake.notify_all();
    }
}

impl DataDir {
    pub fn tenant_db(&self, id: &TenantId) -> PathBuf {
        self.dir.join("tenants").join(id.as_str()).join("data.db")
    }

    /// The capture state of one tenant of this data dir.
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<TenantLog>> {
        self.capture.tenant(&self.tenant_db(id))
    }

    /// Forgets a tenant (purged).
    pub fn forget(&self, id: &TenantId) {
        self.capture.tenants.lock().remove(&self.tenant_db(id));
    }

    pub fn mark_dirty(&self, id: &TenantId) {
        if let Some(t) = self.tenant(id) {
            self.capture.mark_dirty(&t);
        }
    }

    /// The tenants marked dirty since the last call, waiting up to `wait` for one.
    pub fn take_dirty(&self, wait: std::time::Duration) -> BTreeSet<TenantId> {
        let mut d = self.capture.dirty.lock();
        if d.get(&self.dir).is_none_or(|s| s.is_empty()) {
            self.capture.wake.wait_for(&mut d, wait);
        }
        d.remove(&self.dir).unwrap_or_default()
    }

    /// Every tenant with a change log (any process's).
    pub fn logged_tenants(&self) -> Result<Vec<TenantId>> {
        let mut out = Vec::new();
        match std::fs::read_dir(super::log::root(&self.dir)) {
            Ok(entries) => {
                for e in entries {
                    if let Some(id) = e?.file_name().to_str().and_then(|s| TenantId::parse(s).ok()) {
                        out.push(id);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(out)
    }

    /// Closes the log and WAL files of this data dir's tenants that captured nothing for
    /// `idle` (reopened by their next commit). Returns how many were closed.
    pub fn close_idle(&self, idle: std::time::Duration) -> usize {
        let cutoff = now_ms() - idle.as_millis() as i64;
        let tenants: Vec<Arc<TenantLog>> = self
            .capture
            .tenants
            .lock()
            .values()
            .filter(|t| t.data_dir == self.dir && t.used_ms.load(Ordering::Relaxed) <= cutoff)
            .cloned()
            .collect();
        let mut closed = 0;
        for t in tenants {
            // Not while a commit is being captured: try, and leave it for the next sweep.
            let Some(mut slot) = t.appender.try_lock() else { continue };
            if t.used_ms.load(Ordering::Relaxed) > cutoff {
                continue;
            }
            let had = slot.take().is_some() | t.wal.lock().take().is_some();
            closed += usize::from(had);
        }
        closed
    }

    pub fn log_of(&self, id: &TenantId) -> Log {
        Log::new(super::log::root(&self.dir).join(id.as_str()))
    }
}

impl TenantLog {
    /// Appends the commits in the WAL that the log does not have yet. `frames`: how many
    /// frames SQLite says the WAL holds (from the hook), or None to find out (catch-up).
    fn capture(&self, frames: Option<u32>) -> Result<()> {
        self.used_ms.store(now_ms(), Ordering::Relaxed);
        let mut slot = self.appender.lock();
        if slot.is_none() {
            *slot = Some(Appender::open(&self.log)?);
        }
        let Some(appender) = slot.as_mut() else { return Ok(()) };
        let mut locked = appender.lock()?;
        let Some(tail) = locked.tail()? else {
            return Err(Error::Internal("no change log yet: an image comes first".into()));
        };
        // The WAL stays open between commits; SQLite deletes it when the last connection closes,
        // and a new one is then opened.
        let mut wal_slot = self.wal.lock();
        if wal_slot
            .as_ref()
            .is_none_or(|f| f.metadata().map_or(true, |m| std::os::unix::fs::MetadataExt::nlink(&m) == 0))
        {
            *wal_slot = match File::open(wal::path_of(&self.db)) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            };
        }
        let Some(wal_file) = wal_slot.as_ref() else { return Ok(()) };
        let Some(h) = wal::header(wal_file)? else { return Ok(()) };
        // The same generation goes on from where the log stopped; a new one (the WAL started
        // over after a checkpoint) from its first frame.
        let from = if h.salt == tail.salt { tail.frame_end } else { 0 };
        if frames.is_some_and(|n| n <= from) {
            return Ok(());
        }
        let mut last = tail;
        for c in wal::commits(wal_file, &h, from, frames)? {
            let now = now_ms();
            let record = Record {
                kind: Kind::Changes,
                position: last.position + 1,
                time_ms: now,
                page_size: h.page_size as u32,
                db_pages: c.db_pages,
                pages: c.pages,
                tail: Tail { position: last.position + 1, time_ms: now, salt: h.salt, frame_end: c.frame_end },
            };
            locked.append(&record)?;
            last = record.tail;
            self.remember(last.position, now);
        }
        self.position.store(last.position, Ordering::Release);
        Ok(())
    }

    fn remember(&self, position: u64, time_ms: i64) {
        let mut r = self.recent.lock();
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back((position, time_ms));
    }

    /// When the commit at `position` was captured, if this process remembers it; else the
    /// oldest it remembers (so a mirror further behind counts as at least that late).
    /// The tenant's position counting commits other processes logged (a CLI beside the
    /// server), reading the log's lock file at most once per `fresh_ms`: reads are routed by
    /// it, and a file read per request would cost more than the read.
    pub fn latest_position(&self, fresh_ms: i64) -> u64 {
        let now = crate::util::now_millis();
        let read = self.logged_read_ms.load(Ordering::Relaxed);
        if now.saturating_sub(read) >= fresh_ms
            && self.logged_read_ms.compare_exchange(read, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.logged.fetch_max(recorded_position(&self.log), Ordering::AcqRel);
        }
        self.position.load(Ordering::Acquire).max(self.logged.load(Ordering::Acquire))
    }

    pub fn commit_time(&self, position: u64) -> Option<i64> {
        let r = self.recent.lock();
        r.iter().find(|(p, _)| *p == position).or(r.front()).map(|(_, t)| *t)
    }

    /// Writes an image of the whole file as the next record, under SQLite's write lock so no
    /// commit slips between the pages read and the WAL position recorded with them.
    pub fn image(&self) -> Result<u64> {
        let conn = crate::db::open_existing(&self.db, crate::db::Durability::Normal)?;
        crate::db::keep_wal_on_close(&conn)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let res = self.image_locked(&conn);
        let _ = conn.execute_batch("ROLLBACK");
        res
    }

    fn image_locked(&self, conn: &Connection) -> Result<u64> {
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let mut pages = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                pages.push((r.get::<_, i64>(0)? as u32, r.get::<_, Vec<u8>>(1)?));
            }
        }
        // Every frame is committed (we hold the write lock): capture goes on after the last.
        let (salt, frame_end) = match File::open(wal::path_of(&self.db)) {
            Ok(f) => match wal::header(&f)? {
                Some(h) => (h.salt, wal::commits(&f, &h, 0, None)?.last().map(|c| c.frame_end).unwrap_or(0)),
                None => ((0, 0), 0),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ((0, 0), 0),
            Err(e) => return Err(e.into()),
        };
        let mut slot = self.appender.lock();
        if slot.is_none() {
            *slot = Some(Appender::open(&self.log)?);
        }
        let Some(appender) = slot.as_mut() else { return Ok(0) };
        let mut locked = appender.lock()?;
        let position = locked.tail()?.map(|t| t.position).unwrap_or(0).max(recorded_position(&self.log)) + 1;
        let now = now_ms();
        let tail = Tail { position, time_ms: now, salt, frame_end };
        let record = Record {
            kind: Kind::Image,
            position,
            time_ms: now,
            page_size: page_size as u32,
            db_pages: pages.len() as u32,
            pages,
            tail,
        };
        locked.append(&record)?;
        self.remember(position, now);
        self.position.store(position, Ordering::Release);
        self.needs_image.store(false, Ordering::Release);
        Ok(position)
    }

    /// Brings the log up to the file: an image if it has none or lost track, else the commits
    /// in the WAL it does not have (a process that died between a commit and its capture).
    pub fn catch_up(&self) -> Result<u64> {
        if self.needs_image.load(Ordering::Acquire) || self.log.segments()?.is_empty() {
            return self.image();
        }
        if let Err(e) = self.capture(None) {
            crate::log::warn(&format!(
                "tenant {}: change log out of step ({}); taking an image",
                self.id,
                e.log_detail()
            ));
            return self.image();
        }
        Ok(self.position.load(Ordering::Acquire))
    }
}

/// Called when a tenant file is opened: commits a crashed process left in the WAL without
/// capturing them are captured now, before anything can checkpoint them away; a tenant with
/// no log yet gets its first record, an image, now (once: a few ms for a small tenant), so
/// its first write already has a position.
pub fn opened(db: &Path) {
    let Some(c) = CAPTURE.get() else { return };
    let Some(t) = c.tenant(&canonical(db)) else { return };
    if let Err(e) = t.catch_up() {
        crate::log::warn(&format!("tenant {}: change capture at open failed: {}", t.id, e.log_detail()));
        t.needs_image.store(true, Ordering::Release);
    }
    c.mark_dirty(&t);
}

/// The tenant's commit position for a snapshot its caller takes under the tenant's write lock
/// (so no commit is under way): the commits the log lacks are captured first. None when
/// capture is off for its data dir, or has lost track (its next record is an image).
pub fn settled_position(db: &Path) -> Option<u64> {
    let c = CAPTURE.get()?;
    let t = c.tenant(&canonical(db))?;
    if t.needs_image.load(Ordering::Acquire) || t.capture(None).is_err() {
        return None;
    }
    Some(t.latest_position(0))
}

/// A tenant file was replaced or restored wholesale (not through commits): the next record is
/// an image.
pub fn replaced(db: &Path) {
    let Some(c) = CAPTURE.get() else { return };
    if let Some(t) = c.tenant(&canonical(db)) {
        t.needs_image.store(true, Ordering::Release);
        c.mark_dirty(&t);
    }
}
