//! A tenant's read connections beside its writer: opened when reads overlap, kept idle for the
//! next overlap, closed by `close_idle` once unused for a while.
//!
//! Why not r2d2, which the catalog uses: every r2d2 pool schedules an idle reaper on a shared
//! thread pool at a fixed rate and never cancels it. Dropping the pool leaves the job behind,
//! holding the pool's allocation and rescheduling itself every 30 s for the rest of the process.
//! With one pool per open tenant, every cold open leaked one: a uniform load over 10,000 tenants
//! grew the server by ~1.3 KiB per open (80 MiB in 40 s) and the reaper thread's work with it.
//! r2d2 also opens each connection on that one shared thread while the request waits for it.
//! Here the requesting thread opens the connection itself, and the store's background loop
//! closes idle ones of the tenants that are open (`TenantStore::close_idle_readers`).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Opens one more read connection to a tenant file.
type Open = fn(&std::path::Path) -> Result<Connection>;

/// The read connections of one tenant file, at most `max` open at once.
pub struct Readers {
    path: PathBuf,
    max: usize,
    open: Open,
    state: Mutex<State>,
    returned: Condvar,
}

#[derive(Default)]
struct State {
    /// Idle connections, the most recently returned last (taken first: its cache is warm).
    idle: Vec<(Connection, Instant)>,
    /// Connections open: idle, lent out, or being opened.
    count: usize,
}

/// A read connection lent out; it goes back to its tenant's idle list when dropped.
pub struct ReaderConn {
    conn: Option<Connection>,
    home: Arc<Readers>,
}

impl Readers {
    pub fn new(path: PathBuf, max: u32, open: Open) -> Arc<Readers> {
        Arc::new(Readers { path, max: (max as usize).max(1), open, state: Mutex::default(), returned: Condvar::new() })
    }

    /// An idle connection, or a new one while fewer than `max` are open; else waits up to
    /// `timeout` for one to come back (then `Error::Retry`, a 503 the client may retry).
    pub fn get(self: &Arc<Self>, timeout: Duration) -> Result<ReaderConn> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        loop {
            if let Some((conn, _)) = state.idle.pop() {
                return Ok(self.lend(conn));
            }
            if state.count < self.max {
                state.count += 1;
                drop(state);
                return match (self.open)(&self.path) {
                    Ok(conn) => Ok(self.lend(conn)),
                    Err(e) => {
                        self.state.lock().count -= 1;
                        // Someone waiting may now open one (and see the error for themselves).
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            if Instant::now() >= deadline {
                return Err(Error::Retry(format!(
                    "all {} read connections of this tenant stayed busy for {} ms; retry shortly",
                    self.max,
                    timeout.as_millis()
                )));
            }
            self.returned.wait_until(&mut state, deadline);
        }
    }

    fn lend(self: &Arc<Self>, conn: Connection) -> ReaderConn {
        ReaderConn { conn: Some(conn), home: self.clone() }
    }

    /// Closes the connections idle for `idle_for` or longer; returns how many.
    pub fn close_idle(&self, idle_for: Duration) -> usize {
        let stale: Vec<(Connection, Instant)> = {
            let mut state = self.state.lock();
            let keep_from = state.idle.partition_point(|(_, since)| since.elapsed() >= idle_for);
            let stale: Vec<_> = state.idle.drain(..keep_from).collect();
            state.count -= stale.len();
            stale
        };
        // Closing (a WAL index unmap, three file closes) happens outside the lock.
        stale.len()
    }

    /// (open, idle) connections.
    pub fn state(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.count, state.idle.len())
    }

    pub fn has_idle(&self) -> bool {
        !self.state.lock().idle.is_empty()
    }
}

impl Drop for ReaderConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.home.state.lock().idle.push((conn, Instant::now()));
            self.home.returned.notify_one();
        }
    }
}

impl Deref for ReaderConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `drop` takes it.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl DerefMut for ReaderConn {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Result<Connection> {
        crate::db::open_existing(path, crate::db::Durability::Normal)
    }

    fn file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v);").unwrap();
        (dir, path)
    }

    #[test]
    fn a_returned_connection_is_lent_again_instead_of_opening_another() {
        let (_dir, path) = file();
        let readers = Readers::new(path, 4, open);
        for _ in 0..3 {
            let c = readers.get(Duration::from_secs(1)).unwrap();
            c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap();
        }
        assert_eq!(readers.state(), (1, 1));
        let a = readers.get(Duration::from_secs(1)).unwrap();
        let b = readers.get(Duration::from_secs(1)).unwrap();
        assert_eq!(readers.state(), (2, 0));
        drop((a, b));
        assert_eq!(readers.state(), (2, 2));
    }

    #[test]
    fn a_full_set_makes_the_next_reader_wait_then_fail_with_a_retry() {
        let (_dir, path) = file();
        let readers = Readers::new(path, 1, open);
        let held = readers.get(Duration::from_secs(1)).unwrap();
        match readers.get(Duration::from_millis(20)) {
            Err(Error::Retry(m)) => assert!(m.contains("busy"), "{m}"),
            other => panic!("expected a retry error, got {:?}", other.map(|_| ())),
        }
        // A connection handed back wakes a waiting reader.
        let r2 = readers.clone();
        let waiter = std::thread::spawn(move || r2.get(Duration::from_secs(30)).map(|_| ()));
        drop(held);
        waiter.join().unwrap().unwrap();
        assert_eq!(readers.state(), (1, 1));
    }

    #[test]
    fn a_failed_open_gives_its_slot_back() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(dir.path().join("missing.db"), 1, open);
        assert!(readers.get(Duration::from_millis(10)).is_err());
        assert!(readers.get(Duration::from_millis(10)).is_err());
        assert_eq!(readers.state(), (0, 0));
    }

    #[test]
    fn close_idle_closes_only_connections_idle_longer_than_asked() {
        let (_dir, path) = file();
        let readers = Readers::new(path, 4, open);
        let a = readers.get(Duration::from_secs(1)).unwrap();
        let b = readers.get(Duration::from_secs(1)).unwrap();
        let c = readers.get(Duration::from_secs(1)).unwrap();
        drop(a);
        assert_eq!(readers.close_idle(Duration::from_secs(3600)), 0);
        assert_eq!(readers.close_idle(Duration::ZERO), 1);
        drop(b);
        assert_eq!(readers.state(), (2, 1));
        assert_eq!(readers.close_idle(Duration::ZERO), 1);
        drop(c);
        assert_eq!(readers.state(), (1, 1));
    }
}
