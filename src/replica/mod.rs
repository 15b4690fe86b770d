//! Read replicas as local file mirrors (issue 22): `[replicas] count = N` keeps N copies of
//! every tenant file under `replicas/replica-<i>/`, current within milliseconds.
//!
//! - `capture`: each commit's pages are copied out of the tenant's WAL into its change log by
//!   the connection that committed (SQLite's WAL hook), before anything can overwrite them.
//! - `log`: the change log, `changes/<tenant_id>/`, records by commit position.
//! - `mirror`: applies records to a mirror through `sqlite_dbpage` in transactions of its own,
//!   so a mirror is always the primary at some position, page for page.
//! - here: the replicator thread (applies what was captured, keeps positions and lag), read
//!   routing (a mirror within `max_lag_ms`, or at a `Tenantd-Bookmark`), status.
//!
//! Why WAL frames rather than the session extension: frames carry everything that changes the
//! file (schema migrations, `VACUUM`, imports through SQL, the audit chain) with no per-table
//! setup and no cost on the write beyond reading back pages the commit just wrote; a changeset
//! has no DDL and needs a session on every connection. Why not Litestream's `restore -f`: one
//! process per followed database (see docs/architecture.md).

pub mod capture;
pub mod log;
pub mod mirror;
mod ops;
mod routing;
pub mod wal;

pub use ops::Verified;
use routing::IdleRead;
pub use routing::MirrorRead;

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::util::now_millis;
use capture::{DataDir, TenantLog};
use log::Record;

/// `[replicas]`: local read replicas of every tenant file (`replica`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicasConfig {
    /// Mirrors kept of every tenant file, `replicas/replica-1/` … (0 = none; 0..=8).
    pub count: usize,
    /// `primary` (every read on the tenant file) or `replica` (data API reads may be answered
    /// by a mirror within `max_lag_ms`).
    pub read_policy: String,
    /// A mirror further behind than this answers no reads; readiness warns when one stays past
    /// it for a minute.
    pub max_lag_ms: u64,
    /// How long a read carrying a `Tenantd-Bookmark` waits for a mirror to reach it before the
    /// primary answers.
    pub bookmark_wait_ms: u64,
}

impl Default for ReplicasConfig {
    fn default() -> Self {
        ReplicasConfig { count: 0, read_policy: "primary".into(), max_lag_ms: 1000, bookmark_wait_ms: 50 }
    }
}

impl ReplicasConfig {
    /// The mirrors' names.
    pub fn names(&self) -> Vec<String> {
        (1..=self.count).map(|i| format!("replica-{i}")).collect()
    }
}

/// Records applied to a mirror in one transaction at most (except the first time after a
/// start, see `mirror`), so one busy tenant cannot hold the replicator for long.
const BATCH: usize = 256;
/// A tenant's change-log and WAL files stay open this long after its last commit.
const IDLE_FILES: Duration = Duration::from_secs(60);
/// Open connections kept for applying, and tenants with idle read connections kept, per replica.
const OPEN_MIRRORS: usize = 256;
/// Tenants given their first image per sweep (every two seconds), so turning replicas on for a
/// large fleet does not stall the replicator.
const SEED_PER_SWEEP: usize = 64;
/// Lag samples kept per replica for its percentiles (a minute at 1,000 commits/s).
const SAMPLES: usize = 65_536;
/// How stale, in ms, routing may see what other processes did: commits they logged, and a
/// mirror they replaced with a new file (a CLI rebuild). This process's own are seen at once.
const FRESH_MS: i64 = 100;
/// How long reads of a tenant whose primary turned out corrupt go to a mirror before the
/// primary is tried again.
const FAILED_FOR: Duration = Duration::from_secs(10);

/// A mirror: (replica index, tenant).
type MirrorKey = (usize, TenantId);
/// A connection on a mirror with the inode of the file it opened (a rebuilt mirror is a new
/// file: connections on the old one are not reused).
type OnFile = (Connection, u64);

/// The replicas of one data dir: the replicator's state, read routing, and their counters.
pub struct Replication {
    data_dir: PathBuf,
    pub config: ReplicasConfig,
    pub names: Vec<String>,
    capture: DataDir,
    tenants: Mutex<HashMap<TenantId, Arc<Positions>>>,
    /// Apply connections by (replica, tenant), least recently used closed first.
    appliers: Mutex<lru::LruCache<MirrorKey, OnFile>>,
    /// Idle read connections by (replica, tenant).
    readers: Mutex<lru::LruCache<MirrorKey, Vec<IdleRead>>>,
    /// Mirror files this process replaced or removed so far (idle readers on them are stale).
    replaced: AtomicU64,
    /// Tenants whose primary file answered a read with corruption, and when: their reads go to
    /// the most advanced mirror for `FAILED_FOR`, then the primary is tried again (so a
    /// `replica promote` from a CLI is noticed without telling the server).
    failed: Mutex<HashMap<TenantId, Instant>>,
    pub stats: Vec<ReplicaStats>,
    next: AtomicU64,
}

/// Where each mirror of one tenant is; waited on by reads carrying a bookmark.
pub struct Positions {
    applied: Vec<AtomicU64>,
    /// Applied since this process started (before that the position file may lag the mirror:
    /// the first apply goes to the end of the log in one transaction).
    resumed: Vec<AtomicBool>,
    /// Where each replica's last read of the log stopped (the next read starts there).
    cursors: Mutex<Vec<Option<log::Cursor>>>,
    changed: Condvar,
    lock: Mutex<()>,
}

#[derive(Default)]
pub struct ReplicaStats {
    pub shipped_bytes: AtomicU64,
    pub applied: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    lag_ms: Mutex<VecDeque<u32>>,
    /// Since when some tenant's mirror has been past `max_lag_ms` (readiness warns after a minute).
    pub behind_since: Mutex<Option<Instant>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub name: String,
    pub tenants: usize,
    /// Tenants whose mirror lacks commits right now, the most commits one lacks, and the
    /// longest since the first commit a mirror lacks.
    pub behind: usize,
    pub lag_commits_max: u64,
    pub behind_ms_max: i64,
    /// Commit-to-apply lag of the last 65,536 commits applied (what the server measured).
    pub lag_ms_p50: u32,
    pub lag_ms_p99: u32,
    pub lag_ms_max: u32,
    pub shipped_bytes: u64,
    pub applied: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl Replication {
    /// Replication for this process when `[replicas] count` > 0: turns change capture on
    /// (every tenant write from here on is logged).
    /// With `count` = 0 and a change log in the data dir (a server with replicas runs on it,
    /// and this is a CLI beside it without the same config), the replicas found on disk are
    /// used and capture is on, so the log stays complete; a server started without replicas
    /// removes the log and mirrors first (`turn_off`).
    pub fn new(config: &ReplicasConfig, data_dir: &Path) -> Result<Option<Arc<Replication>>> {
        let mut config = config.clone();
        if config.count == 0 {
            if !log::root(data_dir).is_dir() {
                return Ok(None);
            }
            config.count =
                (1..=8).take_while(|i| data_dir.join("replicas").join(format!("replica-{i}")).is_dir()).count();
            if config.count == 0 {
                capture::enable(data_dir)?;
                return Ok(None);
            }
        }
        let names = config.names();
        let capture = capture::enable(data_dir)?;
        Ok(Some(Arc::new(Replication {
            data_dir: capture.dir.clone(),
            config,
            capture,
            tenants: Mutex::default(),
            appliers: Mutex::new(lru::LruCache::new(cap(OPEN_MIRRORS * names.len()))),
            readers: Mutex::new(lru::LruCache::new(cap(OPEN_MIRRORS * names.len()))),
            stats: names.iter().map(|_| ReplicaStats::default()).collect(),
            names,
            next: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            failed: Mutex::default(),
        })))
    }

    fn db_path(&self, id: &TenantId) -> PathBuf {
        self.capture.tenant_db(id)
    }

    /// The capture state of a tenant (its commit position).
    pub fn tenant_log(&self, id: &TenantId) -> Option<Arc<TenantLog>> {
        self.capture.tenant(id)
    }

    /// The tenant's commit position as this process knows it.
    pub fn position(&self, id: &TenantId) -> u64 {
        self.tenant_log(id).map(|t| t.position.load(Ordering::Acquire)).unwrap_or(0)
    }

    fn positions(&self, id: &TenantId) -> Arc<Positions> {
        if let Some(p) = self.tenants.lock().get(id) {
            return p.clone();
        }
        let p = Arc::new(Positions {
            applied: self.names.iter().map(|n| AtomicU64::new(mirror::recorded(&self.data_dir, n, id).0)).collect(),
            resumed: self.names.iter().map(|_| AtomicBool::new(false)).collect(),
            cursors: Mutex::new(vec![None; self.names.len()]),
            changed: Condvar::new(),
            lock: Mutex::new(()),
        });
        self.tenants.lock().entry(id.clone()).or_insert(p).clone()
    }

    /// Closes the change-log and WAL files of tenants with no commit for `idle` (the replicator
    /// does it every two seconds with `IDLE_FILES`); their next commit opens them again.
    pub fn close_idle_files(&self, idle: Duration) -> usize {
        self.capture.close_idle(idle)
    }

    /// Runs the replicator until `stop`: applies what capture logged, tenant by tenant, and
    /// every two seconds looks for commits other processes logged (a CLI beside the server).
    pub fn run(self: &Arc<Self>, stop: &AtomicBool) {
        std::thread::scope(|s| {
            // Pruning deletes whole segments (ms each on ext4): on a thread of its own, so a
            // minute's deletions across the fleet never hold up applying.
            let pruner = std::thread::Builder::new().name("tenantd-log-prune".into()).spawn_scoped(s, || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    if last.elapsed() >= Duration::from_secs(60) {
                        last = Instant::now();
                        self.prune();
                    }
                }
            });
            if let Err(e) = pruner {
                self.error(0, &format!("the change log pruner did not start: {e}"));
            }
            self.apply_loop(stop);
        });
    }

    fn apply_loop(self: &Arc<Self>, stop: &AtomicBool) {
        // Behind tenant traffic when the CPU is short: a replicator that falls behind applies
        // more commits per transaction (cheaper per commit), and its lag shows it.
        if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
            crate::log::warn(&format!("replica: could not lower the replicator's priority: {e}"));
        }
        let mut last_sweep = Instant::now() - Duration::from_secs(10);
        let mut caught_up = std::collections::HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            let mut todo = self.capture.take_dirty(Duration::from_millis(250));
            if last_sweep.elapsed() >= Duration::from_secs(2) {
                last_sweep = Instant::now();
                match self.capture.logged_tenants() {
                    Ok(ids) => {
                        for id in ids {
                            if !caught_up.contains(&id) && self.db_path(&id).is_file() {
                                // Once per start: commits a killed process left uncaptured in
                                // the WAL (it died between a commit and its capture).
                                if let Some(Err(e)) = self.tenant_log(&id).map(|t| t.catch_up()) {
                                    self.error(0, &format!("tenant {id}: catching up the log: {}", e.log_detail()));
                                }
                                caught_up.insert(id.clone());
                            }
                            let logged = capture::recorded_position(&self.capture.log_of(&id));
                            let p = self.positions(&id);
                            if p.applied.iter().any(|a| a.load(Ordering::Acquire) < logged) {
                                todo.insert(id);
                            }
                        }
                    }
                    Err(e) => self.error(0, &format!("listing change logs: {}", e.log_detail())),
                }
                todo.extend(self.unseeded(SEED_PER_SWEEP));
                self.update_behind();
                self.capture.close_idle(IDLE_FILES);
                self.write_status();
            }
            for id in todo {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.replicate(&id);
            }
        }
    }

    /// Up to `n` tenant files with no change log yet (made before replicas were on, or
    /// never opened since): `replicate` starts them with an image.
    fn unseeded(&self, n: usize) -> Vec<TenantId> {
        let Ok(entries) = std::fs::read_dir(self.data_dir.join("tenants")) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(|s| TenantId::parse(s).ok()))
            .filter(|id| !self.capture.log_of(id).dir.is_dir() && self.db_path(id).is_file())
            .take(n)
            .collect()
    }

    fn error(&self, replica: usize, msg: &str) {
        if let Some(s) = self.stats.get(replica) {
            s.errors.fetch_add(1, Ordering::Relaxed);
            *s.last_error.lock() = Some(msg.to_string());
        }
        crate::log::warn(&format!("replica: {msg}"));
    }

    /// Brings every mirror of one tenant up to its log (an image first if capture asked).
    pub fn replicate(&self, id: &TenantId) {
        if !self.db_path(id).is_file() {
            return;
        }
        let Some(t) = self.tenant_log(id) else { return };
        if t.needs_image.load(Ordering::Acquire) || t.log.segments().map(|s| s.is_empty()).unwrap_or(false) {
            if let Err(e) = t.catch_up() {
                self.error(0, &format!("tenant {id}: image failed: {}", e.log_detail()));
                return;
            }
        }
        let positions = self.positions(id);
        for r in 0..self.names.len() {
            if let Err(e) = self.sync(r, id, &t, &positions) {
                self.error(r, &format!("{} tenant {id}: {}", self.names[r], e.log_detail()));
                self.appliers.lock().pop(&(r, id.clone()));
            }
        }
    }

    fn sync(&self, r: usize, id: &TenantId, t: &TenantLog, positions: &Positions) -> Result<()> {
        let pos = mirror::PosFile::lock(&self.data_dir, &self.names[r], id)?;
        let path = mirror::db_path(&self.data_dir, &self.names[r], id);
        let exists = std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false);
        // A mirror that is not there yet starts at the log's last image.
        let from = match (exists, if exists { None } else { t.log.last_image()? }) {
            (true, _) => pos.read().0,
            (false, Some(image)) => image - 1,
            (false, None) => {
                t.needs_image.store(true, Ordering::Release);
                self.capture.mark_dirty(id);
                return Ok(());
            }
        };
        let uncapped = !exists || !positions.resumed[r].load(Ordering::Acquire);
        let mut records: Vec<Record> = Vec::new();
        let hint = positions.cursors.lock()[r];
        let read = t.log.read_after(from, hint, |rec| {
            records.push(rec);
            Ok(uncapped || records.len() < BATCH)
        });
        let cursor = match read {
            Ok(c) => c,
            Err(e) => {
                // The log no longer goes back that far (a pruned log): start over from an image.
                positions.cursors.lock()[r] = None;
                t.needs_image.store(true, Ordering::Release);
                self.capture.mark_dirty(id);
                return Err(e);
            }
        };
        if records.is_empty() {
            positions.applied[r].store(from, Ordering::Release);
            positions.resumed[r].store(true, Ordering::Release);
            return Ok(());
        }
        let key = (r, id.clone());
        // An image (a first record, a rebuild, a restore) makes the mirror a new file: applied
        // in place through SQLite it could leave page 1 differing from the primary's (its change
        // counter), and it rewrites every page anyway.
        let image = records.iter().rposition(|rec| rec.kind == log::Kind::Image);
        let bytes = if let Some(i) = image {
            self.appliers.lock().pop(&key);
            let bytes = mirror::create(&path, &records[i..])?;
            self.replaced.fetch_add(1, Ordering::AcqRel);
            bytes
        } else if exists {
            // A mirror replaced by another process (a CLI rebuild) is reopened.
            let ino = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
            let conn = match self.appliers.lock().pop(&key) {
                Some((c, at)) if Some(at) == ino => c,
                _ => mirror::open_for_apply(&path)?,
            };
            let bytes = mirror::apply(&conn, &records)?;
            let ino = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
            self.appliers.lock().put(key, (conn, ino));
            bytes
        } else {
            return Err(Error::Internal("a new mirror starts from an image".into()));
        };
        let Some(last) = records.last() else { return Ok(()) };
        pos.write(last.position, last.time_ms)?;
        positions.cursors.lock()[r] = cursor;
        drop(pos);
        {
            let _g = positions.lock.lock();
            positions.applied[r].store(last.position, Ordering::Release);
            positions.resumed[r].store(true, Ordering::Release);
            positions.changed.notify_all();
        }
        let s = &self.stats[r];
        s.shipped_bytes.fetch_add(bytes, Ordering::Relaxed);
        s.applied.fetch_add(records.len() as u64, Ordering::Relaxed);
        let now = now_millis();
        let mut lag = s.lag_ms.lock();
        for rec in &records {
            if lag.len() == SAMPLES {
                lag.pop_front();
            }
            lag.push_back((now - rec.time_ms).clamp(0, u32::MAX as i64) as u32);
        }
        drop(lag);
        if records.len() >= BATCH && !uncapped {
            self.capture.mark_dirty(id);
        }
        Ok(())
    }

    /// How far behind replica `r` is on a tenant: (commits, ms since the first commit it lacks).
    pub fn lag(&self, r: usize, id: &TenantId) -> (u64, i64) {
        let applied = self.positions(id).applied[r].load(Ordering::Acquire);
        let Some(t) = self.tenant_log(id) else { return (0, 0) };
        let primary = t.latest_position(FRESH_MS);
        if applied >= primary {
            return (0, 0);
        }
        let since = t.commit_time(applied + 1).map(|at| (now_millis() - at).max(0)).unwrap_or(i64::MAX);
        (primary - applied, since)
    }

    fn update_behind(&self) {
        let ids: Vec<TenantId> = self.tenants.lock().keys().cloned().collect();
        for r in 0..self.names.len() {
            let behind = ids.iter().any(|id| self.lag(r, id).1 > self.config.max_lag_ms as i64);
            let mut since = self.stats[r].behind_since.lock();
            match (behind, since.is_some()) {
                (true, false) => *since = Some(Instant::now()),
                (false, true) => *since = None,
                _ => {}
            }
        }
    }

    /// Drops log segments every mirror has applied.
    fn prune(&self) {
        let tenants: Vec<(TenantId, Arc<Positions>)> =
            self.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (id, p) in tenants {
            let log = self.capture.log_of(&id);
            let applied = p.applied.iter().map(|a| a.load(Ordering::Acquire)).min().unwrap_or(0);
            // Backups need the log after their oldest snapshot (point-in-time restore).
            let min = log.floor().map_or(applied, |f| f.min(applied));
            if let Err(e) = log.prune(min, i64::MAX) {
                self.error(0, &format!("pruning the change log of {id}: {}", e.log_detail()));
            }
        }
    }

    /// Removes every copy of a purged tenant: mirrors, positions, change log.
    pub fn forget(&self, id: &TenantId) {
        self.tenants.lock().remove(id);
        for (r, name) in self.names.iter().enumerate() {
            self.appliers.lock().pop(&(r, id.clone()));
            self.readers.lock().pop(&(r, id.clone()));
            mirror::remove(&self.data_dir, name, id);
        }
        self.replaced.fetch_add(1, Ordering::AcqRel);
        self.capture.forget(id);
        let _ = std::fs::remove_dir_all(self.capture.log_of(id).dir);
    }
}

/// Removes every replica's copy of a tenant and its change log, whatever replicas are
/// configured now (a purge leaves no copy behind).
pub fn purge_copies(data_dir: &Path, id: &TenantId) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(data_dir.join("replicas")) {
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str() {
                mirror::remove(data_dir, name, id);
            }
        }
    }
    match std::fs::remove_dir_all(log::root(data_dir).join(id.as_str())) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A server starting without replicas on a data dir that had them: capture stops and the
/// change log and mirrors are removed (they would only grow stale, and they hold tenant data).
pub fn turn_off(data_dir: &Path) -> Result<bool> {
    let changes = log::root(data_dir);
    if !changes.is_dir() {
        return Ok(false);
    }
    capture::disable(data_dir)?;
    std::fs::remove_dir_all(&changes)?;
    match std::fs::remove_dir_all(data_dir.join("replicas")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    Ok(true)
}
