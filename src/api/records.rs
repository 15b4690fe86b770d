//! The tenant data API: `GET/POST /api/v1/t/{slug}/{table}` and
//! `GET/PATCH/DELETE /api/v1/t/{slug}/{table}/{id}` over every table of the tenant schema. The
//! operations are `records`' (the data pages use the same); this adds JSON, the list result
//! cache and row metering.

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::records;

fn body(req: &Req) -> Result<Value> {
    req.json::<Value>()
}

/// `GET /{table}`: served from the query result cache when this table has not been written
/// since (see `cache::query`). Access was checked before the handler at table level, and the
/// key holds the resolved column list, so a hit returns exactly what this caller's query would.
pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let w = ctx.work(req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let q = records::parse_list(table, &req.query)?;
    let cache = &ctx.app.query_cache;
    let key = cache.enabled().then(|| q.normalized(table));
    let token = match &key {
        Some(k) => match cache.get(w.tenant_id(), &table.name, schema.cookie, k) {
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
    let page = w.list(table, &q)?;
    let rows = page.items.len() as u64 + u64::from(page.total.is_some());
    crate::limits::meter::rows(rows, 0);
    let body = json!({"items": page.items, "page": q.page, "per_page": q.per_page, "total": page.total});
    let resp = Resp::json(200, &body);
    match (key, token) {
        (Some(k), Some(token)) => {
            let cached = crate::cache::query::Cached { body: std::sync::Arc::new(resp.body.clone()), rows };
            cache.put(w.tenant_id(), &table.name, &k, token, cached);
            Ok(resp.with_header("X-Cache", "miss"))
        }
        _ => Ok(resp),
    }
}

pub fn get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let w = ctx.work(req, None)?;
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let body = w.get_json(table, id)?;
    crate::limits::meter::rows(1, 0);
    Ok(Resp { body, ..Resp::empty(200) })
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body = body(req)?;
    let record = ctx.work(req, Some(false))?.create(ctx.param("table")?, |table| records::body_values(table, &body))?;
    Ok(Resp::json(201, &record))
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let body = body(req)?;
    let record =
        ctx.work(req, Some(false))?.update(ctx.param("table")?, id, |table| records::body_values(table, &body))?;
    Ok(Resp::json(200, &record))
}

pub fn delete(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    ctx.work(req, Some(true))?.delete(ctx.param("table")?, id)?;
    Ok(Resp::empty(204))
}
