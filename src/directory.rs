//! Hot-path tenant lookups (slug → tenant, custom domain → tenant) cached in memory, so a warm
//! request does no catalog query. The cache is dropped whenever the catalog's generation moves:
//! `App::change` bumps it in the same transaction as the change, and the server's watcher polls
//! it, so a change from another process (the CLI) is seen within 200 ms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::tenants::{self, TenantRecord};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::ids::Slug;

/// Entries beyond this are dropped wholesale: a flood of random slugs cannot grow memory.
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct TenantDirectory {
    by_slug: Mutex<HashMap<Slug, Option<Arc<TenantRecord>>>>,
    by_domain: Mutex<HashMap<String, Option<Arc<TenantRecord>>>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
}

impl TenantDirectory {
    pub fn by_slug(&self, catalog: &Catalog, slug: &Slug) -> Result<Option<Arc<TenantRecord>>> {
        if let Some(hit) = self.by_slug.lock().get(slug) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let found = tenants::find_by_slug(&*catalog.conn()?, slug)?.map(Arc::new);
        insert_bounded(&mut self.by_slug.lock(), slug.clone(), found.clone());
        Ok(found)
    }

    pub fn by_domain(&self, catalog: &Catalog, domain: &str) -> Result<Option<Arc<TenantRecord>>> {
        if let Some(hit) = self.by_domain.lock().get(domain) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let found = tenants::find_by_domain(&*catalog.conn()?, domain)?.map(Arc::new);
        insert_bounded(&mut self.by_domain.lock(), domain.to_string(), found.clone());
        Ok(found)
    }

    pub fn invalidate(&self) {
        self.by_slug.lock().clear();
        self.by_domain.lock().clear();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }
}

fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}
