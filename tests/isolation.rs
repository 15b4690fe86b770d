//! Cross-tenant isolation: walks the router's route table and calls every tenant route of
//! tenant B with the credentials of tenant A (session, API key, platform admin), by path and by
//! `X-Tenant` header. Each must answer 404 with none of B's data, and 401 without credentials.
//! A new route is covered without editing this test; a new `{param}` needs a value below. The
//! walk (routes, paths, bodies) is `tenantd::check::walk`, the one `tenantd check` runs.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::{TestServer, PASSWORD};
use serde_json::json;
use tenantd::check::walk::{self, Values};
use tenantd::http::router::{Access, Scope};

const SECRET: &str = "Globex Secret Customer";
/// Tenant B's invoice number.
const B_INVOICE: &str = "INV-GLOBEX-1";
/// The index advice `world()` leads to in B.
const ADVICE: &str = "idx_advised_customers_company";
/// The smallest PNG signature + IHDR start: enough for the magic-number check.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";

struct World {
    s: TestServer,
    a_owner: String,
    a_key: String,
    root: String,
    b_owner: String,
    b_customer: i64,
    b_member: i64,
    b_key_id: String,
}

fn world() -> World {
    let s = TestServer::start();
    let a_owner = s.token("owner@acme.test", "acme", "owner");
    let b_owner = s.token("owner@globex.test", "globex", "owner");
    let b_member = s.member("staff@globex.test", "globex", "member");
    let r =
        s.post_json("/api/v1/t/globex/customers", Some(&b_owner), &json!({"name": SECRET, "email": "vip@globex.test"}));
    let b_customer = r.json()["id"].as_i64().unwrap();
    let r = s.post_json("/api/v1/t/globex/api-keys", Some(&b_owner), &json!({"name": "b", "scope": "admin"}));
    let b_key_id = r.json()["id"].as_str().unwrap().to_string();
    let auth = format!("Bearer {b_owner}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "image/png")];
    assert_eq!(s.client().request("PUT", "/api/v1/t/globex/settings/logo", &headers, PNG).unwrap().status, 200);
    let r = s.call(
        "PUT",
        "/api/v1/t/globex/roles/auditor",
        Some(&b_owner),
        Some(&json!({"permissions": ["can_read:customers"]})),
    );
    assert_eq!(r.status, 200);
    let r = s.post_json("/api/v1/t/acme/api-keys", Some(&a_owner), &json!({"name": "a", "scope": "admin"}));
    let a_key = r.json()["key"].as_str().unwrap().to_string();
    // A filter on an unindexed column: B's query monitor now has index advice to apply.
    assert_eq!(s.get_as("/api/v1/t/globex/customers?company=Initech", &b_owner).status, 200);
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    // One invoice of B's, for the billing routes.
    let globex = s.app.tenant(&tenantd::ids::Slug::parse("globex").unwrap()).unwrap();
    // A snapshot of B's, for the backup routes.
    tenantd::backup::create(&s.app, &globex, tenantd::backup::Kind::Scheduled).unwrap();
    let invoice = tenantd::catalog::billing::Invoice {
        id: 0,
        number: B_INVOICE.into(),
        tenant_id: globex.id.to_string(),
        subscription_id: None,
        status: "open".into(),
        currency: "usd".into(),
        period_start: 0,
        period_end: 1,
        subtotal_cents: 4200,
        tax_rate_percent: 0.0,
        tax_cents: 0,
        total_cents: 4200,
        issued_at: 1,
        due_at: 2,
        paid_at: None,
        voided_at: None,
        lines: Vec::new(),
    };
    tenantd::catalog::billing::insert_invoice(&s.app.catalog.conn().unwrap(), &invoice).unwrap();
    World { s, a_owner, a_key, root, b_owner, b_customer, b_member, b_key_id }
}

/// B's values for the walker (`tenantd check` discovers the same ones over HTTP).
fn values(w: &World) -> Values {
    let mut v = Values {
        member_email: "owner@acme.test".into(),
        login_email: "owner@globex.test".into(),
        login_password: PASSWORD.into(),
        // B's own plan: a change that changes nothing succeeds for B and must be refused for A.
        plan: "free".into(),
        advice: Some(ADVICE.into()),
        // B has a scheduled snapshot (world); the forks' slugs are new.
        fork_slugs: ("globex-fork".into(), "globex-page-fork".into()),
        ..Values::default()
    };
    v.set("table", "customers")
        .set("id", w.b_customer.to_string())
        .set("user_id", w.b_member.to_string())
        .set("key_id", w.b_key_id.clone())
        .set("role", "auditor")
        .set("number", B_INVOICE)
        // B's logo is one of its assets.
        .set("sha256", tenantd::util::sha256_hex(PNG));
    v
}

/// The concrete path below the tenant root for a pattern, with B's ids.
fn fill(w: &World, pattern: &str) -> String {
    walk::fill(pattern, &values(w)).unwrap()
}

/// A body that would succeed if authorization let it through.
fn body(w: &World, method: &str, pattern: &str) -> Option<serde_json::Value> {
    walk::api_body(method, pattern, &values(w))
}

fn tenant_routes() -> Vec<(String, String, Access)> {
    routes_of(Scope::Tenant)
}

fn routes_of(scope: Scope) -> Vec<(String, String, Access)> {
    walk::routes(&tenantd::api::router(), scope)
        .into_iter()
        .map(|r| (r.method.to_string(), r.pattern.to_string(), r.access))
        .collect()
}

/// The CSRF token of a session (pages need it on every form).
fn csrf_of(w: &World, token: &str) -> String {
    let conn = w.s.app.catalog.conn().unwrap();
    let hash = tenantd::util::sha256_hex(token.as_bytes());
    conn.query_row("SELECT csrf_token FROM sessions WHERE token_hash = ?1", [hash], |r| r.get(0)).unwrap()
}

/// A form body that would succeed on the page route if authorization let it through.
fn form_body(w: &World, pattern: &str, csrf: &str) -> String {
    walk::form_body(pattern, csrf, &values(w))
}

fn page_call(
    w: &World,
    method: &str,
    path: &str,
    session: Option<&str>,
    form: &str,
) -> tenantd::http::client::Response {
    let cookie = session.map(|t| format!("tenantd_session={t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = &cookie {
        headers.push(("Cookie", c));
    }
    let body = if method == "POST" { form.as_bytes() } else { b"" };
    if method == "POST" {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    w.s.client().request(method, path, &headers, body).unwrap()
}

#[test]
fn every_tenant_page_hides_tenant_b_from_tenant_a() {
    let w = world();
    let pages = routes_of(Scope::TenantUi);
    assert!(pages.len() >= 10, "{} page routes", pages.len());
    for (method, pattern, _) in &pages {
        let path = format!("/admin/t/globex{}", fill(&w, pattern));
        for (who, token) in [("A's owner", &w.a_owner), ("platform admin", &w.root)] {
            let body = form_body(&w, pattern, &csrf_of(&w, token));
            let r = page_call(&w, method, &path, Some(token), &body);
            assert_eq!(r.status, 404, "{method} {path} as {who}: {}", r.status);
            assert!(!r.text().contains(SECRET), "{method} {path} leaked to {who}");
        }
        let r = page_call(&w, method, &path, None, &form_body(&w, pattern, ""));
        assert_eq!(r.status, 303, "{method} {path} without a session goes to sign-in");
        assert!(r.header("location").unwrap().starts_with("/admin/login"));
    }
    let t = &w.b_owner;
    assert_eq!(w.s.get_as(&format!("/api/v1/t/globex/customers/{}", w.b_customer), t).json()["name"], SECRET);
    assert_ne!(w.s.get_as("/api/v1/t/globex/settings", t).json()["display_name"], "Hacked");
    assert_eq!(w.s.get_as("/api/v1/t/globex/members", t).json()["items"].as_array().unwrap().len(), 2);
}

#[test]
fn pages_of_a_members_own_tenant_work_and_need_csrf() {
    let w = world();
    let csrf = csrf_of(&w, &w.b_owner);
    for (method, pattern, _) in routes_of(Scope::TenantUi) {
        if pattern.ends_with("/remove") || pattern.ends_with("/revoke") || pattern.ends_with("/delete") {
            continue;
        }
        let path = format!("/admin/t/globex{}", fill(&w, &pattern));
        if method == "POST" {
            let r = page_call(&w, "POST", &path, Some(&w.b_owner), &form_body(&w, &pattern, "wrong"));
            assert_eq!(r.status, 403, "{path} without the right CSRF token");
        }
        let body = match pattern.as_str() {
            "/members" => format!("_csrf={csrf}&email=owner%40acme.test&role=viewer"),
            "/members/{user_id}/role" => format!("_csrf={csrf}&role=viewer"),
            _ => form_body(&w, &pattern, &csrf),
        };
        let r = if pattern == "/settings/logo" {
            let mut body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"l.png\"\r\nContent-Type: image/png\r\n\r\n").into_bytes();
            body.extend_from_slice(PNG);
            body.extend_from_slice(b"\r\n--XyZ--\r\n");
            let cookie = format!("tenantd_session={}", w.b_owner);
            let headers = [("Cookie", cookie.as_str()), ("Content-Type", "multipart/form-data; boundary=XyZ")];
            w.s.client().request("POST", &path, &headers, &body).unwrap()
        } else {
            page_call(&w, &method, &path, Some(&w.b_owner), &body)
        };
        assert!(r.status < 400, "{method} {path} as B's owner: {} {}", r.status, r.text());
        assert!(
            r.header("location").is_none_or(|l| !l.contains("error=")),
            "{method} {path}: {:?}",
            r.header("location")
        );
    }
}

#[test]
fn every_tenant_route_hides_tenant_b_from_tenant_a() {
    let w = world();
    let routes = tenant_routes();
    assert!(routes.len() >= 15, "the walk covers the route table ({} routes)", routes.len());
    let mut probed = 0;
    for (method, pattern, access) in &routes {
        if *access == Access::TenantPublic {
            continue; // public by design (name and branding only)
        }
        let rest = fill(&w, pattern);
        let by_path = format!("/api/v1/t/globex{}", rest.trim_end_matches('/'));
        let b = body(&w, method, pattern);
        for (who, cred) in
            [("A's owner session", &w.a_owner), ("A's admin API key", &w.a_key), ("platform admin", &w.root)]
        {
            let r = w.s.call(method, &by_path, Some(cred), b.as_ref());
            assert_eq!(r.status, 404, "{method} {by_path} as {who}: {}", r.text());
            assert!(!r.text().contains(SECRET), "{method} {by_path} leaked data to {who}");
            // The same through the X-Tenant header.
            let auth = format!("Bearer {cred}");
            let by_header = format!("/api/v1{}", if rest.is_empty() { "/".to_string() } else { rest.clone() });
            let bytes = b.as_ref().map(|v| serde_json::to_vec(v).unwrap()).unwrap_or_default();
            let mut headers = vec![("Authorization", auth.as_str()), ("X-Tenant", "globex")];
            if b.is_some() {
                headers.push(("Content-Type", "application/json"));
            }
            let r = w.s.client().request(method, &by_header, &headers, &bytes).unwrap();
            assert_eq!(r.status, 404, "{method} {by_header} (X-Tenant) as {who}: {}", r.text());
            probed += 1;
        }
        let r = w.s.call(method, &by_path, None, b.as_ref());
        assert_eq!(r.status, 401, "{method} {by_path} without credentials: {}", r.text());
    }
    assert!(probed >= 40, "{probed} probes");

    // Nothing of B changed.
    let t = &w.b_owner;
    let c = w.s.get_as(&format!("/api/v1/t/globex/customers/{}", w.b_customer), t);
    assert_eq!(c.json()["name"], SECRET);
    assert_eq!(w.s.get_as("/api/v1/t/globex/customers", t).json()["total"], 1);
    let members = w.s.get_as("/api/v1/t/globex/members", t).json();
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let keys = w.s.get_as("/api/v1/t/globex/api-keys", t).json();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1);
    assert!(keys["items"][0]["revoked_at"].is_null());
    assert_ne!(w.s.get_as("/api/v1/t/globex/settings", t).json()["display_name"], "Hacked");
    assert_eq!(w.s.get_as("/api/v1/t/globex/roles", t).json()["items"].as_array().unwrap().len(), 5);
}

#[test]
fn a_members_own_tenant_still_works_for_every_route() {
    // The walk above would pass trivially if every route always answered 404: prove the same
    // requests succeed for B's owner.
    let w = world();
    for (method, pattern, _) in tenant_routes() {
        if method == "DELETE" {
            continue; // deleting B's fixtures would break later probes
        }
        let path = format!("/api/v1/t/globex{}", fill(&w, &pattern).trim_end_matches('/'));
        let b = match (method.as_str(), pattern.as_str()) {
            ("POST", "/members") => Some(json!({"email": "owner@acme.test", "role": "viewer"})),
            ("PATCH", "/members/{user_id}") => Some(json!({"role": "viewer"})),
            _ => body(&w, &method, &pattern),
        };
        let r = if pattern == "/settings/logo" {
            let auth = format!("Bearer {}", w.b_owner);
            let headers = [("Authorization", auth.as_str()), ("Content-Type", "image/png")];
            w.s.client().request(&method, &path, &headers, PNG).unwrap()
        } else {
            w.s.call(&method, &path, Some(&w.b_owner), b.as_ref())
        };
        assert!(r.status < 300, "{method} {path} as B's owner: {} {}", r.status, r.text());
    }
}
