//! The tenant data API: `GET/POST /api/v1/t/{slug}/{table}` and
//! `GET/PATCH/DELETE /api/v1/t/{slug}/{table}/{id}` over every table of the tenant schema. The
//! operations are `records`' (the data pages use the same); this adds JSON, the list result
//! cache and row metering.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::records;

fn body(req: &Req) -> Result<Value> {
    req.json::<Value>()
}

/// `Tenantd-Bookmark` of a read: the commit position it must see (read-your-writes).
fn bookmark(req: &Req) -> Result<u64> {
    match req.header("tenantd-bookmark") {
        None => Ok(0),
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            Error::invalid("invalid_bookmark", "Tenantd-Bookmark must be the number a write's response carried")
        }),
    }
}

/// A read's work: a read replica may answer it when replicas are on.
fn read_work(ctx: &Ctx<'_>, req: &Req) -> Result<records::Work> {
    let bookmark = bookmark(req)?;
    if ctx.app.replication.is_none() {
        return ctx.work(req, None);
    }
    records::Work::begin_read(ctx.app, ctx.tenant()?, ctx.principal.as_ref(), &req.caller(), Some(bookmark))
}

/// Names the copy that answered, when replicas are on.
fn served_by(ctx: &Ctx<'_>, resp: Resp, by: &str) -> Resp {
    match ctx.app.replication {
        Some(_) => resp.with_header("Tenantd-Served-By", by),
        None => resp,
    }
}

/// A write's answer carries the tenant's commit position after it, when replicas are on.
fn bookmarked(ctx: &Ctx<'_>, resp: Resp) -> Result<Resp> {
    Ok(match &ctx.app.replication {
        Some(r) => resp.with_header("Tenantd-Bookmark", r.position(&ctx.tenant()?.id).to_string()),
        None => resp,
    })
}

/// `GET /{table}`: served from the query result cache when this table has not been written
/// since (see `cache::query`). Access was checked before the handler at table level, and the
/// key holds the resolved column list, so a hit returns exactly what this caller's query would.
pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    read_with_fallback(ctx, req, |w| list_on(ctx, req, w))
}

fn list_on(ctx: &Ctx<'_>, req: &Req, w: &records::Work) -> Result<Resp> {
    let schema = w.schema()?;
    let table = schema.table(ctx.param("table")?)?;
    let q = records::parse_list(table, &req.query)?;
    let cache = &ctx.app.query_cache;
    let key = cache.enabled().then(|| q.normalized(table));
    let token = match &key {
        Some(k) => match cache.get(w.tenant_id(), &table.name, schema.cookie, k) {
            (Some(hit), _) => {
                crate::limits::meter::rows(hit.rows, 0);
                let resp = Resp {
                    status: 200,
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: hit.body.to_vec(),
                    error: None,
                    rate_limit: None,
                };
                // The cache holds answers read on the primary only.
                return Ok(served_by(ctx, resp.with_header("X-Cache", "hit"), "primary"));
            }
            (None, token) => Some(token),
        },
        None => None,
    };
    let page = w.list(table, &q)?;
    let rows = page.items.len() as u64 + u64::from(page.total.is_some());
    crate::limits::meter::rows(rows, 0);
    let body = json!({"items": page.items, "page": q.page, "per_page": q.per_page, "total": page.total});
    let resp = served_by(ctx, Resp::json(200, &body), w.served_by());
    match (key, token) {
        // A replica's answer may be behind a write the cache has already seen: never cached.
        (Some(k), Some(token)) if w.served_by() == "primary" => {
            let cached = crate::cache::query::Cached { body: std::sync::Arc::new(resp.body.clone()), rows };
            cache.put(w.tenant_id(), &table.name, &k, token, cached);
            Ok(resp.with_header("X-Cache", "miss"))
        }
        _ => Ok(resp),
    }
}

pub fn get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    read_with_fallback(ctx, req, |w| {
        let schema = w.schema()?;
        let table = schema.table(ctx.param("table")?)?;
        let body = w.get_json(table, id)?;
        crate::limits::meter::rows(1, 0);
        Ok(served_by(ctx, Resp { body, ..Resp::empty(200) }, w.served_by()))
    })
}

/// Runs a read; when the primary answers it with corruption and replicas are on, the tenant's
/// reads go to its most advanced mirror from now on (until the primary reads again, e.g.
/// after `tenantd replica promote`), this read is answered there, and an alert is raised.
fn read_with_fallback(ctx: &Ctx<'_>, req: &Req, read: impl Fn(&records::Work) -> Result<Resp>) -> Result<Resp> {
    let w = read_work(ctx, req)?;
    let res = read(&w);
    let (Err(e), Some(r)) = (&res, &ctx.app.replication) else { return res };
    if !is_corruption(e) || w.served_by() != "primary" {
        return res;
    }
    drop(w);
    let t = ctx.tenant()?;
    if r.primary_failed(&t.id) {
        crate::log::error(&format!(
            "tenant {}: its file is corrupt ({}); reads go to a replica",
            t.slug,
            e.log_detail()
        ));
        let day = crate::util::now_unix().div_euclid(86_400) * 86_400;
        ctx.app.limits.alerts.raise(
            &t.id,
            t.slug.as_str(),
            "primary_corrupt",
            day,
            format!(
                "tenant {}: its database file is corrupt; reads are answered by a replica, writes fail until \
                 `tenantd replica promote --tenant {} --from <replica>` repairs it",
                t.slug, t.slug
            ),
        );
    }
    let w = read_work(ctx, req)?;
    if w.served_by() == "primary" {
        return res; // no mirror to read from
    }
    read(&w)
}

/// SQLite found the file damaged (not a database, or a malformed page).
fn is_corruption(e: &Error) -> bool {
    matches!(
        e,
        Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body = body(req)?;
    let record = ctx.work(req, Some(false))?.create(ctx.param("table")?, |table| records::body_values(table, &body))?;
    bookmarked(ctx, Resp::json(201, &record))
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    let body = body(req)?;
    let record =
        ctx.work(req, Some(false))?.update(ctx.param("table")?, id, |table| records::body_values(table, &body))?;
    bookmarked(ctx, Resp::json(200, &record))
}

pub fn delete(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = records::parse_id(ctx.param("id")?)?;
    ctx.work(req, Some(true))?.delete(ctx.param("table")?, id)?;
    bookmarked(ctx, Resp::empty(204))
}
