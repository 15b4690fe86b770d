//! The tenant's backups page (`/admin/t/{slug}/backups`): its snapshots, a snapshot on demand,
//! and a restore into a new tenant the user then owns (to a snapshot, or to an instant when
//! the change log is on). The same domain functions as `api::backups`.

use maud::html;

use super::tenant::act;
use super::{csrf_field, field, flash, form, page, Chrome};
use crate::backup::{self, Target};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::Actor;

pub fn page_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let all = backup::list(ctx.app, &t.id)?;
    let retention = ctx.app.config.plans.get(&t.plan).map(|p| p.backup_retention_days).unwrap_or(0);
    let base = format!("/admin/t/{}", t.slug);
    let chrome = Chrome::for_ctx(ctx, "Backups", "backups")?;
    let pit = ctx.app.replication.is_some();
    Ok(page(
        &chrome,
        html! {
            h1 { "Backups" }
            p.lead {
                "Snapshots of this tenant's data, kept " (retention) " days (the newest always). "
                @if pit { "Any instant since the oldest one can be restored." }
                @else { "Each restores as it was taken." }
            }
            (flash(req))
            div.toolbar {
                form.inline method="post" action={ (base) "/backups" } {
                    (csrf_field(ctx)) input type="hidden" name="action" value="snapshot";
                    button type="submit" { "Take a snapshot now" }
                }
            }
            @if all.is_empty() {
                p { "No snapshot yet." }
            } @else {
                div.scroll {
                    table.data {
                        thead { tr { th { "Snapshot" } th { "Taken" } th { "Kind" } th { "Size" } th { "Stored" } } }
                        tbody {
                            @for m in &all {
                                tr {
                                    td { code { (m.id) } }
                                    td { (m.created_at()) }
                                    td { (serde_json::to_value(m.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                                    td { (m.bytes / 1024) " KiB" }
                                    td { (m.compressed_bytes / 1024) " KiB" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Restore into a new tenant" }
            p { "The copy is a new tenant you own; this one is left as it is." }
            form method="post" action={ (base) "/backups" } {
                (csrf_field(ctx)) input type="hidden" name="action" value="fork";
                label { "Snapshot " select name="id" {
                    @for m in &all { option value=(m.id) { (m.id) } }
                } }
                @if pit {
                    label { " or instant (UTC, e.g. 2026-12-07T14:20:05Z) " input type="text" name="at"; }
                }
                label { " new tenant's slug " input type="text" name="as" required pattern="[a-z0-9][a-z0-9-]{0,62}"; }
                button type="submit" { "Restore" }
            }
        },
    ))
}

pub fn page_post(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let f = form(req)?;
    let loc = format!("/admin/t/{}/backups", t.slug);
    match field(&f, "action") {
        Some("snapshot") => match backup::create_on_demand(ctx.app, t) {
            Err(Error::TooManyRequests { message, .. }) => {
                act(&loc, "", || Err(Error::invalid("backup_too_soon", message)))
            }
            other => act(&loc, "snapshot taken", || other.map(|_| ())),
        },
        Some("fork") => {
            let principal = ctx.principal()?;
            let target = match (field(&f, "at").filter(|a| !a.trim().is_empty()), field(&f, "id")) {
                (Some(at), _) => Target::At(backup::parse_instant(at.trim(), crate::util::now_millis())?),
                (None, Some(id)) => Target::Backup(id.to_string()),
                (None, None) => return Err(Error::invalid("invalid_target", "choose a snapshot or an instant")),
            };
            let slug = field(&f, "as").unwrap_or("").to_string();
            act(&loc, &format!("restored into the new tenant {slug}"), || {
                let slug = Slug::parse(&slug)?;
                let owner = principal.user().map(|u| u.id);
                backup::fork(ctx.app, t, &target, &slug, &Actor(principal.actor()), owner).map(|_| ())
            })
        }
        _ => Err(Error::invalid("invalid_action", "action must be snapshot or fork")),
    }
}
