//! Tenant config and branding (`tenant_configs`: display name, colour, logo, settings) cached
//! per tenant, so pages, the public tenant info and the logo do no catalog query when warm.
//!
//! An entry is dropped on every catalog generation move (`App::invalidate_caches`: settings and
//! logo changes go through `App::change`, from this process or the CLI) and re-read after
//! `cache.config_ttl_seconds` regardless, as a backstop for hand edits of the catalog.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::CacheStats;
use crate::catalog::tenants::Branding;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::ids::TenantId;

/// Tenants kept; beyond this the least recently used is dropped.
const MAX_ENTRIES: usize = 50_000;

/// One tenant's config as the catalog had it.
#[derive(Clone, Debug, Default)]
pub struct TenantConfig {
    pub branding: Branding,
    pub settings: serde_json::Value,
}

impl TenantConfig {
    fn approx_bytes(&self) -> usize {
        let b = &self.branding;
        let s = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        // The settings are small JSON objects: their text length is a fair size estimate.
        128 + s(&b.display_name) + s(&b.brand_color) + s(&b.logo_asset) + self.settings.to_string().len()
    }
}

struct Entry {
    value: Arc<TenantConfig>,
    loaded: Instant,
    size: usize,
}

pub struct TenantConfigCache {
    ttl: Duration,
    entries: Mutex<(LruCache<TenantId, Entry>, usize)>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl TenantConfigCache {
    pub fn new(ttl: Duration) -> TenantConfigCache {
        TenantConfigCache {
            ttl,
            entries: Mutex::new((LruCache::unbounded(), 0)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The tenant's config, from the cache or the catalog.
    pub fn get(&self, catalog: &Catalog, id: &TenantId) -> Result<Arc<TenantConfig>> {
        self.get_with(id, Instant::now(), || {
            let conn = catalog.conn()?;
            Ok(TenantConfig {
                branding: crate::catalog::tenants::branding(&conn, id)?,
                settings: crate::catalog::identity::tenant_settings(&conn, id)?,
            })
        })
    }

    /// `get` with the clock and the loader injected (tests).
    pub fn get_with(
        &self,
        id: &TenantId,
        now: Instant,
        load: impl FnOnce() -> Result<TenantConfig>,
    ) -> Result<Arc<TenantConfig>> {
        {
            let mut g = self.entries.lock();
            if let Some(e) = g.0.get(id) {
                if now.saturating_duration_since(e.loaded) < self.ttl {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(e.value.clone());
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Loaded outside the lock: a slow catalog read must not stall other tenants' lookups.
        let value = Arc::new(load()?);
        let size = value.approx_bytes();
        let mut g = self.entries.lock();
        let (lru, bytes) = &mut *g;
        if let Some((_, old)) = lru.push(id.clone(), Entry { value: value.clone(), loaded: now, size }) {
            *bytes -= old.size;
        }
        *bytes += size;
        while lru.len() > MAX_ENTRIES {
            if let Some((_, old)) = lru.pop_lru() {
                *bytes -= old.size;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(value)
    }

    pub fn invalidate(&self) {
        let mut g = self.entries.lock();
        g.0.clear();
        g.1 = 0;
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.entries.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: g.1 as u64,
            entries: g.0.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> TenantConfig {
        TenantConfig {
            branding: Branding { display_name: Some(n.into()), ..Default::default() },
            settings: serde_json::json!({}),
        }
    }

    #[test]
    fn ttl_and_invalidation_reload() {
        let c = TenantConfigCache::new(Duration::from_secs(60));
        let id = TenantId::parse("00000000000000aa").unwrap();
        let t0 = Instant::now();
        let a = c.get_with(&id, t0, || Ok(named("A"))).unwrap();
        assert_eq!(a.branding.display_name.as_deref(), Some("A"));
        let hit = c.get_with(&id, t0 + Duration::from_secs(59), || Ok(named("B"))).unwrap();
        assert_eq!(hit.branding.display_name.as_deref(), Some("A"), "within the TTL");
        let expired = c.get_with(&id, t0 + Duration::from_secs(61), || Ok(named("B"))).unwrap();
        assert_eq!(expired.branding.display_name.as_deref(), Some("B"), "past the TTL");
        c.invalidate();
        let fresh = c.get_with(&id, t0 + Duration::from_secs(62), || Ok(named("C"))).unwrap();
        assert_eq!(fresh.branding.display_name.as_deref(), Some("C"), "after a change signal");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 3, 1));
        assert!(s.bytes > 0);
    }

    #[test]
    fn load_errors_are_not_cached() {
        let c = TenantConfigCache::new(Duration::from_secs(60));
        let id = TenantId::parse("00000000000000ab").unwrap();
        assert!(c.get_with(&id, Instant::now(), || Err(crate::error::Error::Internal("down".into()))).is_err());
        assert_eq!(c.stats().entries, 0);
    }
}
