//! Introspected schemas, shared by every open tenant with the same schema text: a tenant
//! handle keeps the `SchemaInfo` it last read and re-reads it only when the schema cookie moved.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::{query, TenantHandle};
use crate::db;
use crate::error::Result;

impl TenantHandle {
    /// The tenant's tables, re-read only when `PRAGMA schema_version` moved (a migration ran).
    pub fn schema_info(&self, conn: &Connection) -> Result<Arc<query::SchemaInfo>> {
        let cookie = db::schema_cookie(conn)?;
        if let Some(s) = self.schema.lock().as_ref().filter(|s| s.cookie == cookie) {
            return Ok(s.clone());
        }
        let fresh = shaped(&self.shapes, conn, cookie, query::schema_digest(conn)?.hash)?;
        *self.schema.lock() = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The tables of a schema whose text hashes to `hash`, read at `cookie` (read before the hash,
/// so that a schema change in between leaves a stale cookie, which the next use re-checks).
/// Introspecting means preparing a statement per table: measured with callgrind over a
/// 400-tenant Zipf load, a quarter of all instructions. Tenants with the same schema text share
/// one result; only the cookie is per tenant.
pub(super) fn shaped(shapes: &Shapes, conn: &Connection, cookie: i64, hash: u64) -> Result<Arc<query::SchemaInfo>> {
    let shared = shapes.lock().get(&hash).cloned();
    let tables = match shared {
        Some(t) => t,
        None => {
            let t = query::introspect(conn)?.tables;
            // The cookie, the hash and the introspection are separate reads. Shared under the
            // hash only if the schema did not change meanwhile (another process migrating this
            // file): else tables of the new schema would be filed under the old schema's hash
            // and served to every tenant still at the old one.
            if db::schema_cookie(conn)? == cookie {
                let mut shapes = shapes.lock();
                if shapes.len() >= MAX_SHAPES {
                    shapes.clear();
                }
                shapes.insert(hash, t.clone());
            }
            t
        }
    };
    Ok(Arc::new(query::SchemaInfo { tables, cookie }))
}

/// Introspected schemas by schema-text hash, shared by every open tenant.
pub(super) type Shapes = Mutex<HashMap<u64, Arc<std::collections::BTreeMap<String, query::Table>>>>;
/// Distinct schemas kept; beyond this the map starts over (tenants normally share a handful).
const MAX_SHAPES: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_read_after_a_schema_change_are_not_shared_under_the_old_hash() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE a(id INTEGER PRIMARY KEY, x)").unwrap();
        let cookie = db::schema_cookie(&c).unwrap();
        let hash = query::schema_digest(&c).unwrap().hash;
        // Another process migrates the file between those reads and the introspection.
        c.execute_batch("ALTER TABLE a ADD COLUMN y").unwrap();
        let shapes = Shapes::default();
        let info = shaped(&shapes, &c, cookie, hash).unwrap();
        assert_eq!(info.cookie, cookie, "kept with the stale cookie: the next use reads again");
        assert!(shapes.lock().is_empty(), "nothing filed under the old schema's hash");
        let (cookie, hash) = (db::schema_cookie(&c).unwrap(), query::schema_digest(&c).unwrap().hash);
        shaped(&shapes, &c, cookie, hash).unwrap();
        assert!(shapes.lock().contains_key(&hash), "read while the schema stood still: shared");
    }
}
