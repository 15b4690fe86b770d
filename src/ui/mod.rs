//! Server-rendered admin pages (maud). Works without JavaScript; every tenant-controlled string
//! goes through maud's escaping; the tenant's brand colour is validated (`#rrggbb`) before it
//! reaches a style attribute. No business logic here: pages call the same operations as the API.

pub mod account;
pub mod analytics;
pub mod backups;
pub mod billing;
pub mod charts;
pub mod data;
pub mod platform;
pub mod platform_analytics;
pub mod queries;
pub mod tenant;

use maud::{html, Markup, DOCTYPE};

use crate::auth::{Principal, SessionInfo};
use crate::catalog::tenants::{Branding, TenantRecord};
use crate::error::{Error, Result};
use crate::http::resolve::percent_decode;
use crate::http::{Ctx, Req, Resp};

pub const SESSION_COOKIE: &str = "tenantd_session";
pub const LOGIN_CSRF_COOKIE: &str = "tenantd_login_csrf";

/// Content-Security-Policy for pages: our stylesheet and images, forms to ourselves, no script.
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn css(_: &Ctx<'_>, _: &Req) -> Result<Resp> {
    asset("text/css; charset=utf-8", include_bytes!("../../assets/ui/app.css"))
}

pub fn logo(_: &Ctx<'_>, _: &Req) -> Result<Resp> {
    asset("image/svg+xml", include_bytes!("../../assets/ui/logo.svg"))
}

fn asset(content_type: &'static str, bytes: &[u8]) -> Result<Resp> {
    Ok(Resp {
        status: 200,
        content_type,
        headers: vec![("Cache-Control".into(), "public, max-age=3600".into())],
        body: bytes.to_vec(),
        error: None,
        rate_limit: None,
    })
}

/// A value of a cookie from the request.
pub fn cookie<'r>(req: &'r Req, name: &str) -> Option<&'r str> {
    req.header("cookie")?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a value: HttpOnly, SameSite=Lax, Path=/admin, Secure when configured.
pub fn set_cookie(ctx: &Ctx<'_>, name: &str, value: &str, max_age: i64) -> String {
    let secure = if ctx.app.config.auth.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// One part of a `multipart/form-data` body (RFC 7578).
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    /// The part's own `Content-Type`, if it sent one.
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Parses a `multipart/form-data` body.
pub fn multipart(req: &Req) -> Result<Vec<Part>> {
    let bad = || Error::invalid("invalid_form", "malformed multipart form");
    let ct = req.header("content-type").unwrap_or("");
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(bad)?;
    let delim = format!("--{boundary}").into_bytes();
    let body = &req.body;
    let mut parts = Vec::new();
    let mut pos = find(body, &delim, 0).ok_or_else(bad)? + delim.len();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        let head_start = pos + 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", head_start).ok_or_else(bad)?;
        let head = std::str::from_utf8(body.get(head_start..head_end).ok_or_else(bad)?).map_err(|_| bad())?;
        let next = find(body, &delim, head_end + 4).ok_or_else(bad)?;
        let data = body.get(head_end + 4..next.saturating_sub(2)).ok_or_else(bad)?.to_vec();
        let disposition =
            head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).ok_or_else(bad)?;
        let param = |key: &str| {
            disposition
                .split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(key))
                .map(|v| v.trim_matches('"').to_string())
        };
        let content_type = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type")))
            .map(|(_, v)| v.trim().to_string());
        parts.push(Part { name: param("name=").ok_or_else(bad)?, filename: param("filename="), content_type, data });
        pos = next + delim.len();
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Fields of an `application/x-www-form-urlencoded` body (or the text fields of a multipart one).
pub fn form(req: &Req) -> Result<Vec<(String, String)>> {
    let ct = req.header("content-type").unwrap_or("");
    if ct.starts_with("multipart/form-data") {
        return Ok(multipart(req)?
            .into_iter()
            .filter(|p| p.filename.is_none())
            .map(|p| (p.name, String::from_utf8_lossy(&p.data).into_owned()))
            .collect());
    }
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(Error::UnsupportedMediaType);
    }
    let text = std::str::from_utf8(&req.body).map_err(|_| Error::invalid("invalid_form", "form is not UTF-8"))?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect()
}

pub fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn redirect(location: &str) -> Resp {
    Resp::empty(303).with_header("Location", location)
}

pub fn session<'c>(ctx: &'c Ctx<'_>) -> Result<&'c SessionInfo> {
    match ctx.principal()? {
        Principal::User(s) => Ok(s),
        Principal::ApiKey(_) => Err(Error::Unauthorized),
    }
}

/// What the header shows.
pub struct Chrome<'a> {
    pub title: &'a str,
    pub session: Option<&'a SessionInfo>,
    pub tenant: Option<(&'a TenantRecord, Branding)>,
    pub active: &'a str,
    /// A late payment, shown on every page of the tenant.
    pub notice: Option<String>,
}

impl<'a> Chrome<'a> {
    pub fn for_ctx(ctx: &'a Ctx<'_>, title: &'a str, active: &'a str) -> Result<Chrome<'a>> {
        let tenant = match ctx.tenant.as_deref() {
            Some(t) => Some((t, ctx.app.tenant_config.get(&ctx.app.catalog, &t.id)?.branding.clone())),
            None => None,
        };
        let notice = ctx.tenant.as_deref().and_then(|t| billing::notice(ctx, t));
        Ok(Chrome { title, session: session(ctx).ok(), tenant, active, notice })
    }
}

fn brand_style(b: Option<&Branding>) -> String {
    // Validated on the way in; checked again here so a hand-edited catalog cannot inject CSS.
    let color = b.and_then(|b| b.brand_color.as_deref()).filter(|c| crate::api::members::validate_color(c).is_ok());
    color.map(|c| format!("--brand: {c}")).unwrap_or_default()
}

pub fn page(chrome: &Chrome<'_>, body: Markup) -> Resp {
    let branding = chrome.tenant.as_ref().map(|(_, b)| b);
    let base = chrome.tenant.as_ref().map(|(t, _)| format!("/admin/t/{}", t.slug));
    let tenant_name = chrome.tenant.as_ref().map(|(t, b)| b.display_name.clone().unwrap_or_else(|| t.name.clone()));
    let nav = |href: &str, label: &str, key: &str| {
        html! { a href=(href) class=@if chrome.active == key { "active" } { (label) } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (chrome.title) " · tenantd" }
                link rel="stylesheet" href="/admin/assets/app.css";
                link rel="icon" href="/admin/assets/logo.svg";
            }
            body style=(brand_style(branding)) {
                header.top {
                    a.brand href="/admin" {
                        @if let Some((t, b)) = chrome.tenant.as_ref().filter(|(_, b)| b.logo_asset.is_some()) {
                            @let _ = b;
                            img src={ "/api/v1/t/" (t.slug) "/logo" } alt="";
                        } @else {
                            img src="/admin/assets/logo.svg" alt="";
                        }
                        @if let Some(n) = &tenant_name { (n) } @else { "tenantd" }
                    }
                    nav {
                        @if let Some(b) = &base {
                            (nav(&format!("{b}/"), "Home", "home"))
                            (nav(&format!("{b}/members"), "Members", "members"))
                            (nav(&format!("{b}/api-keys"), "API keys", "keys"))
                            (nav(&format!("{b}/settings"), "Settings", "settings"))
                            (nav(&format!("{b}/security"), "Security", "security"))
                            (nav(&format!("{b}/audit"), "Audit", "audit"))
                            (nav(&format!("{b}/queries"), "Queries", "queries"))
                            (nav(&format!("{b}/analytics"), "Analytics", "analytics"))
                            (nav(&format!("{b}/billing"), "Billing", "billing"))
                            (nav(&format!("{b}/backups"), "Backups", "backups"))
                        }
                        @if chrome.session.is_some() {
                            (nav("/admin", "Tenants", "switch"))
                        }
                        @if chrome.session.is_some_and(|s| s.user.is_platform_admin) {
                            (nav("/admin/platform", "Platform", "platform"))
                            (nav("/admin/platform/analytics", "Platform analytics", "platform-analytics"))
                        }
                    }
                    @if let Some(s) = chrome.session {
                        div.who {
                            a href="/admin/mfa" { (s.user.email) }
                            form.inline method="post" action="/admin/logout" {
                                input type="hidden" name="_csrf" value=(s.csrf_token);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    @if let Some(n) = &chrome.notice { div.flash.error role="alert" { (n) } }
                    (body)
                }
                footer { "tenantd " (env!("CARGO_PKG_VERSION")) }
            }
        }
    };
    html_resp(200, markup)
}

pub fn html_resp(status: u16, m: Markup) -> Resp {
    Resp {
        status,
        content_type: "text/html; charset=utf-8",
        headers: vec![],
        body: m.into_string().into_bytes(),
        error: None,
        rate_limit: None,
    }
}

/// Errors on pages: a readable page with the same status the API would use. Unauthenticated
/// visitors are sent to the login page instead.
pub fn error_page(e: &Error, path: &str) -> Resp {
    let (status, code, message) = crate::http::response::error_parts(e);
    if status == 401 {
        let next = crate::util::percent_encode(path);
        return redirect(&format!("/admin/login?next={next}"));
    }
    let chrome = Chrome { title: "Error", session: None, tenant: None, active: "", notice: None };
    let mut r = page(
        &chrome,
        html! {
            div.card {
                h1 { (status) " · " (code) }
                p { (message) }
                p { a href="/admin" { "Back to your tenants" } }
            }
        },
    );
    r.status = status;
    r.error = Some(code);
    r
}

/// Hidden CSRF field for forms of a signed-in user.
pub fn csrf_field(ctx: &Ctx<'_>) -> Markup {
    let token = session(ctx).map(|s| s.csrf_token.clone()).unwrap_or_default();
    html! { input type="hidden" name="_csrf" value=(token); }
}

/// Flash message carried in the query string after a redirect (`?ok=…` / `?error=…`).
pub fn flash(req: &Req) -> Markup {
    html! {
        @if let Some(m) = req.query_param("ok") { div.flash.ok { (m) } }
        @if let Some(m) = req.query_param("error") { div.flash.error { (m) } }
    }
}

/// Redirect back with a message (the message is escaped when shown).
pub fn back(location: &str, key: &str, msg: &str) -> Resp {
    let sep = if location.contains('?') { '&' } else { '?' };
    redirect(&format!("{location}{sep}{key}={}", crate::util::percent_encode(msg)))
}
