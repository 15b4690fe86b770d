//! Between parsing and the handler: which route and tenant a request is for, who is calling
//! and whether they may, and CORS. `server::dispatch` calls these in pipeline order.

use std::sync::Arc;

use super::resolve::{self, HostSignal};
use super::router::{Access, Matched, Need, Scope};
use super::server::ServerState;
use super::{Method, Req, Resp};
use crate::auth::{self, perms::Resource, Principal};
use crate::catalog::tenants::{TenantRecord, TenantStatus};
use crate::error::{Error, Result};
use crate::ids::Slug;

/// CORS: an allowed `Origin` of the tenant's policy gets the `Access-Control-*` headers.
pub(super) fn cors_headers(state: &ServerState, t: &TenantRecord, req: &Req, resp: &mut Resp) {
    let Some(origin) = req.header("origin") else { return };
    if crate::auth::policy(&state.app, &t.id).is_ok_and(|p| p.allows_origin(origin)) {
        resp.headers.push(("Access-Control-Allow-Origin".into(), origin.to_string()));
        resp.headers.push((
            "Access-Control-Expose-Headers".into(),
            "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id".into(),
        ));
    }
    resp.headers.push(("Vary".into(), "Origin".into()));
}

/// A CORS preflight (`OPTIONS`) for a tenant API path: 204 with the methods the path takes
/// when the tenant's policy allows the origin; 204 without CORS headers otherwise (the browser
/// then refuses). Unknown tenants and paths answer as they would for any other method.
pub(super) fn preflight(state: &ServerState, req: &Req) -> Result<Resp> {
    let mut probe = Req {
        id: req.id.clone(),
        method: Method::Get,
        raw_path: req.raw_path.clone(),
        segments: req.segments.clone(),
        query: Vec::new(),
        headers: req.headers.clone(),
        body: Vec::new(),
        remote: req.remote,
        client: req.client,
    };
    let mut allowed = Vec::new();
    let mut tenant = None;
    for m in [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete] {
        probe.method = m;
        if let Ok((_, t)) = route(state, &probe) {
            allowed.push(m.as_str());
            tenant = tenant.or(t);
        }
    }
    let Some(t) = tenant else { return Err(Error::NoRoute) };
    let mut resp = Resp::empty(204);
    let origin = req.header("origin").unwrap_or("");
    if crate::auth::policy(&state.app, &t.id)?.allows_origin(origin) {
        resp.headers.push(("Access-Control-Allow-Origin".into(), origin.to_string()));
        resp.headers.push(("Access-Control-Allow-Methods".into(), allowed.join(", ")));
        resp.headers
            .push(("Access-Control-Allow-Headers".into(), "Authorization, Content-Type, X-API-Key, X-Tenant".into()));
        resp.headers.push(("Access-Control-Max-Age".into(), "600".into()));
    }
    resp.headers.push(("Vary".into(), "Origin".into()));
    Ok(resp)
}

pub(super) fn is_sign_in(route: &super::router::Route) -> bool {
    route.method == Method::Post && (route.pattern == "/api/v1/auth/login" || route.pattern == "/admin/login")
}

/// The credential of a request: `Authorization: Bearer …` or `X-API-Key`.
pub fn credential(req: &Req) -> Option<&str> {
    if let Some(v) = req.header("authorization") {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    req.header("x-api-key").map(str::trim)
}

/// Authentication and authorization from the route's access entry.
pub(super) fn check_access(
    state: &ServerState,
    req: &Req,
    matched: &Matched<'_>,
    tenant: Option<&TenantRecord>,
) -> Result<Option<Principal>> {
    let access = matched.route.access;
    if matches!(access, Access::Public | Access::TenantPublic) {
        return Ok(None);
    }
    if access == Access::Cluster {
        let cluster = state.app.cluster.as_ref().ok_or(Error::NoRoute)?;
        if !cluster.client.is_secret(credential(req).unwrap_or("")) {
            return Err(Error::Unauthorized);
        }
        return Ok(None);
    }
    let ui = matched.route.is_ui();
    let token = if ui { crate::ui::cookie(req, crate::ui::SESSION_COOKIE) } else { credential(req) };
    let token = token.filter(|t| !t.is_empty()).ok_or(Error::Unauthorized)?;
    let now = crate::util::now_unix();
    let principal = auth::authenticate(&state.app, token, now)?;
    if ui && req.method.is_write() {
        // Every form of a signed-in user carries the session's CSRF token.
        let sent = crate::ui::form(req).ok().and_then(|f| crate::ui::field(&f, "_csrf").map(str::to_string));
        let expected = match &principal {
            Principal::User(s) => Some(s.csrf_token.as_str()),
            Principal::ApiKey(_) => None,
        };
        if sent.is_none() || sent.as_deref() != expected {
            return Err(Error::Forbidden {
                code: "csrf_failed",
                message: "the form is missing its CSRF token or it expired: reload the page".into(),
            });
        }
    }
    match access {
        Access::Public | Access::TenantPublic | Access::Cluster => {}
        Access::Authenticated => {
            if principal.user().is_none() {
                return Err(Error::Forbidden { code: "user_required", message: "API keys cannot be used here".into() });
            }
        }
        Access::PlatformAdmin => {
            let allowed = &state.app.platform_allow;
            if !allowed.is_empty() && !req.client.is_some_and(|ip| allowed.iter().any(|c| c.contains(ip))) {
                return Err(Error::Forbidden {
                    code: "ip_denied",
                    message: "the platform console is not reachable from your address".into(),
                });
            }
            if !principal.user().is_some_and(|u| u.is_platform_admin) {
                return Err(Error::Forbidden { code: "forbidden", message: "platform administrators only".into() });
            }
        }
        Access::Tenant(need) => {
            let tenant = tenant.ok_or_else(|| Error::Internal("tenant route without tenant".into()))?;
            let (action, resource) = match need {
                Need::Member => {
                    auth::standing(&state.app, &principal, tenant)?;
                    return Ok(Some(principal));
                }
                Need::Area(area, action) => (action, Resource::Area(area)),
                Need::Table(action) => {
                    let table = matched
                        .params
                        .iter()
                        .find(|(k, _)| *k == "table")
                        .map(|(_, v)| v.as_str())
                        .ok_or_else(|| Error::Internal("table route without {table}".into()))?;
                    (action, Resource::Table(table))
                }
            };
            auth::authorize(&state.app, &principal, tenant, action, resource)?;
        }
    }
    Ok(Some(principal))
}

/// Picks the route and, for tenant routes, the tenant. Tenant signals (path, `X-Tenant`,
/// `Host`) must agree; a conflict is a 400, never a guess.
pub(super) fn route<'s>(state: &'s ServerState, req: &Req) -> Result<(Matched<'s>, Option<Arc<TenantRecord>>)> {
    let segs = &req.segments;
    if segs.len() >= 4 && segs[1] == "admin" && segs[2] == "t" {
        // Admin pages name their tenant in the path only.
        let tenant = lookup(state, req, &Slug::parse(&segs[3])?)?;
        let matched = state.router.find(Scope::TenantUi, req.method, &segs[4..])?;
        return Ok((matched, Some(tenant)));
    }
    if let Some(name) = legacy_analytics(segs) {
        return route_legacy_analytics(state, req, name);
    }
    let path_form = segs.len() >= 5 && segs[1] == "api" && segs[2] == "v1" && segs[3] == "t";
    let mut signals: Vec<Arc<TenantRecord>> = Vec::new();
    let mut named: Vec<Slug> = Vec::new();
    if path_form {
        named.push(Slug::parse(&segs[4])?);
    }
    if let Some(h) = req.header("x-tenant") {
        named.push(Slug::parse(h.trim())?);
    }
    let host = resolve::host_signal(req.header("host"), state.app.config.base_domain.as_deref())?;
    let rest: &[String] = if path_form {
        &segs[5..]
    } else {
        match state.router.find(Scope::Global, req.method, segs) {
            Ok(m) => return Ok((m, None)),
            Err(Error::NoRoute) => {}
            Err(e) => return Err(e),
        }
        let has_signal = !named.is_empty() || host != HostSignal::None;
        if !(has_signal && segs.len() >= 3 && segs[1] == "api" && segs[2] == "v1") {
            return Err(Error::NoRoute);
        }
        &segs[3..]
    };
    if let HostSignal::Subdomain(s) = &host {
        named.push(s.clone());
    }
    for slug in &named {
        let t = lookup(state, req, slug)?;
        signals.push(t);
    }
    if let HostSignal::CustomDomain(d) = &host {
        // An unknown host name is not a tenant signal (the server may be reached by any name).
        match state.app.directory.by_domain(&state.app.catalog, d)? {
            Some(t) => signals.push(t),
            None => domain_elsewhere(state, req, d)?,
        }
    }
    let tenant = signals.first().cloned().ok_or(Error::NoRoute)?;
    if signals.iter().any(|t| t.id != tenant.id) {
        return Err(Error::invalid("tenant_conflict", "the request names more than one tenant (path, X-Tenant, Host)"));
    }
    let matched = state.router.find(Scope::Tenant, req.method, rest)?;
    Ok((matched, Some(tenant)))
}

/// `/analytics/api/{overview,usage-trends,comparative}`: the paths the Flask-AppBuilder
/// extension's users know. Returns the name when `segs` is one of them.
fn legacy_analytics(segs: &[String]) -> Option<&str> {
    match segs {
        [root, a, b, name] if root.is_empty() && a == "analytics" && b == "api" => {
            ["overview", "usage-trends", "comparative"].contains(&name.as_str()).then_some(name.as_str())
        }
        _ => None,
    }
}

/// The tenant comes from `X-Tenant`, the host or `?tenant=` (they must agree), and the request
/// is the tenant route `/analytics/{name}`; with none of them it is the platform's
/// `/api/v1/platform/analytics/{name}` (platform admins only; there is no platform comparison).
fn route_legacy_analytics<'s>(
    state: &'s ServerState,
    req: &Req,
    name: &str,
) -> Result<(Matched<'s>, Option<Arc<TenantRecord>>)> {
    let mut named: Vec<Slug> = Vec::new();
    if let Some(h) = req.header("x-tenant") {
        named.push(Slug::parse(h.trim())?);
    }
    if let Some(q) = req.query_param("tenant") {
        named.push(Slug::parse(q.trim())?);
    }
    let host = resolve::host_signal(req.header("host"), state.app.config.base_domain.as_deref())?;
    if let HostSignal::Subdomain(s) = &host {
        named.push(s.clone());
    }
    let mut signals: Vec<Arc<TenantRecord>> = Vec::new();
    for slug in &named {
        signals.push(lookup(state, req, slug)?);
    }
    if let HostSignal::CustomDomain(d) = &host {
        match state.app.directory.by_domain(&state.app.catalog, d)? {
            Some(t) => signals.push(t),
            None => domain_elsewhere(state, req, d)?,
        }
    }
    let Some(tenant) = signals.first().cloned() else {
        if name == "comparative" {
            return Err(Error::invalid(
                "tenant_required",
                "comparative compares one tenant with its peers: name it with X-Tenant, the host or ?tenant=",
            ));
        }
        let path: Vec<String> =
            ["", "api", "v1", "platform", "analytics", name].iter().map(|s| s.to_string()).collect();
        return Ok((state.router.find(Scope::Global, req.method, &path)?, None));
    };
    if signals.iter().any(|t| t.id != tenant.id) {
        return Err(Error::invalid(
            "tenant_conflict",
            "the request names more than one tenant (X-Tenant, ?tenant=, Host)",
        ));
    }
    let rest = ["analytics".to_string(), name.to_string()];
    Ok((state.router.find(Scope::Tenant, req.method, &rest)?, Some(tenant)))
}

/// Active or suspended tenant by slug; unknown and deleted tenants are the same 404, unless
/// the cluster directory says another node holds it (then 307/421 there).
pub(super) fn lookup(state: &ServerState, req: &Req, slug: &Slug) -> Result<Arc<TenantRecord>> {
    match state.app.directory.by_slug(&state.app.catalog, slug)? {
        Some(t) if t.status != TenantStatus::Deleted => {
            // A tenant the directory gives to another node (taken over while this node was
            // down) is not answered here; one being moved away still is (writes get 503).
            if let Some(c) = state.app.cluster.as_ref() {
                if c.fenced(slug.as_str()).is_some() && !state.app.store.is_frozen(&t.id) {
                    let placed = c.locate(slug.as_str());
                    if let Some(e) = elsewhere(state, req, placed) {
                        return Err(e);
                    }
                }
            }
            Ok(t)
        }
        _ => {
            let placed = state.app.cluster.as_ref().and_then(|c| c.locate(slug.as_str()));
            Err(elsewhere(state, req, placed).unwrap_or_else(|| Error::NotFound(format!("tenant {:?}", slug.as_str()))))
        }
    }
}

/// A tenant on a custom domain this node does not hold, when the directory knows its node.
fn domain_elsewhere(state: &ServerState, req: &Req, domain: &str) -> Result<()> {
    let placed = state.app.cluster.as_ref().and_then(|c| c.locate_domain(domain));
    elsewhere(state, req, placed).map_or(Ok(()), Err)
}

/// The redirect to the node that holds a tenant, when that is another node.
fn elsewhere(state: &ServerState, req: &Req, placed: Option<crate::cluster::Placement>) -> Option<Error> {
    let cluster = state.app.cluster.as_ref()?;
    let p = placed?;
    let node = cluster.elsewhere(&p)?;
    cluster.redirects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut location = format!("{}{}", node.url.trim_end_matches('/'), req.raw_path);
    for (i, (k, v)) in req.query.iter().enumerate() {
        let sep = if i == 0 { '?' } else { '&' };
        location.push_str(&format!("{sep}{}={}", crate::util::percent_encode(k), crate::util::percent_encode(v)));
    }
    if req.method.is_write() && cluster.settling(&p.slug) {
        // Moved away a moment ago and the router has not caught up: retry shortly, through it.
        return Some(Error::TenantMoving);
    }
    let retry_safe = matches!(req.method, Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete);
    Some(Error::Elsewhere { slug: p.slug, node: node.name.clone(), location, retry_safe })
}
