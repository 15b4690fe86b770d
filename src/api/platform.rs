//! Platform-admin endpoints: the tenant fleet (metadata only; tenant data stays private to
//! members).

use serde::Deserialize;
use serde_json::json;

use crate::catalog::tenants;
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::{self, Actor};

pub fn list_tenants(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let list = tenants::list(&*ctx.app.catalog.conn()?, true)?;
    Ok(Resp::json(200, &json!({"items": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    slug: String,
    name: String,
    #[serde(default)]
    plan: Option<String>,
    /// In a cluster: the node to put it on (default: where placement hashes it).
    #[serde(default)]
    node: Option<String>,
}

pub fn create_tenant(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: NewTenant = req.json()?;
    let actor = Actor(ctx.principal()?.actor());
    let slug = Slug::parse(&body.slug)?;
    // In a cluster the tenant goes where placement says (or `node`), possibly another node.
    let (t, node) =
        crate::cluster::create_tenant(ctx.app, &slug, &body.name, body.plan.as_deref(), body.node.as_deref(), &actor)?;
    ctx.app.invalidate_caches();
    let mut resp = Resp::json(201, &t);
    if !node.is_empty() {
        resp.headers.push(("Tenantd-Node".into(), node));
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTenant {
    #[serde(default)]
    plan: Option<String>,
    /// Per-tenant overrides of plan keys; `{}` removes them.
    #[serde(default)]
    limits: Option<serde_json::Value>,
}

/// `PATCH /api/v1/platform/tenants/{slug}`: `{"plan"}` and/or `{"limits": {...}}`; takes effect
/// on the next request.
pub fn update_tenant(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: PatchTenant = req.json()?;
    let slug = Slug::parse(ctx.param("slug")?)?;
    let actor = Actor(ctx.principal()?.actor());
    if let Some(plan) = &body.plan {
        tenancy::set_plan(ctx.app, &slug, plan, &actor)?;
    }
    if let Some(limits) = &body.limits {
        tenancy::set_limits(ctx.app, &slug, limits, &actor)?;
    }
    let t = ctx.app.tenant(&slug)?;
    let effective = crate::limits::plan(ctx.app, &t)?;
    Ok(Resp::json(200, &json!({"tenant": t, "limits": *effective})))
}

/// `GET /api/v1/platform/resources`: a live per-tenant view: in-flight requests, whether its
/// file is open, storage used against its quota, and the effective limits.
pub fn resources(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let list = tenants::list(&*ctx.app.catalog.conn()?, false)?;
    let mut items = Vec::with_capacity(list.len());
    for t in &list {
        let plan = crate::limits::plan(ctx.app, t)?;
        let used = crate::limits::storage_bytes(ctx.app, &t.id);
        let (connections, idle) = ctx.app.store.peek(&t.id).map(|h| h.connections()).unwrap_or((0, 0));
        // SQLite's page cache: each open connection holds up to `cache_size` (2 MiB) of the
        // file's pages; the exact figure is not readable through the safe API, so this is the
        // bound, never more than the file itself per connection.
        let page_cache = u64::from(connections) * used.min(crate::db::PAGE_CACHE_BYTES);
        items.push(json!({
            "slug": t.slug, "plan": t.plan, "status": t.status,
            "open": connections > 0,
            "requests_per_second": crate::limits::current_rate(ctx.app, &t.id),
            "in_flight": crate::limits::inflight(ctx.app, &t.id),
            "connections": connections,
            "idle_connections": idle,
            "page_cache_bytes_max": page_cache,
            "query_cache_bytes": ctx.app.query_cache.tenant_bytes(&t.id),
            "storage_bytes": used,
            "storage_quota_bytes": plan.storage_bytes,
            "storage_used_ratio": used as f64 / plan.storage_bytes.max(1) as f64,
            "throttled": crate::limits::is_throttled(ctx.app, &t.id),
            "limits": *plan,
        }));
    }
    let s = &ctx.app.limits.stats;
    use std::sync::atomic::Ordering::Relaxed;
    Ok(Resp::json(
        200,
        &json!({
            "open_tenants": ctx.app.store.open_count(),
            "rate_limited": s.rate_limited.load(Relaxed),
            "concurrency_rejected": s.concurrency_rejected.load(Relaxed),
            "quota_rejected": s.quota_rejected.load(Relaxed),
            "limiter_keys": ctx.app.limits.tracked_keys(),
            "alerts_raised": ctx.app.limits.alerts.raised.load(Relaxed),
            "metering_backlog": ctx.app.limits.meter.backlog(),
            "tenants": items
        }),
    ))
}
