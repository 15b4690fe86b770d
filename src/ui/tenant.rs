//! Tenant pages: home, members and roles, API keys, settings and branding.

use maud::html;

use super::{back, csrf_field, field, flash, form, page, Chrome};
use crate::api::members;
use crate::auth::perms::BUILTIN_ROLES;
use crate::catalog::identity;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::rfc3339;

fn base(ctx: &Ctx<'_>) -> Result<String> {
    Ok(format!("/admin/t/{}", ctx.tenant()?.slug))
}

/// Runs a form action; domain errors come back as a message on the page, not an error page.
fn act(location: &str, ok: &str, f: impl FnOnce() -> Result<()>) -> Result<Resp> {
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
    let opened = ctx.app.open_tenant(t)?;
    let conn = opened.handle.conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    let mut counts = Vec::new();
    for name in schema.tables.keys() {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| r.get(0))?;
        counts.push((name.clone(), n));
    }
    let b = base(ctx)?;
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
    let keys = identity::api_keys_of(&*ctx.app.catalog.conn()?, &t.id)?;
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
