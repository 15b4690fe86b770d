//! The tenant data API: `GET/POST /api/v1/t/{slug}/{table}` and
//! `GET/PATCH/DELETE /api/v1/t/{slug}/{table}/{id}` over every table of the tenant schema.

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::store::query;

fn body(req: &Req) -> Result<Value> {
    req.json::<Value>()
}

/// A tenant connection for one request with the plan's budgets applied (storage ceiling on
/// writes, a deadline on every statement); the budgets come off when it is dropped.
pub struct Work {
    pub handle: std::sync::Arc<crate::store::TenantHandle>,
    pub conn: crate::db::PooledConn,
    budgeted: bool,
}

impl Work {
    /// `write`: None for reads, Some(is_delete) for writes.
    pub fn begin(ctx: &Ctx<'_>, write: Option<bool>) -> Result<Work> {
        let t = ctx.tenant()?;
        let opened = ctx.app.open_tenant(t)?;
        let conn = opened.handle.conn()?;
        let budgeted = ctx.app.config.limits.enabled;
        if budgeted {
            crate::limits::budget(ctx.app, t, &conn, write)?;
        }
        Ok(Work { handle: opened.handle, conn, budgeted })
    }

    pub fn schema(&self) -> Result<std::sync::Arc<query::SchemaInfo>> {
        self.handle.schema_info(&self.conn)
    }

    /// One write to `table` in a `BEGIN IMMEDIATE` transaction, metered as one row written.
    pub fn write<T>(
        &mut self,
        table: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &query::Table) -> Result<T>,
    ) -> Result<T> {
        let schema = self.schema()?;
        let table = schema.table(table)?;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx, table)?;
        tx.commit()?;
        crate::limits::meter::rows(0, 1);
        Ok(out)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.budgeted {
            crate::limits::unbudget(&self.conn);
        }
    }
}

pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let w = Work::begin(ctx, None)?;
    let conn = &w.conn;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let q = query::parse_list(table, &req.query)?;
    let page = query::list(conn, table, &q)?;
    crate::limits::meter::rows(page.items.len() as u64 + u64::from(page.total.is_some()), 0);
    Ok(Resp::json(200, &json!({"items": page.items, "page": q.page, "per_page": q.per_page, "total": page.total})))
}

pub fn get(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let w = Work::begin(ctx, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let record = query::get(&w.conn, table, id)?;
    crate::limits::meter::rows(1, 0);
    Ok(Resp::json(200, &record))
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body = body(req)?;
    let record = Work::begin(ctx, Some(false))?
        .write(ctx.param("table")?, |tx, table| query::insert(tx, table, &query::body_values(table, &body)?))?;
    Ok(Resp::json(201, &record))
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let body = body(req)?;
    let record = Work::begin(ctx, Some(false))?
        .write(ctx.param("table")?, |tx, table| query::update(tx, table, id, &query::body_values(table, &body)?))?;
    Ok(Resp::json(200, &record))
}

pub fn delete(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    Work::begin(ctx, Some(true))?.write(ctx.param("table")?, |tx, table| query::delete(tx, table, id))?;
    Ok(Resp::empty(204))
}
