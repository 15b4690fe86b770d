//! Tenant security policy over HTTP and the CLI: IP allow/deny lists (and who may set
//! X-Forwarded-For), API keys off, tenant session limits, an audit entry per denial.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::ServerCli as _;
use common::{stderr, TestServer};
use serde_json::json;

fn put_policy(s: &TestServer, token: &str, policy: serde_json::Value) -> tenantd::http::client::Response {
    s.call("PUT", "/api/v1/t/acme/security-policy", Some(token), Some(&policy))
}

#[test]
fn a_deny_listed_address_gets_403_and_an_audit_entry() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let other = s.token("b@globex.test", "globex", "owner");
    let r = put_policy(&s, &t, json!({"ip_deny": ["127.0.0.0/8"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ip_deny"], json!(["127.0.0.0/8"]));
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "ip_denied");
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &other).status, 200, "other tenants unaffected");
    // The denial is in acme's own audit trail (read straight from the file: the API is closed to us).
    let tenant = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let conn = tenantd::db::open_read_only(&s.app.paths.tenant_db(&tenant.id)).unwrap();
    let (action, source): (String, String) = conn
        .query_row("SELECT action, source FROM _tenantd_audit ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((action.as_str(), source.as_str()), ("security.ip_denied", "127.0.0.1"));
    // The CLI can lift it.
    let o = s.cli(&["policy", "set", "acme", "--ip-deny", ""]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ok =
        common::within(std::time::Duration::from_secs(1), || s.get_as("/api/v1/t/acme/customers", &t).status == 200);
    assert!(ok.is_some());
}

#[test]
fn an_allow_list_admits_only_what_it_lists() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(put_policy(&s, &t, json!({"ip_allow": ["10.0.0.0/8", "2001:db8::/32"]})).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).json()["error"]["code"], "ip_denied");
    // Pages too.
    let r = s.client().request("GET", "/admin/t/acme/", &[("Cookie", &format!("tenantd_session={t}"))], b"").unwrap();
    assert_eq!(r.status, 403);
}

/// A customers list as `token`, claiming to come from `ip` through X-Forwarded-For.
fn get_via(s: &TestServer, token: &str, ip: &str) -> u16 {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("X-Forwarded-For", ip)];
    s.client().request("GET", "/api/v1/t/acme/customers", &headers, b"").unwrap().status
}

fn deny_documentation_range(s: &TestServer) -> String {
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(put_policy(s, &t, json!({"ip_deny": ["203.0.113.0/24"]})).status, 200);
    t
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    // Untrusted peer: a spoofed header changes nothing.
    let s = TestServer::start();
    let t = deny_documentation_range(&s);
    assert_eq!(get_via(&s, &t, "203.0.113.7"), 200, "spoofed X-Forwarded-For from an untrusted peer is ignored");
    // Behind a trusted proxy (127.0.0.1), the forwarded address is the client.
    let s = TestServer::start_with(|c| c.trusted_proxies = vec!["127.0.0.1".into()]);
    let t = deny_documentation_range(&s);
    assert_eq!(get_via(&s, &t, "203.0.113.7"), 403);
    assert_eq!(get_via(&s, &t, "198.51.100.1"), 200);
}

#[test]
fn api_keys_can_be_switched_off() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let key = s.post_json("/api/v1/t/acme/api-keys", Some(&t), &json!({"name": "k", "scope": "read"})).json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &key).status, 200);
    assert_eq!(put_policy(&s, &t, json!({"api_keys_allowed": false})).status, 200);
    let r = s.get_as("/api/v1/t/acme/customers", &key);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "api_keys_disabled");
}

#[test]
fn tenant_session_lifetime_is_enforced() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(put_policy(&s, &t, json!({"session_ttl_minutes": 60})).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    let conn = s.app.catalog.conn().unwrap();
    let hash = tenantd::util::sha256_hex(t.as_bytes());
    conn.execute("UPDATE sessions SET created_at = created_at - 7200 WHERE token_hash = ?1", [&hash]).unwrap();
    drop(conn);
    s.app.invalidate_caches();
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "session_expired");
}

#[test]
fn bad_policies_are_refused() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    for bad in [
        json!({"ip_deny": ["not-an-ip"]}),
        json!({"ip_allow": ["10.0.0.0/40"]}),
        json!({"session_ttl_minutes": 0}),
        json!({"surprise": 1}),
    ] {
        assert_eq!(put_policy(&s, &t, bad.clone()).status, 400, "{bad}");
    }
    let o = s.cli(&["policy", "set", "acme", "--ip-deny", "999.1.1.1"]);
    assert_eq!(o.status.code(), Some(2));
    let o = s.cli(&["policy", "show", "acme", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["api_keys_allowed"], true);
}

#[test]
fn keys_left_out_of_a_put_take_open_defaults() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let r = put_policy(&s, &t, json!({"ip_deny": ["192.0.2.0/24"]}));
    assert_eq!(r.json()["api_keys_allowed"], true);
    assert_eq!(r.json()["require_mfa"], false);
}

#[test]
fn platform_console_address_list_and_hsts() {
    let s = TestServer::start_with(|c| {
        c.platform_ip_allow = vec!["10.0.0.0/8".into()];
        c.hsts_max_age_seconds = Some(31_536_000);
    });
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.get_as("/api/v1/platform/tenants", &root);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "ip_denied");
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
}

#[test]
fn cors_only_for_the_tenants_origins() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let r = put_policy(&s, &t, json!({"cors_origins": ["https://app.acme.test"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(put_policy(&s, &t, json!({"cors_origins": ["app.acme.test/path"]})).status, 400);
    let auth = format!("Bearer {t}");
    let mut c = s.client();
    let ok = c
        .request(
            "GET",
            "/api/v1/t/acme/customers",
            &[("Authorization", &auth), ("Origin", "https://app.acme.test")],
            b"",
        )
        .unwrap();
    assert_eq!(ok.header("access-control-allow-origin"), Some("https://app.acme.test"));
    let other = c
        .request("GET", "/api/v1/t/acme/customers", &[("Authorization", &auth), ("Origin", "https://evil.test")], b"")
        .unwrap();
    assert!(other.header("access-control-allow-origin").is_none());
    let pre = c
        .request(
            "OPTIONS",
            "/api/v1/t/acme/customers",
            &[("Origin", "https://app.acme.test"), ("Access-Control-Request-Method", "POST")],
            b"",
        )
        .unwrap();
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-methods"), Some("GET, POST"));
    let pre = c.request("OPTIONS", "/api/v1/t/acme/customers", &[("Origin", "https://evil.test")], b"").unwrap();
    assert!(pre.header("access-control-allow-origin").is_none());
    assert_eq!(
        c.request("OPTIONS", "/api/v1/t/ghost/customers", &[("Origin", "https://app.acme.test")], b"").unwrap().status,
        404
    );
}
