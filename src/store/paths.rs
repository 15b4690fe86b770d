//! Where things live under the data dir, and the checks that keep tenant files inside it.

use std::path::{Path, PathBuf};

use crate::db;
use crate::error::Result;
use crate::ids::TenantId;

/// Where things live under the data dir. Only minted `TenantId`s become path components.
#[derive(Clone, Debug)]
pub struct Paths {
    pub data_dir: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Self {
        Paths { data_dir: data_dir.to_path_buf() }
    }
    pub fn tenant_dir(&self, id: &TenantId) -> PathBuf {
        self.data_dir.join("tenants").join(id.as_str())
    }
    pub fn tenant_db(&self, id: &TenantId) -> PathBuf {
        self.tenant_dir(id).join("data.db")
    }
    pub fn tenant_assets(&self, id: &TenantId) -> PathBuf {
        self.tenant_dir(id).join("assets")
    }
    pub fn backups(&self, id: &TenantId) -> PathBuf {
        self.data_dir.join("backups").join(id.as_str())
    }
    /// Scratch space on the same filesystem, so finished files can be renamed into place.
    pub fn tmp(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
    pub fn template_dir(&self) -> PathBuf {
        self.data_dir.join("template")
    }

    /// Refuses a tenant whose directories under the data dir (`tenants/`, `tenants/<id>/`) are
    /// symlinks or not directories: whatever is written for the tenant must land inside the
    /// data dir (issue 18). The data dir itself may be a link.
    pub fn check_tenant_dirs(&self, id: &TenantId) -> Result<()> {
        db::refuse_link(&self.data_dir.join("tenants"), db::Expect::Dir, true)?;
        db::refuse_link(&self.tenant_dir(id), db::Expect::Dir, true)
    }

    /// The tenant's assets directory, refused (as `check_tenant_dirs`) when it or a directory
    /// above it inside the data dir is a symlink; it need not exist yet.
    pub fn checked_assets(&self, id: &TenantId) -> Result<PathBuf> {
        self.check_tenant_dirs(id)?;
        let dir = self.tenant_assets(id);
        db::refuse_link(&dir, db::Expect::Dir, false)?;
        Ok(dir)
    }
}
