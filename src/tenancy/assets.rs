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
    let sha = sha256_hex(bytes);
    let dir = app.paths.checked_assets(&t.id)?;
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join(&sha);
    crate::db::refuse_link(&dest, crate::db::Expect::File, false)?;
    if !dest.is_file() {
        let tmp = dir.join(format!(".upload-{}", random_hex(6)));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &dest)?;
    }
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
