//! `/api/v1/auth/*`: login, logout, who am I, TOTP enrolment.

use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, LoginRequest, Principal};
use crate::catalog::identity;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::now_unix;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// The body's credentials to a session, with the user's tenants.
fn sign_in(ctx: &Ctx<'_>, req: &Req, now: i64) -> Result<(auth::LoginOk, Vec<serde_json::Value>)> {
    let body: LoginBody = req.json()?;
    let ok = auth::login(
        ctx.app,
        &LoginRequest {
            email: &body.email,
            password: &body.password,
            totp: body.totp.as_deref(),
            caller: req.caller(),
        },
        now,
    )?;
    let tenants = memberships(ctx, ok.user.id)?;
    Ok((ok, tenants))
}

fn signed_in(ok: &auth::LoginOk, tenants: &[serde_json::Value]) -> Resp {
    Resp::json(200, &json!({"token": ok.token, "expires_at": ok.expires_at, "user": ok.user, "tenants": tenants}))
}

pub fn login(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let (ok, tenants) = sign_in(ctx, req, now_unix())?;
    Ok(signed_in(&ok, &tenants))
}

/// `POST /api/v1/t/{slug}/auth/login`: sign-in scoped to one tenant, so a router can send it
/// to the node that holds the tenant by its path. Only the tenant's members and platform
/// admins get a session; anyone else gets the same 401 as a wrong password.
pub fn login_tenant(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let tenant = ctx.tenant()?;
    let now = now_unix();
    let (ok, tenants) = sign_in(ctx, req, now)?;
    if !ok.user.is_platform_admin && !tenants.iter().any(|t| t["slug"] == tenant.slug.as_str()) {
        let hash = crate::util::sha256_hex(ok.token.as_bytes());
        ctx.app.change(|tx| identity::revoke_session(tx, &hash, now))?;
        return Err(Error::Unauthenticated {
            code: "invalid_credentials",
            message: "email or password is incorrect".into(),
        });
    }
    Ok(signed_in(&ok, &tenants))
}

fn memberships(ctx: &Ctx<'_>, user_id: i64) -> Result<Vec<serde_json::Value>> {
    Ok(identity::tenants_of(&*ctx.app.catalog.conn()?, user_id)?
        .into_iter()
        .map(|(_, slug, name, role)| json!({"slug": slug, "name": name, "role": role}))
        .collect())
}

pub fn logout(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    match ctx.principal()? {
        Principal::User(s) => auth::logout(ctx.app, s, now_unix())?,
        Principal::ApiKey(_) => return Err(Error::invalid("not_a_session", "API keys are revoked, not logged out")),
    }
    Ok(Resp::empty(204))
}

pub fn me(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let user = ctx.user()?;
    Ok(Resp::json(200, &json!({"user": user, "tenants": memberships(ctx, user.id)?})))
}

pub fn mfa_enroll(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let user = ctx.user()?;
    if user.mfa_enabled {
        return Err(Error::conflict("mfa_already_enabled", "two-factor authentication is already on"));
    }
    let (secret, uri) = auth::mfa_enroll(ctx.app, user)?;
    Ok(Resp::json(200, &json!({"secret": secret, "otpauth_uri": uri})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    totp: String,
}

pub fn mfa_confirm(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: ConfirmBody = req.json()?;
    let codes = auth::mfa_confirm(ctx.app, ctx.user()?, &body.totp, now_unix())?;
    Ok(Resp::json(200, &json!({"recovery_codes": codes})))
}
