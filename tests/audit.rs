//! The tenant audit trail: written with each data change in the same transaction, listed and
//! exported over HTTP, and verified by `tenantd audit verify` against tampering.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::{stdout, TestServer};
use serde_json::json;

fn setup() -> (TestServer, String) {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    (s, t)
}

#[test]
fn every_change_has_its_entry_and_failed_changes_have_none() {
    let (s, t) = setup();
    let r = s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "Ada", "email": "ada@x.test"}));
    assert_eq!(r.status, 201);
    let request_id = r.header("x-request-id").unwrap().to_string();
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        s.call("PATCH", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), Some(&json!({"company": "AE"}))).status,
        200
    );
    assert_eq!(
        s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "Dup", "email": "ada@x.test"})).status,
        409
    );
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), None).status, 204);
    let log = s.get_as("/api/v1/t/acme/audit", &t).json();
    let items = log["items"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
    // The token came from signing in: that is the first entry.
    assert_eq!(
        actions,
        ["record.delete", "record.update", "record.create", "auth.login"],
        "newest first; the 409 wrote nothing"
    );
    let create = &items[2];
    assert_eq!(create["request_id"], request_id.as_str());
    assert_eq!(create["resource"], format!("customers/{id}"));
    assert!(create["actor"].as_str().unwrap().starts_with("user:"));
    assert_eq!(create["source"], "127.0.0.1");
    assert!(!create["details"].as_str().unwrap().contains("ada@x.test"), "column names, never values");
    let only_deletes = s.get_as("/api/v1/t/acme/audit?action=record.delete", &t).json();
    assert_eq!(only_deletes["total"], 1);
    assert_eq!(s.get_as("/api/v1/t/acme/audit?from=not-a-date", &t).status, 400);
}

#[test]
fn csv_export_quotes_fields() {
    let (s, t) = setup();
    s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "=HYPERLINK(\"x\")"}));
    let r = s.get_as("/api/v1/t/acme/audit?format=csv", &t);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let text = r.text();
    assert!(text.starts_with("id,at,actor,"));
    assert_eq!(text.lines().count(), 3, "header, the sign-in, the create: {text}");
}

#[test]
fn members_without_audit_access_get_403() {
    let s = TestServer::start();
    let m = s.token("m@acme.test", "acme", "member");
    assert_eq!(s.get_as("/api/v1/t/acme/audit", &m).status, 403);
}

#[test]
fn audit_verify_detects_edits_truncation_and_platform_tampering() {
    let (mut s, t) = setup();
    s.create_tenant("globex"); // a second platform entry, so deleting the first breaks a link
    for i in 0..5 {
        s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": format!("C{i}")}));
    }
    let data = s.data_dir();
    let tenant = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let db = s.app.paths.tenant_db(&tenant.id);
    s.shutdown(); // anchors the chain heads
    let o = common::cli(&data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("acme") && stdout(&o).contains("6 entries"), "{}", stdout(&o));

    // Edit one entry.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE _tenantd_audit SET actor = 'user:999' WHERE id = 2", []).unwrap();
    let o = common::cli(&data, &["audit", "verify", "--tenant", "acme"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("acme") && stdout(&o).contains("entry 2"), "{}", stdout(&o));

    // Put it back, then cut the tail: the chain still links, the anchor catches it.
    c.execute("UPDATE _tenantd_audit SET actor = (SELECT actor FROM _tenantd_audit WHERE id = 1) WHERE id = 2", [])
        .unwrap();
    assert_eq!(common::cli(&data, &["audit", "verify", "--tenant", "acme"]).status.code(), Some(0));
    c.execute("DELETE FROM _tenantd_audit WHERE id >= 4", []).unwrap();
    let o = common::cli(&data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("tail"), "{}", stdout(&o));
    drop(c);

    // The platform chain in the catalog: its tail cut (caught by the anchor file the server
    // wrote at shutdown)...
    let cat = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let last: i64 = cat.query_row("SELECT max(id) FROM platform_audit", [], |r| r.get(0)).unwrap();
    cat.execute("DELETE FROM platform_audit WHERE id = ?1", [last]).unwrap();
    let o = common::cli(&data, &["audit", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["problem"].as_str().unwrap().contains("tail"), "{v}");
    // ...and an entry in the middle removed.
    cat.execute("DELETE FROM platform_audit WHERE id = 1", []).unwrap();
    let o = common::cli(&data, &["audit", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["tenant"], "(platform)");
    assert_eq!(v[0]["ok"], false);
}

#[test]
fn retention_archives_old_entries_and_the_rest_still_verifies() {
    let (mut s, t) = setup();
    for i in 0..6 {
        s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": format!("C{i}")}));
    }
    let data = s.data_dir();
    let tenant = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let db = s.app.paths.tenant_db(&tenant.id);
    let backups = s.app.paths.backups(&tenant.id);
    s.shutdown();
    // The free plan keeps 90 days: make the first four entries a year old.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE _tenantd_audit SET at = at - 365 * 86400 WHERE id <= 4", []).unwrap();
    drop(c);
    let o = common::cli(&data, &["audit", "archive"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(stdout(&o).contains("acme: archived 4 entries"), "{}", stdout(&o));
    let archived = common::files_under(&backups);
    assert_eq!(archived.len(), 1);
    assert_eq!(std::fs::read_to_string(&archived[0]).unwrap().lines().count(), 4);
    let o = common::cli(&data, &["audit", "verify", "--tenant", "acme"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("3 entries"), "{}", stdout(&o));
    // Tampering after the checkpoint is still caught.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE _tenantd_audit SET actor = 'x' WHERE id = 6", []).unwrap();
    assert_eq!(common::cli(&data, &["audit", "verify", "--tenant", "acme"]).status.code(), Some(1));
}

/// A sign-in's entry says who sent it from where: the caller's address, user agent and request
/// id reach `auth::login` as one `Caller`.
#[test]
fn sign_in_entries_name_the_callers_address_agent_and_request() {
    let s = TestServer::start();
    s.member("a@acme.test", "acme", "owner");
    let body = json!({"email": "a@acme.test", "password": common::PASSWORD}).to_string();
    let headers = [("Content-Type", "application/json"), ("User-Agent", "audit-test/1")];
    let r = s.client().request("POST", "/api/v1/auth/login", &headers, body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let request_id = r.header("x-request-id").unwrap().to_string();
    let t = r.json()["token"].as_str().unwrap().to_string();
    let log = s.get_as("/api/v1/t/acme/audit?action=auth.login", &t).json();
    let entry = &log["items"][0];
    assert_eq!(entry["request_id"], request_id.as_str());
    assert_eq!(entry["user_agent"], "audit-test/1");
    assert_eq!(entry["source"], "127.0.0.1");
}
