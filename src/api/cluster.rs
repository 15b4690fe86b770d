//! `/api/v1/cluster/*`: what nodes ask of each other (the directory, creating a tenant where
//! placement put it, a node's report, moves, failover), behind `Access::Cluster` (the cluster
//! secret, checked by the router's access step); and the platform
//! admin's view of the whole cluster, `/api/v1/platform/cluster`.

use serde::Deserialize;
use serde_json::json;

use crate::cluster::{self, Change};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::Actor;

/// `GET /api/v1/cluster/directory?since=N`: the rows changed after version N.
pub fn directory_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let since = match req.query_param("since") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| Error::invalid("invalid_since", "since is a directory version (an integer)"))?,
    };
    Ok(Resp::json(200, &cluster::document(ctx.app, since)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    changes: Vec<Change>,
}

/// `POST /api/v1/cluster/directory` `{"changes": [...]}`, on the directory node only.
pub fn directory_post(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let c = cluster::of(ctx.app)?;
    if !c.is_directory() {
        return Err(Error::invalid(
            "not_directory_node",
            format!("node {} does not hold the directory; node {} does", c.this(), c.config.directory_node()),
        ));
    }
    let body: Changes = req.json()?;
    let version = cluster::change(ctx.app, &body.changes)?;
    Ok(Resp::json(200, &json!({ "version": version })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    slug: String,
    name: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    pinned: bool,
    #[serde(default)]
    actor: Option<String>,
}

/// `POST /api/v1/cluster/tenants`: another node placed a new tenant here.
pub fn create_tenant(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let c = cluster::of(ctx.app)?;
    let body: NewTenant = req.json()?;
    let actor = Actor(format!("{} (via node {})", body.actor.as_deref().unwrap_or("cluster"), c.this()));
    let slug = Slug::parse(&body.slug)?;
    let (t, _) = cluster::create_here(ctx.app, &slug, &body.name, body.plan.as_deref(), body.pinned, &actor)?;
    ctx.app.invalidate_caches();
    Ok(Resp::json(201, &t))
}

/// `GET /api/v1/cluster/node`: this node's report (tenants, sizes, load, directory copy).
pub fn node_report(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let mut report = cluster::node_report(ctx.app)?;
    let (requests, _) = ctx.state.metrics.totals();
    report["requests_total"] = json!(requests);
    Ok(Resp::json(200, &report))
}

/// `GET /api/v1/platform/cluster`: every node's report, asked now; a node that does not
/// answer is listed with the reason.
pub fn platform_status(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let c = cluster::of(ctx.app)?;
    Ok(Resp::json(200, &cluster::status(ctx.app, c)))
}

fn slug_param(ctx: &Ctx<'_>) -> Result<Slug> {
    Slug::parse(ctx.param("slug")?)
}

fn tenant_id(body: &serde_json::Value) -> Result<crate::ids::TenantId> {
    crate::ids::TenantId::parse(body["tenant_id"].as_str().unwrap_or(""))
}

/// `POST /api/v1/cluster/tenants/{slug}/{freeze|thaw|release}`: the source's part of a move.
pub fn source_step(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let slug = slug_param(ctx)?;
    match ctx.param("step")? {
        "freeze" => {
            let body: serde_json::Value = req.json()?;
            let to = body["to"].as_str().unwrap_or("");
            Ok(Resp::json(200, &cluster::moves::freeze(ctx.app, &slug, to)?))
        }
        "thaw" => {
            cluster::moves::thaw(ctx.app, &slug)?;
            Ok(Resp::json(200, &json!({"thawed": slug.as_str()})))
        }
        "release" => {
            cluster::moves::release(ctx.app, &slug)?;
            ctx.app.invalidate_caches();
            Ok(Resp::json(200, &json!({"released": slug.as_str()})))
        }
        other => Err(Error::NotFound(format!("move step {other:?}"))),
    }
}

/// `POST /api/v1/cluster/moves/{seed|finish|abandon}`: the target's part of a move.
pub fn target_step(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: serde_json::Value = req.json()?;
    let id = tenant_id(&body)?;
    let from = body["from"].as_str().unwrap_or("").to_string();
    match ctx.param("step")? {
        "seed" => {
            cluster::moves::seed(ctx.app, &id, &from)?;
            Ok(Resp::json(200, &json!({"seeded": id.as_str()})))
        }
        "finish" => {
            let out = cluster::moves::finish(ctx.app, &body, &from)?;
            ctx.app.invalidate_caches();
            Ok(Resp::json(200, &out))
        }
        "abandon" => {
            cluster::moves::abandon(ctx.app, &id);
            Ok(Resp::json(200, &json!({"abandoned": id.as_str()})))
        }
        other => Err(Error::NotFound(format!("move step {other:?}"))),
    }
}

/// `GET /api/v1/cluster/assets/{tenant_id}`: the names of a tenant's assets on this node (a
/// move's target pulls them).
pub fn assets_of(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = crate::ids::TenantId::parse(ctx.param("tenant_id")?)?;
    Ok(Resp::json(200, &json!({"items": cluster::files::asset_names(ctx.app, &id)?})))
}

/// `GET /api/v1/cluster/assets/{tenant_id}/{sha256}`: one asset's bytes.
pub fn asset(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = crate::ids::TenantId::parse(ctx.param("tenant_id")?)?;
    let body = cluster::files::asset(ctx.app, &id, ctx.param("sha256")?)?;
    Ok(octets(body))
}

/// A file's bytes as they are, for another node.
fn octets(body: Vec<u8>) -> Resp {
    Resp {
        status: 200,
        content_type: "application/octet-stream",
        headers: Vec::new(),
        body,
        error: None,
        rate_limit: None,
    }
}

/// `GET /api/v1/cluster/backups/{tenant_id}`: the manifests of a tenant's snapshots here.
pub fn backups_of(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = crate::ids::TenantId::parse(ctx.param("tenant_id")?)?;
    Ok(Resp::json(200, &json!({"items": crate::backup::list(ctx.app, &id)?})))
}

/// `GET /api/v1/cluster/backups/{tenant_id}/{file}?offset=N`: the next chunk of a snapshot file.
pub fn backup_chunk(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let id = crate::ids::TenantId::parse(ctx.param("tenant_id")?)?;
    let offset = match req.query_param("offset") {
        None => 0,
        Some(o) => o.parse().map_err(|_| Error::invalid("invalid_parameter", "offset must be a whole number"))?,
    };
    let body = cluster::files::backup_chunk(ctx.app, &id, ctx.param("file")?, offset)?;
    Ok(octets(body))
}

/// `POST /api/v1/cluster/failover` `{"from": NODE}`: this node takes over a dead node's
/// tenants from the replica store.
pub fn failover(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: serde_json::Value = req.json()?;
    let from = body["from"].as_str().ok_or_else(|| Error::invalid("invalid_body", "{\"from\": NODE} is needed"))?;
    let out = cluster::failover::take_over(ctx.app, from)?;
    ctx.app.invalidate_caches();
    Ok(Resp::json(200, &out))
}
