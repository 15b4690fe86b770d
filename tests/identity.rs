//! Identity over HTTP and the CLI: login, uniform failures, lockout, sessions, API keys, MFA,
//! members and roles.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::ServerCli as _;
use common::{stderr, stdout, TestServer, PASSWORD};
use serde_json::json;
use tenantd::auth::totp;

fn login(s: &TestServer, email: &str, pw: &str) -> tenantd::http::client::Response {
    s.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": pw}))
}

#[test]
fn login_returns_token_expiry_and_user() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "admin");
    let r = login(&s, "ada@acme.test", PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let token = v["token"].as_str().unwrap();
    assert!(token.len() >= 64, "≥ 256 bits of randomness");
    assert!(v["expires_at"].as_i64().unwrap() > tenantd::util::now_unix());
    assert_eq!(v["user"]["email"], "ada@acme.test");
    assert_eq!(v["tenants"][0]["slug"], "acme");
    // The token is stored only as a hash.
    let conn = s.app.catalog.conn().unwrap();
    let stored: i64 =
        conn.query_row("SELECT count(*) FROM sessions WHERE token_hash = ?1", [token], |r| r.get(0)).unwrap();
    assert_eq!(stored, 0);
    let me = s.get_as("/api/v1/auth/me", token);
    assert_eq!(me.json()["user"]["email"], "ada@acme.test");
}

#[test]
fn wrong_password_and_unknown_email_answer_the_same() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "admin");
    let a = login(&s, "ada@acme.test", "wrong-password-123");
    let b = login(&s, "nobody@acme.test", "wrong-password-123");
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.json(), b.json(), "same code and message");
    assert_eq!(a.json()["error"]["code"], "invalid_credentials");
}

#[test]
fn repeated_failures_lock_the_account_with_retry_after() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "admin");
    for _ in 0..5 {
        assert_eq!(login(&s, "ada@acme.test", "wrong-password-123").status, 401);
    }
    let r = login(&s, "ada@acme.test", PASSWORD);
    assert_eq!(r.status, 429, "locked even with the right password");
    assert_eq!(r.json()["error"]["code"], "account_locked");
    assert!(r.header("retry-after").unwrap().parse::<i64>().unwrap() > 0);
}

#[test]
fn one_address_guessing_many_accounts_is_throttled() {
    let s = TestServer::start_with(|c| c.auth.address_max_failures = 5);
    for i in 0..5 {
        login(&s, &format!("u{i}@x.test"), "wrong-password-123");
    }
    let r = login(&s, "u9@x.test", "wrong-password-123");
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "too_many_attempts");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn logout_revokes_and_bad_tokens_are_401() {
    let s = TestServer::start();
    let t = s.token("ada@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    assert_eq!(s.call("POST", "/api/v1/auth/logout", Some(&t), None).status, 204);
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(s.get_as("/api/v1/t/acme/customers", "tds_0000").status, 401);
    assert_eq!(s.call("GET", "/api/v1/t/acme/customers", None, None).status, 401);
}

#[test]
fn idle_and_absolute_expiry() {
    let s = TestServer::start();
    let t = s.token("ada@acme.test", "acme", "owner");
    let hash = tenantd::util::sha256_hex(t.as_bytes());
    // Age the session in the catalog (time is data here, not a sleep).
    let conn = s.app.catalog.conn().unwrap();
    conn.execute("UPDATE sessions SET last_seen_at = last_seen_at - 3600 WHERE token_hash = ?1", [&hash]).unwrap();
    drop(conn);
    s.app.invalidate_caches();
    assert_eq!(s.get_as("/api/v1/auth/me", &t).status, 401, "idle for longer than 30 minutes");
    let t2 = s.login("ada@acme.test");
    let hash2 = tenantd::util::sha256_hex(t2.as_bytes());
    let conn = s.app.catalog.conn().unwrap();
    conn.execute("UPDATE sessions SET expires_at = 1 WHERE token_hash = ?1", [&hash2]).unwrap();
    drop(conn);
    s.app.invalidate_caches();
    assert_eq!(s.get_as("/api/v1/auth/me", &t2).status, 401, "past absolute expiry");
}

#[test]
fn api_keys_are_shown_once_scoped_bound_and_revocable() {
    let s = TestServer::start();
    let owner = s.token("ada@acme.test", "acme", "owner");
    s.create_tenant("globex");
    let r = s.post_json("/api/v1/t/acme/api-keys", Some(&owner), &json!({"name": "reporting", "scope": "read"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let list = s.get_as("/api/v1/t/acme/api-keys", &owner);
    assert!(!list.text().contains(&key), "the key is never listed");
    assert_eq!(list.json()["items"][0]["name"], "reporting");
    // Bearer and X-API-Key both work; read scope cannot write.
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &key).status, 200);
    let mut c = s.client();
    let r = c.request("GET", "/api/v1/t/acme/customers", &[("X-API-Key", &key)], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&key), &json!({"name": "x"})).status, 403);
    // Bound to its tenant: another tenant is a 404.
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &key).status, 404);
    // Keys cannot act as users.
    assert_eq!(s.get_as("/api/v1/auth/me", &key).status, 403);
    // last_used_at is recorded: listed at once, written to the catalog by the background flush
    // (with the usage counts) rather than by the request.
    let listed = s.get_as("/api/v1/t/acme/api-keys", &owner).json();
    assert!(listed["items"][0]["last_used_at"].is_i64());
    tenantd::limits::flush_usage(&s.app).unwrap();
    let stored: Option<i64> = s
        .app
        .catalog
        .conn()
        .unwrap()
        .query_row("SELECT last_used_at FROM api_keys WHERE id = ?1", [id.as_str()], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, listed["items"][0]["last_used_at"].as_i64());
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/api-keys/{id}"), Some(&owner), None).status, 204);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &key).status, 401, "revoked");
    // Per-table keys.
    let r = s.post_json(
        "/api/v1/t/acme/api-keys",
        Some(&owner),
        &json!({"name": "tasks", "scope": "write", "tables": ["tasks"]}),
    );
    let k2 = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(s.get_as("/api/v1/t/acme/tasks", &k2).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &k2).status, 403);
    let bad = s.post_json("/api/v1/t/acme/api-keys", Some(&owner), &json!({"name": "x", "scope": "root"}));
    assert_eq!(bad.status, 400);
}

fn current_code(secret: &str, offset_steps: i64) -> String {
    let now = tenantd::util::now_unix() + offset_steps * 30;
    format!("{:06}", totp::code(&totp::base32_decode(secret).unwrap(), now.div_euclid(30)))
}

#[test]
fn mfa_enrol_confirm_and_login_with_replay_protection_and_recovery_codes() {
    let s = TestServer::start();
    let t = s.token("ada@acme.test", "acme", "owner");
    let r = s.call("POST", "/api/v1/auth/mfa/enroll", Some(&t), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    assert!(r.json()["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let bad = s.post_json("/api/v1/auth/mfa/confirm", Some(&t), &json!({"totp": "000000"}));
    assert_eq!(bad.status, 400);
    let ok = s.post_json("/api/v1/auth/mfa/confirm", Some(&t), &json!({"totp": current_code(&secret, 0)}));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let codes: Vec<String> =
        ok.json()["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10);

    let r = login(&s, "ada@acme.test", PASSWORD);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "mfa_required");
    // The step used at confirmation cannot be replayed; the next one (within the window) can.
    let replay = s.post_json(
        "/api/v1/auth/login",
        None,
        &json!({"email": "ada@acme.test", "password": PASSWORD, "totp": current_code(&secret, 0)}),
    );
    assert_eq!(replay.status, 401, "{}", replay.text());
    assert_eq!(replay.json()["error"]["code"], "invalid_totp");
    let next = s.post_json(
        "/api/v1/auth/login",
        None,
        &json!({"email": "ada@acme.test", "password": PASSWORD, "totp": current_code(&secret, 1)}),
    );
    assert_eq!(next.status, 200, "{}", next.text());
    // Recovery codes work once.
    let rc = json!({"email": "ada@acme.test", "password": PASSWORD, "totp": codes[0]});
    assert_eq!(s.post_json("/api/v1/auth/login", None, &rc).status, 200);
    assert_eq!(s.post_json("/api/v1/auth/login", None, &rc).status, 401);
}

#[test]
fn tenants_can_require_mfa() {
    let s = TestServer::start();
    let owner = s.token("ada@acme.test", "acme", "owner");
    let member = s.token("bob@acme.test", "acme", "member");
    let r = s.call(
        "PATCH",
        "/api/v1/t/acme/settings",
        Some(&owner),
        Some(&json!({"require_mfa": true, "brand_color": "#224466"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["brand_color"], "#224466");
    let r = s.get_as("/api/v1/t/acme/customers", &member);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "mfa_required");
    // Everyone without MFA is held at the door until they enrol, owners included.
    assert_eq!(s.get_as("/api/v1/t/acme/settings", &owner).json()["error"]["code"], "mfa_required");
    assert_eq!(s.call("POST", "/api/v1/auth/mfa/enroll", Some(&owner), None).status, 200);
}

#[test]
fn settings_validate_what_reaches_pages() {
    let s = TestServer::start();
    let owner = s.token("ada@acme.test", "acme", "owner");
    for bad in [json!({"brand_color": "red;}"}), json!({"display_name": ""}), json!({"unknown": 1})] {
        let r = s.call("PATCH", "/api/v1/t/acme/settings", Some(&owner), Some(&bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[test]
fn members_and_custom_roles() {
    let s = TestServer::start();
    let owner = s.token("ada@acme.test", "acme", "owner");
    tenantd::auth::create_user(&s.app, "bob@acme.test", PASSWORD, false).unwrap();
    let r = s.post_json("/api/v1/t/acme/members", Some(&owner), &json!({"email": "bob@acme.test", "role": "viewer"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let bob = r.json()["user_id"].as_i64().unwrap();
    assert_eq!(
        s.post_json("/api/v1/t/acme/members", Some(&owner), &json!({"email": "bob@acme.test", "role": "viewer"}))
            .status,
        409
    );
    assert_eq!(
        s.post_json("/api/v1/t/acme/members", Some(&owner), &json!({"email": "ghost@acme.test", "role": "viewer"}))
            .status,
        400
    );
    // A custom role that may only read and create tasks.
    let r = s.call(
        "PUT",
        "/api/v1/t/acme/roles/tasker",
        Some(&owner),
        Some(&json!({"permissions": ["can_read:tasks", "can_create:tasks"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.call("PUT", "/api/v1/t/acme/roles/x", Some(&owner), Some(&json!({"permissions": ["can_fly:tasks"]}))).status,
        400
    );
    let r = s.call("PATCH", &format!("/api/v1/t/acme/members/{bob}"), Some(&owner), Some(&json!({"role": "tasker"})));
    assert_eq!(r.status, 200, "{}", r.text());
    let bt = s.login("bob@acme.test");
    assert_eq!(s.get_as("/api/v1/t/acme/tasks", &bt).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &bt).status, 403);
    // The last owner cannot be removed or demoted.
    let me = s.get_as("/api/v1/auth/me", &owner).json()["user"]["id"].as_i64().unwrap();
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/members/{me}"), Some(&owner), None).status, 409);
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/members/{bob}"), Some(&owner), None).status, 204);
    assert_eq!(s.get_as("/api/v1/t/acme/tasks", &bt).status, 404, "no longer a member: the tenant is invisible");
    let roles = s.get_as("/api/v1/t/acme/roles", &owner).json();
    assert_eq!(roles["items"].as_array().unwrap().len(), 5);
}

#[test]
fn platform_admins_manage_tenants_but_do_not_see_their_data() {
    let s = TestServer::start();
    s.create_tenant("acme");
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.get_as("/api/v1/platform/tenants", &root);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"][0]["slug"], "acme");
    let r = s.post_json("/api/v1/platform/tenants", Some(&root), &json!({"slug": "newco", "name": "NewCo"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &root).status, 404, "no membership, no data");
    let member = s.token("m@acme.test", "acme", "member");
    assert_eq!(s.get_as("/api/v1/platform/tenants", &member).status, 403);
}

#[test]
fn cli_user_commands() {
    let s = TestServer::start();
    s.create_tenant("acme");
    let o = s.cli(&["user", "create", "eve@acme.test", "--password", PASSWORD, "--tenant", "acme", "--role", "member"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.cli(&["user", "create", "weak@acme.test", "--password", "password"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at least"), "{}", stderr(&o));
    let o = s.cli(&["user", "create", "weak@acme.test", "--password", "1234567890"]);
    assert!(stderr(&o).contains("common"), "{}", stderr(&o));
    let o = s.cli(&["user", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["tenants"][0]["role"], "member");
    let o = s.cli(&["user", "reset-password", "eve@acme.test"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let pw = out.trim().rsplit(' ').next().unwrap().to_string();
    let r = login(&s, "eve@acme.test", &pw);
    assert_eq!(r.status, 200, "generated password works: {}", r.text());
    assert_eq!(login(&s, "eve@acme.test", PASSWORD).status, 401, "old password no longer works");
    let o = s.cli(&["user", "add-to-tenant", "eve@acme.test", "acme", "--role", "admin"]);
    assert_eq!(o.status.code(), Some(2), "already a member");
}

#[test]
fn a_session_use_is_written_by_the_flush_and_counts_before_it_is() {
    let s = TestServer::start();
    let token = s.token("ada@acme.test", "acme", "owner");
    let hash = tenantd::util::sha256_hex(token.as_bytes());
    let stored = || -> i64 {
        let conn = s.app.catalog.conn().unwrap();
        conn.query_row("SELECT last_seen_at FROM sessions WHERE token_hash = ?1", [&hash], |r| r.get(0)).unwrap()
    };
    let created = stored();
    // Two minutes later the session is used: the use is noted, not written by the request.
    let used = created + 120;
    tenantd::auth::authenticate(&s.app, &token, used).unwrap();
    // Reloaded from the catalog before any flush, the session counts that use: 28 minutes after
    // it is within the 30-minute idle limit, though 30 after the stored time.
    s.app.invalidate_caches();
    assert!(tenantd::auth::authenticate(&s.app, &token, used + 28 * 60).is_ok());
    tenantd::limits::flush_usage(&s.app).unwrap();
    assert!(stored() >= used, "the flush wrote the use");
}

/// Issue 19: a user imported from a Flask app keeps the Werkzeug hash it had; the first
/// successful sign-in replaces it with argon2id, and a failed one leaves it alone.
#[test]
fn issue19_imported_werkzeug_hash_signs_in_and_is_rehashed() {
    // Werkzeug 3.1.9 `generate_password_hash(PASSWORD)`: its default, scrypt 32768:8:1.
    const WERKZEUG: &str = "scrypt:32768:8:1$Gy3aK1bdjiKtodGk$1177e088c01d23a51346e2a6a8b59bf30244dd0bc24fed1bd99c9c4712ff6301307b6505db97a5f98e0b3a92092057ccdf942f42635116c292d3f4bd8482da50";
    let s = TestServer::start();
    s.member("flask@acme.test", "acme", "admin");
    let catalog = rusqlite::Connection::open(s.data_dir().join("catalog.db")).unwrap();
    catalog.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    catalog.execute("UPDATE users SET password_hash = ?1 WHERE email = 'flask@acme.test'", [WERKZEUG]).unwrap();
    let stored = || -> String {
        catalog.query_row("SELECT password_hash FROM users WHERE email = 'flask@acme.test'", [], |r| r.get(0)).unwrap()
    };

    assert_eq!(login(&s, "flask@acme.test", "tangerine-orbit-41").status, 401);
    assert_eq!(stored(), WERKZEUG, "a failed sign-in does not re-hash");

    let r = login(&s, "flask@acme.test", PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert!(stored().starts_with("$argon2id$"), "{}", stored());
    assert_eq!(s.get_as("/api/v1/auth/me", &token).status, 200, "re-hashing ends no session");

    let again = login(&s, "flask@acme.test", PASSWORD);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(login(&s, "flask@acme.test", "tangerine-orbit-41").status, 401);

    let log = s.get_as("/api/v1/t/acme/audit?action=auth.login", &token).json();
    let details: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["details"].as_str().unwrap()).collect();
    assert_eq!(details.len(), 2, "{log}");
    assert!(details[1].contains(r#""rehashed_from":"werkzeug_scrypt""#), "the first sign-in says so: {details:?}");
    assert!(!details[0].contains("rehashed_from"), "the second had nothing to re-hash: {details:?}");
}
