//! Resource isolation over HTTP: per-tenant rate limits with RateLimit-* headers, noisy
//! neighbours, per-user share, sign-in limits, concurrency caps, seats, storage quota, query
//! time budget, plan changes without restart.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::ServerCli as _;
use common::TestServer;
use serde_json::{json, Value};
use std::sync::mpsc::Receiver;

fn tight(rate: f64, burst: u64) -> TestServer {
    TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.requests_per_second = rate;
            p.burst = burst;
        }
        c.limits.principal_share = 1.0;
    })
}

#[test]
fn a_tenant_over_its_limit_gets_429_with_headers_and_others_are_untouched() {
    // 1 request per 100 s: the burst is all a test run can use, whatever the machine's speed.
    let s = tight(0.01, 5);
    let a = s.token("a@acme.test", "acme", "owner");
    let b = s.token("b@globex.test", "globex", "owner");
    let mut last = None;
    for i in 0..5 {
        let r = s.get_as("/api/v1/t/acme/customers", &a);
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("ratelimit-limit"), Some("5"));
        assert_eq!(r.header("ratelimit-remaining").unwrap(), (4 - i).to_string());
        assert!(r.header("ratelimit-reset").is_some());
        last = Some(r);
    }
    drop(last);
    let r = s.get_as("/api/v1/t/acme/customers", &a);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    let retry = r.header("retry-after").unwrap().parse::<u64>().unwrap();
    assert!(retry >= 1);
    // Issue 18, item 4: the refusal carries the RateLimit fields too, with nothing remaining
    // and a reset no sooner than the retry.
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert!(r.header("ratelimit-reset").unwrap().parse::<u64>().unwrap() >= retry);
    // Tenant B is unaffected by A's flood.
    for _ in 0..5 {
        assert_eq!(s.get_as("/api/v1/t/globex/customers", &b).status, 200);
    }
}

#[test]
fn one_user_gets_only_its_share_of_the_tenant() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.requests_per_second = 0.01;
            p.burst = 10;
        }
        c.limits.principal_share = 0.5;
    });
    let a = s.token("a@acme.test", "acme", "owner");
    let b = s.token("b@acme.test", "acme", "member");
    let ok = (0..8).filter(|_| s.get_as("/api/v1/t/acme/customers", &a).status == 200).count();
    assert_eq!(ok, 5, "half of a burst of 10");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &b).status, 200, "another user still gets in");
}

#[test]
fn sign_in_is_limited_per_address() {
    let s = TestServer::start_with(|c| {
        c.limits.auth_requests_per_second = 0.01;
        c.limits.auth_burst = 3;
    });
    s.member("a@acme.test", "acme", "owner");
    let body = json!({"email": "a@acme.test", "password": "wrong-password-1"});
    for _ in 0..3 {
        assert_eq!(s.post_json("/api/v1/auth/login", None, &body).status, 401);
    }
    let r = s.post_json("/api/v1/auth/login", None, &body);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
}

#[test]
fn the_global_limit_applies_after_tenant_limits() {
    let s = TestServer::start_with(|c| {
        c.limits.global_requests_per_second = 0.01;
        // Two sign-ins, A's one request, B's one request.
        c.limits.global_burst = 4;
        for p in c.plans.values_mut() {
            p.requests_per_second = 0.01;
            p.burst = 1;
        }
    });
    let a = s.token("a@acme.test", "acme", "owner");
    let b = s.token("b@globex.test", "globex", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &a).status, 200);
    // Refused by acme's own limit: uses none of the global budget.
    for _ in 0..5 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &a).json()["error"]["code"], "rate_limited");
    }
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &b).status, 200, "global budget left for B");
}

#[test]
fn concurrency_cap_refuses_the_extra_request() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.max_concurrent_requests = 1;
        }
    });
    let t = s.token("a@acme.test", "acme", "owner");
    let tenant = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    // Hold the tenant's only slot as an in-flight request would.
    let slot = tenantd::limits::enter(&s.app, &tenant).unwrap();
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "too_many_concurrent_requests");
    drop(slot);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
}

#[test]
fn seats_are_limited_by_plan() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.max_users = 2;
        }
    });
    let owner = s.token("a@acme.test", "acme", "owner");
    tenantd::auth::create_user(&s.app, "b@acme.test", common::PASSWORD, false).unwrap();
    tenantd::auth::create_user(&s.app, "c@acme.test", common::PASSWORD, false).unwrap();
    let add = |e: &str| s.post_json("/api/v1/t/acme/members", Some(&owner), &json!({"email": e, "role": "viewer"}));
    assert_eq!(add("b@acme.test").status, 201);
    let r = add("c@acme.test");
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "seat_limit");
}

#[test]
fn storage_quota_is_507_and_deletes_keep_working() {
    let s = TestServer::start_with(|c| {
        c.tenant_pool_size = 1; // every request reuses the one connection
        for p in c.plans.values_mut() {
            p.storage_bytes = 160 * 1024;
        }
    });
    let t = s.token("a@acme.test", "acme", "owner");
    let big = "x".repeat(3000);
    let mut first = None;
    let mut hit = None;
    for i in 0..200 {
        let r = s.post_json("/api/v1/t/acme/notes", Some(&t), &json!({"body": big, "customer_id": null}));
        if r.status == 400 {
            // notes need a customer: create one once.
            let c = s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "C"}));
            first = c.json()["id"].as_i64();
            break;
        }
        let _ = i;
    }
    let cid = first.unwrap();
    for i in 0..200 {
        let r = s.post_json("/api/v1/t/acme/notes", Some(&t), &json!({"body": big, "customer_id": cid}));
        if r.status == 507 {
            assert_eq!(r.json()["error"]["code"], "storage_quota_exceeded");
            hit = Some(i);
            break;
        }
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert!(hit.is_some(), "the quota was reached");
    // Reads and deletes keep working on a full tenant.
    assert_eq!(s.get_as("/api/v1/t/acme/notes?per_page=1", &t).status, 200);
    let r = s.call("DELETE", "/api/v1/t/acme/notes/1", Some(&t), None);
    assert_eq!(r.status, 204, "{}", r.text());
    // Writers outside the data API (here a policy change and its audit entry) never inherit a
    // request's ceiling on the pooled connection.
    let r = s.call("PUT", "/api/v1/t/acme/security-policy", Some(&t), Some(&json!({"ip_deny": ["192.0.2.0/24"]})));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn slow_queries_hit_the_time_budget_and_the_connection_survives() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.query_timeout_ms = 50;
        }
        c.tenant_pool_size = 1;
    });
    let t = s.token("a@acme.test", "acme", "owner");
    let tenant = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    {
        let opened = s.app.open_tenant(&tenant).unwrap();
        let conn = opened.handle.conn().unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO customers(name, company) SELECT 'c' || i, 'co' || (i % 7) FROM n;",
        )
        .unwrap();
    }
    let r = s.get_as("/api/v1/t/acme/customers?name__like=%25zzz%25&per_page=1", &t);
    assert_eq!(r.status, 200, "an ordinary scan fits the budget");
    // The data API cannot be made to run an unbounded query, so give the budgeted connection
    // one directly: a billion-step recursive CTE.
    let opened = s.app.open_tenant(&tenant).unwrap();
    let conn = tenantd::store::TenantConn::Pooled(opened.handle.conn().unwrap());
    tenantd::limits::budget(&s.app, &tenant, &opened.handle, &conn, None).unwrap();
    let started = std::time::Instant::now();
    let e = conn
        .query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "interrupted near the 50 ms budget");
    assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted));
    let mapped = tenantd::http::response::error_parts(&tenantd::error::Error::from(e));
    assert_eq!((mapped.0, mapped.1), (503, "query_timeout"));
    tenantd::limits::unbudget(&conn);
    let n: i64 = conn.query_row("SELECT count(*) FROM customers", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3000, "the connection is healthy afterwards");
}

#[test]
fn plan_changes_take_effect_without_restart() {
    let s = TestServer::start_with(|c| {
        let free = c.plans.get_mut("free").unwrap();
        free.requests_per_second = 0.01;
        free.burst = 2;
        c.limits.principal_share = 1.0;
    });
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 429);
    let o = s.cli(&["tenant", "set-plan", "acme", "pro"]);
    assert!(o.status.success());
    let ok =
        common::within(std::time::Duration::from_secs(1), || s.get_as("/api/v1/t/acme/customers", &t).status == 200);
    assert!(ok.is_some(), "pro's limits apply within a second of the CLI change");
    // Per-tenant overrides through the platform API.
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.call("PATCH", "/api/v1/platform/tenants/acme", Some(&root), Some(&json!({"limits": {"max_users": 3}})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["limits"]["max_users"], 3);
    let bad = s.call("PATCH", "/api/v1/platform/tenants/acme", Some(&root), Some(&json!({"limits": {"nope": 1}})));
    assert_eq!(bad.status, 400);
    let res = s.get_as("/api/v1/platform/resources", &root);
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["tenants"][0]["limits"]["max_users"], 3);
}

#[test]
fn random_tenants_and_keys_do_not_grow_limiter_memory() {
    let s = TestServer::start();
    let mut c = s.client();
    for i in 0..2000 {
        let key = format!("tdk_{i:012}_{}", "0".repeat(64));
        let r = c.request("GET", &format!("/api/v1/t/rnd{i}/customers"), &[("X-API-Key", &key)], b"").unwrap();
        assert!(r.status == 404 || r.status == 401, "{}", r.status);
    }
    assert_eq!(s.app.limits.tracked_keys(), 0, "unknown tenants and keys never reach a limiter");
}

#[test]
fn usage_is_metered_and_reported() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    for _ in 0..4 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    }
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "x"})).status, 201);
    assert_eq!(s.get_as("/api/v1/t/acme/customers/999", &t).status, 404);
    let r = s.get_as("/api/v1/t/acme/usage", &t);
    assert_eq!(r.status, 200, "{}", r.text());
    let item = &r.json()["items"][0];
    assert_eq!(item["requests"], 6, "{item}");
    assert_eq!(item["errors"], 1);
    assert_eq!(item["rows_written"], 1);
    assert!(item["rows_read"].as_i64().unwrap() >= 4);
    assert!(item["bytes_out"].as_i64().unwrap() > 0);
    assert!(item["p99_ms"].as_f64().is_some());
    assert_eq!(item["active_users"], 1);
    assert!(item["storage_bytes"].as_i64().unwrap() > 0);
    let since = &tenantd::util::rfc3339(tenantd::util::now_unix() - 3 * 86_400)[..10];
    let day = s.get_as(&format!("/api/v1/t/acme/usage?granularity=day&from={since}"), &t).json();
    assert!(day["items"][0]["requests"].as_i64().unwrap() >= 6);
    for bad in ["from=yesterday", "granularity=week", "from=2026-01-02&to=2026-01-01"] {
        assert_eq!(s.get_as(&format!("/api/v1/t/acme/usage?{bad}"), &t).status, 400, "{bad}");
    }
    let o = s.cli(&["usage", "acme", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["requests"].as_i64().unwrap() >= 6);
}

#[test]
fn the_monthly_quota_answers_429_with_its_reset_time() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.monthly_requests = 3;
        }
    });
    let t = s.token("a@acme.test", "acme", "owner");
    for _ in 0..3 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    }
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "quota_exceeded");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("resets at"));
    let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 31 * 86_400);
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("ratelimit-reset").unwrap(), wait.to_string());
}

#[test]
fn a_hard_kill_loses_at_most_the_last_second_of_usage() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let data = common::init_acme(dir.path());
    let (mut child, addr, _lines) = common::spawn_serve(&data);
    let mut c = tenantd::http::client::Client::new(addr);
    for _ in 0..20 {
        assert_eq!(c.get("/api/v1/t/acme").unwrap().status, 200);
    }
    let catalog = data.join("catalog.db");
    let stored = || -> i64 {
        let conn = tenantd::db::open_read_only(&catalog).unwrap();
        conn.query_row("SELECT coalesce(sum(requests), 0) FROM usage_hourly", [], |r| r.get(0)).unwrap()
    };
    // The flush runs every second: the counts are durable within about a second.
    let durable = common::within(std::time::Duration::from_millis(2500), || stored() >= 20);
    assert!(durable.is_some(), "usage not flushed within 2.5 s (have {})", stored());
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap();
    assert_eq!(stored(), 20, "the counts survive the kill");
}

/// A one-shot HTTP receiver for webhook tests: returns its URL and a channel of bodies.
fn webhook_sink() -> (String, Receiver<Value>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            let _ = std::io::Read::read_to_string(req.as_reader(), &mut body);
            let _ = req.respond(tiny_http::Response::empty(204));
            if tx.send(serde_json::from_str(&body).unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// A server whose plans `plan` adjusts, with its alerts posted to a webhook sink.
fn alerting(plan: impl Fn(&mut tenantd::config::PlanConfig) + Send + 'static) -> (TestServer, Receiver<Value>) {
    let (url, hooks) = webhook_sink();
    let s = TestServer::start_with(move |c| {
        c.plans.values_mut().for_each(&plan);
        c.alert_webhook_url = Some(url);
    });
    (s, hooks)
}

/// The next `n` alerts the webhook received, as "slug kind", sorted.
fn alerts_received(hooks: &Receiver<Value>, n: usize) -> Vec<String> {
    let mut seen: Vec<String> = (0..n)
        .map(|_| {
            let v = hooks.recv_timeout(std::time::Duration::from_secs(10)).expect("webhook called");
            format!("{} {}", v["slug"].as_str().unwrap(), v["kind"].as_str().unwrap())
        })
        .collect();
    seen.sort();
    seen
}

#[test]
fn quota_thresholds_raise_alerts_with_an_audit_entry_and_a_webhook() {
    let (s, hooks) = alerting(|p| p.monthly_requests = 10);
    let t = s.token("a@acme.test", "acme", "owner");
    for _ in 0..10 {
        s.get_as("/api/v1/t/acme/customers", &t);
    }
    assert_eq!(alerts_received(&hooks, 2), ["acme requests_100", "acme requests_80"]);
    // Each threshold is reported once a month, however often it is crossed.
    s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed), 2);
    let conn = s.app.catalog.conn().unwrap();
    let n: i64 =
        conn.query_row("SELECT count(*) FROM platform_audit WHERE action = 'limits.alert'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn storage_thresholds_raise_alerts_whether_or_not_the_plan_is_cached() {
    // Below the configurable minimum (65536), set directly: every tenant file is past it.
    let (s, hooks) = alerting(|p| p.storage_bytes = 4096);
    let t = s.token("a@acme.test", "acme", "owner");
    let globex = s.create_tenant("globex");
    // globex's plan is not cached (no request of it since the limits were cleared): the flush
    // reads its record from the catalog. acme's request caches its plan: the flush names it
    // from the catalog only because it crossed a threshold.
    s.app.limits.invalidate();
    let sample = tenantd::limits::meter::Sample {
        status: 200,
        bytes_in: 0,
        bytes_out: 10,
        latency_us: 100,
        cpu_us: 50,
        user: None,
    };
    s.app.limits.meter.record(&globex.id, tenantd::util::now_unix(), &sample, (1, 0));
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    tenantd::limits::flush_usage(&s.app).unwrap();
    assert_eq!(
        alerts_received(&hooks, 4),
        ["acme storage_100", "acme storage_80", "globex storage_100", "globex storage_80"]
    );
}

#[test]
fn the_usage_flush_measures_storage_again_after_a_write_not_after_reads() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let acme = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let stored = || -> i64 {
        let conn = s.app.catalog.conn().unwrap();
        conn.query_row("SELECT max(storage_bytes) FROM usage_hourly WHERE tenant_id = ?1", [acme.id.as_str()], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .unwrap()
        .unwrap_or(0)
    };
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    tenantd::limits::flush_usage(&s.app).unwrap();
    let first = stored();
    assert!(first > 0, "measured at the first flush");
    // The file grows behind the server's back: nothing the meter sees as a write.
    let conn = rusqlite::Connection::open(s.app.paths.tenant_db(&acme.id)).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO customers(name) SELECT hex(randomblob(50)) FROM n;",
    )
    .unwrap();
    drop(conn);
    let grown = tenantd::limits::storage_bytes(&s.app, &acme.id) as i64;
    assert!(grown > first + 200_000, "{grown} vs {first}");
    assert_eq!(s.get_as("/api/v1/t/acme/customers?per_page=1", &t).status, 200);
    tenantd::limits::flush_usage(&s.app).unwrap();
    assert_eq!(stored(), first, "reads reuse the size measured a moment ago");
    assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&t), &json!({"name": "x"})).status, 201);
    tenantd::limits::flush_usage(&s.app).unwrap();
    assert!(stored() >= grown, "a write measures again: {} vs {grown}", stored());
}

#[test]
fn a_tenant_that_keeps_hammering_is_throttled_for_a_cool_down() {
    let s = TestServer::start_with(|c| {
        for p in c.plans.values_mut() {
            p.requests_per_second = 0.01;
            p.burst = 1;
        }
        c.limits.throttle_after_refusals = 5;
        c.limits.principal_share = 1.0;
    });
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    for _ in 0..5 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 429);
    }
    assert_eq!(s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed), 1, "one throttled alert");
    let acme = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    assert!(tenantd::limits::is_throttled(&s.app, &acme.id));
    let other = s.create_tenant("globex");
    assert!(!tenantd::limits::is_throttled(&s.app, &other.id));
}

#[test]
fn resource_monitor_shows_rate_connections_and_storage_per_tenant() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    s.create_tenant("quiet");
    for _ in 0..20 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    }
    tenantd::limits::flush_usage(&s.app).unwrap();
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let res = s.get_as("/api/v1/platform/resources", &root).json();
    let row = |slug: &str| res["tenants"].as_array().unwrap().iter().find(|r| r["slug"] == slug).cloned().unwrap();
    let acme = row("acme");
    assert!(acme["requests_per_second"].as_f64().unwrap() > 0.0, "{acme}");
    assert_eq!(acme["open"], true);
    assert!(acme["connections"].as_u64().unwrap() >= 1, "{acme}");
    assert!(acme["page_cache_bytes_max"].as_u64().unwrap() > 0);
    assert!(acme["storage_bytes"].as_u64().unwrap() > 0);
    assert_eq!(acme["in_flight"], 0);
    let quiet = row("quiet");
    assert_eq!(quiet["requests_per_second"], 0.0, "{quiet}");
}

#[test]
fn a_throttled_tenant_waits_for_its_refusals() {
    let s = TestServer::start_with(|c| {
        let free = c.plans.get_mut("free").unwrap();
        free.requests_per_second = 0.01;
        free.burst = 1;
        c.limits.principal_share = 1.0;
        c.limits.throttle_after_refusals = 3;
        c.limits.tarpit_ms = 300;
    });
    let t = s.token("a@acme.test", "acme", "owner");
    let g = s.token("g@globex.test", "globex", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    for _ in 0..3 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 429);
    }
    // Throttled now: its refusals are held back before they are written.
    let t0 = std::time::Instant::now();
    let r = s.get_as("/api/v1/t/acme/customers", &t);
    assert_eq!(r.status, 429);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300), "answered after {:?}", t0.elapsed());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    // Another tenant is not affected.
    assert_eq!(s.get_as("/api/v1/t/globex/customers", &g).status, 200);
}
