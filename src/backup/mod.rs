//! Per-tenant backups under `backups/<tenant_id>/`: snapshots, their retention, and restores
//! (in place, or into a new tenant: a fork), to a snapshot or to any instant the change log
//! covers.
//!
//! A snapshot is the tenant file page for page, read from `sqlite_dbpage` in one read
//! transaction (the tenant keeps serving), compressed with zstd (`<id>.db.zst`), beside a
//! manifest (`<id>.json`) holding the SHA-256 of the pages and of the compressed file. The read
//! transaction starts while the snapshot holds the tenant's write lock for a moment, with the
//! change log caught up (when replicas are on, see `replica`): so the manifest knows the
//! tenant's commit position, and the log's records after it are exactly what changed since.
//! Because the pages are the file's own (not a `VACUUM`ed copy), those records apply on top of
//! them: `restore --at` is the newest snapshot before the instant plus the log up to it.
//!
//! A restore in place first snapshots the current state (`pre-restore`), so it can be undone
//! by restoring that snapshot.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::db::{self, Durability};
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::replica::log::Log;
use crate::util::{hex, now_millis, random_hex};

pub mod litestream;
mod restore;

pub use restore::{build, fork, restore, Built, Restored, Target};

pub const FORMAT: &str = "tenantd-backup";
/// zstd level 3 (its default). Measured (docs/benchmarks.md, issue 22): 1,000 tenants of 1 MB
/// in 3.0 s on two threads, 1.0 GB to 118 MB (synthetic rows; real data compresses less).
const LEVEL: i32 = 3;
/// Log records applied to a restore per transaction.
const BATCH: usize = 512;

/// Why a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// By the server's schedule (`[backup] interval_hours`).
    Scheduled,
    /// `tenantd backup create`, or the API.
    Manual,
    /// The state a restore in place replaced (restore it to undo the restore).
    PreRestore,
}

/// `<id>.json` beside each snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub id: String,
    pub tenant_id: String,
    /// The tenant's slug when the snapshot was taken.
    pub slug: String,
    pub kind: Kind,
    pub created_at_ms: i64,
    /// The tenant's commit position the snapshot holds (None when the change log is off: such
    /// a snapshot restores as it is, never to a later instant).
    pub position: Option<u64>,
    pub schema_version: i64,
    pub page_size: u32,
    pub pages: u32,
    /// The database file's bytes and their SHA-256.
    pub bytes: u64,
    pub sha256: String,
    /// The compressed file (`<id>.db.zst`), its bytes and SHA-256.
    pub file: String,
    pub compressed_bytes: u64,
    pub compressed_sha256: String,
}

impl Manifest {
    pub fn created_at(&self) -> String {
        rfc3339_ms(self.created_at_ms)
    }
}

/// `2026-12-07T14:20:05.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = crate::util::rfc3339(ms.div_euclid(1000));
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// An instant for `--at`: RFC 3339 UTC with optional milliseconds (`2026-12-07T14:20:05Z`,
/// `2026-12-07T14:20:05.250Z`), or relative to now (`-90s`, `-15m`, `-2h`, `-1d`). In ms.
pub fn parse_instant(s: &str, now_ms: i64) -> Result<i64> {
    let bad = || {
        Error::invalid(
            "invalid_time",
            format!(
                "{:?} is not an instant: use RFC 3339 UTC (2026-12-07T14:20:05Z, milliseconds allowed) or -90s / -15m / -2h / -1d",
                crate::ids::truncate_for_message(s)
            ),
        )
    };
    if let Some(rel) = s.strip_prefix('-') {
        let units = [("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        return crate::util::ago(rel, now_ms, &units).ok_or_else(bad);
    }
    let (base, frac) = match s.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((b, f)) if (1..=3).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            let ms: i64 = format!("{f:0<3}").parse().map_err(|_| bad())?;
            (format!("{b}Z"), ms)
        }
        Some(_) => return Err(bad()),
        None => (s.to_string(), 0),
    };
    if base.len() != 20 {
        return Err(bad());
    }
    crate::util::parse_time(&base).map(|secs| secs * 1000 + frac).ok_or_else(bad)
}

fn dir(app: &App, id: &TenantId) -> PathBuf {
    app.paths.backups(id)
}

fn manifest_path(app: &App, id: &TenantId, backup: &str) -> PathBuf {
    dir(app, id).join(format!("{backup}.json"))
}

/// Counts bytes and hashes them on their way to `inner`.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Takes a snapshot of the tenant now.
pub fn create(app: &App, t: &TenantRecord, kind: Kind) -> Result<Manifest> {
    let path = app.paths.tenant_db(&t.id);
    let lock = db::open_existing(&path, Durability::Normal)?;
    let reader = db::open_existing(&path, Durability::Normal)?;
    // Under the write lock for a moment: the log catches up with every commit, and the read
    // transaction starts at exactly that position.
    lock.execute_batch("BEGIN IMMEDIATE")?;
    let started = (|| -> Result<Option<u64>> {
        let position = crate::replica::capture::settled_position(&path);
        reader.execute_batch("BEGIN")?;
        reader.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
        Ok(position)
    })();
    let _ = lock.execute_batch("ROLLBACK");
    drop(lock);
    let position = match started {
        Ok(p) => p,
        Err(e) => {
            let _ = reader.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    let res = write_snapshot(app, t, kind, &reader, position);
    let _ = reader.execute_batch("COMMIT");
    res
}

fn write_snapshot(
    app: &App,
    t: &TenantRecord,
    kind: Kind,
    conn: &Connection,
    position: Option<u64>,
) -> Result<Manifest> {
    let now = now_millis();
    let id = format!("{}-{}", crate::util::file_stamp(now.div_euclid(1000)), random_hex(3));
    let dir = dir(app, &t.id);
    std::fs::create_dir_all(&dir)?;
    let file = format!("{id}.db.zst");
    let partial = dir.join(format!("{file}.partial"));
    let out = File::create(&partial)?;
    let res = (|| -> Result<Manifest> {
        let page_size: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let schema_version = db::user_version(conn)?;
        let compressed = Hashing { inner: out, hash: Sha256::new(), bytes: 0 };
        let encoder = zstd::stream::write::Encoder::new(compressed, LEVEL)?;
        let mut raw = Hashing { inner: encoder, hash: Sha256::new(), bytes: 0 };
        let mut pages = 0u32;
        {
            let mut stmt = conn.prepare("SELECT data FROM sqlite_dbpage ORDER BY pgno")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let data: Vec<u8> = r.get(0)?;
                raw.write_all(&data)?;
                pages += 1;
            }
        }
        let (bytes, sha256) = (raw.bytes, hex(&raw.hash.finalize()));
        let mut compressed = raw.inner.finish()?;
        compressed.flush()?;
        compressed.inner.sync_all()?;
        let manifest = Manifest {
            format: FORMAT.into(),
            format_version: 1,
            id: id.clone(),
            tenant_id: t.id.as_str().to_string(),
            slug: t.slug.as_str().to_string(),
            kind,
            created_at_ms: now,
            position,
            schema_version,
            page_size,
            pages,
            bytes,
            sha256,
            file: file.clone(),
            compressed_bytes: compressed.bytes,
            compressed_sha256: hex(&compressed.hash.finalize()),
        };
        std::fs::rename(&partial, dir.join(&file))?;
        write_manifest(app, &t.id, &manifest)?;
        keep_log(app, &t.id)?;
        Ok(manifest)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    res
}

fn write_manifest(app: &App, id: &TenantId, m: &Manifest) -> Result<()> {
    let path = manifest_path(app, id, &m.id);
    let tmp = path.with_extension("json.partial");
    let mut f = File::create(&tmp)?;
    let text = serde_json::to_vec_pretty(m).map_err(|e| Error::Internal(format!("backup manifest: {e}")))?;
    f.write_all(&text)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The tenant's snapshots, newest first (manifests that do not parse are skipped).
pub fn list(app: &App, id: &TenantId) -> Result<Vec<Manifest>> {
    let entries = match std::fs::read_dir(dir(app, id)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m.format == FORMAT && m.tenant_id == id.as_str() => out.push(m),
            _ => crate::log::warn(&format!("backups: {} is not a backup manifest; skipped", path.display())),
        }
    }
    out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// One snapshot by id (`latest`: the newest).
pub fn find(app: &App, id: &TenantId, backup: &str) -> Result<Manifest> {
    if backup == "latest" {
        return list(app, id)?.into_iter().next().ok_or_else(|| Error::NotFound("backup (there is none yet)".into()));
    }
    // Ids are ours (stamp and hex); anything else never reaches a path.
    let valid =
        !backup.is_empty() && backup.len() <= 64 && backup.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    let m = valid.then(|| list(app, id)).transpose()?.and_then(|all| all.into_iter().find(|m| m.id == backup));
    m.ok_or_else(|| Error::NotFound(format!("backup {:?}", crate::ids::truncate_for_message(backup))))
}

/// Writes the snapshot's database to `dest`, checking both digests.
pub fn extract(app: &App, id: &TenantId, m: &Manifest, dest: &Path) -> Result<()> {
    let src = dir(app, id).join(&m.file);
    let open = || File::open(&src).map_err(|e| corrupt(m, &format!("{}: {e}", src.display())));
    let mut compressed = Sha256::new();
    std::io::copy(&mut open()?, &mut compressed)?;
    if hex(&compressed.finalize()) != m.compressed_sha256 {
        return Err(corrupt(m, "the compressed file's SHA-256 differs from the manifest's"));
    }
    let mut decoder = zstd::stream::read::Decoder::new(open()?)?;
    let mut raw = Sha256::new();
    let mut out = File::create(dest)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = decoder.read(&mut buf).map_err(|e| corrupt(m, &e.to_string()))?;
        if n == 0 {
            break;
        }
        raw.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    if hex(&raw.finalize()) != m.sha256 {
        return Err(corrupt(m, "the database's SHA-256 differs from the manifest's"));
    }
    Ok(())
}

fn corrupt(m: &Manifest, why: &str) -> Error {
    Error::invalid("backup_corrupt", format!("backup {} is damaged: {why}", m.id))
}

/// A scratch file under the data dir's tmp/, removed (with its -wal/-shm) on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    fn new(app: &App, what: &str) -> Result<Scratch> {
        std::fs::create_dir_all(app.paths.tmp())?;
        Ok(Scratch(app.paths.tmp().join(format!("{what}-{}.db", random_hex(6)))))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::store::remove_db_files(&self.0);
    }
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct Verified {
    pub id: String,
    pub ok: bool,
    pub problem: Option<String>,
}

/// Checks a snapshot: both digests, and SQLite's integrity check on the extracted file.
pub fn verify(app: &App, id: &TenantId, m: &Manifest) -> Verified {
    let res = (|| -> Result<()> {
        let scratch = Scratch::new(app, "verify")?;
        extract(app, id, m, scratch.path())?;
        let conn = db::open_read_only(scratch.path())?;
        db::integrity_check(&conn).map_err(|e| corrupt(m, &format!("integrity check: {}", e.log_detail())))
    })();
    Verified { id: m.id.clone(), ok: res.is_ok(), problem: res.err().map(|e| e.log_detail()) }
}

/// A snapshot on demand at most this often per tenant (each is a full copy on disk).
const ON_DEMAND_EVERY_MS: i64 = 60_000;

/// A snapshot a tenant asked for (API, admin page): one a minute at most, then retention.
pub fn create_on_demand(app: &App, t: &TenantRecord) -> Result<Manifest> {
    let now = now_millis();
    if let Some(newest) = list(app, &t.id)?.into_iter().find(|m| m.kind == Kind::Manual) {
        let wait = newest.created_at_ms + ON_DEMAND_EVERY_MS - now;
        if wait > 0 {
            return Err(Error::TooManyRequests {
                code: "backup_too_soon",
                message: format!("the last backup on demand is from {}: one a minute at most", newest.created_at()),
                retry_after: (wait + 999) / 1000,
                rate: None,
            });
        }
    }
    let m = create(app, t, Kind::Manual)?;
    prune(app, t, now)?;
    Ok(m)
}

/// Deletes snapshots older than the plan's `backup_retention_days`, always keeping the newest.
pub fn prune(app: &App, t: &TenantRecord, now_ms: i64) -> Result<usize> {
    let days = app.config.plans.get(&t.plan).map(|p| p.backup_retention_days).unwrap_or(7);
    let cutoff = now_ms - days as i64 * 86_400_000;
    let mut removed = 0;
    for m in list(app, &t.id)?.iter().skip(1).filter(|m| m.created_at_ms < cutoff) {
        remove(app, &t.id, m)?;
        removed += 1;
    }
    if removed > 0 {
        keep_log(app, &t.id)?;
    }
    Ok(removed)
}

fn remove(app: &App, id: &TenantId, m: &Manifest) -> Result<()> {
    // The manifest first: a snapshot without one is never listed, never half-used.
    std::fs::remove_file(manifest_path(app, id, &m.id))?;
    match std::fs::remove_file(dir(app, id).join(&m.file)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Tells the change log to keep what follows the oldest snapshot's position (the replicator
/// prunes no further), after snapshots were added or deleted.
fn keep_log(app: &App, id: &TenantId) -> Result<()> {
    let oldest = list(app, id)?.iter().filter_map(|m| m.position).min();
    change_log(app, id).set_floor(oldest)
}

fn change_log(app: &App, id: &TenantId) -> Log {
    Log::new(crate::replica::log::root(&app.paths.data_dir).join(id.as_str()))
}

/// What a scheduled pass did.
#[derive(Debug, Default, Serialize)]
pub struct Pass {
    pub snapshots: usize,
    pub pruned: usize,
    pub failed: Vec<String>,
    pub seconds: f64,
}

/// Snapshots every live tenant whose newest snapshot is older than `interval_hours` (all of
/// them with `force`), then applies retention. On `threads` threads.
pub fn run_scheduled(app: &App, now_ms: i64, force: bool, threads: usize) -> Result<Pass> {
    let started = std::time::Instant::now();
    let tenants = crate::catalog::tenants::list(&*app.catalog.conn()?, false)?;
    let interval = app.config.backup.interval_hours as i64 * 3_600_000;
    let results = crate::util::par_map(&tenants, threads, &|_| {}, |t| -> Result<(usize, usize)> {
        if t.status != crate::catalog::tenants::TenantStatus::Active
            && t.status != crate::catalog::tenants::TenantStatus::Suspended
        {
            return Ok((0, 0));
        }
        let newest = list(app, &t.id)?.first().map(|m| m.created_at_ms);
        let due = force || newest.is_none_or(|n| now_ms - n >= interval);
        let made = if due {
            create(app, t, if force { Kind::Manual } else { Kind::Scheduled })?;
            1
        } else {
            0
        };
        Ok((made, prune(app, t, now_ms)?))
    });
    let mut pass = Pass::default();
    for (t, r) in tenants.iter().zip(results) {
        match r {
            Ok((s, p)) => {
                pass.snapshots += s;
                pass.pruned += p;
            }
            Err(e) => pass.failed.push(format!("{}: {}", t.slug, e.log_detail())),
        }
    }
    pass.seconds = started.elapsed().as_secs_f64();
    Ok(pass)
}
