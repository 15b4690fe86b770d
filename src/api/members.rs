//! Tenant administration: members, custom roles, API keys, settings.

use serde::Deserialize;
use serde_json::json;

use crate::auth::perms::{self, BUILTIN_ROLES};
use crate::catalog::identity::{self, NewApiKey};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::{now_unix, random_hex, sha256_hex};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    email: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchMember {
    role: String,
}

/// A role must be built in or defined for this tenant.
fn check_role(ctx: &Ctx<'_>, role: &str) -> Result<()> {
    perms::validate_role_name(role)?;
    let t = ctx.tenant()?;
    if BUILTIN_ROLES.contains(&role) || identity::custom_role(&*ctx.app.catalog.conn()?, &t.id, role)?.is_some() {
        Ok(())
    } else {
        Err(Error::invalid(
            "unknown_role",
            format!("unknown role {role:?}: built-in roles are owner, admin, member, viewer"),
        ))
    }
}

/// Only an owner may grant or take away ownership.
fn guard_owner(ctx: &Ctx<'_>, touches_owner: bool) -> Result<()> {
    if !touches_owner {
        return Ok(());
    }
    let t = ctx.tenant()?;
    let me = ctx.principal()?;
    let is_owner = match me.user() {
        Some(u) => identity::membership_of(&*ctx.app.catalog.conn()?, &t.id, u.id)?.as_deref() == Some("owner"),
        None => false,
    };
    if is_owner {
        Ok(())
    } else {
        Err(Error::Forbidden { code: "forbidden", message: "only an owner can grant or remove the owner role".into() })
    }
}

pub fn list(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let members = identity::members_of(&*ctx.app.catalog.conn()?, &t.id)?;
    Ok(Resp::json(200, &json!({"items": members})))
}

pub fn add(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: AddMember = req.json()?;
    let (id, email) = add_member(ctx, &body.email, &body.role)?;
    Ok(Resp::json(201, &json!({"user_id": id, "email": email, "role": body.role})))
}

/// Adds an existing user to the tenant (API and UI share the rules).
pub fn add_member(ctx: &Ctx<'_>, email: &str, role: &str) -> Result<(i64, String)> {
    check_role(ctx, role)?;
    guard_owner(ctx, role == "owner")?;
    let t = ctx.tenant()?;
    crate::limits::check_seat(ctx.app, t)?;
    let email = crate::auth::validate_email(email)?;
    let user = identity::user_by_email(&*ctx.app.catalog.conn()?, &email)?
        .ok_or_else(|| Error::invalid("unknown_user", format!("no user with email {email}: create the user first")))?;
    ctx.app.change(|tx| identity::add_membership(tx, &t.id, user.id, role, now_unix()))?;
    audited(ctx, "member.add", &format!("members/{}", user.id), json!({"email": user.email, "role": role}));
    Ok((user.id, user.email))
}

pub fn user_id(ctx: &Ctx<'_>) -> Result<i64> {
    ctx.param("user_id")?.parse::<i64>().map_err(|_| Error::invalid("invalid_id", "user id must be an integer"))
}

/// The member's current role, or 404 when not a member of this tenant.
fn current_role(ctx: &Ctx<'_>, uid: i64) -> Result<String> {
    let t = ctx.tenant()?;
    identity::membership_of(&*ctx.app.catalog.conn()?, &t.id, uid)?
        .ok_or_else(|| Error::NotFound(format!("member {uid}")))
}

/// Refuses to leave a tenant without an owner.
fn keep_an_owner(ctx: &Ctx<'_>, old_role: &str, new_role: Option<&str>) -> Result<()> {
    if old_role == "owner" && new_role != Some("owner") {
        let t = ctx.tenant()?;
        if identity::count_role(&*ctx.app.catalog.conn()?, &t.id, "owner")? <= 1 {
            return Err(Error::conflict("last_owner", "a tenant needs at least one owner"));
        }
    }
    Ok(())
}

pub fn update(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let uid = user_id(ctx)?;
    let body: PatchMember = req.json()?;
    change_role(ctx, uid, &body.role)?;
    Ok(Resp::json(200, &json!({"user_id": uid, "role": body.role})))
}

pub fn change_role(ctx: &Ctx<'_>, uid: i64, role: &str) -> Result<()> {
    let old = current_role(ctx, uid)?;
    check_role(ctx, role)?;
    guard_owner(ctx, old == "owner" || role == "owner")?;
    keep_an_owner(ctx, &old, Some(role))?;
    let t = ctx.tenant()?;
    ctx.app.change(|tx| identity::set_membership_role(tx, &t.id, uid, role))?;
    audited(ctx, "member.role", &format!("members/{uid}"), json!({"from": old, "to": role}));
    Ok(())
}

pub fn remove(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    remove_member(ctx, user_id(ctx)?)?;
    Ok(Resp::empty(204))
}

pub fn remove_member(ctx: &Ctx<'_>, uid: i64) -> Result<()> {
    let old = current_role(ctx, uid)?;
    guard_owner(ctx, old == "owner")?;
    keep_an_owner(ctx, &old, None)?;
    let t = ctx.tenant()?;
    ctx.app.change(|tx| identity::remove_membership(tx, &t.id, uid))?;
    audited(ctx, "member.remove", &format!("members/{uid}"), json!({"role": old}));
    Ok(())
}

// --- roles -----------------------------------------------------------------------------------

pub fn roles(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let mut items: Vec<serde_json::Value> = BUILTIN_ROLES
        .iter()
        .filter_map(|r| perms::builtin(r).map(|p| json!({"name": r, "builtin": true, "permissions": p.to_strings()})))
        .collect();
    for (name, list) in identity::custom_roles(&*ctx.app.catalog.conn()?, &t.id)? {
        items.push(json!({"name": name, "builtin": false, "permissions": list}));
    }
    Ok(Resp::json(200, &json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<String>,
}

pub fn put_role(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let name = ctx.param("role")?;
    let body: RoleBody = req.json()?;
    let normalized = save_role(ctx, name, &body.permissions)?;
    Ok(Resp::json(200, &json!({"name": name, "builtin": false, "permissions": normalized})))
}

/// Creates or replaces a custom role; returns its normalised permissions.
pub fn save_role(ctx: &Ctx<'_>, name: &str, permissions: &[String]) -> Result<Vec<String>> {
    perms::validate_role_name(name)?;
    if BUILTIN_ROLES.contains(&name) {
        return Err(Error::invalid("builtin_role", format!("{name} is built in and cannot be changed")));
    }
    let normalized: Vec<String> =
        permissions.iter().map(|p| perms::parse_permission(p).map(|n| format!("can_{n}"))).collect::<Result<_>>()?;
    let t = ctx.tenant()?;
    ctx.app.change(|tx| identity::put_role(tx, &t.id, name, &normalized, now_unix()))?;
    audited(ctx, "role.save", &format!("roles/{name}"), json!({"permissions": normalized}));
    Ok(normalized)
}

pub fn delete_role(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    remove_role(ctx, ctx.param("role")?)?;
    Ok(Resp::empty(204))
}

pub fn remove_role(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let t = ctx.tenant()?;
    if identity::members_of(&*ctx.app.catalog.conn()?, &t.id)?.iter().any(|m| m.role == name) {
        return Err(Error::conflict("role_in_use", format!("members still have role {name}: change their role first")));
    }
    if !ctx.app.change(|tx| identity::delete_role(tx, &t.id, name))? {
        return Err(Error::NotFound(format!("role {:?}", crate::ids::truncate_for_message(name))));
    }
    audited(ctx, "role.delete", &format!("roles/{name}"), json!({}));
    Ok(())
}

// --- API keys --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scope: String,
    #[serde(default)]
    tables: Option<Vec<String>>,
}

pub fn keys(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let mut items = identity::api_keys_of(&*ctx.app.catalog.conn()?, &t.id)?;
    for k in &mut items {
        k.last_used_at = ctx.app.auth.last_used(k);
    }
    Ok(Resp::json(200, &json!({"items": items})))
}

pub fn create_key(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: NewKey = req.json()?;
    let (id, key, now) = new_key(ctx, &body.name, &body.scope, body.tables.as_deref())?;
    Ok(Resp::json(
        201,
        &json!({"id": id, "key": key, "name": body.name.trim(), "scope": body.scope, "tables": body.tables, "created_at": now,
                "note": "the key is shown only now; store it safely"}),
    ))
}

/// Mints a key; returns (id, the key itself, created_at). The key is not stored, only its hash.
pub fn new_key(ctx: &Ctx<'_>, name: &str, scope: &str, tables: Option<&[String]>) -> Result<(String, String, i64)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("invalid_name", "key name must be 1-100 characters"));
    }
    if perms::for_scope(scope).is_none() {
        return Err(Error::invalid("invalid_scope", "scope is read, write or admin"));
    }
    let t = ctx.tenant()?;
    if let Some(tables) = tables {
        let opened = ctx.app.open_tenant(t)?;
        let conn = opened.handle.read_conn()?;
        let schema = opened.handle.schema_info(&conn)?;
        for table in tables {
            schema.table(table)?;
        }
    }
    let id = random_hex(6);
    let key = format!("{}{id}_{}", crate::auth::KEY_PREFIX, random_hex(32));
    let created_by = ctx.principal()?.user().map(|u| u.id);
    let now = now_unix();
    ctx.app.change(|tx| {
        identity::insert_api_key(
            tx,
            &NewApiKey {
                id: &id,
                tenant: &t.id,
                name,
                key_hash: &sha256_hex(key.as_bytes()),
                scope,
                tables,
                created_by,
                now,
            },
        )
    })?;
    audited(ctx, "api_key.create", &format!("api-keys/{id}"), json!({"name": name, "scope": scope, "tables": tables}));
    Ok((id, key, now))
}

pub fn revoke_key(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    revoke(ctx, ctx.param("key_id")?)?;
    Ok(Resp::empty(204))
}

pub fn revoke(ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let t = ctx.tenant()?;
    if !ctx.app.change(|tx| identity::revoke_api_key(tx, &t.id, id, now_unix()))? {
        return Err(Error::NotFound(format!("api key {:?}", crate::ids::truncate_for_message(id))));
    }
    audited(ctx, "api_key.revoke", &format!("api-keys/{id}"), json!({}));
    Ok(())
}

// --- settings --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    brand_color: Option<String>,
    #[serde(default)]
    require_mfa: Option<bool>,
}

pub fn settings(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    Ok(Resp::json(200, &settings_json(ctx)?))
}

pub fn settings_json(ctx: &Ctx<'_>) -> Result<serde_json::Value> {
    let t = ctx.tenant()?;
    let config = ctx.app.tenant_config.get(&ctx.app.catalog, &t.id)?;
    let b = &config.branding;
    let require_mfa = crate::auth::policy(ctx.app, &t.id)?.policy.require_mfa;
    Ok(json!({"display_name": b.display_name, "brand_color": b.brand_color, "require_mfa": require_mfa}))
}

/// `#rrggbb` only: it is written into a style attribute on the tenant's pages.
pub fn validate_color(c: &str) -> Result<()> {
    let ok = c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("invalid_color", "brand_color must look like #1a2b3c"))
    }
}

pub fn update_settings(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: SettingsBody = req.json()?;
    save_settings(ctx, body.display_name.as_deref(), body.brand_color.as_deref(), body.require_mfa)?;
    Ok(Resp::json(200, &settings_json(ctx)?))
}

/// Branding and the MFA requirement (API and UI share the validation).
pub fn save_settings(
    ctx: &Ctx<'_>,
    display_name: Option<&str>,
    brand_color: Option<&str>,
    require_mfa: Option<bool>,
) -> Result<()> {
    if let Some(c) = brand_color {
        validate_color(c)?;
    }
    let display_name = display_name.map(crate::tenancy::validate_name).transpose()?;
    let t = ctx.tenant()?;
    let mut settings = identity::tenant_settings(&*ctx.app.catalog.conn()?, &t.id)?;
    if let Some(m) = require_mfa {
        settings["require_mfa"] = json!(m);
        // Keep the security policy's copy in step (it is what the hot path reads).
        if let Some(sec) = settings.get_mut("security").and_then(|v| v.as_object_mut()) {
            sec.insert("require_mfa".into(), json!(m));
        }
    }
    ctx.app.change(|tx| {
        identity::update_tenant_config(tx, &t.id, display_name.as_deref(), brand_color, &settings, now_unix())
    })?;
    let details = json!({"display_name": display_name, "brand_color": brand_color, "require_mfa": require_mfa});
    audited(ctx, "settings.update", "settings", details);
    Ok(())
}

/// An entry in the tenant's audit trail for an administrative change (members, roles, API keys,
/// settings), with the request's id. The change is already committed in the catalog: an entry
/// that cannot be written is logged, not turned into a failed request.
fn audited(ctx: &Ctx<'_>, action: &str, resource: &str, details: serde_json::Value) {
    let (Ok(t), Ok(principal)) = (ctx.tenant(), ctx.principal()) else { return };
    let caller = ctx.req.caller();
    let source = caller.client.map(|ip| ip.to_string());
    let entry = crate::audit::Entry {
        actor: principal.actor_str(),
        source: source.as_deref(),
        user_agent: caller.user_agent,
        request_id: Some(caller.request_id),
        action,
        resource: Some(resource),
        outcome: "ok",
        risk: 0,
        details,
    };
    if let Err(e) = crate::audit::record(ctx.app, t, &entry) {
        crate::log::warn(&format!("{}: could not audit {action}: {}", t.slug, e.log_detail()));
    }
}
