//! Tenant-aware caches with explicit invalidation: the tenant config and branding cache
//! (`tenant_config`) and the data API's list result cache (`query`). Both count hits, misses
//! and evictions for metrics and health. `snapshot` keeps costly platform-wide documents for a
//! while and refreshes them behind the reader's back.

pub mod query;
pub mod snapshot;
pub mod tenant_config;

use serde::{Deserialize, Serialize};

/// What a cache holds and how well it does, for `/metrics` and `/health/detailed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub entries: u64,
}

impl CacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

/// `[cache]` in the config file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Switches the query result cache off (the config cache stays: it saves catalog reads).
    pub enabled: bool,
    /// Bytes of cached list responses one tenant may hold (LRU within the tenant beyond this).
    pub query_bytes_per_tenant: u64,
    /// Bytes of cached list responses across all tenants (least recently used tenant first).
    pub query_bytes_total: u64,
    /// Tenant config and branding are re-read from the catalog after this long even without a
    /// change signal (changes through tenantd invalidate at once).
    pub config_ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            query_bytes_per_tenant: 1024 * 1024,
            query_bytes_total: 64 * 1024 * 1024,
            config_ttl_seconds: 60,
        }
    }
}
