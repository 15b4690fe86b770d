//! The config's tables: plans, `[limits]`, `[threats]`, `[auth]`, `[backup]`, with their defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Limits of one plan (enforced by `limits`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    pub requests_per_second: f64,
    pub burst: u64,
    pub monthly_requests: u64,
    pub storage_bytes: u64,
    pub max_users: u64,
    pub max_concurrent_requests: u64,
    pub query_timeout_ms: u64,
    /// Audit entries older than this are archived (`tenantd audit archive`, and hourly by the
    /// server) into a checkpoint; the rest of the chain still verifies.
    pub audit_retention_days: u64,
    /// Prices (`[billing] provider` other than `none` charges them), in the smallest unit of
    /// `currency`. A plan with both prices 0 is free: its tenants get no subscription.
    pub price_monthly_cents: u64,
    pub price_yearly_cents: u64,
    pub currency: String,
    /// A new subscription starts with this many days of trial (0 = none).
    pub trial_days: u64,
    /// The plan's Prices at Stripe (`[billing] provider = "stripe"`).
    pub stripe_price_id: Option<String>,
    pub stripe_price_id_yearly: Option<String>,
    /// Usage beyond what the price includes, charged per period: requests per 1,000, storage
    /// per GB-month (average over the period's measured hours), seats (members) per seat.
    pub included_monthly_requests: u64,
    pub overage_cents_per_1000_requests: u64,
    pub included_storage_gb: u64,
    pub overage_cents_per_gb_month: u64,
    pub included_seats: u64,
    pub overage_cents_per_seat: u64,
    /// The p95 latency the plan promises, in ms; the health score (issue 21) counts a tenant's
    /// p95 against it. Not enforced.
    pub latency_target_ms: u64,
    /// Snapshots of a tenant older than this are deleted (its newest is always kept), and with
    /// them the change log before them: `backup restore --at` reaches back this far.
    pub backup_retention_days: u64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            requests_per_second: 10.0,
            burst: 20,
            monthly_requests: 100_000,
            storage_bytes: 50 * 1024 * 1024,
            max_users: 5,
            max_concurrent_requests: 4,
            query_timeout_ms: 2000,
            audit_retention_days: 90,
            price_monthly_cents: 0,
            price_yearly_cents: 0,
            currency: "usd".into(),
            trial_days: 0,
            stripe_price_id: None,
            stripe_price_id_yearly: None,
            included_monthly_requests: 0,
            overage_cents_per_1000_requests: 0,
            included_storage_gb: 0,
            overage_cents_per_gb_month: 0,
            included_seats: 0,
            overage_cents_per_seat: 0,
            latency_target_ms: 500,
            backup_retention_days: 7,
        }
    }
}

impl PlanConfig {
    /// Whether the plan costs anything (its tenants get a subscription when billing is on).
    pub fn is_priced(&self) -> bool {
        self.price_monthly_cents > 0 || self.price_yearly_cents > 0
    }
}

pub(crate) fn default_plans() -> BTreeMap<String, PlanConfig> {
    let free = PlanConfig::default();
    let pro = PlanConfig {
        requests_per_second: 100.0,
        burst: 200,
        monthly_requests: 5_000_000,
        storage_bytes: 2 * 1024 * 1024 * 1024,
        max_users: 50,
        max_concurrent_requests: 16,
        query_timeout_ms: 5000,
        audit_retention_days: 365,
        backup_retention_days: 30,
        price_monthly_cents: 2900,
        price_yearly_cents: 29_000,
        trial_days: 14,
        included_monthly_requests: 5_000_000,
        overage_cents_per_1000_requests: 5,
        included_storage_gb: 2,
        overage_cents_per_gb_month: 25,
        included_seats: 50,
        overage_cents_per_seat: 500,
        ..PlanConfig::default()
    };
    let enterprise = PlanConfig {
        requests_per_second: 1000.0,
        burst: 2000,
        monthly_requests: 100_000_000,
        storage_bytes: 50 * 1024 * 1024 * 1024,
        max_users: 10_000,
        max_concurrent_requests: 64,
        query_timeout_ms: 10_000,
        audit_retention_days: 2555,
        backup_retention_days: 90,
        price_monthly_cents: 49_900,
        price_yearly_cents: 499_000,
        included_monthly_requests: 100_000_000,
        overage_cents_per_1000_requests: 2,
        included_storage_gb: 50,
        overage_cents_per_gb_month: 15,
        included_seats: 10_000,
        ..PlanConfig::default()
    };
    BTreeMap::from([("free".to_string(), free), ("pro".to_string(), pro), ("enterprise".to_string(), enterprise)])
}

/// Platform-wide request limits (plans carry the per-tenant ones).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Switches the whole resource layer (rate limits, concurrency caps, storage and query
    /// budgets) off. For side-by-side benchmarks and diagnosis only.
    pub enabled: bool,
    /// Requests per second across all tenants; 0 = unlimited.
    pub global_requests_per_second: f64,
    pub global_burst: u64,
    /// Share of its tenant's rate one user or API key may use (0 < share <= 1).
    pub principal_share: f64,
    /// Per source address on the sign-in routes.
    pub auth_requests_per_second: f64,
    pub auth_burst: u64,
    /// A tenant refused this many times within a minute raises a `throttled` alert...
    pub throttle_after_refusals: u64,
    /// ...and, when on, is held to `throttle_factor` of its rate for `throttle_cooldown_seconds`.
    pub auto_throttle: bool,
    pub throttle_factor: f64,
    pub throttle_cooldown_seconds: u64,
    /// While a tenant is throttled, its 429 answers are held back this long (a tarpit): a
    /// client that keeps hammering then waits between attempts instead of taking the CPU from
    /// other tenants. 0 = answer at once.
    pub tarpit_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            global_requests_per_second: 0.0,
            global_burst: 1000,
            principal_share: 0.5,
            auth_requests_per_second: 2.0,
            auth_burst: 10,
            throttle_after_refusals: 1000,
            auto_throttle: true,
            throttle_factor: 0.5,
            throttle_cooldown_seconds: 300,
            tarpit_ms: 1000,
        }
    }
}

/// Threat detection thresholds (see `security::threats`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ThreatsConfig {
    /// Distinct accounts failing sign-in from one address within 10 minutes = stuffing.
    pub stuffing_accounts: u64,
    /// Block such an address (sign-in answers 429) for `block_seconds`.
    pub block_addresses: bool,
    pub block_seconds: u64,
    /// 404/403 answers to one caller on one tenant within a minute = enumeration.
    pub enumeration_misses: u64,
    /// Deletes by one caller on one tenant within a minute = mass delete.
    pub mass_delete: u64,
    /// Rows read by one caller from one tenant within a minute = mass export.
    pub mass_export_rows: u64,
}

impl Default for ThreatsConfig {
    fn default() -> Self {
        ThreatsConfig {
            stuffing_accounts: 10,
            block_addresses: true,
            block_seconds: 900,
            enumeration_misses: 50,
            mass_delete: 100,
            mass_export_rows: 10_000,
        }
    }
}

/// Identity settings: argon2id cost, password policy, sessions, lockout.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// argon2id memory in KiB (OWASP's minimum recommendation: 19 MiB, 2 iterations, 1 lane).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub password_min_length: usize,
    /// Absolute session lifetime.
    pub session_ttl_minutes: i64,
    /// Sessions unused this long expire.
    pub idle_timeout_minutes: i64,
    /// Failed logins on one account before it locks; each further failure doubles the lock.
    pub lockout_threshold: i64,
    pub lockout_base_seconds: i64,
    /// Failed logins from one address within 10 minutes before it gets 429s.
    pub address_max_failures: u32,
    /// Mark the UI session cookie `Secure` (serve behind TLS).
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            password_min_length: 10,
            session_ttl_minutes: 12 * 60,
            idle_timeout_minutes: 30,
            lockout_threshold: 5,
            lockout_base_seconds: 30,
            address_max_failures: 20,
            secure_cookies: false,
        }
    }
}

/// `[billing]`: who charges tenants, and how unpaid ones are treated (see `billing`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// `none` (nothing is charged; plans only limit), `local` (tenantd invoices by itself) or
    /// `stripe` (Stripe charges; tenantd mirrors its state from webhooks).
    pub provider: String,
    /// Added to every invoice's subtotal, in percent (0..=100).
    pub tax_rate_percent: f64,
    /// An invoice is due this many days after it is issued; unpaid after that, the
    /// subscription is `past_due`.
    pub invoice_due_days: u64,
    /// `past_due` keeps the plan's limits this many days; then writes answer 402 until paid.
    /// 0 = read-only as soon as payment is late.
    pub dunning_grace_days: u64,
    /// A `canceled` or `unpaid` subscription's tenant is suspended this many days after it ended.
    pub retention_days: u64,
    /// Printed at the top of local invoices.
    pub issuer: String,
    pub invoice_prefix: String,
    /// Stripe's API (tests point it at the mock); the secret key may instead come from
    /// `TENANTD_STRIPE_SECRET_KEY`, and is never logged.
    pub stripe_api_base: String,
    pub stripe_secret_key: Option<String>,
    /// Webhook signing secrets (several during a rotation) and the allowed clock difference.
    pub stripe_webhook_secrets: Vec<String>,
    pub webhook_tolerance_seconds: u64,
    /// Stripe test mode only: new Customers are created on this test clock, so renewals, trial
    /// ends and dunning can be rehearsed by advancing it (never set with a live key).
    pub stripe_test_clock: Option<String>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            provider: "none".into(),
            tax_rate_percent: 0.0,
            invoice_due_days: 14,
            dunning_grace_days: 7,
            retention_days: 30,
            issuer: "tenantd".into(),
            invoice_prefix: "INV-".into(),
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_secret_key: None,
            stripe_webhook_secrets: Vec::new(),
            webhook_tolerance_seconds: 300,
            stripe_test_clock: None,
        }
    }
}

/// `[backup]`: scheduled per-tenant snapshots (`backup`); retention is per plan
/// (`backup_retention_days`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// The server snapshots each tenant whose newest snapshot is older than this (0 = never:
    /// only `tenantd backup create` takes them).
    pub interval_hours: u64,
    /// Tenants snapshotted at once by a scheduled pass and `backup create --all`.
    pub threads: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { interval_hours: 24, threads: 2 }
    }
}
