//! Typed configuration: defaults → TOML file → `TENANTD_*` environment → CLI flags, validated at
//! start. Invalid values fail with where they were set (file and line, variable or flag), the
//! key, the value as written and what was expected (`origin`); unknown keys are returned as
//! warnings so a typo is seen rather than silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the packaged service reads its config from.
pub const PACKAGED_CONFIG: &str = "/etc/tenantd/tenantd.toml";
/// Read from the working directory when no `--config` is given.
pub const LOCAL_CONFIG: &str = "tenantd.toml";

mod error;
mod origin;
mod sections;
pub use error::ConfigError;
pub use sections::*;

use origin::{ConfigFile, EnvSetting, FlagSetting};

/// The whole configuration. Field docs double as the config reference in `docs/`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Directory holding `catalog.db`, `tenants/`, `backups/`.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: String,
    /// Worker threads serving requests at least (2..=512; never 1: a slow reader would stall
    /// everything). `workers` is accepted as the old name.
    #[serde(alias = "workers")]
    pub workers_min: usize,
    /// The pool grows up to this many when requests wait while the CPU has room; unset =
    /// 4 x workers_min (at most 512).
    pub workers_max: Option<usize>,
    /// Seconds the pool must have had idle workers before it retires one (1..=86400).
    pub workers_idle_seconds: u64,
    /// Free space in the data dir's file system under which readiness fails (bytes; warn at
    /// 4x this).
    pub min_free_disk_bytes: u64,
    /// Client addresses (CIDRs) that may read `/metrics`; empty = any address.
    pub metrics_allow: Vec<String>,
    /// Tenant databases kept open at once (beyond this the least recently useful one closes: SIEVE).
    pub max_open_tenants: usize,
    /// Connections per open tenant (1..=64).
    pub tenant_pool_size: u32,
    /// Directory of numbered `NNNN_name.sql` tenant migrations; unset = the built-in demo schema.
    pub tenant_schema_dir: Option<PathBuf>,
    /// SQL run once in every demo tenant `tenantd demo` creates (the sample rows of your
    /// schema). Unset: the built-in CRM rows with the built-in schema, none with your own.
    pub demo_seed_sql: Option<PathBuf>,
    /// Base domain for `Host` resolution: `acme.<base_domain>` resolves tenant `acme`.
    pub base_domain: Option<String>,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// How long one read from a client connection may wait: an idle keep-alive connection is
    /// closed after it, a stalled request head gets 408, a stalled body ends the request.
    pub read_timeout_seconds: u64,
    /// How long a kept-alive connection may wait for its next request before it is closed, so
    /// idle clients cannot hold descriptors forever (`read_timeout_seconds` covers a request
    /// under way).
    pub keep_alive_idle_seconds: u64,
    /// After SIGTERM: how long the listener keeps accepting (readiness already fails, answers
    /// carry `Connection: close`) before it closes, so requests already on their way are
    /// answered rather than reset.
    pub shutdown_grace_ms: u64,
    /// After SIGTERM: the most the whole stop may take (grace, in-flight requests, checkpoints)
    /// before the process exits anyway. Keep it under the unit's `TimeoutStopSec` (30 s).
    pub shutdown_timeout_seconds: u64,
    /// Days a soft-deleted tenant is kept before it may be purged.
    pub delete_grace_days: u32,
    /// Plan given to new tenants when none is named.
    pub default_plan: String,
    pub plans: BTreeMap<String, PlanConfig>,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    /// JSON POST target for alerts (quota thresholds, throttling); unset = audit log only.
    pub alert_webhook_url: Option<String>,
    /// Write an audit entry with every data change, in the same transaction. Off only for
    /// side-by-side benchmarks.
    pub audit_data_changes: bool,
    /// Peer benchmarks (`analytics/comparative`) are withheld when a tenant's plan has fewer
    /// other tenants than this (k-anonymity: no individual peer can be read off the bands).
    pub analytics_min_cohort: u64,
    /// Usage rollups are kept by hour this many days, then by day (`analytics::rollup`).
    pub analytics_hourly_days: u64,
    /// Daily rollups are kept this many days, then by month (kept for good).
    pub analytics_daily_days: u64,
    /// Peers (CIDRs) whose `X-Forwarded-For` is believed; empty = never (the packaged config
    /// trusts 127.0.0.1 for the nginx front).
    pub trusted_proxies: Vec<String>,
    pub threats: ThreatsConfig,
    /// CIDRs allowed to reach the platform admin API and pages; empty = any address.
    pub platform_ip_allow: Vec<String>,
    /// Send `Strict-Transport-Security` with this max-age (set it when served over TLS, e.g.
    /// behind the nginx front); unset = no HSTS header.
    pub hsts_max_age_seconds: Option<u64>,
    /// `[cache]`: the query result cache and the tenant config cache.
    pub cache: crate::cache::CacheConfig,
    /// `[query_monitor]`: statement statistics and the slow-query log.
    pub query_monitor: crate::store::stats::QueryMonitorConfig,
    /// `[billing]`: prices charged, invoices, dunning.
    pub billing: BillingConfig,
    /// `[replicas]`: local read replicas.
    pub replicas: crate::replica::ReplicasConfig,
    /// `[backup]`: scheduled snapshots of every tenant.
    pub backup: BackupConfig,
    /// `[cdn]`: CDN edges for tenant assets, as local mirrors.
    pub cdn: crate::cdn::CdnConfig,
    /// `[cluster]`: this node's place among several (issue 23); none by default.
    pub cluster: crate::cluster::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("tenantd-data"),
            listen: "127.0.0.1:8080".to_string(),
            workers_min: default_workers(),
            workers_max: None,
            workers_idle_seconds: 30,
            min_free_disk_bytes: 256 * 1024 * 1024,
            metrics_allow: vec!["127.0.0.1/8".into(), "::1/128".into()],
            max_open_tenants: 256,
            tenant_pool_size: 4,
            tenant_schema_dir: None,
            demo_seed_sql: None,
            base_domain: None,
            max_body_bytes: 1024 * 1024,
            read_timeout_seconds: 75,
            keep_alive_idle_seconds: 60,
            shutdown_grace_ms: 500,
            shutdown_timeout_seconds: 25,
            delete_grace_days: 30,
            default_plan: "free".to_string(),
            plans: default_plans(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            alert_webhook_url: None,
            audit_data_changes: true,
            analytics_min_cohort: 5,
            analytics_hourly_days: 90,
            analytics_daily_days: 730,
            trusted_proxies: Vec::new(),
            threats: ThreatsConfig::default(),
            platform_ip_allow: Vec::new(),
            hsts_max_age_seconds: None,
            cache: Default::default(),
            billing: BillingConfig::default(),
            replicas: crate::replica::ReplicasConfig::default(),
            backup: BackupConfig::default(),
            cdn: crate::cdn::CdnConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            query_monitor: Default::default(),
        }
    }
}

/// Two workers per usable CPU, at least 4 (measured: on one pinned core 4 workers keep point
/// reads' p99 near 1.4 ms where 8 let it drift past 10 ms; see docs/benchmarks.md).
fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    (2 * cpus).clamp(4, 64)
}

const KNOWN_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "workers",
    "workers_min",
    "workers_max",
    "workers_idle_seconds",
    "min_free_disk_bytes",
    "metrics_allow",
    "max_open_tenants",
    "tenant_pool_size",
    "tenant_schema_dir",
    "demo_seed_sql",
    "base_domain",
    "max_body_bytes",
    "read_timeout_seconds",
    "keep_alive_idle_seconds",
    "shutdown_grace_ms",
    "shutdown_timeout_seconds",
    "delete_grace_days",
    "default_plan",
    "plans",
    "auth",
    "limits",
    "alert_webhook_url",
    "audit_data_changes",
    "analytics_min_cohort",
    "analytics_hourly_days",
    "analytics_daily_days",
    "trusted_proxies",
    "threats",
    "platform_ip_allow",
    "hsts_max_age_seconds",
    "cache",
    "query_monitor",
    "billing",
    "replicas",
    "backup",
    "cdn",
    "cluster",
];

/// Explicit overrides from the command line (highest precedence).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// A loaded config plus the warnings worth showing the operator.
pub struct Loaded {
    pub config: Config,
    pub source: Option<PathBuf>,
    pub warnings: Vec<String>,
}

impl Config {
    /// The most workers the pool may grow to.
    pub fn workers_max(&self) -> usize {
        self.workers_max.unwrap_or((4 * self.workers_min).min(512)).max(self.workers_min)
    }

    /// Loads from the usual places with the process environment.
    pub fn load(over: &Overrides) -> Result<Loaded, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(over, &env)
    }

    /// Loads with an explicit environment (tests inject theirs).
    pub fn load_with_env(over: &Overrides, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let env_file = env.iter().find(|(k, _)| k == "TENANTD_CONFIG").map(|(_, v)| PathBuf::from(v));
        let path = over
            .config_file
            .clone()
            .or(env_file)
            .or_else(|| [LOCAL_CONFIG, PACKAGED_CONFIG].iter().map(PathBuf::from).find(|p| p.is_file()));
        let file = path.as_deref().map(ConfigFile::read).transpose()?;
        let mut table = match &file {
            Some(f) => f.table()?,
            None => toml::Table::new(),
        };
        let mut warnings = unknown_keys(&table);
        merge_default_plans(&mut table)?;
        let env_set = apply_env(&mut table, env, &mut warnings)?;
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::message(format!("config: {}", e.message().trim())))?;
        let mut flags = Vec::new();
        if let Some(d) = &over.data_dir {
            config.data_dir = d.clone();
            flags.push(FlagSetting::new("data_dir", "--data-dir", d.display().to_string()));
        }
        if let Some(l) = &over.listen {
            config.listen = l.clone();
            flags.push(FlagSetting::new("listen", "--listen", l.clone()));
        }
        config.validate().map_err(|e| origin::place(e, &flags, &env_set, file.as_ref()))?;
        Ok(Loaded { config, source: path, warnings })
    }

    /// Range and consistency checks; the message says what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        range("workers_min", self.workers_min as u64, 2, 512)?;
        if let Some(max) = self.workers_max {
            range("workers_max", max as u64, self.workers_min as u64, 512)?;
        }
        range("workers_idle_seconds", self.workers_idle_seconds, 1, 86_400)?;
        range("max_open_tenants", self.max_open_tenants as u64, 1, 1_000_000)?;
        range("tenant_pool_size", self.tenant_pool_size as u64, 1, 64)?;
        range("max_body_bytes", self.max_body_bytes as u64, 1024, 1 << 30)?;
        range("read_timeout_seconds", self.read_timeout_seconds, 1, 3600)?;
        range("keep_alive_idle_seconds", self.keep_alive_idle_seconds, 1, 3600)?;
        range("shutdown_grace_ms", self.shutdown_grace_ms, 0, 60_000)?;
        range("shutdown_timeout_seconds", self.shutdown_timeout_seconds, 1, 3600)?;
        if self.shutdown_grace_ms >= self.shutdown_timeout_seconds * 1000 {
            return Err(ConfigError::expected(
                "shutdown_grace_ms",
                self.shutdown_grace_ms,
                format_args!(
                    "fewer ms than shutdown_timeout_seconds = {} ({} ms)",
                    self.shutdown_timeout_seconds,
                    self.shutdown_timeout_seconds * 1000
                ),
            ));
        }
        range("delete_grace_days", self.delete_grace_days as u64, 0, 3650)?;
        range("analytics_min_cohort", self.analytics_min_cohort, 3, 1_000_000)?;
        range("analytics_hourly_days", self.analytics_hourly_days, 2, 3650)?;
        // Monthly rollups are made from whole months of daily ones.
        range("analytics_daily_days", self.analytics_daily_days, self.analytics_hourly_days + 31, 36_500)?;
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::expected("listen", format!("{:?}", self.listen), "IP:PORT, e.g. 127.0.0.1:8080"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::expected("data_dir", "\"\"", "a writable directory"));
        }
        if let Some(d) = &self.base_domain {
            let ok = !d.is_empty()
                && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !ok {
                return Err(ConfigError::expected("base_domain", format!("{d:?}"), "a domain name like example.com"));
            }
        }
        self.validate_billing()?;
        range("replicas.count", self.replicas.count as u64, 0, 8)?;
        if !["primary", "replica"].contains(&self.replicas.read_policy.as_str()) {
            return Err(ConfigError::about("replicas.read_policy", "one of \"primary\", \"replica\""));
        }
        range("replicas.max_lag_ms", self.replicas.max_lag_ms, 1, 3_600_000)?;
        range("replicas.bookmark_wait_ms", self.replicas.bookmark_wait_ms, 0, 10_000)?;
        range("backup.interval_hours", self.backup.interval_hours, 0, 8760)?;
        range("backup.threads", self.backup.threads as u64, 1, 64)?;
        self.cdn.validate().map_err(|m| ConfigError::about("cdn", &m))?;
        self.cluster.validate().map_err(|m| ConfigError::about("cluster", &m))?;
        if self.plans.is_empty() {
            return Err(ConfigError::about("plans", "at least one [plans.<name>] table is needed"));
        }
        for (name, p) in &self.plans {
            crate::ids::Slug::parse(name)
                .map_err(|_| ConfigError::about(format!("plans.{name}"), "plan names use a-z, 0-9 and '-'"))?;
            if !(p.requests_per_second > 0.0 && p.requests_per_second <= 1e9) {
                return Err(ConfigError::expected(
                    format!("plans.{name}.requests_per_second"),
                    p.requests_per_second,
                    "a number above 0, at most 1e9",
                ));
            }
            range(&format!("plans.{name}.max_concurrent_requests"), p.max_concurrent_requests, 1, 100_000)?;
            range(&format!("plans.{name}.query_timeout_ms"), p.query_timeout_ms, 1, 3_600_000)?;
            range(&format!("plans.{name}.latency_target_ms"), p.latency_target_ms, 1, 3_600_000)?;
            range(&format!("plans.{name}.storage_bytes"), p.storage_bytes, 65_536, u64::MAX >> 1)?;
            range(&format!("plans.{name}.burst"), p.burst, 1, 1 << 40)?;
            range(&format!("plans.{name}.audit_retention_days"), p.audit_retention_days, 1, 36_500)?;
            range(&format!("plans.{name}.backup_retention_days"), p.backup_retention_days, 1, 36_500)?;
            range(&format!("plans.{name}.trial_days"), p.trial_days, 0, 730)?;
            let currency_ok = p.currency.len() == 3 && p.currency.bytes().all(|b| b.is_ascii_lowercase());
            if !currency_ok {
                return Err(ConfigError::about(
                    format!("plans.{name}.currency"),
                    "an ISO 4217 code in lower case, e.g. \"usd\"",
                ));
            }
        }
        let l = &self.limits;
        if !(l.global_requests_per_second >= 0.0 && l.global_requests_per_second <= 1e9) {
            return Err(ConfigError::expected(
                "limits.global_requests_per_second",
                l.global_requests_per_second,
                "a number from 0 (unlimited) to 1e9",
            ));
        }
        if !(l.principal_share > 0.0 && l.principal_share <= 1.0) {
            return Err(ConfigError::expected(
                "limits.principal_share",
                l.principal_share,
                "a number above 0, at most 1",
            ));
        }
        if !(l.auth_requests_per_second > 0.0 && l.auth_requests_per_second <= 1e6) {
            return Err(ConfigError::expected(
                "limits.auth_requests_per_second",
                l.auth_requests_per_second,
                "a number above 0, at most 1e6",
            ));
        }
        range("limits.global_burst", l.global_burst, 1, 1 << 40)?;
        range("limits.throttle_after_refusals", l.throttle_after_refusals, 1, 1 << 40)?;
        range("limits.throttle_cooldown_seconds", l.throttle_cooldown_seconds, 1, 86_400)?;
        if !(l.throttle_factor > 0.0 && l.throttle_factor <= 1.0) {
            return Err(ConfigError::expected(
                "limits.throttle_factor",
                l.throttle_factor,
                "a number above 0, at most 1",
            ));
        }
        let th = &self.threats;
        range("limits.tarpit_ms", self.limits.tarpit_ms, 0, 60_000)?;
        range("threats.stuffing_accounts", th.stuffing_accounts, 2, 1_000_000)?;
        range("threats.block_seconds", th.block_seconds, 1, 86_400 * 7)?;
        range("threats.enumeration_misses", th.enumeration_misses, 2, 1_000_000)?;
        range("threats.mass_delete", th.mass_delete, 2, 1_000_000)?;
        range("threats.mass_export_rows", th.mass_export_rows, 2, 1_000_000_000)?;
        for p in &self.platform_ip_allow {
            crate::security::Cidr::parse(p).map_err(|_| {
                ConfigError::expected(
                    "platform_ip_allow",
                    format!("{p:?}"),
                    format!("addresses or CIDR blocks ({p:?} is neither)"),
                )
            })?;
        }
        if let Some(h) = self.hsts_max_age_seconds {
            range("hsts_max_age_seconds", h, 1, 63_072_000)?;
        }
        for p in &self.trusted_proxies {
            crate::security::Cidr::parse(p).map_err(|_| {
                ConfigError::expected(
                    "trusted_proxies",
                    format!("{p:?}"),
                    format!("addresses or CIDR blocks ({p:?} is neither)"),
                )
            })?;
        }
        if let Some(u) = &self.alert_webhook_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::expected("alert_webhook_url", format!("{u:?}"), "an http:// or https:// URL"));
            }
        }
        range("limits.auth_burst", l.auth_burst, 1, 1 << 40)?;
        let a = &self.auth;
        range("auth.argon2_memory_kib", a.argon2_memory_kib as u64, 8, 4 * 1024 * 1024)?;
        range("auth.argon2_iterations", a.argon2_iterations as u64, 1, 100)?;
        range("auth.argon2_parallelism", a.argon2_parallelism as u64, 1, 64)?;
        range("auth.password_min_length", a.password_min_length as u64, 8, 256)?;
        range("auth.session_ttl_minutes", a.session_ttl_minutes as u64, 1, 525_600)?;
        range("auth.idle_timeout_minutes", a.idle_timeout_minutes as u64, 1, 525_600)?;
        range("auth.lockout_threshold", a.lockout_threshold as u64, 1, 1000)?;
        range("auth.lockout_base_seconds", a.lockout_base_seconds as u64, 1, 86_400)?;
        range("auth.address_max_failures", a.address_max_failures as u64, 1, 1_000_000)?;
        let c = &self.cache;
        range("cache.query_bytes_per_tenant", c.query_bytes_per_tenant, 4096, 1 << 34)?;
        range("cache.query_bytes_total", c.query_bytes_total, 4096, 1 << 40)?;
        range("cache.config_ttl_seconds", c.config_ttl_seconds, 1, 86_400)?;
        if c.query_bytes_per_tenant > c.query_bytes_total {
            return Err(ConfigError::expected(
                "cache.query_bytes_per_tenant",
                c.query_bytes_per_tenant,
                format_args!("at most cache.query_bytes_total = {}: lower it or raise the total", c.query_bytes_total),
            ));
        }
        let q = &self.query_monitor;
        range("query_monitor.slow_query_ms", q.slow_query_ms, 0, 3_600_000)?;
        range("query_monitor.statements_per_tenant", q.statements_per_tenant as u64, 1, 100_000)?;
        range("query_monitor.slow_log_per_tenant", q.slow_log_per_tenant as u64, 1, 10_000)?;
        if !self.plans.contains_key(&self.default_plan) {
            return Err(ConfigError::expected(
                "default_plan",
                format!("{:?}", self.default_plan),
                format!("a configured plan ({})", self.plans.keys().cloned().collect::<Vec<_>>().join(", ")),
            ));
        }
        Ok(())
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }
}

/// An integer key's range check; the loader adds where the value was set.
impl Config {
    fn validate_billing(&self) -> Result<(), ConfigError> {
        let b = &self.billing;
        if !["none", "local", "stripe"].contains(&b.provider.as_str()) {
            return Err(ConfigError::about("billing.provider", "one of \"none\", \"local\", \"stripe\""));
        }
        if !(0.0..=100.0).contains(&b.tax_rate_percent) {
            return Err(ConfigError::about("billing.tax_rate_percent", "a percentage in 0..=100"));
        }
        range("billing.invoice_due_days", b.invoice_due_days, 0, 365)?;
        range("billing.dunning_grace_days", b.dunning_grace_days, 0, 365)?;
        range("billing.retention_days", b.retention_days, 0, 36_500)?;
        // Never 0: a zero tolerance would refuse every delivery (Stripe's advice: 300 s).
        range("billing.webhook_tolerance_seconds", b.webhook_tolerance_seconds, 1, 86_400)?;
        if b.provider == "stripe" {
            for (name, p) in &self.plans {
                let missing = (p.price_monthly_cents > 0 && p.stripe_price_id.is_none())
                    || (p.price_yearly_cents > 0 && p.stripe_price_id_yearly.is_none());
                if missing {
                    return Err(ConfigError::about(
                        format!("plans.{name}.stripe_price_id"),
                        "provider \"stripe\" needs the Stripe price of every priced interval (stripe_price_id, stripe_price_id_yearly)",
                    ));
                }
            }
        }
        if b.provider == "stripe" && b.stripe_webhook_secrets.is_empty() {
            return Err(ConfigError::about(
                "billing.stripe_webhook_secrets",
                "provider \"stripe\" needs the webhook signing secret(s) (whsec_…) to accept Stripe's events",
            ));
        }
        Ok(())
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::expected(key, value, format_args!("a whole number in {min}..={max}")));
    }
    Ok(())
}

/// Unknown top-level keys. (Plan and section tables are deny_unknown_fields: a typo there is an
/// error, reported with its line when the file is read, as is a `plans` that is not a table.)
fn unknown_keys(table: &toml::Table) -> Vec<String> {
    table
        .keys()
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|k| format!("unknown config key {k:?} ignored"))
        .collect()
}

/// A `[plans.pro]` table in the file overrides only the keys it names; built-in plans stay.
fn merge_default_plans(table: &mut toml::Table) -> Result<(), ConfigError> {
    let defaults =
        toml::Table::try_from(default_plans()).map_err(|e| ConfigError::message(format!("built-in plans: {e}")))?;
    let mut merged = defaults;
    if let Some(toml::Value::Table(file_plans)) = table.remove("plans") {
        for (name, value) in file_plans {
            let toml::Value::Table(over) = value else {
                return Err(ConfigError::about(format!("plans.{name}"), "expected a table"));
            };
            match merged.get_mut(&name) {
                Some(toml::Value::Table(base)) => base.extend(over),
                _ => {
                    merged.insert(name, toml::Value::Table(over));
                }
            }
        }
    }
    table.insert("plans".into(), toml::Value::Table(merged));
    Ok(())
}

/// `TENANTD_<KEY>` sets a top-level key; the value is read as a TOML literal when it parses as
/// one (numbers, booleans) and as a string otherwise. Returns what each variable set, so a
/// later error names the variable.
fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<Vec<EnvSetting>, ConfigError> {
    let mut set = Vec::new();
    for (k, v) in env {
        let Some(key) = k.strip_prefix("TENANTD_") else {
            continue;
        };
        // Not config keys: the config file's path, the log level, and the Stripe secret (read
        // where it is used, so it never passes through the config's error messages).
        if key == "CONFIG" || key == "LOG" || key == "STRIPE_SECRET_KEY" || key == "CLUSTER_SECRET" {
            continue;
        }
        let key = key.to_ascii_lowercase();
        if !KNOWN_KEYS.contains(&key.as_str()) || key == "plans" {
            warnings.push(format!("unknown environment variable {k} ignored"));
            continue;
        }
        let value = format!("v = {v}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table())
            .unwrap_or_else(|| toml::Value::String(v.clone()));
        let setting = EnvSetting { key: key.clone(), var: k.clone(), raw: v.clone() };
        origin::check_env_value(table, &setting, &value)?;
        table.insert(key, value);
        set.push(setting);
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
