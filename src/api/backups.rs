//! `/api/v1/t/{slug}/backups`: the tenant's snapshots (for owners, and roles that manage its
//! settings), a snapshot on demand, and a restore into a new tenant (a fork the caller owns).
//! Restoring in place replaces what every member sees: that stays with the operator
//! (`tenantd backup restore`).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::backup::{self, Kind, Manifest, Target};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::Actor;

/// A snapshot on demand at most this often per tenant (each is a full copy on disk).
const MIN_INTERVAL_MS: i64 = 60_000;

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
    let t = ctx.tenant()?;
    let now = crate::util::now_millis();
    if let Some(newest) = backup::list(ctx.app, &t.id)?.into_iter().find(|m| m.kind == Kind::Manual) {
        let wait = newest.created_at_ms + MIN_INTERVAL_MS - now;
        if wait > 0 {
            return Err(Error::TooManyRequests {
                code: "backup_too_soon",
                message: format!("the last backup on demand is from {}: one a minute at most", newest.created_at()),
                retry_after: (wait + 999) / 1000,
                rate: None,
            });
        }
    }
    let m = backup::create(ctx.app, t, Kind::Manual)?;
    backup::prune(ctx.app, t, now)?;
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
    let r = backup::restore(ctx.app, t, &target, Some(&slug), &Actor(principal.actor()))?;
    if let Some(user) = principal.user() {
        let fork = ctx.app.tenant(&slug)?;
        ctx.app.change(|tx| {
            crate::catalog::identity::add_membership(tx, &fork.id, user.id, "owner", crate::util::now_unix())
        })?;
    }
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
