//! Threat detection: credential stuffing (with a temporary address block), brute force,
//! enumeration, mass delete, admin sign-in from a new address; alerts listed for tenant and
//! platform admins.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::time::Duration;

use common::ServerCli as _;
use common::{TestServer, PASSWORD};
use serde_json::json;

/// Alerts are recorded by a background thread: wait (bounded) until one of `kind` is listed.
fn wait_alert(s: &TestServer, path: &str, token: &str, kind: &str) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    let seen = common::within(Duration::from_secs(3), || {
        let v = s.get_as(path, token).json();
        match v["items"].as_array().and_then(|a| a.iter().find(|i| i["kind"] == kind)) {
            Some(a) => {
                found = a.clone();
                true
            }
            None => false,
        }
    });
    assert!(seen.is_some(), "no {kind} alert at {path}");
    found
}

fn root(s: &TestServer) -> String {
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    s.login("root@ops.test")
}

#[test]
fn credential_stuffing_blocks_the_address_and_alerts() {
    let s = TestServer::start_with(|c| c.threats.stuffing_accounts = 3);
    let r = root(&s);
    s.member("real@acme.test", "acme", "owner");
    for e in ["x1@a.test", "x2@b.test", "x3@c.test"] {
        assert_eq!(
            s.post_json("/api/v1/auth/login", None, &json!({"email": e, "password": "wrong-password-9"})).status,
            401
        );
    }
    let blocked = s.post_json("/api/v1/auth/login", None, &json!({"email": "real@acme.test", "password": PASSWORD}));
    assert_eq!(blocked.status, 429, "even a right password from a blocked address");
    assert!(blocked.json()["error"]["message"].as_str().unwrap().contains("blocked"));
    let a = wait_alert(&s, "/api/v1/platform/alerts", &r, "credential_stuffing");
    assert_eq!(a["source"], "127.0.0.1");
    assert!(a["slug"].is_null(), "platform-wide");
}

#[test]
fn a_locked_account_is_reported_as_brute_force() {
    let s = TestServer::start();
    let r = root(&s);
    s.member("ada@acme.test", "acme", "owner");
    for _ in 0..5 {
        s.post_json("/api/v1/auth/login", None, &json!({"email": "ada@acme.test", "password": "wrong-password-9"}));
    }
    wait_alert(&s, "/api/v1/platform/alerts", &r, "brute_force");
}

#[test]
fn enumeration_and_mass_delete_are_tenant_alerts() {
    let s = TestServer::start_with(|c| {
        c.threats.enumeration_misses = 5;
        c.threats.mass_delete = 3;
    });
    let owner = s.token("ada@acme.test", "acme", "owner");
    let probe = s.token("eve@acme.test", "acme", "member");
    for i in 0..5 {
        assert_eq!(s.get_as(&format!("/api/v1/t/acme/customers/{}", 1000 + i), &probe).status, 404);
    }
    let a = wait_alert(&s, "/api/v1/t/acme/alerts", &owner, "enumeration");
    assert!(a["principal"].as_str().unwrap().starts_with("user:"));
    for i in 0..3 {
        let id = s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": format!("C{i}")})).json()["id"]
            .as_i64()
            .unwrap();
        assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&owner), None).status, 204);
    }
    wait_alert(&s, "/api/v1/t/acme/alerts", &owner, "mass_delete");
    // Members without audit access do not see alerts; other tenants never do.
    assert_eq!(s.get_as("/api/v1/t/acme/alerts", &probe).status, 403);
}

#[test]
fn an_admin_signing_in_from_a_new_address_is_reported() {
    let s = TestServer::start_with(|c| c.trusted_proxies = vec!["127.0.0.1".into()]);
    let owner = s.token("ada@acme.test", "acme", "owner"); // first address: no alert
    let login_from = |ip: &str| {
        let body = serde_json::to_vec(&json!({"email": "ada@acme.test", "password": PASSWORD})).unwrap();
        s.client()
            .request(
                "POST",
                "/api/v1/auth/login",
                &[("Content-Type", "application/json"), ("X-Forwarded-For", ip)],
                &body,
            )
            .unwrap()
    };
    assert_eq!(login_from("198.51.100.23").status, 200);
    let a = wait_alert(&s, "/api/v1/t/acme/alerts", &owner, "new_admin_address");
    assert_eq!(a["source"], "198.51.100.23");
}

/// The tenant's audit entries with `action`, newest first.
fn audit_entries(s: &TestServer, token: &str, action: &str) -> Vec<serde_json::Value> {
    let v = s.get_as(&format!("/api/v1/t/acme/audit?action={action}"), token).json();
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn sign_in_attempts_are_in_the_chains_of_the_users_tenants() {
    let s = TestServer::start();
    let owner = s.token("ada@acme.test", "acme", "owner");
    s.member("bob@acme.test", "acme", "member");
    let bad = json!({"email": "bob@acme.test", "password": "wrong-password-9"});
    assert_eq!(s.post_json("/api/v1/auth/login", None, &bad).status, 401);
    let bob = s.login("bob@acme.test");
    assert!(!bob.is_empty());
    let failed = audit_entries(&s, &owner, "auth.login_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let f = &failed[0];
    assert_eq!(f["outcome"], "denied");
    assert_eq!(f["resource"], "bob@acme.test");
    assert_eq!(f["source"], "127.0.0.1");
    assert!(f["details"].to_string().contains("wrong_password"), "{f}");
    assert!(!f["details"].to_string().contains("wrong-password-9"), "never the password");
    assert!(f["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(audit_entries(&s, &owner, "auth.login").iter().any(|e| e["resource"] == "bob@acme.test"));
    // Another tenant's chain knows nothing of bob.
    let other = s.token("zed@globex.test", "globex", "owner");
    let v = s.get_as("/api/v1/t/globex/audit?action=auth.login_failed", &other).json();
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    // Unknown accounts go to the platform chain, with the email's domain only.
    let ghost = json!({"email": "ghost@nowhere.test", "password": "wrong-password-9"});
    assert_eq!(s.post_json("/api/v1/auth/login", None, &ghost).status, 401);
    let details: String = s
        .app
        .catalog
        .conn()
        .unwrap()
        .query_row(
            "SELECT details FROM platform_audit WHERE action = 'auth.login_failed' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(details.contains("nowhere.test") && !details.contains("ghost"), "{details}");
    // The chains still verify.
    let o = s.cli(&["audit", "verify"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
}

#[test]
fn mass_export_is_a_tenant_alert_and_in_its_audit_trail() {
    let s = TestServer::start_with(|c| c.threats.mass_export_rows = 30);
    let owner = s.token("ada@acme.test", "acme", "owner");
    let reader = s.token("eve@acme.test", "acme", "member");
    for i in 0..20 {
        assert_eq!(
            s.post_json("/api/v1/t/acme/customers", Some(&owner), &json!({"name": format!("C{i}")})).status,
            201
        );
    }
    // 20 rows: under the threshold. 40: over it.
    assert_eq!(s.get_as("/api/v1/t/acme/customers?per_page=100", &reader).status, 200);
    assert!(s.get_as("/api/v1/t/acme/alerts", &owner).json()["items"].as_array().unwrap().is_empty());
    assert_eq!(s.get_as("/api/v1/t/acme/customers?per_page=100", &reader).status, 200);
    let a = wait_alert(&s, "/api/v1/t/acme/alerts", &owner, "mass_export");
    assert!(a["principal"].as_str().unwrap().starts_with("user:"));
    let seen = common::within(Duration::from_secs(3), || {
        audit_entries(&s, &owner, "security.alert").iter().any(|e| e["resource"] == "mass_export")
    });
    assert!(seen.is_some(), "the alert is in the tenant's own chain");
}
