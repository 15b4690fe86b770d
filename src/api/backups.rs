//! `/api/v1/t/{slug}/backups`: the tenant's snapshots (for owners, and roles that manage its
//! settings), a snapshot on demand, and a restore into a new tenant (a fork the caller owns).
//! Restoring in place replaces what every member sees: that stays with the operator
//! (`tenantd backup restore`).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::backup::{self, Manifest, Target};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::Actor;

fn summary(m: &Manifest) -> Value {
    json!({
        "id": m.id,
        "created_at": m.created_at(),
        "kind": m.kind,
        "position": m.position,
        "schema_version": m.schema_version,
        "bytes": m.bytes,
        "compressed_bytes": m.compressed_bytes,
        "sha256": m.sha256,
    })
}

/// `GET /backups`: newest first, with the plan's retention and whether `at` restores work.
pub fn list(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let all = backup::list(ctx.app, &t.id)?;
    let retention = ctx.app.config.plans.get(&t.plan).map(|p| p.backup_retention_days);
    Ok(Resp::json(
        200,
        &json!({
            "items": all.iter().map(summary).collect::<Vec<_>>(),
            "retention_days": retention,
            "point_in_time": ctx.app.replication.is_some(),
        }),
    ))
}

/// `POST /backups`: a snapshot now (one on demand a minute at most), then retention.
pub fn create(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let m = backup::create_on_demand(ctx.app, ctx.tenant()?)?;
    Ok(Resp::json(201, &summary(&m)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    id: Option<String>,
    at: Option<String>,
    #[serde(rename = "as")]
    fork_as: Option<String>,
}

/// `POST /backups/restore` `{"id" | "at", "as": "new-slug"}`: a new tenant holding this one's
/// data as of that snapshot or instant; the caller becomes its owner.
pub fn restore(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let body: RestoreBody = req.json()?;
    let target = match (body.id, body.at) {
        (Some(id), None) => Target::Backup(id),
        (None, Some(at)) => Target::At(backup::parse_instant(&at, crate::util::now_millis())?),
        _ => {
            return Err(Error::invalid(
                "invalid_target",
                "send exactly one of \"id\" (a backup) or \"at\" (an instant)",
            ))
        }
    };
    let fork_as = body.fork_as.ok_or_else(|| {
        Error::invalid(
            "missing_field",
            "\"as\": the new tenant's slug (the API restores into a new tenant; in place is `tenantd backup restore`)",
        )
    })?;
    let slug = Slug::parse(&fork_as)?;
    let principal = ctx.principal()?;
    let owner = principal.user().map(|u| u.id);
    let r = backup::fork(ctx.app, t, &target, &slug, &Actor(principal.actor()), owner)?;
    Ok(Resp::json(
        201,
        &json!({
            "tenant": r.into,
            "from": r.tenant,
            "backup": r.built.backup,
            "commits_applied": r.built.commits_applied,
            "state_at": r.built.state_at,
        }),
    ))
}
