//! `App`: the opened data directory — config, catalog, tenant store and schema — shared by the
//! server and every CLI command, so both see the same rules.

use std::sync::Arc;

use std::time::Duration;

use scheduled_thread_pool::ScheduledThreadPool;

use crate::cache::query::QueryCache;
use crate::cache::tenant_config::TenantConfigCache;
use crate::cache::CacheStats;

use crate::auth::AuthCache;
use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::directory::TenantDirectory;
use crate::error::{Error, Result};
use crate::ids::Slug;
use crate::store::schema::TenantSchema;
use crate::store::{OpenRequest, Opened, Paths, TenantStore};

pub struct App {
    pub config: Config,
    pub catalog: Catalog,
    pub store: TenantStore,
    pub paths: Paths,
    /// Hot-path tenant lookups; invalidated on every catalog change (see `directory`).
    pub directory: TenantDirectory,
    /// Sessions, API keys and role lookups for the hot path; invalidated with the directory.
    pub auth: AuthCache,
    /// Rate limiters, concurrency slots and cached effective plans.
    pub limits: crate::limits::Limits,
    /// Tenants whose audit chain grew since it was last anchored in the catalog.
    pub audit_dirty: crate::audit::Dirty,
    /// `trusted_proxies`, parsed.
    pub trusted_proxies: Vec<crate::security::Cidr>,
    /// `platform_ip_allow`, parsed.
    pub platform_allow: Vec<crate::security::Cidr>,
    /// `metrics_allow`, parsed.
    pub metrics_allow: Vec<crate::security::Cidr>,
    /// Threat-detection counters.
    pub threats: crate::security::threats::Threats,
    /// List results of the data API, invalidated per table by writes (see `cache::query`).
    pub query_cache: QueryCache,
    /// Tenant branding and settings for pages and public info (see `cache::tenant_config`).
    pub tenant_config: TenantConfigCache,
    /// Read replicas (`[replicas] count` > 0): change capture is on for this data dir.
    pub replication: Option<Arc<crate::replica::Replication>>,
    /// CDN edges for tenant assets (`[cdn] edges`), when there are any.
    pub cdn: Option<Arc<crate::cdn::Cdn>>,
    /// This node's view of the cluster (`[cluster]` with nodes), when it is in one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The platform's analytics over every tenant, kept while they are costly (`cache::snapshot`).
    pub snapshots: crate::cache::snapshot::Snapshots,
}

/// Counters of every cache `App` holds, for `/metrics` and `/health/detailed`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct AppCacheStats {
    pub query: CacheStats,
    pub tenant_config: CacheStats,
}

/// Whether opening may create a fresh data directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

impl App {
    pub fn open(config: Config, mode: OpenMode) -> Result<Arc<App>> {
        let schema = Arc::new(TenantSchema::load(config.tenant_schema_dir.as_deref())?);
        if mode == OpenMode::CreateIfMissing {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                Error::invalid(
                    "data_dir",
                    format!(
                        "cannot create data dir {}: {e}: create it and chown it to the tenantd user, or set data_dir",
                        config.data_dir.display()
                    ),
                )
            })?;
        }
        // One thread reaps the catalog pool's idle connections (r2d2 would start 3). Tenants'
        // read connections are not r2d2's (see `store::readers`).
        let threads = Arc::new(
            ScheduledThreadPool::builder().num_threads(1).thread_name_pattern("tenantd-pool-reaper-{}").build(),
        );
        let catalog = Catalog::open(&config.catalog_path(), mode == OpenMode::CreateIfMissing, threads)?;
        catalog.sync_plans(&config.plans)?;
        let trusted_proxies =
            config.trusted_proxies.iter().map(|c| crate::security::Cidr::parse(c)).collect::<Result<Vec<_>>>()?;
        let platform_allow =
            config.platform_ip_allow.iter().map(|c| crate::security::Cidr::parse(c)).collect::<Result<Vec<_>>>()?;
        let metrics_allow =
            config.metrics_allow.iter().map(|c| crate::security::Cidr::parse(c)).collect::<Result<Vec<_>>>()?;
        let paths = Paths::new(&config.data_dir);
        let store = TenantStore::new(
            paths.clone(),
            schema,
            config.max_open_tenants,
            config.tenant_pool_size,
            config.query_monitor.clone(),
        );
        let replication = crate::replica::Replication::new(&config.replicas, &config.data_dir)?;
        let query_cache = QueryCache::new(&config.cache);
        let cdn = (!config.cdn.edges.is_empty()).then(|| Arc::new(crate::cdn::Cdn::new(&config.cdn, &config.data_dir)));
        let tenant_config = TenantConfigCache::new(Duration::from_secs(config.cache.config_ttl_seconds));
        let cluster = crate::cluster::Cluster::open(&config.cluster, &catalog)?;
        Ok(Arc::new(App {
            config,
            catalog,
            store,
            paths,
            directory: TenantDirectory::default(),
            auth: AuthCache::default(),
            limits: crate::limits::Limits::new(Arc::new(crate::limits::gcra::MonotonicClock::default())),
            audit_dirty: crate::audit::Dirty::default(),
            trusted_proxies,
            platform_allow,
            metrics_allow,
            threats: Default::default(),
            query_cache,
            tenant_config,
            replication,
            cdn,
            cluster,
            snapshots: Default::default(),
        }))
    }

    /// Opens a tenant's data for use, recording a lazy migration if one ran.
    pub fn open_tenant(&self, t: &catalog::tenants::TenantRecord) -> Result<Opened> {
        let opened =
            self.store.get(&OpenRequest { id: &t.id, schema_hold: t.schema_hold, custom_schema: t.custom_schema })?;
        if let Some(from) = opened.migrated_from {
            let to = match t.schema_hold {
                Some(h) => h.min(self.store.schema().target()),
                None => self.store.schema().target(),
            };
            self.change(|tx| {
                catalog::tenants::set_schema_version(tx, &t.id, to, t.schema_hold)?;
                catalog::audit::append(
                    tx,
                    crate::util::now_unix(),
                    &catalog::audit::Event {
                        actor: "system",
                        action: "tenant.schema_migrated_on_open",
                        tenant_id: Some(t.id.as_str()),
                        resource: Some(t.slug.as_str()),
                        outcome: "ok",
                        details: serde_json::json!({"from": from, "to": to}),
                    },
                )?;
                Ok(())
            })?;
        }
        Ok(opened)
    }

    /// A catalog write that changes what the caches hold (tenants, identity, plans): bumps the
    /// catalog generation in the same transaction, commits, then drops this process's caches
    /// at once (other processes see the generation move within 200 ms).
    pub fn change<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let out = self.catalog.write(|tx| {
            let out = f(tx)?;
            tx.execute("UPDATE catalog_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'", [])?;
            Ok(out)
        });
        self.invalidate_caches();
        out
    }

    /// Drops every cached catalog lookup (tenants, sessions, keys, roles, tenant config) and
    /// every cached query result: a generation move also signals tenant files changed by
    /// another process (fleet migrations, rollbacks, imports).
    pub fn invalidate_caches(&self) {
        self.directory.invalidate();
        self.auth.invalidate();
        self.limits.invalidate();
        self.tenant_config.invalidate();
        self.query_cache.clear();
        self.store.forget_digests();
    }

    /// Hit/miss/eviction counters and sizes of the caches above.
    pub fn cache_stats(&self) -> AppCacheStats {
        AppCacheStats { query: self.query_cache.stats(), tenant_config: self.tenant_config.stats() }
    }

    /// Tenant by slug, `NotFound` when there is none.
    pub fn tenant(&self, slug: &Slug) -> Result<catalog::tenants::TenantRecord> {
        catalog::tenants::get_by_slug(&*self.catalog.conn()?, slug)
    }
}
