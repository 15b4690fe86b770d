//! WAL checkpoints of tenant files, all off the request path: after writes that grew a WAL past
//! `db::CHECKPOINT_PAGES`, when an evicted tenant closes with a large WAL, and at shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::Connection;

use super::{TenantHandle, TenantStore};
use crate::db;
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// An evicted tenant whose `-wal` is at least this large is checkpointed (and the WAL truncated)
/// on the checkpoint thread before it closes, rather than left for its next open to read back.
const RETIRE_WAL_BYTES: u64 = 64 * 1024;

/// At most this many evicted tenants wait for that checkpoint at once (each keeps its descriptors
/// meanwhile: three per connection, within `serve`'s descriptor headroom); beyond it they close
/// at once and keep their WAL.
const RETIRING_MAX: usize = 8;

impl TenantHandle {
    /// Checkpoints the WAL in two steps. First without the writer lock, so writers go on while
    /// the checkpoint syncs the WAL, copies pages and syncs the file (measured: ~2 ms per sync
    /// here). Then with it, for the frames appended meanwhile: only a checkpoint that caught up
    /// with the last frame lets the next write start the WAL over from its beginning, so under
    /// a steady stream of writes the first step alone would let the file grow without bound.
    pub(super) fn checkpoint(&self) {
        let passive = |c: &Connection| c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        let first = self.conn().and_then(|c| Ok(passive(&c)?));
        let second = first.and_then(|_| self.writer()).and_then(|w| Ok(passive(&w)?));
        if let Err(e) = second {
            crate::log::warn(&format!("WAL checkpoint of tenant {} failed: {}", self.id, e.log_detail()));
        }
    }

    /// The checkpoint of an evicted tenant (`TenantStore::retire`): copies its WAL into the file
    /// and truncates it, unless someone still uses the tenant (a request that took the handle
    /// before the eviction; it closes when they are done). Waits for no one: an
    /// open transaction elsewhere (a CLI, or this tenant opened again meanwhile) leaves the WAL
    /// as it is. True when the WAL was truncated.
    fn checkpoint_on_close(self: &Arc<Self>) -> bool {
        if Arc::strong_count(self) > 1 {
            return false;
        }
        let Ok(w) = self.writer() else { return false };
        let truncate = || -> Result<bool> {
            w.busy_handler(None)?;
            let busy: i64 = w.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            Ok(busy == 0)
        };
        match truncate() {
            Ok(done) => done,
            Err(e) => {
                crate::log::warn(&format!("closing checkpoint of tenant {} failed: {}", self.id, e.log_detail()));
                false
            }
        }
    }
}

impl TenantStore {
    /// Call after committing on a tenant's writer: if the commit left the WAL past
    /// `db::CHECKPOINT_PAGES`, a background thread checkpoints it (`TenantHandle::checkpoint`),
    /// so no request waits for the disk. At most one is queued per tenant.
    pub fn after_write(&self, handle: &Arc<TenantHandle>) {
        if db::take_checkpoint_due() && !handle.checkpoint_queued.swap(true, Ordering::AcqRel) {
            let h = handle.clone();
            self.checkpointer.execute(move || {
                h.checkpoint();
                h.checkpoint_queued.store(false, Ordering::Release);
            });
        }
    }

    /// Closes a tenant evicted to make room, outside the open-set lock. A closed tenant's WAL
    /// stays beside its file (`db::keep_wal_on_close`), and its next open reads all of it back
    /// to rebuild the WAL index; without a checkpoint on close, a tenant that is opened and
    /// closed over and over keeps a WAL of up to `db::CHECKPOINT_PAGES` pages that every open
    /// re-reads (measured: Zipf over 10,000 tenants whose WALs averaged 233 KiB served 2,835 /
    /// 2,586 req/s once they were checkpointed, against 2,341 / 2,479). So a WAL of `RETIRE_WAL_BYTES` or more is checkpointed
    /// and truncated on the checkpoint thread first, where its syncs hold up no request.
    pub(super) fn retire(&self, old: Arc<TenantHandle>) {
        let wal = std::fs::metadata(wal_path(&old.path)).map(|m| m.len()).unwrap_or(0);
        if wal < RETIRE_WAL_BYTES || self.retiring.load(Ordering::Acquire) >= RETIRING_MAX as u64 {
            // Its connections close when the last user returns them.
            return;
        }
        self.retiring.fetch_add(1, Ordering::AcqRel);
        let retiring = self.retiring.clone();
        let done = self.stats.close_checkpoints.clone();
        self.checkpointer.execute(move || {
            if old.checkpoint_on_close() {
                done.fetch_add(1, Ordering::Relaxed);
            }
            drop(old);
            retiring.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Returns once every checkpoint queued so far (`after_write`, `retire`) has run.
    pub fn wait_for_checkpoints(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.checkpointer.execute(move || {
            let _ = tx.send(());
        });
        let _ = rx.recv();
    }

    /// Checkpoints every open tenant's WAL (at shutdown). Errors are returned per tenant.
    pub fn checkpoint_all(&self) -> Vec<(TenantId, Error)> {
        let handles: Vec<Arc<TenantHandle>> = self.open.lock().iter().map(|(_, h)| h.clone()).collect();
        let mut errors = Vec::new();
        for h in handles {
            // On the writer: every open tenant has it, so this opens no connection. Waiting for
            // no reader: Litestream holds a read transaction on every file it replicates, and a
            // shutdown must not wait a busy timeout per tenant for it (the WAL then stays, and
            // the next open reads it back).
            let res = h.writer().and_then(|c| {
                c.busy_handler(None)?;
                Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            });
            if let Err(e) = res {
                errors.push((h.id.clone(), e));
            }
        }
        errors
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}
