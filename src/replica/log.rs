//! A tenant's change log: every committed transaction of its file, in commit order, as the
//! pages it wrote (`changes/<tenant_id>/<first position, 16 hex>.log` segments). Replicas apply
//! it; each record's position is the tenant's commit position (1, 2, 3…, never reused).
//!
//! A record is either the pages of one commit, or an image: every page of the file at one
//! instant (a tenant's first record, and after anything that replaced the file wholesale).
//! Layout, little-endian:
//!
//! ```text
//! "TDC1" kind:u8 0 0 0 position:u64 time_ms:i64 page_size:u32 db_pages:u32
//! salt1:u32 salt2:u32 frame_end:u32 n:u32          48 bytes
//! pgno:u32 × n, zero-padded to a multiple of 8
//! page × n
//! sum:u32 sum:u32                                  (WAL checksum of everything above)
//! length:u32 "TDCE"                                 (the whole record's length, to read back)
//! ```
//!
//! The WAL fields say where capture stood after the record (the generation's salts and the
//! frame after its last), so any process can go on from there. Appends happen under an
//! advisory lock on `changes/<tenant_id>/lock` (the server and a CLI may both commit); a torn
//! last record (a crash mid-append) fails its checksum and is cut off by the next append.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"TDC1";
const END: &[u8; 4] = b"TDCE";
const HEAD: usize = 48;
const TRAILER: usize = 16;
/// A segment past this size is closed; the next record starts a new one.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Changes = 0,
    Image = 1,
}

/// Where capture stood after a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub position: u64,
    pub time_ms: i64,
    pub salt: (u32, u32),
    pub frame_end: u32,
}

#[derive(Debug)]
pub struct Record {
    pub kind: Kind,
    pub position: u64,
    pub time_ms: i64,
    pub page_size: u32,
    pub db_pages: u32,
    pub pages: Vec<(u32, Vec<u8>)>,
    pub tail: Tail,
}

fn le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn sum(data: &[u8]) -> (u32, u32) {
    let (mut s0, mut s1) = (0u32, 0u32);
    for w in data.chunks_exact(8) {
        s0 = s0.wrapping_add(le(w, 0)).wrapping_add(s1);
        s1 = s1.wrapping_add(le(w, 4)).wrapping_add(s0);
    }
    (s0, s1)
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.pages.len();
        let pgnos = (4 * n).div_ceil(8) * 8;
        let mut b = Vec::with_capacity(HEAD + pgnos + n * self.page_size as usize + TRAILER);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&[self.kind as u8, 0, 0, 0]);
        b.extend_from_slice(&self.position.to_le_bytes());
        b.extend_from_slice(&self.time_ms.to_le_bytes());
        for v in [self.page_size, self.db_pages, self.tail.salt.0, self.tail.salt.1, self.tail.frame_end, n as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (p, _) in &self.pages {
            b.extend_from_slice(&p.to_le_bytes());
        }
        b.resize(HEAD + pgnos, 0);
        for (_, page) in &self.pages {
            b.extend_from_slice(page);
        }
        let (s0, s1) = sum(&b);
        b.extend_from_slice(&s0.to_le_bytes());
        b.extend_from_slice(&s1.to_le_bytes());
        let len = b.len() as u32 + 8;
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(END);
        b
    }

    /// The position and length of the record that seems to start `b`, from its header and
    /// trailer alone (skipping records is cheap; `decode` checks the checksum).
    fn peek(b: &[u8]) -> Option<(u64, usize)> {
        if b.len() < HEAD + TRAILER || &b[..4] != MAGIC {
            return None;
        }
        let n = le(b, 44) as usize;
        let total = HEAD + (4 * n).div_ceil(8) * 8 + n.checked_mul(le(b, 24) as usize)? + TRAILER;
        if b.len() < total || &b[total - 4..total] != END || le(b, total - 8) as usize != total {
            return None;
        }
        Some((le64(b, 8), total))
    }

    /// Decodes the record at the start of `b` (None if `b` does not hold a whole valid one).
    pub fn decode(b: &[u8]) -> Option<(Record, usize)> {
        if b.len() < HEAD + TRAILER || &b[..4] != MAGIC {
            return None;
        }
        let kind = match b[4] {
            0 => Kind::Changes,
            1 => Kind::Image,
            _ => return None,
        };
        let page_size = le(b, 24);
        let n = le(b, 44) as usize;
        let pgnos = (4 * n).div_ceil(8) * 8;
        let body = HEAD + pgnos + n.checked_mul(page_size as usize)?;
        let total = body + TRAILER;
        if b.len() < total || &b[total - 4..total] != END || le(b, total - 8) as usize != total {
            return None;
        }
        if sum(&b[..body]) != (le(b, body), le(b, body + 4)) {
            return None;
        }
        let ps = page_size as usize;
        let pages =
            (0..n).map(|i| (le(b, HEAD + 4 * i), b[HEAD + pgnos + i * ps..HEAD + pgnos + (i + 1) * ps].to_vec()));
        let position = le64(b, 8);
        let time_ms = le64(b, 16) as i64;
        let record = Record {
            kind,
            position,
            time_ms,
            page_size,
            db_pages: le(b, 28),
            pages: pages.collect(),
            tail: Tail { position, time_ms, salt: (le(b, 32), le(b, 36)), frame_end: le(b, 40) },
        };
        Some((record, total))
    }
}

/// Where a read of the log stopped: just past the record at `position`, `offset` bytes into
/// the segment that starts at position `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    segment: u64,
    offset: u64,
    pub position: u64,
}

/// A segment's bytes from `offset` on.
fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One tenant's log directory.
#[derive(Clone, Debug)]
pub struct Log {
    pub dir: PathBuf,
}

/// A process's open files for appending to one log: the lock file (whose content says where the
/// log ends, see `State`) and the last segment.
pub struct Appender {
    log: Log,
    lock: File,
    /// The last segment, and its length as this appender last wrote or read it.
    segment: Option<(PathBuf, File, u64)>,
    /// What this appender last wrote or read in the lock file.
    known: Option<[u8; STATE_LEN]>,
}

/// Where the log ends, as kept in its lock file: the tail and the last segment's length.
/// Another process's append changes it; a crash between an append and this write leaves a
/// length that does not match the segment, and the tail is then read from the log itself.
const STATE_LEN: usize = 40;

fn encode_state(t: &Tail, segment_len: u64) -> [u8; STATE_LEN] {
    let mut b = [0u8; STATE_LEN];
    b[..8].copy_from_slice(&t.position.to_le_bytes());
    b[8..16].copy_from_slice(&t.time_ms.to_le_bytes());
    b[16..20].copy_from_slice(&t.salt.0.to_le_bytes());
    b[20..24].copy_from_slice(&t.salt.1.to_le_bytes());
    b[24..28].copy_from_slice(&t.frame_end.to_le_bytes());
    b[28..36].copy_from_slice(&segment_len.to_le_bytes());
    b[36..40].copy_from_slice(b"TDCS");
    b
}

fn decode_state(b: &[u8; STATE_LEN]) -> Option<(Tail, u64)> {
    if &b[36..40] != b"TDCS" {
        return None;
    }
    let tail =
        Tail { position: le64(b, 0), time_ms: le64(b, 8) as i64, salt: (le(b, 16), le(b, 20)), frame_end: le(b, 24) };
    Some((tail, le64(b, 28)))
}

/// The last position recorded in a log by any process (0 for none), read without the lock:
/// a hint for replicators and `replica status`.
pub fn recorded_position(log: &Log) -> u64 {
    let mut b = [0u8; STATE_LEN];
    match File::open(log.dir.join("lock")).and_then(|f| f.read_exact_at(&mut b, 0)) {
        Ok(()) => decode_state(&b).map(|(t, _)| t.position).unwrap_or(0),
        Err(_) => 0,
    }
}

/// The log locked for appending (other processes wait on the lock file).
pub struct Locked<'a> {
    a: &'a mut Appender,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.a.lock, rustix::fs::FlockOperation::Unlock);
    }
}

impl Appender {
    pub fn open(log: &Log) -> Result<Appender> {
        std::fs::create_dir_all(&log.dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(log.dir.join("lock"))?;
        Ok(Appender { log: log.clone(), lock, segment: None, known: None })
    }

    pub fn lock(&mut self) -> Result<Locked<'_>> {
        rustix::fs::flock(&self.lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::Internal(format!("locking the change log {}: {e}", self.log.dir.display())))?;
        Ok(Locked { a: self })
    }
}

impl Locked<'_> {
    /// Where the log ends (None: empty). Cheap when nobody else appended since this appender
    /// did; else read back from the log (cutting a torn last record off).
    pub fn tail(&mut self) -> Result<Option<Tail>> {
        let mut raw = [0u8; STATE_LEN];
        let have = self.a.lock.read_exact_at(&mut raw, 0).is_ok();
        if have && self.a.known == Some(raw) && self.a.segment.is_some() {
            return Ok(decode_state(&raw).map(|(t, _)| t));
        }
        self.a.segment = None;
        let tail = self.a.log.tail()?;
        if let Some((_, path)) = self.a.log.segments()?.pop() {
            let f = OpenOptions::new().append(true).open(&path)?;
            let len = f.metadata()?.len();
            self.a.segment = Some((path, f, len));
        }
        if let Some(t) = tail {
            self.write_state(&t)?;
        }
        Ok(tail)
    }

    fn write_state(&mut self, t: &Tail) -> Result<()> {
        let len = self.a.segment.as_ref().map_or(0, |s| s.2);
        let raw = encode_state(t, len);
        self.a.lock.write_all_at(&raw, 0)?;
        self.a.known = Some(raw);
        Ok(())
    }

    /// Appends a record (its position must follow the tail's): to the last segment unless it
    /// is full or the record is an image, which starts a segment of its own.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let bytes = record.encode();
        let full = self.a.segment.as_ref().is_none_or(|s| s.2 >= SEGMENT_BYTES);
        if full || record.kind == Kind::Image {
            let path = self.a.log.dir.join(format!("{:016x}.log", record.position));
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            let len = f.metadata()?.len();
            self.a.segment = Some((path, f, len));
        }
        if let Some((_, f, len)) = &mut self.a.segment {
            if let Err(e) = f.write_all(&bytes) {
                // Part of it may be there: the next append finds out from the log itself.
                self.a.segment = None;
                self.a.known = None;
                return Err(e.into());
            }
            *len += bytes.len() as u64;
        }
        self.write_state(&record.tail)
    }
}

impl Log {
    pub fn new(dir: PathBuf) -> Log {
        Log { dir }
    }

    /// The segments, by first position.
    pub fn segments(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else { continue };
            if let Ok(first) = u64::from_str_radix(stem, 16) {
                out.push((first, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Where capture stood after the last valid record (None for an empty log). Cuts a torn
    /// last record off the last segment.
    /// Callers hold the log's lock (`Locked::tail`).
    fn tail(&self) -> Result<Option<Tail>> {
        let Some((_, path)) = self.segments()?.pop() else { return Ok(None) };
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        if let Some(t) = last_record(&file, len)? {
            return Ok(Some(t));
        }
        // Torn or empty: keep the valid prefix.
        let bytes = std::fs::read(&path)?;
        let (mut at, mut last) = (0, None);
        while let Some((r, n)) = Record::decode(&bytes[at..]) {
            last = Some(r.tail);
            at += n;
        }
        file.set_len(at as u64)?;
        if at == 0 {
            std::fs::remove_file(&path)?;
            return self.tail();
        }
        Ok(last)
    }

    /// Records with positions in `(after, ..]`, in order, until `f` says stop (after the record
    /// it was given); a reader that fell behind what the log still holds gets an error (it needs
    /// an image). `from`, where an earlier read stopped at `after`, starts the read there instead
    /// of at the segment's start. Returns where this read stopped (None if it took no record).
    pub fn read_after(
        &self,
        after: u64,
        from: Option<Cursor>,
        mut f: impl FnMut(Record) -> Result<bool>,
    ) -> Result<Option<Cursor>> {
        let segments = self.segments()?;
        let resume = from
            .filter(|c| c.position == after)
            .and_then(|c| Some((segments.iter().position(|(first, _)| *first == c.segment)?, c.offset)));
        let (start, mut offset) = match resume {
            Some(at) => at,
            None => {
                if segments.first().is_some_and(|(first, _)| *first > after + 1) {
                    return Err(Error::Internal(format!(
                        "the change log starts at position {} (wanted {})",
                        segments[0].0,
                        after + 1
                    )));
                }
                (segments.iter().rposition(|(first, _)| *first <= after + 1).unwrap_or(0), 0)
            }
        };
        let mut cursor = None;
        for (first, path) in &segments[start..] {
            let bytes = match read_from(path, offset) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mut at = 0;
            while let Some((position, len)) = Record::peek(&bytes[at..]) {
                if position <= after {
                    at += len;
                    continue;
                }
                let Some((r, n)) = Record::decode(&bytes[at..]) else { break };
                at += n;
                cursor = Some(Cursor { segment: *first, offset: offset + at as u64, position: r.position });
                if !f(r)? {
                    return Ok(cursor);
                }
            }
            offset = 0;
        }
        Ok(cursor)
    }

    /// Keeps the records after `position` from pruning (`floor`); None lets go. Backups set it
    /// to the oldest snapshot's position, so a restore can replay the log from there.
    pub fn set_floor(&self, position: Option<u64>) -> Result<()> {
        let path = self.dir.join("floor");
        match position {
            Some(p) if self.dir.is_dir() => {
                let tmp = self.dir.join("floor.partial");
                std::fs::write(&tmp, p.to_string())?;
                std::fs::rename(&tmp, &path)?;
            }
            Some(_) => {}
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            },
        }
        Ok(())
    }

    /// The position records after which must stay (`set_floor`).
    pub fn floor(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join("floor")).ok()?.trim().parse().ok()
    }

    /// The position of the last image (an image always starts a segment), if the log has one.
    pub fn last_image(&self) -> Result<Option<u64>> {
        for (first, path) in self.segments()?.iter().rev() {
            let mut head = [0u8; 8];
            let f = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if f.read_exact_at(&mut head, 0).is_ok() && &head[..4] == MAGIC && head[4] == Kind::Image as u8 {
                return Ok(Some(*first));
            }
        }
        Ok(None)
    }

    /// Deletes whole segments whose records are all at or before `upto` and that were last
    /// written before `older_than` (unix seconds); never the last segment.
    pub fn prune(&self, upto: u64, older_than: i64) -> Result<usize> {
        let segments = self.segments()?;
        let mut removed = 0;
        for w in segments.windows(2) {
            let (next_first, path) = (w[1].0, &w[0].1);
            let modified = std::fs::metadata(path)?
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if next_first <= upto + 1 && modified < older_than {
                std::fs::remove_file(path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The tail of the last record of a segment, read from its trailer.
fn last_record(file: &File, len: u64) -> Result<Option<Tail>> {
    if len < (HEAD + TRAILER) as u64 {
        return Ok(None);
    }
    let mut t = [0u8; 8];
    file.read_exact_at(&mut t, len - 8)?;
    if &t[4..] != END {
        return Ok(None);
    }
    let total = u64::from(le(&t, 0));
    if total > len || total < (HEAD + TRAILER) as u64 {
        return Ok(None);
    }
    let mut b = vec![0u8; total as usize];
    file.read_exact_at(&mut b, len - total)?;
    Ok(Record::decode(&b).map(|(r, _)| r.tail))
}

/// `changes/` under the data dir.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("changes")
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
