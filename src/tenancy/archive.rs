//! Tenant export and import. An export is a tar archive holding `manifest.json`, a consistent
//! snapshot `data.db` (`VACUUM INTO`, readable while the tenant keeps serving) and the tenant's
//! content-addressed assets; the manifest carries the SHA-256 of each file. Import takes such
//! an archive or a bare SQLite file and checks integrity and schema before registering anything.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{install_tenant_dir, record_event, validate_name, validate_plan, Actor};
use crate::app::App;
use crate::catalog::tenants::{self, TenantRecord, TenantStatus};
use crate::db::{self, Durability};
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::util::{now_unix, random_hex};

pub const FORMAT: &str = "tenantd-export";
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tenant: ManifestTenant,
    pub schema_version: i64,
    pub exported_at: i64,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestTenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub plan: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// A scratch directory under the data dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(app: &App, what: &str) -> Result<Self> {
        let p = app.paths.tmp().join(format!("{what}-{}", random_hex(6)));
        std::fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the archive to `out` (via a temporary name, so a failed export leaves no file).
pub fn export(app: &App, slug: &Slug, out: &Path, actor: &Actor) -> Result<Manifest> {
    let t = app.tenant(slug)?;
    if t.status == TenantStatus::Deleted {
        return Err(Error::NotFound(format!("tenant {:?}", slug.as_str())));
    }
    let scratch = Scratch::new(app, "export")?;
    let snap = scratch.0.join("data.db");
    {
        let opened = app.open_tenant(&t)?;
        let conn = opened.handle.conn()?;
        crate::store::snapshot_into(&conn, &snap)?;
    }
    let mut files = vec![file_entry(&snap, "data.db")?];
    let assets = app.paths.tenant_assets(&t.id);
    let mut asset_paths = Vec::new();
    if assets.is_dir() {
        for e in std::fs::read_dir(&assets)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if is_asset_name(&name) && e.file_type()?.is_file() {
                files.push(file_entry(&e.path(), &format!("assets/{name}"))?);
                asset_paths.push(e.path());
            }
        }
    }
    let version = db::user_version(&db::open_read_only(&snap)?)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: 1,
        tenant: ManifestTenant {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name.clone(),
            plan: t.plan.clone(),
        },
        schema_version: version,
        exported_at: now_unix(),
        files,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    let partial = out.with_extension("partial");
    let write = || -> Result<()> {
        let mut builder = tar::Builder::new(File::create(&partial)?);
        append_bytes(&mut builder, "manifest.json", &manifest_json)?;
        builder.append_path_with_name(&snap, "data.db")?;
        for p in &asset_paths {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            builder.append_path_with_name(p, format!("assets/{name}"))?;
        }
        builder.into_inner()?.sync_all()?;
        std::fs::rename(&partial, out)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    app.change(|tx| {
        record_event(
            tx,
            actor,
            "tenant.export",
            &t,
            json!({"bytes": manifest.files.iter().map(|f| f.bytes).sum::<u64>()}),
        )
    })?;
    Ok(manifest)
}

fn append_bytes(builder: &mut tar::Builder<File>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(now_unix().max(0) as u64);
    header.set_cksum();
    builder.append_data(&mut header, name, bytes)?;
    Ok(())
}

fn file_entry(path: &Path, name: &str) -> Result<ManifestFile> {
    let bytes = std::fs::read(path)?;
    Ok(ManifestFile { path: name.into(), sha256: crate::util::sha256_hex(&bytes), bytes: bytes.len() as u64 })
}

/// Assets are named by their SHA-256: exactly 64 lower-case hex characters.
pub fn is_asset_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Options for `import`.
pub struct ImportOptions<'a> {
    pub slug: &'a Slug,
    pub name: Option<&'a str>,
    pub plan: Option<&'a str>,
}

/// Imports an export archive or a bare SQLite file as a new tenant.
pub fn import(app: &App, file: &Path, opts: &ImportOptions<'_>, actor: &Actor) -> Result<TenantRecord> {
    if tenants::find_by_slug(&*app.catalog.conn()?, opts.slug)?.is_some() {
        return Err(Error::conflict(
            "slug_taken",
            format!("a tenant with slug {:?} already exists", opts.slug.as_str()),
        ));
    }
    let mut magic = [0u8; 16];
    let mut f = File::open(file)
        .map_err(|e| Error::invalid("import_unreadable", format!("cannot read {}: {e}", file.display())))?;
    let n = f.read(&mut magic)?;
    let scratch = Scratch::new(app, "import")?;
    let staged_db = scratch.0.join("data.db");
    let mut manifest = None;
    let mut assets = Vec::new();
    if n == 16 && &magic == SQLITE_MAGIC {
        std::fs::copy(file, &staged_db)?;
    } else {
        let (m, a) = unpack_archive(file, &scratch.0)?;
        manifest = Some(m);
        assets = a;
    }
    let version = check_database(app, &staged_db)?;
    let name = match (opts.name, &manifest) {
        (Some(n), _) => validate_name(n)?,
        (None, Some(m)) => validate_name(&m.tenant.name)?,
        (None, None) => opts.slug.to_string(),
    };
    let plan = opts
        .plan
        .map(str::to_string)
        .or_else(|| manifest.as_ref().map(|m| m.tenant.plan.clone()).filter(|p| app.config.plans.contains_key(p)))
        .unwrap_or_else(|| app.config.default_plan.clone());
    validate_plan(app, &plan)?;
    let id = TenantId::mint();
    install_tenant_dir(app, &id, |dest| {
        std::fs::rename(&staged_db, dest)?;
        for a in &assets {
            let name = a.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            std::fs::rename(a, app.paths.tenant_assets(&id).join(name))?;
        }
        Ok(())
    })?;
    let now = now_unix();
    let record = TenantRecord::new_active(id.clone(), opts.slug.clone(), name.clone(), plan.clone(), version, now);
    let res = app.change(|tx| {
        tenants::insert(tx, &record)?;
        tenants::insert_config(tx, &id, &name, now)?;
        tenants::set_plan(tx, &id, &plan, now)?;
        crate::billing::subscription::start(tx, app, &id, &plan, "month", &actor.0, now)?;
        record_event(
            tx,
            actor,
            "tenant.import",
            &record,
            json!({"source": if manifest.is_some() { "archive" } else { "sqlite" }, "schema_version": version}),
        )
    });
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(app.paths.tenant_dir(&id));
        return Err(e);
    }
    Ok(record)
}

/// Extracts only the entries an export can contain, verifying each against the manifest.
fn unpack_archive(file: &Path, into: &Path) -> Result<(Manifest, Vec<PathBuf>)> {
    let refuse = |why: String| Error::invalid("import_invalid", why);
    let mut archive = tar::Archive::new(File::open(file)?);
    let mut manifest: Option<Manifest> = None;
    let mut hashes = Vec::new();
    let mut assets = Vec::new();
    std::fs::create_dir_all(into.join("assets"))?;
    let entries = archive
        .entries()
        .map_err(|e| refuse(format!("{} is neither a SQLite database nor a tenantd export: {e}", file.display())))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("archive is damaged: {e}")))?;
        let path = entry.path().map_err(|e| refuse(format!("bad entry name: {e}")))?.to_string_lossy().to_string();
        let dest = match path.as_str() {
            "manifest.json" => {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(|e| refuse(format!("manifest.json: {e}")))?;
                let m: Manifest = serde_json::from_str(&text).map_err(|e| refuse(format!("manifest.json: {e}")))?;
                if m.format != FORMAT || m.format_version != 1 {
                    return Err(refuse(format!(
                        "manifest format {:?} v{} is not {FORMAT} v1",
                        m.format, m.format_version
                    )));
                }
                manifest = Some(m);
                continue;
            }
            "data.db" => into.join("data.db"),
            p if p.strip_prefix("assets/").is_some_and(is_asset_name) => {
                let d = into.join(p);
                assets.push(d.clone());
                d
            }
            other => {
                return Err(refuse(format!(
                    "unexpected entry {:?} in archive",
                    crate::ids::truncate_for_message(other)
                )))
            }
        };
        let mut out = File::create(&dest)?;
        let mut hasher = HashingWriter::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| refuse(format!("{path}: {e}")))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
        }
        hashes.push((path, hasher.finish()));
    }
    let manifest = manifest.ok_or_else(|| refuse("archive has no manifest.json".into()))?;
    if !into.join("data.db").is_file() {
        return Err(refuse("archive has no data.db".into()));
    }
    for (path, sha) in &hashes {
        match manifest.files.iter().find(|f| &f.path == path) {
            Some(f) if &f.sha256 == sha => {}
            Some(_) => return Err(refuse(format!("{path}: SHA-256 does not match the manifest (damaged or altered)"))),
            None => return Err(refuse(format!("{path} is not listed in the manifest"))),
        }
    }
    for f in &manifest.files {
        if !hashes.iter().any(|(p, _)| p == &f.path) {
            return Err(refuse(format!("{} is listed in the manifest but missing from the archive", f.path)));
        }
    }
    Ok((manifest, assets))
}

#[derive(Default)]
struct HashingWriter(sha2::Sha256);

impl HashingWriter {
    fn update(&mut self, b: &[u8]) {
        use sha2::Digest;
        self.0.update(b);
    }
    fn finish(self) -> String {
        use sha2::Digest;
        crate::util::hex(&self.0.finalize())
    }
}

/// Integrity and schema checks on a staged database; migrates it up to the current target.
/// Returns the version it ends at.
fn check_database(app: &App, path: &Path) -> Result<i64> {
    let refuse = |why: String| Error::invalid("import_invalid", why);
    let mut conn = db::open_existing(path, Durability::Normal)
        .map_err(|e| refuse(format!("not a usable SQLite database: {}", e.log_detail())))?;
    let ok: std::result::Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
    match ok {
        Ok(s) if s == "ok" => {}
        Ok(s) => return Err(refuse(format!("integrity check failed: {s}"))),
        Err(e) => return Err(refuse(format!("not a usable SQLite database: {e}"))),
    }
    let schema = app.store.schema();
    let version = db::user_version(&conn)?;
    if version < 1 || version > schema.target() {
        return Err(refuse(format!(
            "schema version {version} is not a tenant schema version known here (1..={}): not a tenantd tenant file",
            schema.target()
        )));
    }
    let fp = db::schema_fingerprint(&conn)?;
    if Some(fp.as_str()) != schema.fingerprint(version) {
        return Err(refuse(format!(
            "its tables do not match tenant schema version {version}: a foreign or hand-modified database"
        )));
    }
    schema.migrate(&mut conn, schema.target())?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    Ok(schema.target())
}
