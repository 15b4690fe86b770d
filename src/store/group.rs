//! Group commit on a tenant's writer connection. A data API write that finishes while other
//! writers are queued for the same tenant's writer leaves its transaction open for the next
//! one and waits; whichever write finds no one queued behind it commits them all at once. A
//! commit costs a WAL append of every page the transaction touched plus the commit record
//! (measured: four creates with their audit entries in one commit take 15 µs each, one per
//! commit 40 µs), so a burst of writes to one tenant shares that cost.
//!
//! Nobody answers before their write is committed: a write that left the transaction open waits
//! in `wait` until the committer says how it ended, and gets its error if it failed. Each write
//! runs inside a savepoint, so one that fails is undone alone and the group goes on.
//!
//! The writer lock is what orders everything here. Only the thread holding it opens, extends
//! or commits the group; `queued` counts the threads blocked on it, and a write leaves the
//! transaction open only when that count is above zero, so someone is bound to take the lock
//! next. That someone either joins (a data API write, `join`) or commits first (every other
//! user of the writer, `settle`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Writes per group at most, and how long it stays open at most: a steady stream of writers
/// still commits this often.
const MAX_WRITES: usize = 32;
const MAX_OPEN: std::time::Duration = std::time::Duration::from_millis(5);

/// Writes that joined a transaction another write had left open (for `/metrics`).
pub static JOINED: AtomicU64 = AtomicU64::new(0);
/// Group commits, i.e. commits of more than one write.
pub static GROUPS: AtomicU64 = AtomicU64::new(0);

pub struct Group {
    state: Mutex<State>,
    finished: Condvar,
    /// Threads blocked on the writer lock right now (see `TenantHandle::writer`).
    pub(super) queued: AtomicUsize,
    /// A transaction is open on the writer (mirrors `state.open` for lock-free readers).
    open: AtomicBool,
    /// `MAX_OPEN`, but for tests.
    max_open: std::time::Duration,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            state: Mutex::default(),
            finished: Condvar::new(),
            queued: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            max_open: MAX_OPEN,
        }
    }
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    generation: u64,
    /// How finished groups ended, for the writes still waiting on them: generation →
    /// (writes yet to look, the error if it failed).
    outcomes: HashMap<u64, (usize, Option<Failure>)>,
}

struct Open {
    generation: u64,
    writes: usize,
    /// A write's savepoint is open (between `join` and `end`).
    in_write: bool,
    /// Writes that left it open and wait for its end.
    waiting: usize,
    /// When it began: a group commits within `MAX_OPEN` even while writers keep queueing.
    since: std::time::Instant,
}

/// How a group transaction failed, as its waiting writes learn it.
#[derive(Clone)]
enum Failure {
    /// SQLite rolled the whole transaction back (an interrupted statement, an I/O error, a full
    /// disk); the code of the error that did it, when known.
    RolledBack(Option<rusqlite::ffi::Error>),
    /// `COMMIT` itself failed.
    Commit(Option<rusqlite::ffi::Error>, String),
}

impl Failure {
    fn to_error(&self) -> Error {
        use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
        match self {
            Failure::RolledBack(Some(e)) | Failure::Commit(Some(e), _) if e.code == DiskFull => Error::StorageQuota,
            // Kept as SQLite's error, extended code included, so that a write the file system
            // refused (full disk, file-size limit) is told from other I/O errors upstream.
            Failure::RolledBack(Some(e)) | Failure::Commit(Some(e), _) if e.code == SystemIoFailure => {
                Error::Sqlite(rusqlite::Error::SqliteFailure(*e, None))
            }
            Failure::RolledBack(_) => Error::Retry(
                "another write in the same transaction failed and took this one with it; send it again".into(),
            ),
            Failure::Commit(_, message) => {
                Error::Internal(format!("the group commit this write was part of failed: {message}"))
            }
        }
    }
}

/// What the write that just ended must do next.
#[must_use]
#[derive(Debug)]
pub enum After {
    /// Its part is committed (or undone, for a failed write): answer.
    Done,
    /// It left the transaction open for a queued writer: release the writer, then `wait`.
    Wait(u64),
}

/// Undoes the write in the savepoint; the transaction stays open.
fn undo_write(conn: &Connection) {
    let _ = conn.prepare_cached(ROLLBACK_TO).and_then(|mut s| s.execute([]));
    let _ = conn.prepare_cached(RELEASE).and_then(|mut s| s.execute([]));
}

const SAVEPOINT: &str = "SAVEPOINT tenantd_write";
const RELEASE: &str = "RELEASE tenantd_write";
const ROLLBACK_TO: &str = "ROLLBACK TO tenantd_write";

impl Group {
    /// Whether a transaction is open on the writer: a read must not borrow it then, or it
    /// would see uncommitted writes.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Starts a write on `conn` (the writer, held): joins the open transaction or begins one,
    /// then sets a savepoint. Returns the transaction's generation for `end`.
    pub fn join(&self, conn: &Connection) -> Result<u64> {
        let mut st = self.state.lock();
        if let Some(open) = st.open.as_ref().filter(|_| conn.is_autocommit()) {
            // The transaction is gone from under the group (nothing here ends it that way, but a
            // write must never land outside the transaction its group waits on).
            let generation = open.generation;
            self.finish(&mut st, generation, Some(Failure::RolledBack(None)));
        }
        let generation = match &st.open {
            Some(open) => {
                JOINED.fetch_add(1, Ordering::Relaxed);
                open.generation
            }
            None => {
                conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                st.generation += 1;
                let since = std::time::Instant::now();
                st.open = Some(Open { generation: st.generation, writes: 0, in_write: false, waiting: 0, since });
                self.open.store(true, Ordering::Release);
                st.generation
            }
        };
        if let Err(e) = conn.prepare_cached(SAVEPOINT).and_then(|mut s| s.execute([])) {
            // Nothing of this write happened; the group is as it was.
            self.release_or_commit(&mut st, conn);
            return Err(e.into());
        }
        if let Some(open) = st.open.as_mut() {
            open.in_write = true;
            // Every write counts towards the bound, kept or not: a stream of failing writes
            // must not keep the group open either.
            open.writes += 1;
        }
        Ok(generation)
    }

    /// Ends the write `join` started: keeps it, or undoes it when `error` (the write's own
    /// error) is set; then leaves the transaction open for a queued writer or commits it.
    /// Returns the commit's error if this write's own part was lost with it.
    pub fn end(&self, conn: &Connection, generation: u64, error: Option<&Error>) -> Result<After> {
        let mut st = self.state.lock();
        if let Some(open) = st.open.as_mut() {
            open.in_write = false;
        }
        let ok = error.is_none();
        let kept = ok && conn.prepare_cached(RELEASE).and_then(|mut s| s.execute([])).is_ok();
        if !kept {
            undo_write(conn);
        }
        // A write that succeeded but could not be kept must not be answered as done.
        let lost = || Error::Retry("the write could not be kept; send it again".into());
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (I/O error, full disk, interrupt):
            // everyone in it failed.
            let code = match error {
                Some(Error::Sqlite(e)) => e.sqlite_error().copied(),
                _ => None,
            };
            let failure = Failure::RolledBack(code);
            self.finish(&mut st, generation, Some(failure.clone()));
            return if ok { Err(failure.to_error()) } else { Ok(After::Done) };
        }
        let queued = self.queued.load(Ordering::Acquire) > 0;
        if let Some(open) = st.open.as_mut().filter(|o| o.generation == generation) {
            if queued && open.writes < MAX_WRITES && open.since.elapsed() < self.max_open {
                if !kept {
                    return if ok { Err(lost()) } else { Ok(After::Done) };
                }
                open.waiting += 1;
                return Ok(After::Wait(generation));
            }
        }
        match self.commit(&mut st, conn) {
            Some(f) if kept => Err(f.to_error()),
            _ if ok && !kept => Err(lost()),
            _ => Ok(After::Done),
        }
    }

    /// Waits, without the writer, for the end of the transaction `generation` that this write
    /// left open.
    #[cfg(test)]
    pub fn wait(&self, generation: u64) -> Result<()> {
        loop {
            if let Some(outcome) = self.wait_for(generation, std::time::Duration::from_secs(60)) {
                return outcome;
            }
        }
    }

    /// `wait`, for at most `timeout`: `None` if the transaction has not ended by then.
    pub fn wait_for(&self, generation: u64, timeout: std::time::Duration) -> Option<Result<()>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.state.lock();
        loop {
            if let Some((left, failure)) = st.outcomes.get_mut(&generation) {
                *left -= 1;
                let result = failure.as_ref().map_or(Ok(()), |f| Err(f.to_error()));
                if *left == 0 {
                    st.outcomes.remove(&generation);
                }
                return Some(result);
            }
            if self.finished.wait_until(&mut st, deadline).timed_out() {
                return None;
            }
        }
    }

    /// Commits an open transaction before the writer is used for anything but a data API write
    /// (`conn` is the writer, held).
    pub fn settle(&self, conn: &Connection) {
        if self.is_open() {
            let mut st = self.state.lock();
            self.commit(&mut st, conn);
        }
    }

    /// When a holder of the writer lets go without `end` (an error between taking the writer
    /// and writing, or a panic in the write): undoes the unfinished write, then commits the
    /// open transaction unless a queued writer will carry it on.
    pub fn release(&self, conn: &Connection) {
        if self.is_open() {
            let mut st = self.state.lock();
            if let Some(open) = st.open.as_mut().filter(|o| o.in_write) {
                open.in_write = false;
                undo_write(conn);
            }
            self.release_or_commit(&mut st, conn);
        }
    }

    fn release_or_commit(&self, st: &mut State, conn: &Connection) {
        if self.queued.load(Ordering::Acquire) == 0 {
            self.commit(st, conn);
        }
    }

    /// Commits the open transaction, if any, and tells its waiting writes how it ended.
    fn commit(&self, st: &mut State, conn: &Connection) -> Option<Failure> {
        let generation = st.open.as_ref()?.generation;
        if conn.is_autocommit() {
            // Rolled back already (an interrupt or I/O error in a write that then panicked).
            let failure = Failure::RolledBack(None);
            self.finish(st, generation, Some(failure.clone()));
            return Some(failure);
        }
        let commit = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        let failure = commit.err().map(|e| Failure::Commit(e.sqlite_error().copied(), e.to_string()));
        if failure.is_some() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.finish(st, generation, failure.clone());
        failure
    }

    fn finish(&self, st: &mut State, generation: u64, failure: Option<Failure>) {
        let Some(open) = st.open.take_if(|o| o.generation == generation) else { return };
        self.open.store(false, Ordering::Release);
        if open.writes > 1 {
            GROUPS.fetch_add(1, Ordering::Relaxed);
        }
        if open.waiting > 0 {
            st.outcomes.insert(generation, (open.waiting, failure));
            self.finished.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v TEXT UNIQUE);").unwrap();
        (dir, conn)
    }

    fn rows(dir: &tempfile::TempDir) -> Vec<String> {
        // Another connection sees only what is committed.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        let mut s = other.prepare("SELECT v FROM t ORDER BY v").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// A group that stays open as long as a test needs (the real one commits within 5 ms).
    fn group() -> Group {
        Group { max_open: std::time::Duration::from_secs(3600), ..Group::default() }
    }

    fn failed() -> Error {
        Error::invalid("test", "this write failed")
    }

    /// With a writer queued, writes `v` and leaves the group open for it; returns the
    /// generation to wait on.
    fn leave_open(g: &Group, conn: &Connection, v: &str) -> u64 {
        g.queued.store(1, Ordering::SeqCst);
        let generation = g.join(conn).unwrap();
        assert!(insert(conn, v));
        let After::Wait(waiting) = g.end(conn, generation, None).unwrap() else { panic!("should leave it open") };
        waiting
    }

    fn insert(conn: &Connection, v: &str) -> bool {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v]).is_ok()
    }

    #[test]
    fn a_write_alone_commits_at_once() {
        let (dir, conn) = db();
        let g = group();
        let generation = g.join(&conn).unwrap();
        assert!(insert(&conn, "a"));
        assert!(matches!(g.end(&conn, generation, None).unwrap(), After::Done));
        assert!(!g.is_open() && conn.is_autocommit());
        assert_eq!(rows(&dir), ["a"]);
    }

    #[test]
    fn queued_writers_share_one_commit_and_a_failed_one_is_undone_alone() {
        let (dir, conn) = db();
        let g = group();
        let waiting = leave_open(&g, &conn, "a"); // someone waits for the writer
        assert!(g.is_open());
        assert!(rows(&dir).is_empty(), "nothing is visible before the commit");
        // The next write joins, inserts and then fails (a duplicate): undone alone.
        let second = g.join(&conn).unwrap();
        assert_eq!(second, waiting);
        assert!(insert(&conn, "b"));
        assert!(!insert(&conn, "a"));
        assert!(matches!(g.end(&conn, second, Some(&failed())).unwrap(), After::Done));
        assert!(g.is_open(), "still someone queued: left open for them");
        // The last one finds no one queued and commits for everybody.
        g.queued.store(0, Ordering::SeqCst);
        let third = g.join(&conn).unwrap();
        assert!(insert(&conn, "c"));
        assert!(matches!(g.end(&conn, third, None).unwrap(), After::Done));
        assert!(!g.is_open());
        g.wait(waiting).unwrap();
        assert_eq!(rows(&dir), ["a", "c"]);
        assert!(g.state.lock().outcomes.is_empty(), "outcomes are forgotten once read");
    }

    #[test]
    fn a_failed_commit_fails_every_write_in_the_group() {
        let (dir, conn) = db();
        let g = group();
        let waiting = leave_open(&g, &conn, "a");
        g.queued.store(0, Ordering::SeqCst);
        conn.commit_hook(Some(|| true)).unwrap(); // turns the COMMIT into a rollback
        let last = g.join(&conn).unwrap();
        assert!(insert(&conn, "b"));
        assert!(g.end(&conn, last, None).is_err(), "the committer gets the error");
        assert!(g.wait(waiting).is_err(), "and so does the write that waited");
        conn.commit_hook(None::<fn() -> bool>).unwrap();
        assert!(conn.is_autocommit() && !g.is_open());
        assert!(rows(&dir).is_empty());
    }

    #[test]
    fn other_users_of_the_writer_commit_an_open_group_first() {
        let (dir, conn) = db();
        let g = group();
        let waiting = leave_open(&g, &conn, "a");
        // A holder that does not write (`release`) leaves it to a queued writer, but commits
        // when there is none; `settle` always commits.
        g.release(&conn);
        assert!(g.is_open());
        g.settle(&conn);
        assert!(!g.is_open() && conn.is_autocommit());
        g.wait(waiting).unwrap();
        assert_eq!(rows(&dir), ["a"]);
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;").unwrap();
    }

    #[test]
    fn a_write_abandoned_midway_is_undone_before_the_group_commits() {
        // A panic between `join` and `end` drops the writer through `release`.
        let (dir, conn) = db();
        let g = group();
        let waiting = leave_open(&g, &conn, "a");
        g.queued.store(0, Ordering::SeqCst);
        g.join(&conn).unwrap();
        assert!(insert(&conn, "half"));
        g.release(&conn);
        g.wait(waiting).unwrap();
        assert_eq!(rows(&dir), ["a"]);
    }

    #[test]
    fn failing_writes_count_towards_the_bound_and_old_groups_commit() {
        let (dir, conn) = db();
        let g = group();
        let waiting = leave_open(&g, &conn, "a");
        for _ in 1..MAX_WRITES - 1 {
            let generation = g.join(&conn).unwrap();
            assert!(matches!(g.end(&conn, generation, Some(&failed())).unwrap(), After::Done));
            assert!(g.is_open());
        }
        // The 32nd write, failed too, commits although someone is still queued.
        let last = g.join(&conn).unwrap();
        assert!(matches!(g.end(&conn, last, Some(&failed())).unwrap(), After::Done));
        assert!(!g.is_open());
        g.wait(waiting).unwrap();
        assert_eq!(rows(&dir), ["a"]);
        // And a group older than its limit commits at once.
        let young = Group { max_open: std::time::Duration::ZERO, ..Group::default() };
        young.queued.store(1, Ordering::SeqCst);
        let generation = young.join(&conn).unwrap();
        assert!(insert(&conn, "b"));
        assert!(matches!(young.end(&conn, generation, None).unwrap(), After::Done));
        assert_eq!(rows(&dir), ["a", "b"]);
        assert!(young.wait_for(generation, std::time::Duration::ZERO).is_none(), "nobody waits on it");
    }

    #[test]
    fn a_write_whose_transaction_vanished_is_not_reported_done() {
        let (dir, conn) = db();
        let g = group();
        let generation = g.join(&conn).unwrap();
        assert!(insert(&conn, "a"));
        conn.execute_batch("ROLLBACK").unwrap(); // as SQLite does after an I/O error
        let err = g.end(&conn, generation, None).unwrap_err();
        assert!(matches!(err, Error::Retry(_)), "{err:?}");
        assert!(!g.is_open() && rows(&dir).is_empty());
    }

    #[test]
    fn a_group_rolled_back_by_another_write_tells_its_waiters_why() {
        let sqlite = |code| Error::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
        for (cause, expect_quota) in [(rusqlite::ffi::SQLITE_INTERRUPT, false), (rusqlite::ffi::SQLITE_FULL, true)] {
            let (_dir, conn) = db();
            let g = group();
            let waiting = leave_open(&g, &conn, "a");
            let last = g.join(&conn).unwrap();
            assert!(insert(&conn, "b"));
            conn.execute_batch("ROLLBACK").unwrap(); // what SQLite does after such an error
            g.queued.store(0, Ordering::SeqCst);
            assert!(matches!(g.end(&conn, last, Some(&sqlite(cause))).unwrap(), After::Done));
            match g.wait(waiting).unwrap_err() {
                Error::StorageQuota => assert!(expect_quota),
                Error::Retry(_) => assert!(!expect_quota),
                other => panic!("{other:?}"),
            }
        }
    }
}
