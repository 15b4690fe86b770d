//! The data API's list result cache: serialized list responses keyed by (tenant, table,
//! normalized query), valid for one table generation and one schema cookie.
//!
//! Invalidation:
//! - every write through `records::Work::write` bumps its table's generation **after** commit,
//!   before the response goes out, so a client that saw its write answered never reads older
//!   data; an entry filled from a snapshot taken before the commit is refused at insert time
//!   (its generation is no longer current) or ignored at lookup;
//! - a schema change (migration, applied index advice) moves `PRAGMA schema_version`, which is
//!   part of the entry;
//! - a catalog generation move (fleet migrations, rollbacks, imports, restores — also from
//!   another process, seen by the server's watcher) clears everything and bumps an epoch, so
//!   a result computed before the clear is never inserted after it.
//!
//! Bounds: `query_bytes_per_tenant` (LRU within the tenant) and `query_bytes_total` (the least
//! recently used tenant gives up its least recently used entries first).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use super::{CacheConfig, CacheStats};
use crate::ids::TenantId;

/// What an entry costs the process beyond its key and body: the LRU node, hash map slots, the
/// `Arc`, the key's allocations, the allocator's size classes, the per-tenant map and the heap
/// fragmentation churn leaves. Calibrated by measurement, so `query_bytes_total` bounds memory
/// and not only payload: under a uniform list load over 10,000 tenants (~2.9 KiB bodies), a full
/// 64 MiB cache took 87 MiB more RSS than no cache when this was 96, i.e. ~1 KiB per entry more.
const ENTRY_OVERHEAD: usize = 1024;

/// A cached response body and the rows it reported.
#[derive(Clone)]
pub struct Cached {
    pub body: Arc<Vec<u8>>,
    pub rows: u64,
}

/// What a lookup must match besides the key: taken before the query runs, handed back to `put`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    epoch: u64,
    generation: u64,
    schema_cookie: i64,
}

struct Entry {
    value: Cached,
    token: Token,
    size: usize,
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct Key {
    table: String,
    query: String,
}

struct TenantEntries {
    lru: LruCache<Key, Entry>,
    bytes: usize,
}

struct Inner {
    epoch: u64,
    next_generation: u64,
    /// Current generation per (tenant, table); absent = 0 (no write seen this epoch).
    generations: HashMap<(TenantId, String), u64>,
    tenants: LruCache<TenantId, TenantEntries>,
    bytes: usize,
    entries: usize,
}

/// Generations beyond this many (tenant, table) pairs are dropped with a new epoch, so purged
/// tenants cannot grow memory.
const MAX_GENERATIONS: usize = 1_000_000;

pub struct QueryCache {
    enabled: bool,
    per_tenant: usize,
    total: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl QueryCache {
    pub fn new(cfg: &CacheConfig) -> QueryCache {
        QueryCache {
            enabled: cfg.enabled,
            per_tenant: usize::try_from(cfg.query_bytes_per_tenant).unwrap_or(usize::MAX),
            total: usize::try_from(cfg.query_bytes_total).unwrap_or(usize::MAX),
            inner: Mutex::new(Inner {
                epoch: 0,
                next_generation: 0,
                generations: HashMap::new(),
                tenants: LruCache::unbounded(),
                bytes: 0,
                entries: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The cached body for `query` on `table`, if one is current. The returned token goes to
    /// `put` when the caller computes the result itself.
    pub fn get(&self, tenant: &TenantId, table: &str, schema_cookie: i64, query: &str) -> (Option<Cached>, Token) {
        let mut g = self.inner.lock();
        let token = Token {
            epoch: g.epoch,
            generation: g.generations.get(&(tenant.clone(), table.to_string())).copied().unwrap_or(0),
            schema_cookie,
        };
        let key = Key { table: table.to_string(), query: query.to_string() };
        let inner = &mut *g;
        let found = match inner.tenants.get_mut(tenant) {
            Some(t) => match t.lru.get(&key) {
                Some(e) if e.token == token => Some(e.value.clone()),
                Some(_) => {
                    // Stale (a write or schema change since): drop it now rather than wait for LRU.
                    if let Some(old) = t.lru.pop(&key) {
                        t.bytes -= old.size;
                        inner.bytes -= old.size;
                        inner.entries -= 1;
                    }
                    None
                }
                None => None,
            },
            None => None,
        };
        drop(g);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        (found, token)
    }

    /// Stores a result computed under `token`; refused when the table moved on meanwhile (a
    /// write committed or the cache was cleared) or the entry alone is over the tenant bound.
    pub fn put(&self, tenant: &TenantId, table: &str, query: &str, token: Token, value: Cached) {
        let size = value.body.len() + table.len() + query.len() + ENTRY_OVERHEAD;
        if !self.enabled || size > self.per_tenant {
            return;
        }
        let mut g = self.inner.lock();
        let current = g.generations.get(&(tenant.clone(), table.to_string())).copied().unwrap_or(0);
        if token.epoch != g.epoch || token.generation != current {
            return;
        }
        let inner = &mut *g;
        let key = Key { table: table.to_string(), query: query.to_string() };
        let t =
            inner.tenants.get_or_insert_mut(tenant.clone(), || TenantEntries { lru: LruCache::unbounded(), bytes: 0 });
        if let Some(old) = t.lru.push(key, Entry { value, token, size }).map(|(_, e)| e) {
            t.bytes -= old.size;
            inner.bytes -= old.size;
            inner.entries -= 1;
        }
        t.bytes += size;
        inner.bytes += size;
        inner.entries += 1;
        let mut evicted = 0;
        // Within the tenant first...
        while t.bytes > self.per_tenant {
            let Some((_, e)) = t.lru.pop_lru() else { break };
            t.bytes -= e.size;
            inner.bytes -= e.size;
            inner.entries -= 1;
            evicted += 1;
        }
        // ...then across tenants, least recently used tenant first.
        while inner.bytes > self.total {
            let Some((id, mut lt)) = inner.tenants.pop_lru() else { break };
            while inner.bytes > self.total {
                let Some((_, e)) = lt.lru.pop_lru() else { break };
                lt.bytes -= e.size;
                inner.bytes -= e.size;
                inner.entries -= 1;
                evicted += 1;
            }
            if lt.bytes > 0 {
                // Still holds entries: it goes back as the least recently used tenant.
                inner.tenants.push(id.clone(), lt);
                inner.tenants.demote(&id);
            }
        }
        drop(g);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// A write to `table` committed: entries computed before it are no longer served. Called
    /// after commit and before the writer's response is sent.
    pub fn bump(&self, tenant: &TenantId, table: &str) {
        if !self.enabled {
            return;
        }
        let mut g = self.inner.lock();
        if g.generations.len() >= MAX_GENERATIONS {
            clear_locked(&mut g);
        }
        g.next_generation += 1;
        let next = g.next_generation;
        g.generations.insert((tenant.clone(), table.to_string()), next);
    }

    /// Drops everything (catalog generation moved, or a tenant file was replaced).
    pub fn clear(&self) {
        let mut g = self.inner.lock();
        clear_locked(&mut g);
    }

    pub fn stats(&self) -> CacheStats {
        let g = self.inner.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: g.bytes as u64,
            entries: g.entries as u64,
        }
    }

    /// Bytes held for one tenant (tests and the tenant's stats page).
    pub fn tenant_bytes(&self, tenant: &TenantId) -> u64 {
        self.inner.lock().tenants.peek(tenant).map(|t| t.bytes as u64).unwrap_or(0)
    }
}

fn clear_locked(g: &mut Inner) {
    g.epoch += 1;
    g.generations.clear();
    g.tenants.clear();
    g.bytes = 0;
    g.entries = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(per_tenant: u64, total: u64) -> QueryCache {
        QueryCache::new(&CacheConfig {
            query_bytes_per_tenant: per_tenant,
            query_bytes_total: total,
            ..CacheConfig::default()
        })
    }

    fn tid(n: u8) -> TenantId {
        TenantId::parse(&format!("{n:016x}")).unwrap()
    }

    fn val(n: usize) -> Cached {
        Cached { body: Arc::new(vec![b'x'; n]), rows: 1 }
    }

    #[test]
    fn hit_after_put_and_miss_after_bump() {
        let c = cache(1 << 20, 1 << 20);
        let t = tid(1);
        let (none, tok) = c.get(&t, "customers", 1, "q");
        assert!(none.is_none());
        c.put(&t, "customers", "q", tok, val(10));
        assert!(c.get(&t, "customers", 1, "q").0.is_some());
        assert!(c.get(&t, "customers", 2, "q").0.is_none(), "another schema cookie never matches");
        c.bump(&t, "customers");
        assert!(c.get(&t, "customers", 1, "q").0.is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 3, 0), "the stale entry was dropped on sight");
    }

    #[test]
    fn a_result_computed_before_a_write_is_not_stored() {
        let c = cache(1 << 20, 1 << 20);
        let t = tid(1);
        let (_, tok) = c.get(&t, "customers", 1, "q");
        c.bump(&t, "customers");
        c.put(&t, "customers", "q", tok, val(10));
        assert!(c.get(&t, "customers", 1, "q").0.is_none());
        let (_, tok) = c.get(&t, "customers", 1, "q");
        c.clear();
        c.put(&t, "customers", "q", tok, val(10));
        assert_eq!(c.stats().entries, 0, "a clear in between refuses the insert");
    }

    #[test]
    fn writes_to_another_table_or_tenant_keep_entries() {
        let c = cache(1 << 20, 1 << 20);
        let (a, b) = (tid(1), tid(2));
        let (_, tok) = c.get(&a, "customers", 1, "q");
        c.put(&a, "customers", "q", tok, val(10));
        c.bump(&a, "projects");
        c.bump(&b, "customers");
        assert!(c.get(&a, "customers", 1, "q").0.is_some());
    }

    #[test]
    fn bounded_per_tenant_and_in_total() {
        let c = cache(10_000, 25_000);
        let entry = 1000 + ENTRY_OVERHEAD;
        for tenant in 1..=5u8 {
            let t = tid(tenant);
            for i in 0..20 {
                let q = format!("{i:>4}");
                let (_, tok) = c.get(&t, "tbl", 1, &q);
                c.put(&t, "tbl", &q, tok, val(1000 - 3 - 4));
                assert!(c.tenant_bytes(&t) <= 10_000);
            }
        }
        let s = c.stats();
        assert!(s.bytes <= 25_000, "{s:?}");
        assert_eq!(s.bytes as usize, s.entries as usize * entry);
        assert!(s.evictions > 0);
        // The most recent tenant kept its most recent entries; the oldest tenant lost all.
        assert!(c.get(&tid(5), "tbl", 1, &format!("{:>4}", 19)).0.is_some());
        assert_eq!(c.tenant_bytes(&tid(1)), 0);
        assert!(c.get(&tid(5), "tbl", 1, &format!("{:>4}", 0)).0.is_none());
    }

    #[test]
    fn oversized_entries_and_disabled_cache_store_nothing() {
        let c = cache(4096, 8192);
        let t = tid(1);
        let (_, tok) = c.get(&t, "tbl", 1, "q");
        c.put(&t, "tbl", "q", tok, val(5000));
        assert_eq!(c.stats().entries, 0);
        let off = QueryCache::new(&CacheConfig { enabled: false, ..CacheConfig::default() });
        let (_, tok) = off.get(&t, "tbl", 1, "q");
        off.put(&t, "tbl", "q", tok, val(10));
        assert_eq!(off.stats().entries, 0);
    }
}
