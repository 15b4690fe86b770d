//! tenantd's own tables in every tenant file, beside the app schema: the audit chain
//! (`_tenantd_audit`) and its archive checkpoint. Their shape is a storage fact, so it lives
//! here: the store creates them in the template and in any file opened without them. What goes
//! in them (the hash chain, verification, archiving) is `audit`'s.

/// Created in every tenant file by tenantd itself (not by the app schema's migrations).
pub const TENANT_AUDIT_DDL: &str = "CREATE TABLE IF NOT EXISTS _tenantd_audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    source     TEXT,
    user_agent TEXT,
    request_id TEXT,
    action     TEXT NOT NULL,
    resource   TEXT,
    outcome    TEXT NOT NULL,
    risk       INTEGER NOT NULL DEFAULT 0,
    details    TEXT NOT NULL DEFAULT '{}',
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
-- An index on (action, at) used to be here: no query could use it (the filters are all
-- optional, `?2 IS NULL OR action = ?2`), and it was one more page written per audited change.
DROP INDEX IF EXISTS _tenantd_audit_action;
CREATE TABLE IF NOT EXISTS _tenantd_audit_checkpoint (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    archived  INTEGER NOT NULL,
    at        INTEGER NOT NULL
);";

/// Whether a tenant file already has the audit tables exactly as `TENANT_AUDIT_DDL` leaves
/// them, so opening it can skip that DDL: parsing the two `CREATE TABLE` statements on every
/// cold open cost about a tenth of a cold open's instructions. Fed every `sqlite_master`
/// (type, name) by the read a cold open makes anyway (`store::introspect::schema_digest`).
#[derive(Default)]
pub struct AuditSchemaCheck {
    tables: u8,
    stale_index: bool,
}

impl AuditSchemaCheck {
    pub fn see(&mut self, kind: &str, name: &str) {
        match (kind, name) {
            ("table", "_tenantd_audit" | "_tenantd_audit_checkpoint") => self.tables += 1,
            ("index", "_tenantd_audit_action") => self.stale_index = true,
            _ => {}
        }
    }

    pub fn current(&self) -> bool {
        self.tables == 2 && !self.stale_index
    }
}
