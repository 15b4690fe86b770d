//! Reading committed transactions out of a tenant's `-wal` file (the format is in SQLite's
//! `walformat.html`): a 32-byte header (magic, version, page size, checkpoint sequence, two
//! salts, a checksum), then frames of a 24-byte header (page number, the database size in pages
//! for the frame that commits a transaction and 0 otherwise, the salts, a running checksum)
//! and one page. A frame belongs to the WAL's current generation only if its salts match the
//! header's; the checksums chain from the header through every frame, so the end of the valid
//! frames is where the chain breaks.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};

pub const HEADER: usize = 32;
pub const FRAME_HEADER: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub page_size: usize,
    pub salt: (u32, u32),
    /// Checksums are big-endian words (magic 0x377f0683) or little-endian (0x377f0682).
    big_endian: bool,
    checksum: (u32, u32),
}

/// One committed transaction: every page it wrote (the last version of each), and the
/// database's size in pages once it committed.
#[derive(Debug, Default)]
pub struct Commit {
    pub pages: Vec<(u32, Vec<u8>)>,
    pub db_pages: u32,
    /// The WAL frame after this commit's last frame.
    pub frame_end: u32,
}

fn be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = s;
    for w in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (u32::from_be_bytes([w[0], w[1], w[2], w[3]]), u32::from_be_bytes([w[4], w[5], w[6], w[7]]))
        } else {
            (u32::from_le_bytes([w[0], w[1], w[2], w[3]]), u32::from_le_bytes([w[4], w[5], w[6], w[7]]))
        };
        s0 = s0.wrapping_add(x0).wrapping_add(s1);
        s1 = s1.wrapping_add(x1).wrapping_add(s0);
    }
    (s0, s1)
}

/// The header of an open `-wal`, or None when the file is shorter than a header (a WAL that
/// was truncated or never written) or its header is not valid.
pub fn header(file: &File) -> Result<Option<Header>> {
    let mut h = [0u8; HEADER];
    match file.read_exact_at(&mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let magic = be(&h, 0);
    if magic & !1 != 0x377f_0682 {
        return Ok(None);
    }
    let big_endian = magic & 1 == 1;
    let page_size = match be(&h, 8) {
        1 => 65_536,
        n => n as usize,
    };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Ok(None);
    }
    let sum = checksum(big_endian, &h[..24], (0, 0));
    if sum != (be(&h, 24), be(&h, 28)) {
        return Ok(None);
    }
    Ok(Some(Header { page_size, salt: (be(&h, 16), be(&h, 20)), big_endian, checksum: sum }))
}

/// Reads the committed transactions in frames `[from, to)` of the generation `h`. With
/// `to = None` the end is found by following the checksum chain from the first frame (a WAL
/// nobody told us the length of); with `Some(n)`, SQLite has just said n frames are there
/// (the commit hook), and only each frame's salts are checked. Frames after the last commit
/// frame (a transaction still being written) are left for next time. An error means the
/// frames are not what they should be (the WAL was restarted under us): the caller must not
/// trust the change log to be complete.
pub fn commits(file: &File, h: &Header, from: u32, to: Option<u32>) -> Result<Vec<Commit>> {
    let frame_len = FRAME_HEADER + h.page_size;
    let mut commits = Vec::new();
    let mut cur = Commit::default();
    let mut sum = h.checksum;
    let mut buf = vec![0u8; frame_len];
    // The checksum chain goes on from the frame before `from` (its header holds the running
    // sum), or from the start when that frame is not of this generation.
    let mut start = if to.is_none() { 0 } else { from };
    if to.is_none() && from > 0 {
        let at = HEADER as u64 + u64::from(from - 1) * frame_len as u64;
        if file.read_exact_at(&mut buf[..FRAME_HEADER], at).is_ok() && (be(&buf, 8), be(&buf, 12)) == h.salt {
            sum = (be(&buf, 16), be(&buf, 20));
            start = from;
        }
    }
    let mut i = start;
    loop {
        if to.is_some_and(|to| i >= to) {
            break;
        }
        let at = HEADER as u64 + u64::from(i) * frame_len as u64;
        match file.read_exact_at(&mut buf, at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                if to.is_some() {
                    return Err(Error::Internal(format!("the WAL ends before frame {i}")));
                }
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if (be(&buf, 8), be(&buf, 12)) != h.salt {
            if to.is_some() {
                return Err(Error::Internal(format!("WAL frame {i} belongs to another generation")));
            }
            break;
        }
        if to.is_none() {
            sum = checksum(h.big_endian, &buf[..8], sum);
            sum = checksum(h.big_endian, &buf[FRAME_HEADER..], sum);
            if sum != (be(&buf, 16), be(&buf, 20)) {
                break;
            }
        }
        i += 1;
        if i <= from {
            continue;
        }
        let pgno = be(&buf, 0);
        match cur.pages.iter_mut().find(|(p, _)| *p == pgno) {
            Some(slot) => slot.1.copy_from_slice(&buf[FRAME_HEADER..]),
            None => cur.pages.push((pgno, buf[FRAME_HEADER..].to_vec())),
        }
        let db_pages = be(&buf, 4);
        if db_pages != 0 {
            cur.db_pages = db_pages;
            cur.frame_end = i;
            commits.push(std::mem::take(&mut cur));
        }
    }
    if to.is_some() && !cur.pages.is_empty() {
        return Err(Error::Internal("the WAL's last frames do not end with a commit".into()));
    }
    Ok(commits)
}

/// `-wal` beside a database file.
pub fn path_of(db: &Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn wal_db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("t.db")).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);").unwrap();
        (dir, c)
    }

    #[test]
    fn reads_each_commit_with_its_pages_and_size() {
        let (dir, c) = wal_db();
        c.execute_batch("INSERT INTO t VALUES (1); BEGIN; INSERT INTO t VALUES (2); INSERT INTO t VALUES (3); COMMIT;")
            .unwrap();
        let f = File::open(dir.path().join("t.db-wal")).unwrap();
        let h = header(&f).unwrap().unwrap();
        assert_eq!(h.page_size, 4096);
        let all = commits(&f, &h, 0, None).unwrap();
        // CREATE TABLE, then one insert, then the two-insert transaction.
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|c| c.db_pages == 2));
        let last = all.last().unwrap();
        assert_eq!(last.pages.len(), 1, "page 2 written twice is kept once: {:?}", last.frame_end);
        // From a commit boundary, found or told the length, it reads the same.
        assert_eq!(commits(&f, &h, all[0].frame_end, None).unwrap().len(), 2);
        let tail = commits(&f, &h, all[0].frame_end, Some(last.frame_end)).unwrap();
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[1].pages[0].1, last.pages[0].1);
    }

    #[test]
    fn a_torn_last_frame_ends_the_chain() {
        let (dir, c) = wal_db();
        c.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let path = dir.path().join("t.db-wal");
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let h = header(&f).unwrap().unwrap();
        let n = commits(&f, &h, 0, None).unwrap().len();
        let len = f.metadata().unwrap().len();
        f.write_all_at(&[0xAB; 64], len - 64).unwrap();
        assert_eq!(commits(&f, &h, 0, None).unwrap().len(), n - 1);
        assert!(header(&File::open(dir.path().join("t.db")).unwrap()).unwrap().is_none());
    }
}
