//! The replicas' operations beside the replicator: status (this process's and, for a CLI, what
//! the server last wrote), verify, rebuild and promote.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::*;

impl Replication {
    /// Per replica: tenants, how far behind, shipped bytes, errors.
    pub fn status(&self, ids: &[TenantId]) -> Vec<ReplicaStatus> {
        (0..self.names.len())
            .map(|r| {
                let s = &self.stats[r];
                let mut lags: Vec<u32> = s.lag_ms.lock().iter().copied().collect();
                lags.sort_unstable();
                let pct = |q: f64| lags.get(((lags.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
                let (mut behind, mut max_commits, mut tenants, mut behind_ms) = (0, 0, 0, 0);
                for id in ids {
                    if mirror::db_path(&self.data_dir, &self.names[r], id).is_file() {
                        tenants += 1;
                    }
                    let (c, ms) = self.lag(r, id);
                    if c > 0 {
                        behind += 1;
                        max_commits = max_commits.max(c);
                        behind_ms = behind_ms.max(ms);
                    }
                }
                ReplicaStatus {
                    name: self.names[r].clone(),
                    tenants,
                    behind,
                    lag_commits_max: max_commits,
                    behind_ms_max: behind_ms,
                    lag_ms_p50: pct(0.5),
                    lag_ms_p99: pct(0.99),
                    lag_ms_max: lags.last().copied().unwrap_or(0),
                    shipped_bytes: s.shipped_bytes.load(Ordering::Relaxed),
                    applied: s.applied.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                    last_error: s.last_error.lock().clone(),
                }
            })
            .collect()
    }

    /// Rebuilds a tenant's mirror on one replica from a fresh image, as a new file (readers of
    /// the old one finish on it; the server's replicator and readers notice the new file).
    pub fn rebuild(&self, r: usize, id: &TenantId) -> Result<u64> {
        let t = self.tenant_log(id).ok_or_else(|| Error::NotFound("tenant".into()))?;
        let at = t.image()?;
        self.readers.lock().pop(&(r, id.clone()));
        let positions = self.positions(id);
        self.appliers.lock().pop(&(r, id.clone()));
        {
            let pos = mirror::PosFile::lock(&self.data_dir, &self.names[r], id)?;
            crate::store::remove_db_files(&mirror::db_path(&self.data_dir, &self.names[r], id));
            self.replaced.fetch_add(1, Ordering::AcqRel);
            pos.write(at - 1, 0)?;
            positions.cursors.lock()[r] = None;
        }
        positions.resumed[r].store(false, Ordering::Release);
        self.sync(r, id, &t, &positions)?;
        Ok(at)
    }

    /// `status` as another process sees it: positions and logs on disk (how far each mirror is
    /// behind now, in commits and in ms since the first commit it lacks), and what the running
    /// server last wrote (`status.json`, every two seconds: commit-to-apply lag percentiles,
    /// bytes shipped, errors).
    pub fn disk_status(&self, ids: &[TenantId]) -> Vec<ReplicaStatus> {
        let now = now_millis();
        (0..self.names.len())
            .map(|r| {
                let name = &self.names[r];
                let reported: Option<ReplicaStatus> =
                    std::fs::read(mirror::dir(&self.data_dir, name).join("status.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                let (mut tenants, mut behind, mut max_commits, mut behind_ms) = (0, 0, 0, 0);
                for id in ids {
                    if !mirror::db_path(&self.data_dir, name, id).is_file() {
                        continue;
                    }
                    tenants += 1;
                    let log = self.capture.log_of(id);
                    let (applied, _) = mirror::recorded(&self.data_dir, name, id);
                    let logged = capture::recorded_position(&log);
                    if logged > applied {
                        behind += 1;
                        max_commits = max_commits.max(logged - applied);
                        let _ = log.read_after(applied, None, |rec| {
                            behind_ms = behind_ms.max((now - rec.time_ms).max(0));
                            Ok(false)
                        });
                    }
                }
                ReplicaStatus {
                    name: name.clone(),
                    tenants,
                    behind,
                    lag_commits_max: max_commits,
                    behind_ms_max: behind_ms,
                    lag_ms_p50: reported.as_ref().map(|s| s.lag_ms_p50).unwrap_or(0),
                    lag_ms_p99: reported.as_ref().map(|s| s.lag_ms_p99).unwrap_or(0),
                    lag_ms_max: reported.as_ref().map(|s| s.lag_ms_max).unwrap_or(0),
                    shipped_bytes: reported.as_ref().map(|s| s.shipped_bytes).unwrap_or(0),
                    applied: reported.as_ref().map(|s| s.applied).unwrap_or(0),
                    errors: reported.as_ref().map(|s| s.errors).unwrap_or(0),
                    last_error: reported.and_then(|s| s.last_error),
                }
            })
            .collect()
    }

    /// Writes this process's counters for `disk_status` readers.
    pub(super) fn write_status(&self) {
        let ids: Vec<TenantId> = self.tenants.lock().keys().cloned().collect();
        for s in self.status(&ids) {
            let dir = mirror::dir(&self.data_dir, &s.name);
            let tmp = dir.join("status.json.tmp");
            let res = std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(&tmp, serde_json::to_vec(&s).unwrap_or_default()))
                .and_then(|_| std::fs::rename(&tmp, dir.join("status.json")));
            if let Err(e) = res {
                crate::log::warn(&format!("replica: writing {}/status.json: {e}", dir.display()));
            }
        }
    }

    /// Compares a tenant's mirror on replica `r` with its primary, page for page, at the same
    /// position: the mirror is brought up to the log, then both are read in one transaction each
    /// while the log does not move (retried while writes keep it moving).
    pub fn verify(&self, r: usize, id: &TenantId) -> Result<Verified> {
        let log = self.capture.log_of(id);
        let mirror_path = mirror::db_path(&self.data_dir, &self.names[r], id);
        for _ in 0..50 {
            self.replicate(id);
            let before = capture::recorded_position(&log);
            let (applied, _) = mirror::recorded(&self.data_dir, &self.names[r], id);
            if applied != before {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let primary = crate::db::open_read_only(&self.db_path(id))?;
            primary.execute_batch("BEGIN")?;
            let (pages, want) = mirror::digest(&primary)?;
            let copy = mirror::open_for_read(&mirror_path)?;
            copy.execute_batch("BEGIN")?;
            let (copy_pages, got) = mirror::digest(&copy)?;
            let after = capture::recorded_position(&log);
            let (applied_after, _) = mirror::recorded(&self.data_dir, &self.names[r], id);
            if after != before || applied_after != applied {
                continue;
            }
            if want == got {
                return Ok(Verified { position: applied, pages });
            }
            // The primary may hold a commit its committer has not logged yet (a few µs): look again.
            std::thread::sleep(Duration::from_millis(20));
            if capture::recorded_position(&log) != before {
                continue;
            }
            let (page, byte) = mirror::first_difference(&primary, &copy)?.unwrap_or((0, 0));
            return Err(Error::Internal(format!(
                "differs from the primary at position {applied} ({copy_pages} pages vs {pages}; first at page {page}, byte {byte}); rebuild it"
            )));
        }
        Err(Error::Internal("the tenant kept changing: no quiet moment to compare in".into()))
    }

    /// Replaces a tenant's primary with replica `r`'s mirror, brought up to the change log
    /// first; the old file is copied into `keep_dir` (as evidence). Written through SQLite's
    /// backup API, so connections a server holds see the new content at their next
    /// transaction rather than a file swapped under them.
    pub fn promote(&self, r: usize, id: &TenantId, keep_dir: &Path) -> Result<PathBuf> {
        let t = self.tenant_log(id).ok_or_else(|| Error::NotFound("tenant".into()))?;
        let positions = self.positions(id);
        self.sync(r, id, &t, &positions)?;
        let mirror_path = mirror::db_path(&self.data_dir, &self.names[r], id);
        let copy = mirror::open_for_read(&mirror_path)?;
        if crate::db::integrity_check(&copy).is_err() {
            return Err(Error::Internal(format!("{}'s copy fails its integrity check too", self.names[r])));
        }
        drop(copy);
        std::fs::create_dir_all(keep_dir)?;
        let kept = keep_dir.join(format!("damaged-{}.db", crate::util::now_unix()));
        let primary = self.db_path(id);
        std::fs::copy(&primary, &kept)?;
        let wal = wal::path_of(&primary);
        if wal.is_file() {
            std::fs::copy(&wal, wal::path_of(&kept))?;
        }
        let mut live = crate::db::open_existing(&primary, crate::db::Durability::Normal)?;
        live.restore(rusqlite::MAIN_DB, &mirror_path, None::<fn(rusqlite::backup::Progress)>)?;
        crate::db::integrity_check(&live)?;
        // Not a commit the hook saw: the log goes on from an image of the promoted file.
        t.needs_image.store(true, Ordering::Release);
        t.image()?;
        self.failed.lock().remove(id);
        Ok(kept)
    }
}

/// What `verify` compared.
#[derive(Debug, Serialize)]
pub struct Verified {
    pub position: u64,
    pub pages: u32,
}
