//! A moving tenant's files besides its database: its assets (content-addressed uploads under
//! `tenants/<id>/assets/`) and its snapshots (`backups/<id>/`). The database travels through
//! Litestream's replica store; these are not in it, so the target pulls them from the source
//! over the node API, each checked (an asset against its name, the SHA-256 of its content; a
//! snapshot against its manifest). Neither changes once written, so most are pulled while the
//! target still follows the replica (`seed`); `finish` pulls the few made since, while writes
//! pause.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::of;
use crate::app::App;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::tenancy::archive::is_asset_name;

/// The names of a tenant's assets on this node (none when it has no assets directory).
pub fn asset_names(app: &App, id: &TenantId) -> Result<Vec<String>> {
    let dir = app.paths.checked_assets(id)?;
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| is_asset_name(n))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    Ok(names)
}

/// One asset's bytes.
pub fn asset(app: &App, id: &TenantId, sha: &str) -> Result<Vec<u8>> {
    if !is_asset_name(sha) {
        return Err(Error::invalid("invalid_asset", "an asset is named by 64 lower-case hex characters"));
    }
    match std::fs::read(app.paths.checked_assets(id)?.join(sha)) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!("asset {sha}"))),
        Err(e) => Err(e.into()),
    }
}

/// Copies every asset of `id` on node `from` that `dir` lacks into `dir`; returns how many.
pub fn pull_assets(app: &App, id: &TenantId, from: &str, dir: &Path) -> Result<usize> {
    let c = of(app)?;
    let node = c.config.node(from).ok_or_else(|| Error::invalid("unknown_node", format!("no node {from:?}")))?;
    let list = c.client.call(node, "GET", &format!("/api/v1/cluster/assets/{id}"), None)?;
    let mut pulled = 0;
    for sha in list["items"].as_array().into_iter().flatten().filter_map(|s| s.as_str()) {
        if !is_asset_name(sha) || dir.join(sha).is_file() {
            continue;
        }
        let bytes = c.client.fetch(node, &format!("/api/v1/cluster/assets/{id}/{sha}"))?;
        if crate::util::hex(&Sha256::digest(&bytes)) != sha {
            return Err(Error::Retry(format!("asset {sha} of {id} from node {from} does not match its name")));
        }
        std::fs::create_dir_all(dir)?;
        let part = dir.join(format!("{sha}.partial"));
        std::fs::write(&part, &bytes)?;
        std::fs::rename(&part, dir.join(sha))?;
        pulled += 1;
    }
    Ok(pulled)
}

/// Bytes per request when a snapshot is pulled: a snapshot may be far larger than one answer
/// should be held in memory.
const CHUNK: u64 = 8 << 20;

/// Up to `CHUNK` bytes of a tenant's snapshot file `name` (one a manifest names) from `offset`.
pub fn backup_chunk(app: &App, id: &TenantId, name: &str, offset: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let known = crate::backup::list(app, id)?.into_iter().any(|m| m.file == name);
    if !known {
        return Err(Error::NotFound(format!("snapshot file {:?}", crate::ids::truncate_for_message(name))));
    }
    let f = std::fs::File::open(app.paths.backups(id).join(name))?;
    let len = f.metadata()?.len();
    let mut buf = vec![0u8; CHUNK.min(len.saturating_sub(offset)) as usize];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Copies every snapshot of `id` on node `from` that `dir` lacks into `dir`, chunk by chunk,
/// each checked against its manifest's size and SHA-256 (the manifest is written last, so a
/// manifest in `dir` means its snapshot is whole); returns how many.
pub fn pull_backups(app: &App, id: &TenantId, from: &str, dir: &Path) -> Result<usize> {
    let c = of(app)?;
    let node = c.config.node(from).ok_or_else(|| Error::invalid("unknown_node", format!("no node {from:?}")))?;
    let list = c.client.call(node, "GET", &format!("/api/v1/cluster/backups/{id}"), None)?;
    let manifests: Vec<crate::backup::Manifest> = serde_json::from_value(list["items"].clone())
        .map_err(|e| Error::Retry(format!("node {from} listed the snapshots of {id} in a form not understood: {e}")))?;
    let mut pulled = 0;
    for m in manifests {
        let json_name = format!("{}.json", m.id);
        let safe = |n: &str| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !n.starts_with('.')
        };
        if !safe(&m.file) || !safe(&json_name) || dir.join(&json_name).is_file() {
            continue;
        }
        std::fs::create_dir_all(dir)?;
        let part = dir.join(format!("{}.partial", m.file));
        let mut out = std::fs::File::create(&part)?;
        let mut hash = Sha256::new();
        let mut got = 0u64;
        while got < m.compressed_bytes {
            let chunk = c.client.fetch(node, &format!("/api/v1/cluster/backups/{id}/{}?offset={got}", m.file))?;
            if chunk.is_empty() {
                break;
            }
            std::io::Write::write_all(&mut out, &chunk)?;
            hash.update(&chunk);
            got += chunk.len() as u64;
        }
        out.sync_all()?;
        if got != m.compressed_bytes || crate::util::hex(&hash.finalize()) != m.compressed_sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Retry(format!(
                "snapshot {} of {id} from node {from} is not the one its manifest describes",
                m.id
            )));
        }
        std::fs::rename(&part, dir.join(&m.file))?;
        let manifest = serde_json::to_vec_pretty(&m).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(dir.join(&json_name), manifest)?;
        pulled += 1;
    }
    Ok(pulled)
}

/// Moves the files pulled into `from` (a scratch directory) to `to`, leaving any `to` already
/// has (a copy this node kept of the tenant).
pub fn move_into(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let dest = to.join(e.file_name());
        if !dest.exists() {
            std::fs::rename(e.path(), dest)?;
        }
    }
    Ok(())
}
