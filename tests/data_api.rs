//! The tenant data API over HTTP: CRUD, filters, paging, ordering, field selection, and every
//! kind of bad input getting a clear 4xx with nothing written.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::ServerCli as _;
use common::TestServer;
use serde_json::json;

fn setup() -> (TestServer, String) {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    (s, token)
}

fn customer(s: &TestServer, token: &str, name: &str, email: &str, status: &str) -> i64 {
    let r =
        s.post_json("/api/v1/t/acme/customers", Some(token), &json!({"name": name, "email": email, "status": status}));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_i64().unwrap()
}

#[test]
fn crud_roundtrip() {
    let (s, t) = setup();
    let id = customer(&s, &t, "Ada", "ada@x.test", "active");
    let r = s.get_as(&format!("/api/v1/t/acme/customers/{id}"), &t);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "Ada");
    assert!(r.json()["created_at"].is_string(), "defaults are filled in");
    let r =
        s.call("PATCH", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), Some(&json!({"company": "Analytical"})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["company"], "Analytical");
    assert_eq!(r.json()["name"], "Ada", "PATCH keeps other columns");
    let r = s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), None);
    assert_eq!(r.status, 204);
    assert_eq!(s.get_as(&format!("/api/v1/t/acme/customers/{id}"), &t).status, 404);
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), None).status, 404);
}

#[test]
fn list_paging_filters_ordering_fields() {
    let (s, t) = setup();
    for i in 0..30 {
        customer(&s, &t, &format!("C{i:02}"), &format!("c{i}@x.test"), if i % 3 == 0 { "lead" } else { "active" });
    }
    let r = s.get_as("/api/v1/t/acme/customers", &t).json();
    assert_eq!((r["page"].as_i64(), r["per_page"].as_i64(), r["total"].as_i64()), (Some(1), Some(20), Some(30)));
    assert_eq!(r["items"].as_array().unwrap().len(), 20);
    let r = s.get_as("/api/v1/t/acme/customers?per_page=500&page=1", &t).json();
    assert_eq!(r["per_page"], 100, "clamped and the response says so");
    let r = s.get_as("/api/v1/t/acme/customers?per_page=7&page=5", &t).json();
    assert_eq!(r["items"].as_array().unwrap().len(), 2);
    let r = s.get_as("/api/v1/t/acme/customers?status=lead&order_by=-name&fields=id,name", &t).json();
    let items = r["items"].as_array().unwrap();
    assert_eq!(r["total"], 10);
    assert_eq!(items[0]["name"], "C27");
    assert_eq!(items[0].as_object().unwrap().len(), 2, "only the requested fields");
    let r = s.get_as("/api/v1/t/acme/customers?name__in=C01,C02,C03&count=false", &t).json();
    assert_eq!(r["items"].as_array().unwrap().len(), 3);
    assert!(r["total"].is_null());
    let r = s.get_as("/api/v1/t/acme/customers?name__like=C1%25&id__gt=12", &t).json();
    assert_eq!(r["total"], 8, "C12..C19 have ids 13..20");
    let r = s.get_as("/api/v1/t/acme/customers?company__isnull=true&status__ne=lead", &t).json();
    assert_eq!(r["total"], 20);
}

#[test]
fn bad_input_is_400_naming_the_problem_and_writes_nothing() {
    let (s, t) = setup();
    customer(&s, &t, "Ada", "ada@x.test", "active");
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/api/v1/t/acme/customers", json!({"name": "B", "bogus": 1}), "unknown_column"),
        ("/api/v1/t/acme/customers", json!({"name": "B", "status": "weird"}), "check_failed"),
        ("/api/v1/t/acme/customers", json!({"email": "b@x.test"}), "not_null"),
        ("/api/v1/t/acme/customers", json!({"name": 5}), "type_error"),
        ("/api/v1/t/acme/customers", json!(["not", "an", "object"]), "invalid_body"),
        ("/api/v1/t/acme/customers", json!({"id": 99, "name": "B"}), "read_only_column"),
        ("/api/v1/t/acme/tasks", json!({"project_id": "one", "title": "x"}), "type_error"),
        ("/api/v1/t/acme/\"customers;drop", json!({"name": "B"}), "unknown_table"),
    ];
    for (path, body, code) in cases {
        let r = s.post_json(path, Some(&t), &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{body}");
    }
    let dup = s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "Ada2", "email": "ada@x.test"}));
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["error"]["code"], "unique_violation");
    let fk = s.post_json("/api/v1/t/acme/tasks", Some(&t), &json!({"project_id": 424242, "title": "orphan"}));
    assert_eq!(fk.status, 400, "{}", fk.text());
    assert_eq!(fk.json()["error"]["code"], "foreign_key");
    for q in [
        "order_by=nope",
        "nope=1",
        "name__regex=x",
        "page=0",
        "per_page=abc",
        "id__gt=notanumber",
        "count=maybe",
        "fields=",
    ] {
        let r = s.get_as(&format!("/api/v1/t/acme/customers?{q}"), &t);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
    }
    // Ids of the wrong type.
    assert_eq!(s.get_as("/api/v1/t/acme/customers/abc", &t).json()["error"]["code"], "invalid_id");
    assert_eq!(s.get_as("/api/v1/t/acme/customers/-1", &t).status, 400);
    // Nothing but the one customer was written.
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).json()["total"], 1);
}

#[test]
fn malformed_json_wrong_type_and_oversized_bodies() {
    let (s, t) = setup();
    let auth = format!("Bearer {t}");
    let mut c = s.client();
    let r = c
        .request(
            "POST",
            "/api/v1/t/acme/customers",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            b"{\"name\": ",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_json");
    let r = c
        .request("POST", "/api/v1/t/acme/customers", &[("Authorization", &auth), ("Content-Type", "text/plain")], b"{}")
        .unwrap();
    assert_eq!(r.status, 415);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = c.request(
        "POST",
        "/api/v1/t/acme/customers",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        big.as_bytes(),
    );
    assert_eq!(r.unwrap().status, 413);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).json()["total"], 0);
}

#[test]
fn suspended_tenants_read_but_refuse_writes_with_423() {
    let (s, t) = setup();
    let id = customer(&s, &t, "Ada", "ada@x.test", "active");
    // Suspend through the CLI, as an operator would: the server notices within a second.
    let o = s.cli(&["tenant", "suspend", "acme"]);
    assert!(o.status.success());
    let refused = common::within(std::time::Duration::from_secs(1), || {
        s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "B"})).status == 423
    });
    assert!(refused.is_some(), "writes refused within 1 s of the CLI suspend");
    let r = s.call("PATCH", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), Some(&json!({"name": "X"})));
    assert_eq!(r.status, 423);
    assert_eq!(r.json()["error"]["code"], "tenant_suspended");
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&t), None).status, 423);
    assert_eq!(s.get_as(&format!("/api/v1/t/acme/customers/{id}"), &t).status, 200, "reads still work");
    assert!(s.cli(&["tenant", "resume", "acme"]).status.success());
    let ok = common::within(std::time::Duration::from_secs(1), || {
        s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "B"})).status == 201
    });
    assert!(ok.is_some());
}

#[test]
fn openapi_describes_every_table() {
    let (s, t) = setup();
    let r = s.get_as("/api/v1/t/acme/openapi.json", &t);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for table in ["customers", "projects", "tasks", "notes"] {
        assert!(doc["paths"][format!("/api/v1/t/acme/{table}")]["get"].is_object(), "{table}");
        assert!(doc["paths"][format!("/api/v1/t/acme/{table}/{{id}}")]["patch"].is_object(), "{table}");
        assert!(doc["components"]["schemas"][table]["properties"]["id"].is_object());
    }
    let required = &doc["paths"]["/api/v1/t/acme/customers"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["required"];
    assert_eq!(required, &json!(["name"]));
}

#[test]
fn roles_limit_what_members_do() {
    let s = TestServer::start();
    let viewer = s.token("v@acme.test", "acme", "viewer");
    let member = s.token("m@acme.test", "acme", "member");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &viewer).status, 200);
    let r = s.post_json("/api/v1/t/acme/customers", Some(&viewer), &json!({"name": "x"}));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "forbidden");
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&member), &json!({"name": "x"})).status, 201);
    assert_eq!(s.get_as("/api/v1/t/acme/api-keys", &member).status, 403, "members cannot see keys");
    assert_eq!(s.get_as("/api/v1/t/acme/members", &viewer).status, 403);
    assert_eq!(s.get_as("/api/v1/t/acme/members", &member).status, 200);
}

#[test]
fn warm_authenticated_requests_do_no_catalog_query() {
    let (s, t) = setup();
    let id = customer(&s, &t, "Ada", "ada@x.test", "active");
    let key = s.post_json("/api/v1/t/acme/api-keys", Some(&t), &json!({"name": "k", "scope": "write"})).json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    // The catalog watcher may drop the caches once more after the writes above; a measured pass
    // only counts when no invalidation happened during it.
    let invalidations = || s.app.directory.invalidations.load(std::sync::atomic::Ordering::SeqCst);
    for attempt in 0..20 {
        for cred in [&t, &key] {
            s.get_as(&format!("/api/v1/t/acme/customers/{id}"), cred);
            s.get_as("/api/v1/t/acme/customers", cred);
        }
        let (inv, before) = (invalidations(), s.app.catalog.checkouts());
        for cred in [&t, &key] {
            assert_eq!(s.get_as(&format!("/api/v1/t/acme/customers/{id}"), cred).status, 200);
            assert_eq!(s.get_as("/api/v1/t/acme/customers?per_page=20", cred).status, 200);
            let r = s.post_json("/api/v1/t/acme/tasks", Some(cred), &json!({"title": "x", "project_id": null}));
            assert_eq!(r.status, 400);
        }
        if invalidations() == inv {
            assert_eq!(s.app.catalog.checkouts(), before, "warm requests touched the catalog");
            return;
        }
        assert!(attempt < 19, "caches kept being invalidated");
    }
}

#[test]
fn tenants_with_the_same_schema_share_one_introspection() {
    let s = TestServer::start();
    let a = s.token("a@acme.test", "acme", "owner");
    let g = s.token("g@globex.test", "globex", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &a).status, 200);
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &g).status, 200);
    let info = |slug: &str| {
        let t = s.app.tenant(&tenantd::ids::Slug::parse(slug).unwrap()).unwrap();
        let h = s.app.store.peek(&t.id).unwrap();
        let conn = h.conn().unwrap();
        h.schema_info(&conn).unwrap()
    };
    let (acme, globex) = (info("acme"), info("globex"));
    assert!(std::sync::Arc::ptr_eq(&acme.tables, &globex.tables), "one introspection for both");
    // A schema change in one tenant gives it its own.
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let h = s.app.store.peek(&t.id).unwrap();
    h.conn().unwrap().execute_batch("CREATE TABLE scratch_pad (id INTEGER PRIMARY KEY, body TEXT)").unwrap();
    let acme = info("acme");
    assert!(acme.tables.contains_key("scratch_pad"));
    assert!(!info("globex").tables.contains_key("scratch_pad"));
}
