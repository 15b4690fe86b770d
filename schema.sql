-- tenantd catalog schema (catalog.db). Applied idempotently at every start; the catalog's own
-- version is PRAGMA user_version (see src/catalog/mod.rs, CATALOG_VERSION).
-- Times are Unix seconds (UTC) unless the column name says otherwise.

CREATE TABLE IF NOT EXISTS catalog_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Plans as last seen in the config, kept so reports and exports can name their limits.
CREATE TABLE IF NOT EXISTS plans (
    name        TEXT PRIMARY KEY,
    limits_json TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    id             TEXT PRIMARY KEY,          -- minted by tenantd, names the directory
    slug           TEXT NOT NULL UNIQUE,      -- public handle, never part of a path
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    plan           TEXT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0, -- mirror of the file's PRAGMA user_version
    schema_hold    INTEGER,                    -- set by `schema rollback`: lazy migration stops here
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    suspended_at   INTEGER,
    deleted_at     INTEGER,
    purge_after    INTEGER
);
CREATE INDEX IF NOT EXISTS tenants_status ON tenants(status);

CREATE TABLE IF NOT EXISTS tenant_domains (
    domain     TEXT PRIMARY KEY,               -- lower-case custom domain
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);

-- Per-tenant settings and branding (name, colour, logo) shown on the tenant's pages.
CREATE TABLE IF NOT EXISTS tenant_configs (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    display_name  TEXT,
    brand_color   TEXT,
    logo_asset    TEXT,
    settings_json TEXT NOT NULL DEFAULT '{}',
    updated_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS subscriptions (
    id         INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plan       TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX IF NOT EXISTS subscriptions_tenant ON subscriptions(tenant_id, started_at);

-- Platform audit: a hash chain. hash = SHA-256(prev_hash || canonical JSON of the entry).
CREATE TABLE IF NOT EXISTS platform_audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    tenant_id TEXT,
    resource  TEXT,
    outcome   TEXT NOT NULL,
    details   TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS platform_audit_tenant ON platform_audit(tenant_id, id);

-- What was removed when a tenant was purged; outlives the tenant row.
CREATE TABLE IF NOT EXISTS tenant_deletions (
    id            INTEGER PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    deleted_at    INTEGER NOT NULL,
    purged_at     INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    files_removed INTEGER NOT NULL,
    bytes_removed INTEGER NOT NULL
);

-- Schema ledger: the hash of each tenant migration file when first applied, to report drift.
CREATE TABLE IF NOT EXISTS schema_files (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    first_seen INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS migration_runs (
    id             INTEGER PRIMARY KEY,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    target_version INTEGER NOT NULL,
    dry_run        INTEGER NOT NULL,
    status         TEXT NOT NULL,             -- running | done | failed | stopped | rolled_back
    migrated       INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    skipped        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS tenant_migrations (
    run_id       INTEGER NOT NULL REFERENCES migration_runs(id),
    tenant_id    TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_version   INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                   ('migrated', 'failed', 'would_migrate', 'would_fail', 'rolled_back', 'lazy')),
    error        TEXT,
    duration_ms  REAL NOT NULL,
    snapshot     TEXT,                        -- path of the pre-migration snapshot
    at           INTEGER NOT NULL,
    PRIMARY KEY (run_id, tenant_id)
);
CREATE INDEX IF NOT EXISTS tenant_migrations_tenant ON tenant_migrations(tenant_id, run_id);

-- ---------------------------------------------------------------------------------------------
-- Identity (catalog version 2): users belong to tenants through memberships with a role.

CREATE TABLE IF NOT EXISTS users (
    id                INTEGER PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash     TEXT NOT NULL,                 -- argon2id PHC string
    is_platform_admin INTEGER NOT NULL DEFAULT 0,
    totp_secret       TEXT,                          -- base32; set at enrolment
    totp_enabled      INTEGER NOT NULL DEFAULT 0,    -- 1 once confirmed
    totp_last_step    INTEGER,                       -- replay protection
    failed_logins     INTEGER NOT NULL DEFAULT 0,
    locked_until      INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Custom roles per tenant; the built-in owner/admin/member/viewer are defined in code.
CREATE TABLE IF NOT EXISTS roles (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,                        -- JSON array of "can_<action>:<resource>"
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE IF NOT EXISTS memberships (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user ON memberships(user_id);

-- Sessions: only the SHA-256 of the token is stored.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,                   -- absolute expiry
    idle_seconds INTEGER NOT NULL,                   -- idle expiry window
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    csrf_token   TEXT NOT NULL,
    source       TEXT,
    user_agent   TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);

-- API keys: bound to one tenant, scoped, hashed at rest, shown once.
CREATE TABLE IF NOT EXISTS api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    tables       TEXT,                               -- JSON array, NULL = all tables
    created_by   INTEGER,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys(tenant_id);

-- ---------------------------------------------------------------------------------------------
-- Usage metering (catalog version 3): per tenant and hour, flushed from memory every second.

CREATE TABLE IF NOT EXISTS usage_hourly (
    tenant_id    TEXT NOT NULL,
    hour         INTEGER NOT NULL,                   -- Unix seconds at the start of the hour
    requests     INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,         -- responses with status >= 400
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    rows_read    INTEGER NOT NULL DEFAULT 0,
    rows_written INTEGER NOT NULL DEFAULT 0,
    cpu_us       INTEGER NOT NULL DEFAULT 0,         -- CPU time of the worker threads on its requests
    latency_hist TEXT NOT NULL DEFAULT '[]',         -- JSON counts per bucket (see limits::meter)
    storage_bytes INTEGER NOT NULL DEFAULT 0,        -- last seen in that hour
    PRIMARY KEY (tenant_id, hour)
);

CREATE TABLE IF NOT EXISTS usage_users (
    tenant_id TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, hour, user_id)
);

-- Bumped in the same transaction as every change that cached lookups depend on (App::change);
-- servers poll it to drop their caches, so usage flushes and session touches do not.
INSERT OR IGNORE INTO catalog_meta(key, value) VALUES ('generation', '0');

-- ---------------------------------------------------------------------------------------------
-- Audit anchors (catalog version 4): the head of each tenant's audit chain, recorded every
-- second and at shutdown, so truncating a tenant's chain or rewriting it whole is detected.
CREATE TABLE IF NOT EXISTS audit_anchors (
    tenant_id   TEXT PRIMARY KEY,
    last_id     INTEGER NOT NULL,
    last_hash   TEXT NOT NULL,
    anchored_at INTEGER NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Alerts (catalog version 5): quota and throttling alerts and threat detections, listed for
-- tenant admins (their tenant's) and platform admins (all, including cross-tenant ones).
CREATE TABLE IF NOT EXISTS alerts (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    tenant_id TEXT,                                 -- NULL: platform-wide (e.g. credential stuffing)
    kind      TEXT NOT NULL,
    source    TEXT,
    principal TEXT,
    risk      INTEGER NOT NULL DEFAULT 0,
    message   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_tenant ON alerts(tenant_id, id);

-- Addresses each user has signed in from (for "admin sign-in from a new address").
CREATE TABLE IF NOT EXISTS user_addresses (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (user_id, address)
);

-- Migration runs (`tenantd migration …`, issue 19): one row per run with its manifest (what
-- was read, what was created) and its validation report; `import_created` lists every tenant,
-- user and membership a run created, so `migration rollback RUN` removes exactly those.
CREATE TABLE IF NOT EXISTS import_runs (
    id            TEXT PRIMARY KEY,           -- e.g. m20261207-031700-1a2b3c
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'rolled_back')),
    source        TEXT NOT NULL,              -- what was read (paths; passwords never stored)
    manifest_json TEXT NOT NULL DEFAULT '{}',
    report_json   TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS import_created (
    run_id    TEXT NOT NULL REFERENCES import_runs(id),
    kind      TEXT NOT NULL CHECK (kind IN ('tenant', 'user', 'membership')),
    tenant_id TEXT,
    user_id   INTEGER,
    PRIMARY KEY (run_id, kind, tenant_id, user_id)
);

-- Tenants that keep their own schema (`--schema-mode keep`): served through introspection,
-- listed as `custom` by `schema status`, skipped by fleet migrations.
CREATE TABLE IF NOT EXISTS tenant_custom_schemas (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    run_id     TEXT,
    created_at INTEGER NOT NULL
);

-- Billing (issue 20; `billing`). One current subscription per tenant (ended_at IS NULL), older
-- ones kept as history. Statuses are Stripe's. `provider_updated_at`: the provider object's own
-- timestamp last applied, so an older webhook never overwrites a newer state.
CREATE TABLE IF NOT EXISTS billing_subscriptions (
    id                       INTEGER PRIMARY KEY,
    tenant_id                TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plan                     TEXT NOT NULL,
    interval                 TEXT NOT NULL CHECK (interval IN ('month', 'year')),
    status                   TEXT NOT NULL CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing',
                               'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    amount_cents             INTEGER NOT NULL,
    currency                 TEXT NOT NULL,
    current_period_start     INTEGER NOT NULL,
    current_period_end       INTEGER NOT NULL,
    segment_start            INTEGER NOT NULL,   -- since when this period is at amount_cents (a plan change splits it)
    trial_end                INTEGER,
    cancel_at_period_end     INTEGER NOT NULL DEFAULT 0,
    past_due_since           INTEGER,
    canceled_at              INTEGER,
    provider                 TEXT NOT NULL,
    provider_customer_id     TEXT,
    provider_subscription_id TEXT,
    provider_updated_at      INTEGER,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    ended_at                 INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS billing_subscriptions_current ON billing_subscriptions(tenant_id) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS billing_subscriptions_due ON billing_subscriptions(current_period_end) WHERE ended_at IS NULL;

-- Every change to a subscription: who, when, from which plan/amount/status to which. The
-- revenue analytics read this.
CREATE TABLE IF NOT EXISTS billing_ledger (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    subscription_id INTEGER,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    kind            TEXT NOT NULL,               -- created | plan_changed | status_changed | canceled | resumed | renewed
    from_plan       TEXT,
    to_plan         TEXT,
    from_amount_cents INTEGER,
    to_amount_cents   INTEGER,
    from_status     TEXT,
    to_status       TEXT,
    interval        TEXT,
    currency        TEXT,
    details         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS billing_ledger_tenant ON billing_ledger(tenant_id, at);

-- Charges waiting for the next local invoice (prorations of mid-period plan changes).
CREATE TABLE IF NOT EXISTS billing_pending (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    invoice_id  INTEGER
);

-- Local invoices (`provider = "local"`). Numbers come from billing_counters in the same
-- transaction as the invoice, so they have no gaps.
CREATE TABLE IF NOT EXISTS invoices (
    id               INTEGER PRIMARY KEY,
    number           TEXT NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL,
    subscription_id  INTEGER,
    status           TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency         TEXT NOT NULL,
    period_start     INTEGER NOT NULL,
    period_end       INTEGER NOT NULL,
    subtotal_cents   INTEGER NOT NULL,
    tax_rate_percent REAL NOT NULL,
    tax_cents        INTEGER NOT NULL,
    total_cents      INTEGER NOT NULL,
    issued_at        INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    paid_at          INTEGER,
    voided_at        INTEGER,
    UNIQUE (subscription_id, period_start)
);
CREATE INDEX IF NOT EXISTS invoices_tenant ON invoices(tenant_id, issued_at);
CREATE INDEX IF NOT EXISTS invoices_open ON invoices(due_at) WHERE status = 'open';

CREATE TABLE IF NOT EXISTS invoice_lines (
    invoice_id   INTEGER NOT NULL REFERENCES invoices(id),
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL,                 -- plan | overage_requests | overage_storage | seats | proration
    description  TEXT NOT NULL,
    quantity     REAL NOT NULL,
    unit_cents   REAL NOT NULL,
    amount_cents INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE IF NOT EXISTS billing_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Tenants whose writes answer 402 until they pay (past_due beyond the grace period).
CREATE TABLE IF NOT EXISTS tenant_billing_holds (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    since     INTEGER NOT NULL,
    reason    TEXT NOT NULL
);

-- Stripe events received (`billing::webhook`): the id makes a second delivery a no-op.
CREATE TABLE IF NOT EXISTS billing_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    outcome     TEXT
);

-- Calls to the payment provider waiting to be made (`billing::provider`): written in the same
-- transaction as the change that needs them, made off the request path, retried with backoff.
-- The idempotency key is sent with the call, so a retry after a crash never charges twice.
CREATE TABLE IF NOT EXISTS billing_outbox (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    op              TEXT NOT NULL,                -- subscribe | change_price | cancel | resume | meter
    params          TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    last_error      TEXT,
    done_at         INTEGER,
    failed_at       INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS billing_outbox_due ON billing_outbox(next_at) WHERE done_at IS NULL AND failed_at IS NULL;

-- Usage downsampled (`analytics::rollup`): whole days of usage_hourly summed into usage_daily
-- (kept `analytics_daily_days`), whole months of those into usage_monthly (kept for good).
-- usage_hourly keeps `analytics_hourly_days`. Same columns; `latency_hist` merged bucket-wise,
-- `storage_bytes` the last seen in the period. catalog_meta keys: usage_daily_until and
-- usage_monthly_until (everything before is rolled), usage_hourly_from and usage_daily_from
-- (nothing older is kept at that grain).
CREATE TABLE IF NOT EXISTS usage_daily (
    tenant_id    TEXT NOT NULL,
    day          INTEGER NOT NULL,                   -- Unix seconds at 00:00 UTC
    requests     INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    rows_read    INTEGER NOT NULL DEFAULT 0,
    rows_written INTEGER NOT NULL DEFAULT 0,
    cpu_us       INTEGER NOT NULL DEFAULT 0,
    latency_hist TEXT NOT NULL DEFAULT '[]',
    storage_bytes INTEGER NOT NULL DEFAULT 0,
    hours        INTEGER NOT NULL DEFAULT 0,         -- hourly rows summed in (hours with usage)
    storage_byte_hours INTEGER NOT NULL DEFAULT 0,   -- their storage_bytes summed: averages survive
    PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS usage_monthly (
    tenant_id    TEXT NOT NULL,
    month        INTEGER NOT NULL,                   -- Unix seconds at the 1st, 00:00 UTC
    requests     INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    rows_read    INTEGER NOT NULL DEFAULT 0,
    rows_written INTEGER NOT NULL DEFAULT 0,
    cpu_us       INTEGER NOT NULL DEFAULT 0,
    latency_hist TEXT NOT NULL DEFAULT '[]',
    storage_bytes INTEGER NOT NULL DEFAULT 0,
    hours        INTEGER NOT NULL DEFAULT 0,         -- hourly rows summed in (hours with usage)
    storage_byte_hours INTEGER NOT NULL DEFAULT 0,   -- their storage_bytes summed: averages survive
    PRIMARY KEY (tenant_id, month)
) WITHOUT ROWID;

-- Rows per table of each tenant, a snapshot per day (`analytics::records`): taken when the
-- tenant's overview is read and by the daily run for tenants that wrote. Growth over a range
-- compares now with the snapshot at its start.
CREATE TABLE IF NOT EXISTS usage_tables (
    tenant_id  TEXT NOT NULL,
    table_name TEXT NOT NULL,
    day        INTEGER NOT NULL,                    -- the day's first count is kept
    at         INTEGER NOT NULL,                    -- when it was counted
    rows       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, table_name, day)
) WITHOUT ROWID;

-- An index on usage_users(hour) made coarsening a year of users 4x slower (measured); the
-- platform's distinct users are read tenant by tenant instead.
DROP INDEX IF EXISTS usage_users_hour;

-- Issue 23, the cluster directory: which node holds each tenant. Authoritative in the catalog of
-- the directory node (`[cluster] directory`); every other node keeps a copy it pulls every
-- `sync_interval_ms`. `version` is the directory's version when the row last changed; a removed
-- tenant stays as a row with state 'removed' so copies learn of the removal.
CREATE TABLE IF NOT EXISTS cluster_directory (
    slug       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    node       TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'moving', 'removed')),
    pinned     INTEGER NOT NULL DEFAULT 0,    -- placed by hand (--node, a move): rebalance leaves it
    domains    TEXT NOT NULL DEFAULT '[]',    -- JSON array of custom domains
    bytes      INTEGER NOT NULL DEFAULT 0,    -- file size when last reported
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cluster_directory_version ON cluster_directory(version);
