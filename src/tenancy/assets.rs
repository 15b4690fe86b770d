//! Tenant assets: content-addressed files under `tenants/<id>/assets/<sha256>`. Today the
//! tenant's logo; the same layout holds uploads later and is counted in the tenant's storage.

use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::error::{Error, Result};
use crate::util::{now_unix, random_hex, sha256_hex};

pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// The image type of `bytes` from its magic number; only raster formats (an SVG could carry
/// script, and it would be served from our origin).
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Writes `bytes` as the asset named by their SHA-256 unless it is there already (through a
/// temporary name: a reader never sees half a file), refusing it past `limit` bytes of the
/// tenant's storage. Returns the name.
fn store(app: &App, t: &TenantRecord, bytes: &[u8], limit: Option<u64>) -> Result<String> {
    // A tenant frozen for its move takes no new files: its target pulls the list as it stands.
    if app.store.is_frozen(&t.id) {
        return Err(Error::TenantMoving);
    }
    let sha = sha256_hex(bytes);
    let dir = app.paths.checked_assets(&t.id)?;
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join(&sha);
    crate::db::refuse_link(&dest, crate::db::Expect::File, false)?;
    if dest.is_file() {
        return Ok(sha);
    }
    if limit.is_some_and(|l| crate::limits::storage_bytes(app, &t.id) + bytes.len() as u64 > l) {
        return Err(Error::StorageQuota);
    }
    let tmp = dir.join(format!(".upload-{}", random_hex(6)));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &dest)?;
    // Asset bytes are cached until the catalog generation moves.
    app.change(|_| Ok(()))?;
    Ok(sha)
}

/// Stores a logo and makes it the tenant's; returns its SHA-256 name.
pub fn set_logo(app: &App, t: &TenantRecord, bytes: &[u8]) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::invalid("invalid_image", "the logo file is empty"));
    }
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(Error::PayloadTooLarge { limit: MAX_LOGO_BYTES });
    }
    image_type(bytes)
        .ok_or_else(|| Error::invalid("invalid_image", "the logo must be a PNG, JPEG, GIF or WebP image"))?;
    let sha = store(app, t, bytes, None)?;
    app.change(|tx| {
        tx.execute(
            "INSERT INTO tenant_configs(tenant_id, logo_asset, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(tenant_id) DO UPDATE SET logo_asset = ?2, updated_at = ?3",
            rusqlite::params![t.id.as_str(), sha, now_unix()],
        )?;
        Ok(())
    })?;
    Ok(sha)
}

/// The tenant's logo: (content type, bytes), if it has one.
pub fn logo(app: &App, t: &TenantRecord) -> Result<Option<(&'static str, Vec<u8>)>> {
    let config = app.tenant_config.get(&app.catalog, &t.id)?;
    let Some(sha) = config.branding.logo_asset.clone().filter(|s| super::archive::is_asset_name(s)) else {
        return Ok(None);
    };
    let path = app.paths.checked_assets(&t.id)?.join(&sha);
    crate::db::refuse_link(&path, crate::db::Expect::File, false)?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(image_type(&bytes).map(|ct| (ct, bytes)))
}

/// The type of an uploaded asset, from its content: the raster images above, PDF, SVG, or
/// UTF-8 text. Anything else (executables, archives, HTML) is refused.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if let Some(t) = image_type(bytes) {
        return Some(t);
    }
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if text.contains('\0') {
        return None;
    }
    let head: String = text.trim_start_matches('\u{feff}').chars().take(1024).collect::<String>().to_ascii_lowercase();
    let lead = head.trim_start();
    if lead.starts_with("<!doctype html")
        || lead.starts_with("<html")
        || head.contains("<script") && !head.contains("<svg")
    {
        return None;
    }
    if (lead.starts_with("<?xml") || lead.starts_with("<svg")) && head.contains("<svg") {
        return Some("image/svg+xml");
    }
    if lead.starts_with('<') {
        return None; // other markup: not on the allowlist
    }
    Some("text/plain; charset=utf-8")
}

/// The file extension of an allowed type, for names that carry it (CDN edge copies, which a
/// web server in front types by extension).
pub fn extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// Whether a declared Content-Type agrees with the sniffed one (text may be declared as any
/// text type; it is served as plain text).
fn declared_matches(declared: &str, sniffed: &str) -> bool {
    let base = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match sniffed {
        "text/plain; charset=utf-8" => {
            matches!(base.as_str(), "text/plain" | "text/csv" | "text/markdown" | "application/json")
        }
        s => base == s,
    }
}

/// One stored asset.
#[derive(Debug, serde::Serialize)]
pub struct Asset {
    pub sha256: String,
    pub content_type: &'static str,
    pub bytes: u64,
    pub created_at: String,
}

/// Stores an upload (content-addressed: the same bytes twice are one asset). Its type is
/// checked against the allowlist by content and must agree with the declared one; it counts
/// toward the plan's storage.
pub fn upload(app: &App, t: &TenantRecord, declared: &str, bytes: &[u8]) -> Result<Asset> {
    if bytes.is_empty() {
        return Err(Error::invalid("empty_asset", "the upload is empty"));
    }
    let sniffed = sniff(bytes).ok_or(Error::UnsupportedMediaType)?;
    if !declared_matches(declared, sniffed) {
        return Err(Error::invalid(
            "content_type_mismatch",
            format!(
                "the body is {sniffed}, not the declared {:?} (allowed: PNG, JPEG, GIF, WebP, SVG, PDF, UTF-8 text)",
                crate::ids::truncate_for_message(declared)
            ),
        ));
    }
    let limit = app.config.plans.get(&t.plan).map(|p| p.storage_bytes).unwrap_or(u64::MAX);
    let sha = store(app, t, bytes, Some(limit))?;
    Ok(Asset {
        sha256: sha,
        content_type: sniffed,
        bytes: bytes.len() as u64,
        created_at: crate::util::rfc3339(now_unix()),
    })
}

/// `upload` of a file whose sender named no type of its own (a form part without one, or
/// `application/octet-stream`): the content decides, within the same allowed types.
pub fn upload_untyped(app: &App, t: &TenantRecord, bytes: &[u8]) -> Result<Asset> {
    if bytes.is_empty() {
        return Err(Error::invalid("empty_asset", "the upload is empty"));
    }
    upload(app, t, sniff(bytes).ok_or(Error::UnsupportedMediaType)?, bytes)
}

/// A stored file's type, by its first KiB (a text cut there may end inside a character: what
/// decodes is sniffed). `Ok(None)`: not an allowed type.
pub fn sniff_file(path: &std::path::Path) -> std::io::Result<Option<&'static str>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let mut head = vec![0u8; 1024.min(f.metadata()?.len() as usize)];
    f.read_exact_at(&mut head, 0)?;
    let valid = std::str::from_utf8(&head).map(|_| head.len()).unwrap_or_else(|e| e.valid_up_to());
    Ok(sniff(&head).or_else(|| sniff(&head[..valid])))
}

/// The tenant's assets, newest first.
pub fn list(app: &App, t: &TenantRecord) -> Result<Vec<Asset>> {
    let dir = app.paths.checked_assets(&t.id)?;
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !super::archive::is_asset_name(&name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let Ok(sniffed) = sniff_file(&e.path()) else { continue };
        let created =
            meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
        out.push(Asset {
            content_type: sniffed.unwrap_or("application/octet-stream"),
            sha256: name,
            bytes: meta.len(),
            created_at: crate::util::rfc3339(created.unwrap_or(0)),
        });
    }
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.sha256.cmp(&b.sha256)));
    Ok(out)
}

/// Deletes an asset from the origin and every CDN edge (and unsets it as the logo).
pub fn delete(app: &App, t: &TenantRecord, sha: &str) -> Result<()> {
    let nf = || Error::NotFound(format!("asset {:?}", crate::ids::truncate_for_message(sha)));
    if !super::archive::is_asset_name(sha) {
        return Err(nf());
    }
    if app.store.is_frozen(&t.id) {
        return Err(Error::TenantMoving);
    }
    let path = app.paths.checked_assets(&t.id)?.join(sha);
    crate::db::refuse_link(&path, crate::db::Expect::File, false)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(nf()),
        r => r?,
    }
    crate::cdn::purge(&app.paths.data_dir, &t.id, Some(sha))?;
    app.change(|tx| {
        tx.execute(
            "UPDATE tenant_configs SET logo_asset = NULL, updated_at = ?3 WHERE tenant_id = ?1 AND logo_asset = ?2",
            rusqlite::params![t.id.as_str(), sha, now_unix()],
        )?;
        Ok(())
    })?;
    Ok(())
}
