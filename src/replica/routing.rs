//! Reads answered by a mirror: which replica may answer (lag, bookmarks, a failed primary),
//! and the pool of read connections on mirrors.

use std::time::Instant;

use super::*;

/// An idle read connection on a mirror: the inode it opened, and when and at which of this
/// process's replacements (`Replication::replaced`) that inode was last found current.
pub(super) struct IdleRead {
    conn: Connection,
    ino: u64,
    checked: Instant,
    replaced: u64,
}

/// A read connection on a mirror, back to its pool when dropped.
pub struct MirrorRead {
    pub replica: String,
    conn: Option<Connection>,
    ino: u64,
    checked: Instant,
    replaced: u64,
    key: (usize, TenantId),
    owner: Arc<Replication>,
}

impl std::ops::Deref for MirrorRead {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl std::ops::DerefMut for MirrorRead {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Drop for MirrorRead {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let idle = IdleRead { conn, ino: self.ino, checked: self.checked, replaced: self.replaced };
            let mut r = self.owner.readers.lock();
            match r.get_mut(&self.key) {
                Some(v) if v.len() < 4 => v.push(idle),
                Some(_) => {}
                None => {
                    r.put(self.key.clone(), vec![idle]);
                }
            }
        }
    }
}

impl Replication {
    /// With `read_policy = "replica"`: a read connection on a mirror of the tenant that is at
    /// `bookmark` or past it (waiting up to `bookmark_wait_ms` for one), or within
    /// `max_lag_ms` when there is no bookmark. None: the primary answers.
    /// A tenant whose primary failed (`primary_failed`) is read from its most advanced mirror
    /// whatever the policy and lag.
    pub fn reader(self: &Arc<Self>, id: &TenantId, bookmark: Option<u64>) -> Option<MirrorRead> {
        if self.primary_is_failed(id) {
            let positions = self.positions(id);
            let best = (0..self.names.len()).max_by_key(|&r| positions.applied[r].load(Ordering::Acquire))?;
            return self.connect(best, id, None);
        }
        if self.config.read_policy != "replica" {
            return None;
        }
        let positions = self.positions(id);
        let n = self.names.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let pick = |positions: &Positions| {
            (0..n).map(|i| (start + i) % n).find(|&r| match bookmark {
                Some(b) => positions.applied[r].load(Ordering::Acquire) >= b,
                None => self.lag(r, id).1 <= self.config.max_lag_ms as i64,
            })
        };
        let mut chosen = pick(&positions);
        if chosen.is_none() && bookmark.is_some() && self.config.bookmark_wait_ms > 0 {
            let deadline = Instant::now() + Duration::from_millis(self.config.bookmark_wait_ms);
            let mut g = positions.lock.lock();
            while chosen.is_none() {
                chosen = pick(&positions);
                if chosen.is_some() || positions.changed.wait_until(&mut g, deadline).timed_out() {
                    chosen = chosen.or_else(|| pick(&positions));
                    break;
                }
            }
        }
        self.connect(chosen?, id, bookmark)
    }

    /// Records that the tenant's primary answered a read with corruption (true the first time
    /// in `FAILED_FOR`): its reads go to a mirror meanwhile.
    pub fn primary_failed(&self, id: &TenantId) -> bool {
        let mut f = self.failed.lock();
        let fresh = f.get(id).is_none_or(|at| at.elapsed() >= FAILED_FOR);
        if fresh {
            f.insert(id.clone(), Instant::now());
        }
        fresh
    }

    fn primary_is_failed(&self, id: &TenantId) -> bool {
        let mut f = self.failed.lock();
        match f.get(id) {
            Some(at) if at.elapsed() < FAILED_FOR => true,
            Some(_) => {
                f.remove(id);
                false
            }
            None => false,
        }
    }

    /// A read connection on replica `r`'s mirror of the tenant (pooled).
    fn connect(self: &Arc<Self>, r: usize, id: &TenantId, bookmark: Option<u64>) -> Option<MirrorRead> {
        let key = (r, id.clone());
        let replaced = self.replaced.load(Ordering::Acquire);
        let idle = self.readers.lock().get_mut(&key).and_then(|v| v.pop());
        // A mirror rebuilt as a new file: connections on the old one are dropped. This
        // process's replacements are seen at once; another's within FRESH_MS, except by reads
        // with a bookmark, which always look (an old file may be behind the position routed on).
        if let Some(i) = idle.as_ref().filter(|i| {
            i.replaced == replaced && bookmark.is_none() && i.checked.elapsed() < Duration::from_millis(FRESH_MS as u64)
        }) {
            let (ino, checked) = (i.ino, i.checked);
            let conn = idle.map(|i| i.conn);
            return Some(MirrorRead {
                replica: self.names[r].clone(),
                conn,
                ino,
                checked,
                replaced,
                key,
                owner: self.clone(),
            });
        }
        let path = mirror::db_path(&self.data_dir, &self.names[r], id);
        let ino = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok()?;
        let conn = match idle {
            Some(i) if i.ino == ino => i.conn,
            _ => mirror::open_for_read(&path).ok()?,
        };
        let checked = Instant::now();
        Some(MirrorRead {
            replica: self.names[r].clone(),
            conn: Some(conn),
            ino,
            checked,
            replaced,
            key,
            owner: self.clone(),
        })
    }
}
