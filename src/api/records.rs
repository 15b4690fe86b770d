//! The tenant data API: `GET/POST /api/v1/t/{slug}/{table}` and
//! `GET/PATCH/DELETE /api/v1/t/{slug}/{table}/{id}` over every table of the tenant schema.

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::store::query;

fn body(req: &Req) -> Result<Value> {
    req.json::<Value>()
}

pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let table = schema.table(ctx.param("table")?)?;
    let q = query::parse_list(table, &req.query)?;
    let page = query::list(&conn, table, &q)?;
    Ok(Resp::json(200, &json!({"items": page.items, "page": q.page, "per_page": q.per_page, "total": page.total})))
}

pub fn get(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let table = schema.table(ctx.param("table")?)?;
    Ok(Resp::json(200, &query::get(&conn, table, id)?))
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let mut conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let table = schema.table(ctx.param("table")?)?;
    let values = query::body_values(table, &body(req)?)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let record = query::insert(&tx, table, &values)?;
    tx.commit()?;
    Ok(Resp::json(201, &record))
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let mut conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let table = schema.table(ctx.param("table")?)?;
    let values = query::body_values(table, &body(req)?)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let record = query::update(&tx, table, id, &values)?;
    tx.commit()?;
    Ok(Resp::json(200, &record))
}

pub fn delete(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = query::parse_id(ctx.param("id")?)?;
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let mut conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let table = schema.table(ctx.param("table")?)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    query::delete(&tx, table, id)?;
    tx.commit()?;
    Ok(Resp::empty(204))
}
