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
}

pub fn create_tenant(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: NewTenant = req.json()?;
    let actor = Actor(ctx.principal()?.actor());
    let t = tenancy::create(ctx.app, &Slug::parse(&body.slug)?, &body.name, body.plan.as_deref(), &actor)?;
    ctx.app.invalidate_caches();
    Ok(Resp::json(201, &t))
}
