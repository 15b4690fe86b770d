//! Caches and query monitoring over HTTP: the list result cache (hits, invalidation by writes
//! from any client, by schema changes and by changes from another process), the tenant config
//! cache, statement statistics, the slow-query log, and index advice applied by an admin.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::time::Duration;

use common::ServerCli as _;
use common::{within, TestServer};
use serde_json::json;

fn setup() -> (TestServer, String) {
    let s = TestServer::start_with(|c| c.query_monitor.slow_query_ms = 0);
    let token = s.token("owner@acme.test", "acme", "owner");
    for (i, status) in ["lead", "active", "active"].iter().enumerate() {
        let body =
            json!({"name": format!("C{i}"), "email": format!("c{i}@x.test"), "status": status, "company": "Initech"});
        assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&token), &body).status, 201);
    }
    (s, token)
}

const LIST: &str = "/api/v1/t/acme/customers?status=active&order_by=name";

#[test]
fn list_is_cached_until_a_write_by_any_client() {
    let (s, owner) = setup();
    let other = s.token("staff@acme.test", "acme", "member");
    let first = s.get_as(LIST, &owner);
    assert_eq!(first.header("x-cache"), Some("miss"));
    let again = s.get_as(LIST, &other);
    assert_eq!(again.header("x-cache"), Some("hit"), "same query, same table generation");
    assert_eq!(again.json(), first.json());
    assert_eq!(s.get_as("/api/v1/t/acme/customers?order_by=name&status=active", &owner).header("x-cache"), Some("hit"));
    assert!(s.app.cache_stats().query.hits >= 2);

    // A write by another client: the very next read sees it.
    let r = s.post_json("/api/v1/t/acme/customers", Some(&other), &json!({"name": "C9", "status": "active"}));
    assert_eq!(r.status, 201);
    let after = s.get_as(LIST, &owner);
    assert_eq!(after.header("x-cache"), Some("miss"));
    assert_eq!(after.json()["total"], 3);
    // Update and delete invalidate too.
    let id = r.json()["id"].as_i64().unwrap();
    s.get_as(LIST, &owner);
    let r = s.call("PATCH", &format!("/api/v1/t/acme/customers/{id}"), Some(&owner), Some(&json!({"name": "A9"})));
    assert_eq!(r.status, 200);
    assert_eq!(s.get_as(LIST, &owner).json()["items"][0]["name"], "A9");
    assert_eq!(s.call("DELETE", &format!("/api/v1/t/acme/customers/{id}"), Some(&owner), None).status, 204);
    assert_eq!(s.get_as(LIST, &owner).json()["total"], 2);
    // A write to another table leaves this one's entries alone.
    s.post_json("/api/v1/t/acme/projects", Some(&owner), &json!({"name": "P"}));
    assert_eq!(s.get_as(LIST, &owner).header("x-cache"), Some("hit"));
}

#[test]
fn cached_lists_are_never_served_past_permissions_or_tenants() {
    let (s, owner) = setup();
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &owner).header("x-cache"), Some("miss"));
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &owner).header("x-cache"), Some("hit"));
    // A key limited to another table is refused before any cache lookup.
    let r = s.post_json(
        "/api/v1/t/acme/api-keys",
        Some(&owner),
        &json!({"name": "p", "scope": "read", "tables": ["projects"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &key).status, 403);
    // Another tenant with the same table and query gets its own (empty) answer.
    let globex = s.token("owner@globex.test", "globex", "owner");
    let r = s.get_as("/api/v1/t/globex/customers", &globex);
    assert_eq!(r.header("x-cache"), Some("miss"));
    assert_eq!(r.json()["total"], 0);
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &owner).status, 404);
    // Different columns are a different entry.
    let r = s.get_as("/api/v1/t/acme/customers?fields=id,name", &owner);
    assert_eq!(r.header("x-cache"), Some("miss"));
    assert_eq!(r.json()["items"][0].as_object().unwrap().len(), 2);
}

#[test]
fn a_catalog_change_from_another_process_clears_the_cache() {
    let (s, owner) = setup();
    s.get_as(LIST, &owner);
    assert!(s.app.cache_stats().query.entries >= 1);
    let out = s.cli(&["tenant", "set-plan", "acme", "pro"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(within(Duration::from_secs(5), || s.app.cache_stats().query.entries == 0).is_some());
    assert_eq!(s.get_as(LIST, &owner).header("x-cache"), Some("miss"));
}

#[test]
fn disabled_cache_always_queries() {
    let s = TestServer::start_with(|c| c.cache.enabled = false);
    let owner = s.token("owner@acme.test", "acme", "owner");
    s.get_as("/api/v1/t/acme/customers", &owner);
    let r = s.get_as("/api/v1/t/acme/customers", &owner);
    assert_eq!((r.status, r.header("x-cache")), (200, None));
    assert_eq!(s.app.cache_stats().query.entries, 0);
}

#[test]
fn tenant_config_is_cached_and_fresh_after_a_change() {
    let (s, owner) = setup();
    let before = s.app.cache_stats().tenant_config;
    assert_eq!(s.get("/api/v1/t/acme").status, 200);
    assert_eq!(s.get("/api/v1/t/acme").status, 200);
    let mid = s.app.cache_stats().tenant_config;
    assert!(mid.hits > before.hits, "{before:?} -> {mid:?}");
    let r = s.call("PATCH", "/api/v1/t/acme/settings", Some(&owner), Some(&json!({"display_name": "Acme Two"})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get("/api/v1/t/acme").json()["branding"]["display_name"], "Acme Two");
}

#[test]
fn statement_stats_and_slow_queries() {
    let (s, owner) = setup();
    for _ in 0..3 {
        s.get_as("/api/v1/t/acme/customers?company=Initech&count=false", &owner);
    }
    let r = s.get_as("/api/v1/t/acme/query-stats", &owner);
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = r.json();
    let st = stats["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["sql"].as_str().unwrap().contains("WHERE \"company\" = ?"))
        .unwrap()
        .clone();
    assert!(st["calls"].as_u64().unwrap() >= 1, "{st}");
    assert!(!st["sql"].as_str().unwrap().contains("Initech"), "values are bound, never in the text");
    for k in ["total_ms", "mean_ms", "max_ms", "rows"] {
        assert!(st[k].is_number(), "{k} in {st}");
    }
    let inserts =
        stats["statements"].as_array().unwrap().iter().find(|st| st["sql"].as_str().unwrap().starts_with("INSERT"));
    assert_eq!(inserts.unwrap()["calls"], 3, "the setup's three creates");

    let slow = s.get_as("/api/v1/t/acme/slow-queries", &owner).json();
    let item =
        slow["items"].as_array().unwrap().iter().find(|i| i["sql"].as_str().unwrap().contains("company")).unwrap();
    assert!(item["plan"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("SCAN customers")), "{item}");

    // Tenant admins only.
    let member = s.token("staff@acme.test", "acme", "member");
    for path in ["query-stats", "slow-queries", "index-advice"] {
        assert_eq!(s.get_as(&format!("/api/v1/t/acme/{path}"), &member).status, 403, "{path}");
    }
    let r = s.post_json("/api/v1/t/acme/index-advice/apply", Some(&member), &json!({"index": "x"}));
    assert_eq!(r.status, 403);
}

#[test]
fn index_advice_applied_by_an_admin_stops_the_scan() {
    let (s, owner) = setup();
    s.get_as("/api/v1/t/acme/customers?company=Initech", &owner);
    let advice = s.get_as("/api/v1/t/acme/index-advice", &owner).json();
    let a = advice["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["table"] == "customers" && a["columns"] == json!(["company"]))
        .unwrap_or_else(|| panic!("{advice}"))
        .clone();
    assert_eq!(a["index"], "idx_advised_customers_company");
    assert_eq!(a["sql"], "CREATE INDEX IF NOT EXISTS \"idx_advised_customers_company\" ON \"customers\" (\"company\")");

    // Only current proposals: no SQL from the caller.
    let r = s.post_json(
        "/api/v1/t/acme/index-advice/apply",
        Some(&owner),
        &json!({"index": "idx_advised_x; DROP TABLE customers"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = s.post_json("/api/v1/t/acme/index-advice/apply", Some(&owner), &json!({"sql": "DROP TABLE customers"}));
    assert_eq!(r.status, 400, "{}", r.text());

    let r = s.post_json("/api/v1/t/acme/index-advice/apply", Some(&owner), &json!({"index": a["index"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    let plan = r.json()["plan_after"].clone();
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("USING INDEX idx_advised_customers_company")),
        "{plan}"
    );
    assert!(!plan.as_array().unwrap().iter().any(|l| l.as_str().unwrap().trim() == "SCAN customers"), "{plan}");

    // The proposal is gone, the query still answers, and the audit trail has the change.
    let advice = s.get_as("/api/v1/t/acme/index-advice", &owner).json();
    assert!(!advice["items"].as_array().unwrap().iter().any(|x| x["index"] == a["index"]), "{advice}");
    let r = s.get_as("/api/v1/t/acme/customers?company=Initech", &owner);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("miss")), "a schema change invalidates cached lists");
    assert_eq!(r.json()["total"], 3);
    let audit = s.get_as("/api/v1/t/acme/audit?action=index.create", &owner).json();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    // An applied advice is not schema drift.
    let status = tenantd::fleet::status(&s.app).unwrap();
    let acme = status.tenants.iter().find(|t| t.slug == "acme").unwrap();
    assert_eq!(acme.state, "current", "{:?}", acme.detail);
}

#[test]
fn advice_applied_in_one_tenant_rolls_out_to_the_fleet_through_a_migration() {
    let schema = tempfile::tempdir().unwrap();
    for f in ["0001_init.sql", "0002_notes_and_phone.sql"] {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/schema").join(f);
        std::fs::copy(src, schema.path().join(f)).unwrap();
    }
    let dir = schema.path().to_path_buf();
    let s = TestServer::start_with(|c| c.tenant_schema_dir = Some(dir));
    let acme = s.token("owner@acme.test", "acme", "owner");
    s.token("owner@globex.test", "globex", "owner");
    s.get_as("/api/v1/t/acme/customers?company=Initech", &acme);
    let r = s.post_json(
        "/api/v1/t/acme/index-advice/apply",
        Some(&acme),
        &json!({"index": "idx_advised_customers_company"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let cli = |args: &[&str]| common::cli_with_schema(&s.data_dir(), schema.path(), args);
    let out = cli(&["schema", "advise", "--write", "--json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["indexes"][0]["index"], "idx_advised_customers_company");
    assert_eq!(report["indexes"][0]["tenants"], json!(["acme"]));
    let file = schema.path().join("0003_advised_indexes.sql");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("CREATE INDEX IF NOT EXISTS \"idx_advised_customers_company\""));

    let out = cli(&["schema", "migrate", "--canary", "1"]);
    assert!(out.status.success(), "{}{}", common::stdout(&out), common::stderr(&out));
    let globex = s.app.tenant(&tenantd::ids::Slug::parse("globex").unwrap()).unwrap();
    let conn = tenantd::db::open_read_only(&s.app.paths.tenant_db(&globex.id)).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'idx_advised_customers_company'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the other tenant got the index through the migration runner");
    let out = cli(&["schema", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for t in status["tenants"].as_array().unwrap() {
        assert_eq!(t["state"], "current", "{t}");
    }
}
