//! Tenant pages: home, members and roles, API keys, settings and branding.

use maud::html;

use super::{back, csrf_field, field, flash, form, page, Chrome};
use crate::api::members;
use crate::auth;
use crate::auth::perms::{Action, Area, Resource, BUILTIN_ROLES};
use crate::catalog::identity;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::rfc3339;

fn base(ctx: &Ctx<'_>) -> Result<String> {
    Ok(format!("/admin/t/{}", ctx.tenant()?.slug))
}

/// Runs a form action; domain errors come back as a message on the page, not an error page.
pub(crate) fn act(location: &str, ok: &str, f: impl FnOnce() -> Result<()>) -> Result<Resp> {
    match f() {
        Ok(()) => Ok(back(location, "ok", ok)),
        Err(
            e @ (Error::Invalid { .. }
            | Error::Conflict { .. }
            | Error::Forbidden { .. }
            | Error::NotFound(_)
            | Error::PayloadTooLarge { .. }),
        ) => Ok(back(location, "error", &e.to_string())),
        Err(e) => Err(e),
    }
}

pub fn home(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let counts = ctx.work(req, None)?.table_counts()?;
    let b = base(ctx)?;
    // Usage KPIs only for those the analytics page would let in (`can_read:usage`).
    let kpis = match ctx.principal() {
        Ok(p) if auth::standing(ctx.app, p, t)?.allows(Action::Read, Resource::Area(Area::Usage)) => {
            Some(super::analytics::home_kpis(ctx, t)?)
        }
        _ => None,
    };
    let chrome = Chrome::for_ctx(ctx, &t.name, "home")?;
    Ok(page(
        &chrome,
        html! {
            h1 { (chrome.tenant.as_ref().and_then(|(_, br)| br.display_name.clone()).unwrap_or_else(|| t.name.clone())) }
            p.lead {
                span.badge.(t.status.as_str()) { (t.status.as_str()) } " · plan " (t.plan) " · schema v" (t.schema_version)
            }
            (flash(req))
            @if t.status == crate::catalog::tenants::TenantStatus::Suspended {
                div.flash.error { "This tenant is suspended: you can read, but changes are refused." }
            }
            @if let Some(k) = kpis { (k) }
            h2 { "Data" }
            div.grid {
                @for (name, n) in &counts {
                    a.tile href={ (b) "/data/" (name) } { div.n { (n) } div.l { (name) } }
                }
            }
        },
    ))
}

pub fn members_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let conn = ctx.app.catalog.conn()?;
    let list = identity::members_of(&conn, &t.id)?;
    let custom = identity::custom_roles(&conn, &t.id)?;
    drop(conn);
    let roles: Vec<String> =
        BUILTIN_ROLES.iter().map(|r| r.to_string()).chain(custom.iter().map(|(n, _)| n.clone())).collect();
    let b = base(ctx)?;
    let chrome = Chrome::for_ctx(ctx, "Members", "members")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Members" }
            p.lead { "People who can sign in to " (t.name) ", and what their role lets them do." }
            (flash(req))
            table.data {
                thead { tr { th { "Email" } th { "Role" } th { "2FA" } th { "Since" } th {} } }
                tbody {
                    @for m in &list {
                        tr {
                            td { (m.email) }
                            td {
                                form.inline method="post" action={ (b) "/members/" (m.user_id) "/role" } {
                                    (csrf_field(ctx))
                                    select name="role" {
                                        @for r in &roles { option value=(r) selected[*r == m.role] { (r) } }
                                    }
                                    " " button.secondary type="submit" { "Change" }
                                }
                            }
                            td { @if m.mfa_enabled { "on" } @else { "off" } }
                            td { (rfc3339(m.created_at)) }
                            td {
                                form.inline method="post" action={ (b) "/members/" (m.user_id) "/remove" } {
                                    (csrf_field(ctx)) button.danger type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Add a member" }
            div.card {
                form.row method="post" action={ (b) "/members" } {
                    (csrf_field(ctx))
                    div.field { label for="email" { "Email of an existing user" } input #email type="email" name="email" required; }
                    div.field { label for="role" { "Role" } select #role name="role" { @for r in &roles { option value=(r) { (r) } } } }
                    div.field { label { " " } button type="submit" { "Add" } }
                }
            }
            h2 { "Custom roles" }
            div.card {
                @if custom.is_empty() { p { "None yet." } }
                @for (name, perms) in &custom {
                    p {
                        strong { (name) } ": " (perms.join(", ")) " "
                        form.inline method="post" action={ (b) "/roles/" (name) "/delete" } {
                            (csrf_field(ctx)) button.link type="submit" { "delete" }
                        }
                    }
                }
                form method="post" action={ (b) "/roles" } {
                    (csrf_field(ctx))
                    div.row {
                        div.field { label for="role_name" { "Role name" } input #role_name type="text" name="name" required pattern="[a-z0-9][a-z0-9-]{0,62}"; }
                        div.field {
                            label for="permissions" { "Permissions " span.hint { "(comma-separated, e.g. can_read:customers, can_create:tasks, can_read:members)" } }
                            input #permissions type="text" name="permissions" required;
                        }
                    }
                    button type="submit" { "Save role" }
                }
            }
        },
    ))
}

pub fn member_add(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("{}/members", base(ctx)?);
    act(&loc, "member added", || {
        members::add_member(ctx, field(&f, "email").unwrap_or(""), field(&f, "role").unwrap_or("")).map(|_| ())
    })
}

pub fn member_role(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let uid = members::user_id(ctx)?;
    let loc = format!("{}/members", base(ctx)?);
    act(&loc, "role changed", || members::change_role(ctx, uid, field(&f, "role").unwrap_or("")))
}

pub fn member_remove(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let uid = members::user_id(ctx)?;
    let loc = format!("{}/members", base(ctx)?);
    act(&loc, "member removed", || members::remove_member(ctx, uid))
}

pub fn keys_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let mut keys = identity::api_keys_of(&*ctx.app.catalog.conn()?, &t.id)?;
    for k in &mut keys {
        k.last_used_at = ctx.app.auth.last_used(k);
    }
    let b = base(ctx)?;
    let chrome = Chrome::for_ctx(ctx, "API keys", "keys")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "API keys" }
            p.lead { "Keys act for " (t.name) " only. Send them as " code { "Authorization: Bearer …" } " or " code { "X-API-Key" } "." }
            (flash(req))
            @if let Some(k) = req.query_param("new_key") {
                div.flash.ok { "Your new key (shown once): " span.secret { (k) } }
            }
            table.data {
                thead { tr { th { "Name" } th { "Scope" } th { "Tables" } th { "Created" } th { "Last used" } th {} } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td { (k.scope) }
                            td { @if let Some(ts) = &k.tables { (ts.join(", ")) } @else { "all" } }
                            td { (rfc3339(k.created_at)) }
                            td { @if let Some(u) = k.last_used_at { (rfc3339(u)) } @else { "never" } }
                            td {
                                @if k.revoked_at.is_some() { span.badge.deleted { "revoked" } } @else {
                                    form.inline method="post" action={ (b) "/api-keys/" (k.id) "/revoke" } {
                                        (csrf_field(ctx)) button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New key" }
            div.card {
                form.row method="post" action={ (b) "/api-keys" } {
                    (csrf_field(ctx))
                    div.field { label for="name" { "Name" } input #name type="text" name="name" required maxlength="100"; }
                    div.field { label for="scope" { "Scope" } select #scope name="scope" { option value="read" { "read" } option value="write" { "write" } option value="admin" { "admin" } } }
                    div.field { label { " " } button type="submit" { "Create key" } }
                }
            }
        },
    ))
}

pub fn key_create(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("{}/api-keys", base(ctx)?);
    match members::new_key(ctx, field(&f, "name").unwrap_or(""), field(&f, "scope").unwrap_or(""), None) {
        Ok((_, key, _)) => Ok(back(&loc, "new_key", &key)),
        Err(e @ Error::Invalid { .. }) => Ok(back(&loc, "error", &e.to_string())),
        Err(e) => Err(e),
    }
}

pub fn key_revoke(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let id = ctx.param("key_id")?.to_string();
    let loc = format!("{}/api-keys", base(ctx)?);
    act(&loc, "key revoked", || members::revoke(ctx, &id))
}

pub fn settings_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let s = members::settings_json(ctx)?;
    let b = base(ctx)?;
    let chrome = Chrome::for_ctx(ctx, "Settings", "settings")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Settings and branding" }
            (flash(req))
            div.card {
                h2 { "Logo" }
                form method="post" action={ (b) "/settings/logo" } enctype="multipart/form-data" {
                    (csrf_field(ctx))
                    div.field { label for="logo" { "PNG, JPEG, GIF or WebP, up to 512 KiB" } input #logo type="file" name="logo" accept="image/png,image/jpeg,image/gif,image/webp" required; }
                    button.secondary type="submit" { "Upload logo" }
                }
            }
            div.card {
                form method="post" action={ (b) "/settings" } {
                    (csrf_field(ctx))
                    div.field { label for="display_name" { "Display name" } input #display_name type="text" name="display_name" value=(s["display_name"].as_str().unwrap_or("")) maxlength="200"; }
                    div.field { label for="brand_color" { "Brand colour " span.hint { "(#rrggbb)" } } input #brand_color type="text" name="brand_color" value=(s["brand_color"].as_str().unwrap_or("")) pattern="#[0-9a-fA-F]{6}"; }
                    div.field { label { input type="checkbox" name="require_mfa" value="true" checked[s["require_mfa"] == true]; " Require two-factor authentication for every member" } }
                    button type="submit" { "Save" }
                }
            }
        },
    ))
}

pub fn settings_save(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("{}/settings", base(ctx)?);
    let name = field(&f, "display_name").filter(|v| !v.trim().is_empty());
    let color = field(&f, "brand_color").filter(|v| !v.trim().is_empty());
    let mfa = Some(field(&f, "require_mfa") == Some("true"));
    act(&loc, "settings saved", || members::save_settings(ctx, name, color, mfa))
}

pub fn logo_upload(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let loc = format!("{}/settings", base(ctx)?);
    let parts = super::multipart(req)?;
    let file = parts.into_iter().find(|p| p.name == "logo").map(|p| p.data).unwrap_or_default();
    act(&loc, "logo updated", || crate::tenancy::assets::set_logo(ctx.app, ctx.tenant()?, &file).map(|_| ()))
}

pub fn role_save(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("{}/members", base(ctx)?);
    let perms: Vec<String> = field(&f, "permissions")
        .unwrap_or("")
        .split([',', '\n'])
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    act(&loc, "role saved", || members::save_role(ctx, field(&f, "name").unwrap_or(""), &perms).map(|_| ()))
}

pub fn role_delete(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let name = ctx.param("role")?.to_string();
    let loc = format!("{}/members", base(ctx)?);
    act(&loc, "role deleted", || members::remove_role(ctx, &name))
}

pub fn audit_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let page_no: i64 = req.query_param("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let action = req.query_param("action").filter(|a| !a.is_empty()).map(str::to_string);
    let filter = crate::audit::Filter { action: action.clone(), page: page_no, per_page: 50, ..Default::default() };
    let opened = ctx.app.open_tenant(t)?;
    let (items, total) = crate::audit::list(&*opened.handle.scan_conn()?, &filter)?;
    let pages = ((total + 49) / 50).max(1);
    let alerts = crate::limits::alerts::list(&*ctx.app.catalog.conn()?, Some(&t.id), 20)?;
    let b = base(ctx)?;
    let keep = action.as_deref().map(|a| format!("&action={}", crate::util::percent_encode(a))).unwrap_or_default();
    let chrome = Chrome::for_ctx(ctx, "Audit trail", "audit")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Audit trail" }
            p.lead { (total) " entries, hash-chained; " code { "tenantd audit verify" } " checks them. CSV: "
                code { "GET /api/v1/t/" (t.slug) "/audit?format=csv" } }
            @if !alerts.is_empty() {
                h2 { "Recent alerts" }
                (alerts_table(&alerts))
                h2 { "Entries" }
            }
            div.toolbar {
                form method="get" action={ (b) "/audit" } {
                    input type="text" name="action" placeholder="action, e.g. record.delete" value=(action.as_deref().unwrap_or(""));
                    button.secondary type="submit" { "Filter" }
                }
            }
            table.data {
                thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Source" } th { "Action" } th { "Resource" } th { "Outcome" } th { "Details" } } }
                tbody {
                    @for e in &items {
                        tr {
                            td { (e.id) } td { (rfc3339(e.at)) } td { (e.actor) } td { (e.source.as_deref().unwrap_or("")) }
                            td { (e.action) } td { (e.resource.as_deref().unwrap_or("")) } td { (e.outcome) } td title=(e.details) { (e.details) }
                        }
                    }
                }
            }
            div.pager {
                @if page_no > 1 { a href={ (b) "/audit?page=" (page_no - 1) (keep) } { "← Newer" } }
                span { "Page " (page_no) " of " (pages) }
                @if page_no < pages { a href={ (b) "/audit?page=" (page_no + 1) (keep) } { "Older →" } }
            }
        },
    ))
}

pub fn security_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let p = crate::auth::policy(ctx.app, &t.id)?.policy.clone();
    let b = base(ctx)?;
    let num = |v: Option<i64>| v.map(|m| m.to_string()).unwrap_or_default();
    let chrome = Chrome::for_ctx(ctx, "Security policy", "security")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Security policy" }
            p.lead { "Who may reach " (t.name) " and how long sessions last here." }
            (flash(req))
            div.card {
                form method="post" action={ (b) "/security" } {
                    (csrf_field(ctx))
                    div.row {
                        div.field {
                            label for="ip_allow" { "Allowed addresses " span.hint { "(CIDR, one per line; empty = any)" } }
                            textarea #ip_allow name="ip_allow" rows="4" { (p.ip_allow.join("\n")) }
                        }
                        div.field {
                            label for="ip_deny" { "Denied addresses " span.hint { "(CIDR, one per line; wins over allowed)" } }
                            textarea #ip_deny name="ip_deny" rows="4" { (p.ip_deny.join("\n")) }
                        }
                    }
                    div.row {
                        div.field { label for="ttl" { "Session lifetime " span.hint { "(minutes; empty = server default)" } } input #ttl type="number" min="1" name="session_ttl_minutes" value=(num(p.session_ttl_minutes)); }
                        div.field { label for="idle" { "Idle timeout " span.hint { "(minutes; empty = server default)" } } input #idle type="number" min="1" name="idle_timeout_minutes" value=(num(p.idle_timeout_minutes)); }
                    }
                    div.field {
                        label for="cors" { "Browser origins allowed to call the API " span.hint { "(CORS, one per line, e.g. https://app.example.com)" } }
                        textarea #cors name="cors_origins" rows="2" { (p.cors_origins.join("\n")) }
                    }
                    div.field { label { input type="checkbox" name="require_mfa" value="true" checked[p.require_mfa]; " Require two-factor authentication" } }
                    div.field { label { input type="checkbox" name="api_keys_allowed" value="true" checked[p.api_keys_allowed]; " Accept API keys" } }
                    button type="submit" { "Save policy" }
                }
            }
        },
    ))
}

pub fn security_save(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("{}/security", base(ctx)?);
    let lines = |k: &str| -> Vec<String> {
        field(&f, k).unwrap_or("").split(['\n', ',']).map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    let minutes = |k: &str| -> Result<Option<i64>> {
        match field(&f, k).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::invalid("invalid_policy", format!("{k} must be a whole number of minutes"))),
        }
    };
    let actor = ctx.principal()?.actor();
    act(&loc, "policy saved", || {
        let policy = crate::security::Policy {
            ip_allow: lines("ip_allow"),
            ip_deny: lines("ip_deny"),
            require_mfa: field(&f, "require_mfa") == Some("true"),
            session_ttl_minutes: minutes("session_ttl_minutes")?,
            idle_timeout_minutes: minutes("idle_timeout_minutes")?,
            api_keys_allowed: field(&f, "api_keys_allowed") == Some("true"),
            cors_origins: lines("cors_origins"),
        };
        crate::api::security::save(ctx.app, ctx.tenant()?, policy, &actor, Some(req)).map(|_| ())
    })
}

/// Alerts (quota, throttling, threats) as a table.
pub fn alerts_table(alerts: &[serde_json::Value]) -> maud::Markup {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_default();
    html! {
        table.data {
            thead { tr { th { "Time" } th { "Kind" } th { "Tenant" } th { "Source" } th { "Caller" } th { "Risk" } th { "Message" } } }
            tbody {
                @for a in alerts {
                    tr {
                        td { (text(&a["at"])) } td { span.badge.suspended { (text(&a["kind"])) } } td { (text(&a["slug"])) }
                        td { (text(&a["source"])) } td { (text(&a["principal"])) } td { (a["risk"].to_string()) } td { (text(&a["message"])) }
                    }
                }
            }
        }
    }
}
