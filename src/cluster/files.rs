//! A moving tenant's files besides its database: its assets (content-addressed uploads under
//! `tenants/<id>/assets/`). The database travels through Litestream's replica store; assets are
//! not in it, so the target pulls them from the source over the node API, each checked against
//! its name (the SHA-256 of its content). Assets never change once written, so most are pulled
//! while the target still follows the replica (`seed`); `finish` pulls the few uploaded since,
//! while writes pause.

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
