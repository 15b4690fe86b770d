//! Tenant-scoped endpoints that need no member: what a tenant's public (login) page shows.

use serde_json::json;

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

/// `GET /api/v1/t/{slug}`: name, status, branding, and whether its data answers. Nothing a
/// visitor of the tenant's login page could not see anyway. Opening the tenant here (and not
/// only reading the catalog) makes this the status probe for one tenant: a missing or broken
/// file is a 503 `tenant_unavailable`.
pub fn public_info(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let opened = ctx.app.open_tenant(t)?;
    opened.handle.read_conn()?.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
    let config = ctx.app.tenant_config.get(&ctx.app.catalog, &t.id)?;
    let branding = &config.branding;
    Ok(Resp::json(
        200,
        &json!({
            "slug": t.slug,
            "name": t.name,
            "status": t.status,
            "branding": {
                "display_name": branding.display_name,
                "brand_color": branding.brand_color,
            }
        }),
    ))
}

/// `GET /api/v1/t/{slug}/logo`: the tenant's logo (public, like the rest of its branding).
pub fn logo(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let (content_type, body) = crate::tenancy::assets::logo(ctx.app, t)?
        .ok_or_else(|| crate::error::Error::NotFound(format!("logo of tenant {:?}", t.slug.as_str())))?;
    Ok(Resp {
        status: 200,
        content_type,
        headers: vec![("Cache-Control".into(), "public, max-age=300".into())],
        body,
        error: None,
        rate_limit: None,
    })
}

/// `PUT /api/v1/t/{slug}/settings/logo` with the image as the body.
pub fn put_logo(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let ct = req.header("content-type").unwrap_or("");
    if !ct.starts_with("image/") {
        return Err(crate::error::Error::UnsupportedMediaType);
    }
    let sha = crate::tenancy::assets::set_logo(ctx.app, ctx.tenant()?, &req.body)?;
    Ok(Resp::json(200, &json!({"logo_asset": sha})))
}
