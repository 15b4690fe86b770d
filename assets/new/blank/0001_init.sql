-- Version 1 of your tenants' schema: replace this table with your own. Every tenant is its own
-- SQLite file built from these numbered migrations; add 0002_what_changed.sql for the next
-- change and roll it out with `tenantd schema migrate` (never edit one tenants already have).
-- Every table with an INTEGER PRIMARY KEY is served by the data API at /api/v1/t/{slug}/{table}.
CREATE TABLE items (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
