//! The tenant data API: `GET/POST /api/v1/t/{slug}/{table}` and
//! `GET/PATCH/DELETE /api/v1/t/{slug}/{table}/{id}` over every table of the tenant schema.

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::store::query;
use crate::store::stats::StatementStats;

fn body(req: &Req) -> Result<Value> {
    req.json::<Value>()
}

/// A tenant connection for one request with the plan's budgets applied (storage ceiling on
/// writes, a deadline on every statement); the budgets come off when it is dropped.
pub struct Work {
    app: std::sync::Arc<crate::app::App>,
    pub handle: std::sync::Arc<crate::store::TenantHandle>,
    /// The tenant's writer for writes (held until the work is dropped or `write` lets it go),
    /// a pooled connection for reads.
    pub conn: Held,
    /// Present on writes when data changes are audited.
    audit: Option<AuditCtx>,
}

/// A request's tenant connection with its budgets on. Dropping it takes the budgets off and,
/// for the writer, commits a group transaction left open for it unless another writer queues
/// (see `store::group`).
pub struct Held {
    conn: crate::store::TenantConn,
    handle: std::sync::Arc<crate::store::TenantHandle>,
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
    app: std::sync::Arc<crate::app::App>,
    tenant: crate::ids::TenantId,
    slug: String,
    actor: String,
    source: Option<String>,
    user_agent: Option<String>,
    request_id: String,
}

impl Work {
    /// `write`: None for reads, Some(is_delete) for writes.
    pub fn begin(ctx: &Ctx<'_>, req: &Req, write: Option<bool>) -> Result<Work> {
        let t = ctx.tenant()?;
        let opened = ctx.app.open_tenant(t)?;
        let conn = match write {
            // The write joins a group transaction a previous write may have left open.
            Some(_) => crate::store::TenantConn::Writer(opened.handle.writer_for_group()?),
            None => opened.handle.read_conn()?,
        };
        // Held at once: if anything below fails, its drop still lets go of the writer properly
        // (a group transaction left open for this request is committed, or left to the next).
        let budgeted = ctx.app.config.limits.enabled;
        let conn = Held { conn, handle: opened.handle.clone(), budgeted };
        if budgeted {
            crate::limits::budget(ctx.app, t, &opened.handle, &conn, write)?;
        }
        let audit = (write.is_some() && ctx.app.config.audit_data_changes).then(|| AuditCtx {
            app: ctx.app.clone(),
            tenant: t.id.clone(),
            slug: t.slug.to_string(),
            actor: ctx.principal.as_ref().map(|p| p.actor()).unwrap_or_else(|| "anonymous".into()),
            source: req.client.map(|a| a.to_string()),
            user_agent: req.header("user-agent").map(str::to_string),
            request_id: req.id.clone(),
        });
        Ok(Work { app: ctx.app.clone(), handle: opened.handle, conn, audit })
    }

    /// A transaction of its own on the writer, for a write that is not a data API write (the
    /// group transaction a previous write may have left open is committed first).
    pub fn own_transaction(&self) -> Result<crate::db::WriteTx<'_>> {
        self.handle.group.settle(&self.conn);
        Ok(crate::db::WriteTx::begin(&self.conn)?)
    }

    pub fn schema(&self) -> Result<std::sync::Arc<query::SchemaInfo>> {
        self.handle.schema_info(&self.conn)
    }

    /// One write to `table`, with its audit entry in the same transaction (both or neither),
    /// metered as one row written. `f` returns its result, the record's id and the audit
    /// details (column names, never values).
    ///
    /// The transaction is the tenant's group transaction (`store::group`): when other writes
    /// queue for the writer, this one leaves it open for them, lets the writer go and waits for
    /// the commit; the last one commits. Either way this returns only once the write is
    /// committed, or with the error that undid it.
    pub fn write<T>(
        self,
        table: &str,
        action: &str,
        f: impl FnOnce(&rusqlite::Connection, &query::Table, &StatementStats) -> Result<(T, i64, Value)>,
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
        f: impl FnOnce(&rusqlite::Connection, &query::Table, &StatementStats) -> Result<(T, i64, Value)>,
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
pub fn columns_of(values: &[(String, rusqlite::types::Value)]) -> Value {
    json!({"columns": values.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>()})
}

fn record_id(record: &serde_json::Map<String, Value>, table: &query::Table) -> i64 {
    record.get(&table.pk).and_then(Value::as_i64).unwrap_or(0)
}

/// `GET /{table}`: served from the query result cache when this table has not been written
/// since (see `cache::query`). Access was checked before the handler at table level, and the
/// key holds the resolved column list, so a hit returns exactly what this caller's query would.
pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let w = Work::begin(ctx, req, None)?;
    let conn = &w.conn;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let q = query::parse_list(table, &req.query)?;
    let cache = &ctx.app.query_cache;
    let key = cache.enabled().then(|| q.normalized(table));
    let token = match &key {
        Some(k) => match cache.get(&w.handle.id, &table.name, schema.cookie, k) {
            (Some(hit), _) => {
                crate::limits::meter::rows(hit.rows, 0);
                return Ok(Resp {
                    status: 200,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: hit.body.to_vec(),
                    error: None,
                    rate_limit: None,
                }
                .with_header("X-Cache", "hit"));
            }
            (None, token) => Some(token),
        },
        None => None,
    };
    let page = query::list(conn, table, &q, &w.handle.stats)?;
    let rows = page.items.len() as u64 + u64::from(page.total.is_some());
    crate::limits::meter::rows(rows, 0);
    let body = json!({"items": page.items, "page": q.page, "per_page": q.per_page, "total": page.total});
    let resp = Resp::json(200, &body);
    match (key, token) {
        (Some(k), Some(token)) => {
            let cached = crate::cache::query::Cached { body: std::sync::Arc::new(resp.body.clone()), rows };
            cache.put(&w.handle.id, &table.name, &k, token, cached);
            Ok(resp.with_header("X-Cache", "miss"))
        }
        _ => Ok(resp),
    }
}

pub fn get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let w = Work::begin(ctx, req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let body = query::get_json(&w.conn, table, id, &w.handle.stats)?;
    crate::limits::meter::rows(1, 0);
    Ok(Resp { body, ..Resp::empty(200) })
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body = body(req)?;
    let record =
        Work::begin(ctx, req, Some(false))?.write(ctx.param("table")?, "record.create", |tx, table, stats| {
            let values = query::body_values(table, &body)?;
            let rec = query::insert(tx, table, &values, stats)?;
            let id = record_id(&rec, table);
            Ok((rec, id, columns_of(&values)))
        })?;
    Ok(Resp::json(201, &record))
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let body = body(req)?;
    let record =
        Work::begin(ctx, req, Some(false))?.write(ctx.param("table")?, "record.update", |tx, table, stats| {
            let values = query::body_values(table, &body)?;
            Ok((query::update(tx, table, id, &values, stats)?, id, columns_of(&values)))
        })?;
    Ok(Resp::json(200, &record))
}

pub fn delete(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    Work::begin(ctx, req, Some(true))?.write(ctx.param("table")?, "record.delete", |tx, table, stats| {
        Ok((query::delete(tx, table, id, stats)?, id, json!({})))
    })?;
    Ok(Resp::empty(204))
}
