//! Tenant data: what the data API (`api::records`) and the data pages (`ui::data`) do with a
//! tenant's tables, through the same functions. A `Work` opens the tenant with the plan's
//! budgets; reads go through it; each write runs in the tenant's group transaction with its
//! audit entry (both or neither), then invalidates cached lists and feeds threat detection.
//! The SQL is `store::query`'s; parsing requests and rendering answers is the callers'.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::app::App;
use crate::auth::{Caller, Principal};
use crate::catalog::tenants::TenantRecord;
use crate::error::Result;
use crate::store::query;
use crate::store::stats::StatementStats;

/// The schema and query types callers build requests from and render answers with.
pub use crate::store::query::{
    body_values, json_to_sql, parse_id, parse_list, Affinity, Column, ListQuery, Page, SchemaInfo, Table,
};

/// A tenant connection for one request with the plan's budgets applied (storage ceiling on
/// writes, a deadline on every statement); the budgets come off when it is dropped.
pub struct Work {
    app: Arc<App>,
    handle: Arc<crate::store::TenantHandle>,
    /// The tenant's writer for writes (held until the work is dropped or `write` lets it go),
    /// a pooled connection for reads.
    conn: Held,
    /// Present on writes when data changes are audited.
    audit: Option<AuditCtx>,
}

/// A request's tenant connection with its budgets on. Dropping it takes the budgets off and,
/// for the writer, commits a group transaction left open for it unless another writer queues
/// (see `store::group`).
pub struct Held {
    conn: crate::store::TenantConn,
    handle: Arc<crate::store::TenantHandle>,
    budgeted: bool,
}

impl std::ops::Deref for Held {
    type Target = crate::store::TenantConn;
    fn deref(&self) -> &crate::store::TenantConn {
        &self.conn
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.budgeted {
            crate::limits::unbudget(&self.conn);
        }
        if let crate::store::TenantConn::Writer(w) = &self.conn {
            self.handle.group.release(w);
        }
    }
}

/// Who and where, for the audit entry written with each change (built for writes only, so
/// reads allocate none of it).
struct AuditCtx {
    app: Arc<App>,
    tenant: crate::ids::TenantId,
    slug: String,
    actor: String,
    source: Option<String>,
    user_agent: Option<String>,
    request_id: String,
}

impl Work {
    /// `write`: None for reads, Some(is_delete) for writes. `principal` and `caller` say who
    /// and where, for the audit entry of a write.
    pub fn begin(
        app: &Arc<App>,
        t: &TenantRecord,
        principal: Option<&Principal>,
        caller: &Caller<'_>,
        write: Option<bool>,
    ) -> Result<Work> {
        Work::begin_on(app, t, principal, caller, write, None)
    }

    /// A data API read that a read replica may answer (`[replicas] read_policy = "replica"`,
    /// or a `Tenantd-Bookmark` the primary is past): see `replica::Replication::reader`.
    pub fn begin_read(
        app: &Arc<App>,
        t: &TenantRecord,
        principal: Option<&Principal>,
        caller: &Caller<'_>,
        bookmark: Option<u64>,
    ) -> Result<Work> {
        Work::begin_on(app, t, principal, caller, None, bookmark.or(Some(0)))
    }

    /// Which copy answers this work's reads: `primary` or a replica's name.
    pub fn served_by(&self) -> &str {
        match &*self.conn {
            crate::store::TenantConn::Mirror(m) => &m.replica,
            _ => "primary",
        }
    }

    fn begin_on(
        app: &Arc<App>,
        t: &TenantRecord,
        principal: Option<&Principal>,
        caller: &Caller<'_>,
        write: Option<bool>,
        replica_read: Option<u64>,
    ) -> Result<Work> {
        let opened = app.open_tenant(t)?;
        let mirror = match (&app.replication, replica_read) {
            (Some(r), Some(bookmark)) => r.reader(&t.id, (bookmark > 0).then_some(bookmark)),
            _ => None,
        };
        let conn = match (write, mirror) {
            // The write joins a group transaction a previous write may have left open.
            (Some(_), _) => crate::store::TenantConn::Writer(opened.handle.writer_for_group()?),
            (None, Some(m)) => crate::store::TenantConn::Mirror(m),
            (None, None) => opened.handle.read_conn()?,
        };
        // Held at once: if anything below fails, its drop still lets go of the writer properly
        // (a group transaction left open for this request is committed, or left to the next).
        let budgeted = app.config.limits.enabled;
        let conn = Held { conn, handle: opened.handle.clone(), budgeted };
        if budgeted {
            crate::limits::budget(app, t, &opened.handle, &conn, write)?;
        }
        let audit = (write.is_some() && app.config.audit_data_changes).then(|| AuditCtx {
            app: app.clone(),
            tenant: t.id.clone(),
            slug: t.slug.to_string(),
            actor: principal.map(|p| p.actor()).unwrap_or_else(|| "anonymous".into()),
            source: caller.client.map(|a| a.to_string()),
            user_agent: caller.user_agent.map(str::to_string),
            request_id: caller.request_id.to_string(),
        });
        Ok(Work { app: app.clone(), handle: opened.handle, conn, audit })
    }

    /// The tenant this work is for (keys of its cached lists).
    pub fn tenant_id(&self) -> &crate::ids::TenantId {
        &self.handle.id
    }

    pub fn schema(&self) -> Result<Arc<SchemaInfo>> {
        self.handle.schema_info(&self.conn)
    }

    /// Rows in each table, by table name (the tenant home page's tiles), under the request's
    /// statement deadline like every other read.
    pub fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        let schema = self.schema()?;
        schema.tables.values().map(|t| Ok((t.name.clone(), query::count(&self.conn, t)?))).collect()
    }

    /// Runs `ddl` (a schema change that is not a data API write: an index the advisor proposed)
    /// with `entry` in the tenant's audit trail, in a transaction of its own (both or neither).
    /// The group transaction a previous write may have left open is committed first.
    pub fn change_schema(&self, ddl: &str, entry: &crate::audit::Entry<'_>) -> Result<()> {
        self.handle.group.settle(&self.conn);
        let tx = crate::db::WriteTx::begin(&self.conn)?;
        tx.execute_batch(ddl)?;
        crate::audit::append(&tx, crate::util::now_unix(), entry)?;
        tx.commit()?;
        self.app.store.after_write(&self.handle);
        self.app.audit_dirty.mark(&self.handle.id);
        Ok(())
    }

    /// The query plan SQLite picks for `sql` (parameters as NULL), one line per step.
    pub fn explain(&self, sql: &str) -> Result<Vec<String>> {
        Ok(crate::store::stats::explain(&self.conn, sql, &[])?)
    }

    /// One page of `table` (`q` from `parse_list`).
    pub fn list(&self, table: &Table, q: &ListQuery) -> Result<Page> {
        query::list(&self.conn, table, q, &self.handle.stats)
    }

    /// One record, as a JSON object.
    pub fn get(&self, table: &Table, id: i64) -> Result<Map<String, Value>> {
        query::get(&self.conn, table, id, &self.handle.stats)
    }

    /// One record, serialized (the API sends it as it is).
    pub fn get_json(&self, table: &Table, id: i64) -> Result<Vec<u8>> {
        query::get_json(&self.conn, table, id, &self.handle.stats)
    }

    /// Inserts a record into `table` with the values `values` makes from the table's columns
    /// (`body_values` for JSON, the pages' form parsing for forms); returns it as stored.
    pub fn create(
        self,
        table: &str,
        values: impl FnOnce(&Table) -> Result<Vec<(String, rusqlite::types::Value)>>,
    ) -> Result<Map<String, Value>> {
        self.write(table, "record.create", |tx, table, stats| {
            let values = values(table)?;
            let rec = query::insert(tx, table, &values, stats)?;
            let id = record_id(&rec, table);
            Ok((rec, id, columns_of(&values)))
        })
    }

    /// Updates record `id` of `table`; returns it as stored.
    pub fn update(
        self,
        table: &str,
        id: i64,
        values: impl FnOnce(&Table) -> Result<Vec<(String, rusqlite::types::Value)>>,
    ) -> Result<Map<String, Value>> {
        self.write(table, "record.update", |tx, table, stats| {
            let values = values(table)?;
            Ok((query::update(tx, table, id, &values, stats)?, id, columns_of(&values)))
        })
    }

    /// Deletes record `id` of `table`.
    pub fn delete(self, table: &str, id: i64) -> Result<()> {
        self.write(table, "record.delete", |tx, table, stats| Ok((query::delete(tx, table, id, stats)?, id, json!({}))))
    }

    /// One write to `table`, with its audit entry in the same transaction (both or neither),
    /// metered as one row written. `f` returns its result, the record's id and the audit
    /// details (column names, never values).
    ///
    /// The transaction is the tenant's group transaction (`store::group`): when other writes
    /// queue for the writer, this one leaves it open for them, lets the writer go and waits for
    /// the commit; the last one commits. Either way this returns only once the write is
    /// committed, or with the error that undid it.
    fn write<T>(
        self,
        table: &str,
        action: &str,
        f: impl FnOnce(&rusqlite::Connection, &Table, &StatementStats) -> Result<(T, i64, Value)>,
    ) -> Result<T> {
        let group = &self.handle.group;
        let generation = group.join(&self.conn)?;
        let done = self.write_in_group(table, action, f);
        let after = group.end(&self.conn, generation, done.as_ref().err())?;
        let (out, table, audit_head) = done?;
        let Work { app, handle, conn, audit } = self;
        drop(conn);
        if let crate::store::group::After::Wait(generation) = after {
            handle.wait_for_group(generation)?;
        }
        app.store.after_write(&handle);
        // After the commit, before the response: cached lists of this table are stale now.
        app.query_cache.bump(&handle.id, &table);
        if let Some(a) = &audit {
            match audit_head {
                Some(h) => a.app.audit_dirty.mark_head(&a.tenant, h),
                None => a.app.audit_dirty.mark(&a.tenant),
            }
            if action == "record.delete" {
                crate::security::threats::deleted(&a.app, &a.tenant, &a.slug, &a.actor, crate::util::now_unix());
            }
        }
        crate::limits::meter::rows(0, 1);
        Ok(out)
    }

    /// The write itself, inside the group transaction's savepoint. Returns `f`'s result, the
    /// table's name and the audit chain's new head.
    fn write_in_group<T>(
        &self,
        table: &str,
        action: &str,
        f: impl FnOnce(&rusqlite::Connection, &Table, &StatementStats) -> Result<(T, i64, Value)>,
    ) -> Result<(T, String, Option<crate::audit::Head>)> {
        // The schema is read inside the write transaction: it is the one the write sees, and
        // the read shares the transaction's lock instead of taking one of its own.
        let tx: &rusqlite::Connection = &self.conn;
        let schema = self.schema()?;
        let table = schema.table(table)?;
        let (out, id, details) = f(tx, table, &self.handle.stats)?;
        if tx.is_autocommit() {
            // A statement inside `f` failed in a way that made SQLite roll the transaction
            // back while `f` went on: nothing of this write may be kept now.
            return Err(crate::error::Error::Retry("the write's transaction was rolled back; send it again".into()));
        }
        let mut head = None;
        if let Some(a) = &self.audit {
            let resource = format!("{}/{id}", table.name);
            head = Some(crate::audit::append_head(
                tx,
                crate::util::now_unix(),
                &crate::audit::Entry {
                    actor: &a.actor,
                    source: a.source.as_deref(),
                    user_agent: a.user_agent.as_deref(),
                    request_id: Some(&a.request_id),
                    action,
                    resource: Some(&resource),
                    outcome: "ok",
                    risk: 0,
                    details,
                },
            )?);
        }
        Ok((out, table.name.clone(), head))
    }
}

/// Audit details of a create or update: which columns it set.
fn columns_of(values: &[(String, rusqlite::types::Value)]) -> Value {
    json!({"columns": values.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>()})
}

fn record_id(record: &Map<String, Value>, table: &Table) -> i64 {
    record.get(&table.pk).and_then(Value::as_i64).unwrap_or(0)
}
