//! Freezing a tenant's writes while it moves to another node (issue 23, `cluster::moves`).

use std::sync::atomic::Ordering;

use rusqlite::Connection;

use super::{TenantHandle, TenantStore};
use crate::error::Result;
use crate::ids::TenantId;

impl TenantStore {
    /// Refuses every later write to the tenant (`TenantMoving`), after `last` ran as its final
    /// write on the writer: whatever committed before is in the file, nothing commits after.
    /// Undone by `thaw`.
    pub fn freeze<T>(&self, handle: &TenantHandle, last: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let w = handle.writer()?;
        self.frozen.lock().insert(handle.id.clone());
        handle.frozen.store(true, Ordering::Release);
        let out = last(&w);
        if out.is_err() {
            drop(w);
            self.thaw(&handle.id);
        }
        out
    }

    /// Lets writes to a frozen tenant through again.
    pub fn thaw(&self, id: &TenantId) {
        self.frozen.lock().remove(id);
        if let Some(h) = self.peek(id) {
            h.frozen.store(false, Ordering::Release);
        }
    }

    pub fn is_frozen(&self, id: &TenantId) -> bool {
        self.frozen.lock().contains(id)
    }
}
