//! The platform console: every tenant with lifecycle actions, and the users. Platform admins
//! see tenant metadata only.

use maud::html;

use super::{back, csrf_field, field, flash, form, page, session, Chrome};
use crate::catalog::{identity, tenants};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::ids::Slug;
use crate::tenancy::{self, Actor};
use crate::util::rfc3339;

pub fn console(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let conn = ctx.app.catalog.conn()?;
    let list = tenants::list(&conn, true)?;
    let users = identity::list_users(&conn)?;
    let alerts = crate::limits::alerts::list(&conn, None, 20)?;
    drop(conn);
    let plans: Vec<&String> = ctx.app.config.plans.keys().collect();
    let billing = match crate::billing::Provider::of(ctx.app) {
        crate::billing::Provider::None => None,
        _ => Some(crate::billing::summary(ctx.app, crate::util::now_unix())?),
    };
    let kpis = super::platform_analytics::console_kpis(ctx)?;
    // Every node's own report, asked now (a node that does not answer is shown as down).
    let cluster = ctx.app.cluster.as_ref().map(|c| crate::cluster::status(ctx.app, c));
    let chrome = Chrome::for_ctx(ctx, "Platform", "platform")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Platform" }
            p.lead { (list.len()) " tenants · " (users.len()) " users" }
            (flash(req))
            (kpis)
            @if let Some(c) = &cluster {
                h2 { "Cluster" }
                p { "This node " (c["this_node"].as_str().unwrap_or("")) " · directory on " (c["directory_node"].as_str().unwrap_or("")) " (version " (c["directory_version"]) ") · " (c["tenants"]) " tenants" }
                div.scroll { table.data {
                    thead { tr { th { "Node" } th { "Up" } th { "Tenants" } th { "Bytes" } th { "Open" } th { "Requests" } th { "Directory" } th { "URL" } } }
                    tbody {
                        @for n in c["nodes"].as_array().into_iter().flatten() {
                            tr {
                                td { (n["node"].as_str().unwrap_or("")) }
                                td { @if n["up"] == true { span.badge.active { "up" } } @else { span.badge.suspended { "down" } " " (n["error"].as_str().unwrap_or("")) } }
                                td { (n["tenants"]) }
                                td { (n["bytes"]) }
                                td { (n["open_tenants"]) }
                                td { (n["requests_total"]) }
                                td { "v" (n["directory_version"]) }
                                td { (n["url"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                } }
            }
            @if let Some(b) = &billing {
                h2 { "Billing" }
                table.data {
                    thead { tr { th { "Plan" } th { "Monthly" } th { "Yearly" } th { "Trial" } th { "Included requests / month" } th { "Per 1,000 beyond" } } }
                    tbody {
                        @for (name, p) in &ctx.app.config.plans {
                            tr {
                                td { (name) }
                                td { (crate::billing::money(p.price_monthly_cents as i64, &p.currency)) }
                                td { (crate::billing::money(p.price_yearly_cents as i64, &p.currency)) }
                                td { (p.trial_days) " days" }
                                td { (p.included_monthly_requests) }
                                td { (crate::billing::money(p.overage_cents_per_1000_requests as i64, &p.currency)) }
                            }
                        }
                    }
                }
                p {
                    "Provider " (b.provider) " · " (b.subscriptions.len()) " subscriptions · " (b.open_invoices) " open invoices · revenue this month: "
                    @for (cur, cents) in &b.revenue_this_month_cents { (crate::billing::money(*cents, cur)) " " }
                    " · MRR: "
                    @for (cur, cents) in &b.mrr_cents { (crate::billing::money(*cents, cur)) " " }
                }
                @if b.provider_queue > 0 || !b.provider_failures.is_empty() {
                    p { (b.provider_queue) " calls queued for the payment provider" }
                    @for f in &b.provider_failures { div.flash.error { (f.op) " " (f.tenant_id) ": " (f.last_error.as_deref().unwrap_or("")) } }
                }
                @if !b.failed_payments.is_empty() {
                    table.data {
                        thead { tr { th { "Failed payment" } th { "Plan" } th { "Status" } th { "Overdue since" } } }
                        tbody {
                            @for (slug, s) in &b.failed_payments {
                                tr { td { (slug) } td { (s.plan) } td { span.badge.suspended { (s.status) } } td { (s.past_due_since.map(rfc3339).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            h2 { "Tenants" }
            div.scroll { table.data {
                thead { tr { th { "Slug" } th { "Name" } th { "Status" } th { "Plan" } th { "Schema" } th { "Req/s" } th { "In flight" } th { "Connections" } th { "Storage" } th { "Created" } th { "Actions" } } }
                tbody {
                    @for t in &list {
                        tr {
                            td { (t.slug) }
                            td { (t.name) }
                            td { span.badge.(t.status.as_str()) { (t.status.as_str()) } }
                            td { (t.plan) }
                            td { "v" (t.schema_version) }
                            td { (format!("{:.1}", crate::limits::current_rate(ctx.app, &t.id))) }
                            td { (crate::limits::inflight(ctx.app, &t.id)) @if crate::limits::is_throttled(ctx.app, &t.id) { " " span.badge.suspended { "throttled" } } }
                            td { (ctx.app.store.peek(&t.id).map(|h| h.connections().0).unwrap_or(0)) }
                            td { (storage(ctx, t)) }
                            td { (rfc3339(t.created_at)) }
                            td {
                                @for action in actions(t.status) {
                                    form.inline method="post" action={ "/admin/platform/tenants/" (t.slug) "/" (action) } {
                                        (csrf_field(ctx))
                                        button.secondary.danger[*action == "delete"] type="submit" { (action) }
                                    }
                                    " "
                                }
                            }
                        }
                    }
                }
            } }
            h2 { "New tenant" }
            div.card {
                form.row method="post" action="/admin/platform/tenants" {
                    (csrf_field(ctx))
                    div.field { label for="slug" { "Slug" } input #slug type="text" name="slug" required pattern="[a-z0-9][a-z0-9-]{0,62}"; }
                    div.field { label for="name" { "Name" } input #name type="text" name="name" required maxlength="200"; }
                    div.field { label for="plan" { "Plan" } select #plan name="plan" { @for p in &plans { option value=(p) selected[**p == ctx.app.config.default_plan] { (p) } } } }
                    div.field { label { " " } button type="submit" { "Create" } }
                }
            }
            @if !alerts.is_empty() {
                h2 { "Recent alerts" }
                (crate::ui::tenant::alerts_table(&alerts))
            }
            h2 { "Users" }
            table.data {
                thead { tr { th { "Email" } th { "Platform admin" } th { "2FA" } th { "Created" } } }
                tbody {
                    @for u in &users {
                        tr { td { (u.email) } td { @if u.is_platform_admin { "yes" } } td { @if u.totp_enabled { "on" } @else { "off" } } td { (rfc3339(u.created_at)) } }
                    }
                }
            }
        },
    ))
}

/// "used / quota (pct)" for the tenant's file, WAL and assets.
fn storage(ctx: &Ctx<'_>, t: &tenants::TenantRecord) -> String {
    let used = crate::limits::storage_bytes(ctx.app, &t.id);
    let quota = crate::limits::plan(ctx.app, t).map(|p| p.storage_bytes).unwrap_or(0).max(1);
    format!("{} KiB / {} MiB ({:.1}%)", used / 1024, quota / (1024 * 1024), used as f64 * 100.0 / quota as f64)
}

fn actions(status: tenants::TenantStatus) -> &'static [&'static str] {
    match status {
        tenants::TenantStatus::Active => &["suspend", "delete"],
        tenants::TenantStatus::Suspended => &["resume", "delete"],
        tenants::TenantStatus::Deleted => &["resume"],
    }
}

fn actor(ctx: &Ctx<'_>) -> Result<Actor> {
    Ok(Actor(format!("user:{}", session(ctx)?.user.id)))
}

pub fn lifecycle(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let slug = Slug::parse(ctx.param("slug")?)?;
    let action = ctx.param("action")?;
    let who = actor(ctx)?;
    let res = match action {
        "suspend" => tenancy::suspend(ctx.app, &slug, &who).map(|_| ()),
        "resume" => tenancy::resume(ctx.app, &slug, &who).map(|_| ()),
        "delete" => tenancy::soft_delete(ctx.app, &slug, &who).map(|_| ()),
        _ => Err(Error::NotFound(format!("action {:?}", crate::ids::truncate_for_message(action)))),
    };
    ctx.app.invalidate_caches();
    match res {
        Ok(()) => Ok(back("/admin/platform", "ok", &format!("{slug}: {action} done"))),
        Err(e @ (Error::Conflict { .. } | Error::Invalid { .. })) => {
            Ok(back("/admin/platform", "error", &e.to_string()))
        }
        Err(e) => Err(e),
    }
}

pub fn create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let who = actor(ctx)?;
    let res = Slug::parse(field(&f, "slug").unwrap_or(""))
        .and_then(|slug| tenancy::create(ctx.app, &slug, field(&f, "name").unwrap_or(""), field(&f, "plan"), &who));
    ctx.app.invalidate_caches();
    match res {
        Ok(t) => Ok(back("/admin/platform", "ok", &format!("created {}", t.slug))),
        Err(e @ (Error::Conflict { .. } | Error::Invalid { .. })) => {
            Ok(back("/admin/platform", "error", &e.to_string()))
        }
        Err(e) => Err(e),
    }
}
