//! Sign in (password, then TOTP when enrolled), sign out, the tenant switcher and MFA enrolment.

use maud::{html, Markup};

use super::{
    cookie, csrf_field, field, flash, form, page, redirect, session, set_cookie, Chrome, LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
};
use crate::auth::{self, LoginRequest};
use crate::catalog::identity;
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::{now_unix, random_hex};

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains("\\") => n.to_string(),
        _ => "/admin".to_string(),
    }
}

fn login_form(csrf: &str, email: &str, next: &str, need_totp: bool, error: Option<&str>) -> Markup {
    html! {
        div.login {
            div.card {
                h1 { "Sign in to tenantd" }
                @if let Some(e) = error { div.flash.error { (e) } }
                form method="post" action="/admin/login" {
                    input type="hidden" name="_csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    div.field { label for="email" { "Email" } input #email type="email" name="email" value=(email) required autofocus[!need_totp]; }
                    div.field { label for="password" { "Password" } input #password type="password" name="password" required; }
                    @if need_totp {
                        div.field {
                            label for="totp" { "Authentication code " span.hint { "(or a recovery code)" } }
                            input #totp type="text" name="totp" inputmode="numeric" autocomplete="one-time-code" autofocus;
                        }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        }
    }
}

fn login_page(csrf: &str, body: Markup, status: u16) -> Resp {
    let chrome = Chrome { title: "Sign in", session: None, tenant: None, active: "", notice: None };
    let mut r = page(&chrome, body);
    r.status = status;
    r.with_header(
        "Set-Cookie",
        format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=3600"),
    )
}

pub fn login_get(_ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let csrf = random_hex(16);
    let next = safe_next(req.query_param("next"));
    Ok(login_page(&csrf, login_form(&csrf, "", &next, false, None), 200))
}

/// Double-submit CSRF for the login form (there is no session yet): the hidden field must match
/// the cookie set with the form.
pub fn login_post(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let sent = field(&f, "_csrf").unwrap_or("");
    if sent.is_empty() || cookie(req, LOGIN_CSRF_COOKIE) != Some(sent) {
        return Err(Error::Forbidden {
            code: "csrf_failed",
            message: "the form expired: reload the page and try again".into(),
        });
    }
    let email = field(&f, "email").unwrap_or("").to_string();
    let next = safe_next(field(&f, "next"));
    let res = auth::login(
        ctx.app,
        &LoginRequest {
            email: &email,
            password: field(&f, "password").unwrap_or(""),
            totp: field(&f, "totp"),
            caller: req.caller(),
        },
        now_unix(),
    );
    let csrf = random_hex(16);
    match res {
        Ok(ok) => {
            let max_age = ok.expires_at - now_unix();
            Ok(redirect(&next).with_header("Set-Cookie", set_cookie(ctx, SESSION_COOKIE, &ok.token, max_age)))
        }
        Err(Error::Unauthenticated { code: "mfa_required", .. }) => {
            Ok(login_page(&csrf, login_form(&csrf, &email, &next, true, None), 200))
        }
        Err(e @ (Error::Unauthenticated { .. } | Error::TooManyRequests { .. })) => {
            let (status, _, message) = crate::http::response::error_parts(&e);
            let totp = matches!(e, Error::Unauthenticated { code: "invalid_totp", .. });
            Ok(login_page(&csrf, login_form(&csrf, &email, &next, totp, Some(&message)), status))
        }
        Err(e) => Err(e),
    }
}

pub fn logout(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    auth::logout(ctx.app, session(ctx)?, now_unix())?;
    Ok(redirect("/admin/login").with_header("Set-Cookie", set_cookie(ctx, SESSION_COOKIE, "", 0)))
}

/// The tenant switcher.
pub fn home(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let s = session(ctx)?;
    let tenants = identity::tenants_of(&*ctx.app.catalog.conn()?, s.user.id)?;
    let chrome = Chrome::for_ctx(ctx, "Your tenants", "switch")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Your tenants" }
            p.lead { "Signed in as " (s.user.email) ". Pick a tenant to work in." }
            (flash(req))
            @if tenants.is_empty() {
                div.card { p { "You are not a member of any tenant yet." }
                    @if s.user.is_platform_admin { p { a href="/admin/platform" { "Open the platform console" } } } }
            }
            div.grid {
                @for (_, slug, name, role) in &tenants {
                    a.tile href={ "/admin/t/" (slug) "/" } {
                        div.n { (name) }
                        div.l { (slug) " · " (role) }
                    }
                }
            }
        },
    ))
}

pub fn mfa_page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let s = session(ctx)?;
    let chrome = Chrome::for_ctx(ctx, "Two-factor authentication", "")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Two-factor authentication" }
            (flash(req))
            div.card {
                @if s.user.mfa_enabled {
                    p { "Two-factor authentication is " strong { "on" } " for " (s.user.email) "." }
                } @else {
                    p { "Protect your account with an authenticator app (TOTP, RFC 6238)." }
                    form method="post" action="/admin/mfa/enroll" { (csrf_field(ctx)) button type="submit" { "Set up an authenticator" } }
                }
            }
        },
    ))
}

/// A QR code drawn as SVG rectangles by maud (no pre-escaped markup).
fn qr(uri: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else { return html! {} };
    let w = code.width();
    let colors = code.to_colors();
    let size = w + 8;
    html! {
        svg.qr xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (size) " " (size) } shape-rendering="crispEdges" {
            rect width=(size) height=(size) fill="#fff" {}
            @for (i, c) in colors.iter().enumerate() {
                @if *c == qrcode::Color::Dark {
                    rect x=(i % w + 4) y=(i / w + 4) width="1" height="1" fill="#000" {}
                }
            }
        }
    }
}

pub fn mfa_enroll(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let s = session(ctx)?;
    if s.user.mfa_enabled {
        return Ok(redirect("/admin/mfa"));
    }
    let (secret, uri) = auth::mfa_enroll(ctx.app, &s.user)?;
    let chrome = Chrome::for_ctx(ctx, "Set up an authenticator", "")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Set up an authenticator" }
            div.card {
                p { "Scan this code with your authenticator app, or type the secret." }
                (qr(&uri))
                p.secret { (secret) }
                form method="post" action="/admin/mfa/confirm" {
                    (csrf_field(ctx))
                    div.field { label for="totp" { "Code from the app" } input #totp type="text" name="totp" inputmode="numeric" required autofocus; }
                    button type="submit" { "Turn on" }
                }
            }
        },
    ))
}

pub fn mfa_confirm(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let s = session(ctx)?;
    let codes = match auth::mfa_confirm(ctx.app, &s.user, field(&f, "totp").unwrap_or(""), now_unix()) {
        Ok(c) => c,
        Err(e @ Error::Invalid { .. }) => return Ok(super::back("/admin/mfa", "error", &e.to_string())),
        Err(e) => return Err(e),
    };
    let chrome = Chrome::for_ctx(ctx, "Recovery codes", "")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Two-factor authentication is on" }
            div.card {
                p { "Keep these one-time recovery codes somewhere safe. They are shown only now." }
                ul { @for c in &codes { li.secret { (c) } } }
                a.button href="/admin" { "Done" }
            }
        },
    ))
}
