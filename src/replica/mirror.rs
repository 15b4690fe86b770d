//! A replica's copy of one tenant file (`replicas/<name>/<tenant_id>.db`) and the position it
//! is at (`<tenant_id>.pos`). Records from the change log are applied as pages through SQLite's
//! `sqlite_dbpage` table in one transaction of the mirror's own (WAL mode), so a reader of the
//! mirror sees the state after a whole number of the primary's commits, never part of one,
//! and the mirror is page for page the primary at that position.
//!
//! Applying is idempotent: the records are page images, so applying again from a position the
//! mirror is already past, up to the log's end in one transaction, ends where it would have.
//! That is why the position file may lag the mirror (a crash between the two): the replicator
//! applies from the recorded position to the end of the log in one go after a start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use super::log::{Kind, Record};
use crate::error::{Error, Result};
use crate::ids::TenantId;

pub fn dir(data_dir: &Path, replica: &str) -> PathBuf {
    data_dir.join("replicas").join(replica)
}

pub fn db_path(data_dir: &Path, replica: &str, id: &TenantId) -> PathBuf {
    dir(data_dir, replica).join(format!("{}.db", id.as_str()))
}

fn pos_path(data_dir: &Path, replica: &str, id: &TenantId) -> PathBuf {
    dir(data_dir, replica).join(format!("{}.pos", id.as_str()))
}

/// A mirror's position file, locked: whoever applies to a mirror (the server's replicator, a
/// CLI rebuilding it) holds it from reading the position to writing the new one, so two
/// processes never apply out of order.
pub struct PosFile {
    file: std::fs::File,
}

impl PosFile {
    pub fn lock(data_dir: &Path, replica: &str, id: &TenantId) -> Result<PosFile> {
        let path = pos_path(data_dir, replica, id);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::Internal(format!("locking {}: {e}", path.display())))?;
        Ok(PosFile { file })
    }

    /// (position, the applied commit's time in ms); (0, 0) for none.
    pub fn read(&self) -> (u64, i64) {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 40];
        let n = self.file.read_at(&mut b, 0).unwrap_or(0);
        parse_pos(&b[..n])
    }

    pub fn write(&self, position: u64, time_ms: i64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let text = format!("{position:>20} {time_ms:>18}\n");
        self.file.write_all_at(text.as_bytes(), 0)?;
        Ok(())
    }
}

impl Drop for PosFile {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.file, rustix::fs::FlockOperation::Unlock);
    }
}

fn parse_pos(b: &[u8]) -> (u64, i64) {
    let text = std::str::from_utf8(b).unwrap_or("");
    let mut it = text.split_whitespace().map(|s| s.parse::<i64>().unwrap_or(0));
    (it.next().unwrap_or(0).max(0) as u64, it.next().unwrap_or(0))
}

/// The recorded (position, time) of a mirror, read without the lock (status, routing).
pub fn recorded(data_dir: &Path, replica: &str, id: &TenantId) -> (u64, i64) {
    parse_pos(&std::fs::read(pos_path(data_dir, replica, id)).unwrap_or_default())
}

/// The connection that applies records to a mirror (created if missing).
pub fn open_for_apply(path: &Path) -> Result<Connection> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // No fsync: a process crash cannot tear a WAL-mode file at any setting, and a mirror an OS
    // crash damaged is found by `replica verify` and rebuilt from the log. An fsync at each
    // checkpoint held the replicator (and every tenant queued behind it) for tens of ms.
    conn.execute_batch("PRAGMA synchronous=OFF;")?;
    // Checkpoints of 100 pages rather than SQLite's 1,000: mirrors written at
    // the same pace would otherwise checkpoint 4 MB each at nearly the same moment.
    conn.pragma_update(None, "wal_autocheckpoint", 100)?;
    Ok(conn)
}

/// A read-only connection on a mirror (for reads routed to the replica).
pub fn open_for_read(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::Internal(format!("no mirror at {}", path.display())));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(1))?;
    conn.execute_batch("PRAGMA query_only=ON;")?;
    Ok(conn)
}

/// Creates a mirror that does not exist yet from `records` starting with an image: the pages
/// are written as a plain file beside it and renamed into place (nobody reads a mirror that
/// is not there yet). Through SQLite, the first transaction on an empty file would run in
/// rollback mode and stamp page 1 with a change counter of its own.
pub fn create(path: &Path, records: &[Record]) -> Result<u64> {
    let Some(last) = records.last() else { return Ok(0) };
    if records.first().map(|r| r.kind) != Some(Kind::Image) {
        return Err(Error::Internal("a new mirror starts from an image".into()));
    }
    let mut pages: BTreeMap<u32, &[u8]> = BTreeMap::new();
    for r in records {
        for (p, data) in &r.pages {
            pages.insert(*p, data);
        }
    }
    let size = last.page_size as usize;
    let mut file = Vec::with_capacity(size * last.db_pages as usize);
    for p in 1..=last.db_pages {
        let page = pages.get(&p).ok_or_else(|| Error::Internal(format!("the image lacks page {p}")))?;
        file.extend_from_slice(page);
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    crate::store::remove_db_files(path);
    let tmp = path.with_extension("db.new");
    std::fs::write(&tmp, &file)?;
    std::fs::rename(&tmp, path)?;
    Ok(file.len() as u64)
}

/// Applies `records` (consecutive, from the log) in one transaction. Returns the bytes of the
/// pages written.
pub fn apply(conn: &Connection, records: &[Record]) -> Result<u64> {
    let Some(last) = records.last() else { return Ok(0) };
    // The last version of each page; an image drops what came before it.
    let mut pages: BTreeMap<u32, &[u8]> = BTreeMap::new();
    for r in records {
        if r.kind == Kind::Image {
            pages.clear();
        }
        for (p, data) in &r.pages {
            pages.insert(*p, data);
        }
    }
    let current: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if current == 0 {
        conn.execute_batch(&format!("PRAGMA page_size={}", last.page_size))?;
    } else {
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        if size != i64::from(last.page_size) {
            return Err(Error::Internal(format!(
                "mirror page size {size} differs from the primary's {}: rebuild it",
                last.page_size
            )));
        }
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // Page 1 goes last: it holds the schema cookie, and a statement that starts after the
    // cookie changed re-reads the schema, which must by then point at pages already written.
    // The truncation of a shrunk file goes after it: writing any page cancels a truncation.
    let res = (|| -> Result<u64> {
        let mut bytes = 0;
        let has: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let mut put = conn.prepare_cached("INSERT INTO sqlite_dbpage(pgno, data) VALUES (?1, ?2)")?;
        let first = pages.get(&1).copied();
        for (p, data) in pages.iter().filter(|(p, _)| **p != 1 && **p <= last.db_pages) {
            put.execute(params![p, data])?;
            bytes += data.len() as u64;
        }
        if let Some(data) = first {
            put.execute(params![1, data])?;
            bytes += data.len() as u64;
        }
        drop(put);
        if has > i64::from(last.db_pages) {
            conn.execute("INSERT INTO sqlite_dbpage(pgno, data) VALUES (?1, NULL)", params![last.db_pages + 1])?;
        }
        Ok(bytes)
    })();
    match res {
        Ok(bytes) => {
            conn.execute_batch("COMMIT")?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Every page of a database as one connection sees it in its read transaction, with the
/// header fields each file's own pager stamps left out: SQLite writes page 1 to the WAL with
/// the change counter of the file it checkpoints into plus one (bytes 24..28) and the same
/// number and its version at 92..100, so two copies with the same content differ there once
/// they checkpoint at different times.
fn pages(conn: &Connection) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare("SELECT data FROM sqlite_dbpage ORDER BY pgno")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out: Vec<Vec<u8>> = rows.collect::<rusqlite::Result<_>>()?;
    if let Some(first) = out.first_mut().filter(|p| p.len() >= 100) {
        first[24..28].fill(0);
        first[92..100].fill(0);
    }
    Ok(out)
}

/// SHA-256 of `pages` (the comparison `replica verify` makes).
pub fn digest(conn: &Connection) -> Result<(u32, String)> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let all = pages(conn)?;
    for p in &all {
        h.update(p);
    }
    Ok((all.len() as u32, crate::util::hex(&h.finalize())))
}

/// The first page (and byte in it) where two databases differ, each read in its current
/// transaction (what `replica verify` reports).
pub fn first_difference(a: &Connection, b: &Connection) -> Result<Option<(u32, usize)>> {
    let (pa, pb) = (pages(a)?, pages(b)?);
    for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
        if let Some(at) = x.iter().zip(y).position(|(u, v)| u != v) {
            return Ok(Some((i as u32 + 1, at)));
        }
    }
    Ok((pa.len() != pb.len()).then(|| (pa.len().min(pb.len()) as u32 + 1, 0)))
}

/// Removes a mirror with its companions and position.
pub fn remove(data_dir: &Path, replica: &str, id: &TenantId) {
    crate::store::remove_db_files(&db_path(data_dir, replica, id));
    let _ = std::fs::remove_file(pos_path(data_dir, replica, id));
}
