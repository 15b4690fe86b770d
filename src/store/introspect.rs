//! Reading a tenant's tables from its schema: what the data API may serve (tables with one
//! INTEGER primary key and plain identifiers), and a hash of the schema text so tenants with
//! the same schema share one reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::Connection;

use super::query::{Affinity, Column, SchemaInfo, Table};
use crate::error::Result;
use crate::ids::TenantId;

/// What a cold open learns from one read of `sqlite_master`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaDigest {
    /// A hash of the schema's text (every row): tenants created from the same template and
    /// migrated alike have the same one, and can share one introspection.
    pub hash: u64,
    /// Whether tenantd's audit tables are as `audit_tables::TENANT_AUDIT_DDL` leaves them.
    pub audit_current: bool,
}

/// Reads `sqlite_master` once for both answers of `SchemaDigest`. Measured with callgrind on
/// a 10,000-tenant Zipf load: the two separate reads this replaces (one sorted) cost ~150k
/// instructions per cold open, a quarter of what the open costs besides SQLite's own parse.
pub fn schema_digest(conn: &Connection) -> Result<SchemaDigest> {
    use std::hash::{Hash, Hasher};
    let mut stmt = conn.prepare_cached("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master")?;
    let mut rows = stmt.query([])?;
    let mut hash = 0u64;
    let mut audit = super::audit_tables::AuditSchemaCheck::default();
    while let Some(r) = rows.next()? {
        // Schema text comes from migrations and the index advisor, not from requests: the fast
        // hash. Rows arrive in rowid order, which VACUUM may change; summing per-row hashes
        // makes the order irrelevant (names are unique, so no two rows cancel out).
        let mut h = crate::util::IdHasher::default();
        for i in 0..4 {
            r.get_ref(i)?.as_str().unwrap_or("").hash(&mut h);
        }
        hash = hash.wrapping_add(h.finish());
        audit.see(r.get_ref(0)?.as_str().unwrap_or(""), r.get_ref(1)?.as_str().unwrap_or(""));
    }
    Ok(SchemaDigest { hash, audit_current: audit.current() })
}

/// Tenants' digests from earlier opens, each with the schema cookie it was read at. SQLite bumps
/// the cookie with every schema change, so a tenant reopened with the same cookie has the same
/// `sqlite_master` and skips reading it again (callgrind, Zipf over 10,000 tenants: that read
/// was ~60k instructions per cold open, 6% of all). A file replaced by a different one with
/// the same cookie is the one case the cookie misses: `forget` the tenant whenever its file is
/// replaced, and `clear` when another process may have replaced files.
#[derive(Default)]
pub struct Digests {
    known: parking_lot::Mutex<HashMap<TenantId, (i64, SchemaDigest)>>,
}

/// Tenants remembered at most (~100 bytes each); past it the map starts over.
const DIGESTS_MAX: usize = 100_000;

impl Digests {
    /// The tenant's digest for `cookie`, read from `conn` unless an earlier open left it.
    pub fn get(&self, id: &TenantId, conn: &Connection, cookie: i64) -> Result<SchemaDigest> {
        if let Some(&(seen, digest)) = self.known.lock().get(id) {
            if seen == cookie {
                return Ok(digest);
            }
        }
        let digest = schema_digest(conn)?;
        let mut known = self.known.lock();
        if known.len() >= DIGESTS_MAX {
            known.clear();
        }
        known.insert(id.clone(), (cookie, digest));
        Ok(digest)
    }

    pub fn forget(&self, id: &TenantId) {
        self.known.lock().remove(id);
    }

    pub fn clear(&self) {
        self.known.lock().clear();
    }

    pub fn remembers(&self, id: &TenantId) -> bool {
        self.known.lock().contains_key(id)
    }
}

pub fn introspect(conn: &Connection) -> Result<SchemaInfo> {
    let cookie: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        // Litestream's own tables (`_litestream_seq`, `_litestream_lock`, in every database it
        // replicates) are not the tenant's either.
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_tenantd\\_%' ESCAPE '\\' \
         AND name NOT LIKE '\\_litestream\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for name in names {
        let mut info =
            conn.prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")?;
        let columns: Vec<Column> = info
            .query_map([&name], |r| {
                let decl: String = r.get(1)?;
                Ok(Column {
                    name: r.get(0)?,
                    affinity: Affinity::of(&decl),
                    decl_type: decl,
                    not_null: r.get(2)?,
                    has_default: r.get(3)?,
                    primary_key: r.get::<_, i64>(4)? > 0,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let pks: Vec<&Column> = columns.iter().filter(|c| c.primary_key).collect();
        if pks.len() == 1 && pks[0].decl_type.eq_ignore_ascii_case("INTEGER") && valid_ident(&name) {
            let pk = pks[0].name.clone();
            tables.insert(name.clone(), Table::new(name, columns, pk));
        }
    }
    Ok(SchemaInfo { tables: Arc::new(tables), cookie })
}

/// A table name the data API serves (and puts in its URLs): 1 to 64 ASCII letters, digits, `_`.
pub(crate) fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(ddl: &str) -> SchemaDigest {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(ddl).unwrap();
        schema_digest(&c).unwrap()
    }

    #[test]
    fn the_digest_names_the_schema_text_whatever_order_it_was_created_in() {
        let a = digest_of("CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, x);");
        let b = digest_of("CREATE TABLE b(id INTEGER PRIMARY KEY, x); CREATE TABLE a(id INTEGER PRIMARY KEY);");
        assert_eq!(a.hash, b.hash);
        let indexed = digest_of(
            "CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, x); CREATE INDEX bx ON b(x);",
        );
        assert_ne!(a.hash, indexed.hash);
        let renamed = digest_of("CREATE TABLE a(id INTEGER PRIMARY KEY); CREATE TABLE b(id INTEGER PRIMARY KEY, y);");
        assert_ne!(a.hash, renamed.hash);
        assert!(!a.audit_current);
        let audited = digest_of(crate::store::audit_tables::TENANT_AUDIT_DDL);
        assert!(audited.audit_current);
    }

    #[test]
    fn a_remembered_digest_serves_only_the_cookie_it_was_read_at() {
        let cookie = |c: &Connection| crate::db::schema_cookie(c).unwrap();
        let id = TenantId::parse("0123456789abcdef").unwrap();
        let digests = Digests::default();
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY);").unwrap();
        let first = digests.get(&id, &c, cookie(&c)).unwrap();
        assert_eq!(first, schema_digest(&c).unwrap());

        // Another file for the same tenant, same cookie: the remembered digest answers (this
        // is why a replaced file must be forgotten)...
        let other = Connection::open_in_memory().unwrap();
        other.execute_batch("CREATE TABLE b(id INTEGER PRIMARY KEY, x);").unwrap();
        assert_eq!(cookie(&other), cookie(&c));
        assert_eq!(digests.get(&id, &other, cookie(&other)).unwrap(), first);
        // ...and after `forget`, or `clear`, it is read again.
        digests.forget(&id);
        let read = digests.get(&id, &other, cookie(&other)).unwrap();
        assert_eq!(read, schema_digest(&other).unwrap());
        assert_ne!(read, first);
        digests.clear();
        assert_eq!(digests.get(&id, &c, cookie(&c)).unwrap(), first);

        // A schema change moves the cookie, so the digest is read again without being told.
        c.execute_batch("CREATE INDEX a_id ON a(id);").unwrap();
        let changed = digests.get(&id, &c, cookie(&c)).unwrap();
        assert_eq!(changed, schema_digest(&c).unwrap());
        assert_ne!(changed, first);
    }
}
