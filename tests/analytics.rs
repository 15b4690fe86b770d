//! Issue 21, first slice: the tenant analytics API on a real server. Requests made seconds ago
//! count (the meter is flushed first), percentiles come from merged histograms, the series has
//! every bucket and its change, CSV works, bad parameters are 400s naming the parameter.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use common::ServerCli as _;
use common::TestServer;

#[test]
fn issue21_overview_and_trends_include_requests_made_seconds_ago() {
    let s = TestServer::start();
    let owner = s.token("owner@acme.test", "acme", "owner");
    for _ in 0..25 {
        assert_eq!(s.get_as("/api/v1/t/acme/customers", &owner).status, 200);
    }
    assert_eq!(s.get_as("/api/v1/t/acme/customers/999999", &owner).status, 404);
    let o = s.get_as("/api/v1/t/acme/analytics/overview?from=-1d", &owner);
    assert_eq!(o.status, 200, "{}", o.text());
    let o = o.json()["overview"].clone();
    assert!(o["requests"].as_i64().unwrap() >= 26, "{o}");
    assert!(o["errors"].as_i64().unwrap() >= 1, "the 404 counts: {o}");
    assert!(o["latency_ms"]["p50"].as_f64().is_some() && o["latency_ms"]["p99"].as_f64().is_some(), "{o}");
    assert!(o["active_users"]["daily"].as_i64().unwrap() >= 1, "{o}");
    assert!(o["data_until"].is_string(), "says where its data stops: {o}");
    assert_eq!(o["quotas"][0]["name"], "monthly_requests");

    let t = s.get_as("/api/v1/t/acme/analytics/usage-trends?from=-3h&granularity=hour&metrics=requests,p95_ms", &owner);
    assert_eq!(t.status, 200, "{}", t.text());
    let tr = t.json()["trends"].clone();
    let points = tr["points"].as_array().unwrap();
    assert!(points.len() >= 3, "every hour of the range is a point: {tr}");
    let last = points.last().unwrap();
    assert!(last["values"]["requests"].as_f64().unwrap() >= 26.0, "the current hour: {last}");
    assert!(last["values"].get("errors").is_none(), "only the metrics asked for");
    assert!(last.get("change_percent").is_some());

    let csv = s.get_as("/api/v1/t/acme/analytics/usage-trends?from=-2d&granularity=day&format=csv", &owner);
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.text().starts_with("start,requests,errors,error_rate"), "{}", csv.text());

    // Bad input names the parameter.
    for (q, needle) in [
        ("granularity=fortnight", "granularity"),
        ("metrics=requests,nope", "nope"),
        ("from=yesterday", "from="),
        ("from=-800d", "2 years"),
    ] {
        let r = s.get_as(&format!("/api/v1/t/acme/analytics/usage-trends?{q}"), &owner);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains(needle), "{q}: {}", r.text());
    }
    let r = s.get_as("/api/v1/t/acme/analytics/usage-trends?from=-60d&granularity=hour", &owner);
    assert_eq!(r.status, 400, "hourly over 60 days is refused with the way out: {}", r.text());
    // Members without usage rights do not see analytics.
    let viewer = s.token("viewer@acme.test", "acme", "viewer");
    assert_eq!(s.get_as("/api/v1/t/acme/analytics/overview", &viewer).status, 403);
}

#[test]
fn issue21_platform_overview_and_trends_for_platform_admins() {
    let s = TestServer::start();
    let a = s.token("owner@acme.test", "acme", "owner");
    let b = s.token("owner@globex.test", "globex", "owner");
    for _ in 0..10 {
        s.get_as("/api/v1/t/acme/customers", &a);
    }
    for _ in 0..3 {
        s.get_as("/api/v1/t/globex/customers", &b);
    }
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let o = s.get_as("/api/v1/platform/analytics/overview?from=-1d", &root);
    assert_eq!(o.status, 200, "{}", o.text());
    let doc = o.json();
    assert!(doc["computed_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{doc}");
    let o = doc["overview"].clone();
    assert_eq!(o["active_tenants"], 2, "{o}");
    assert!(o["requests"].as_i64().unwrap() >= 13);
    assert_eq!(o["top_tenants"][0][0], "acme", "the busiest first: {o}");
    // A small platform's documents are computed on every read: the request made now counts.
    s.get_as("/api/v1/t/globex/customers", &b);
    let again = s.get_as("/api/v1/platform/analytics/overview?from=-1d", &root).json();
    assert!(again["overview"]["requests"].as_i64() > o["requests"].as_i64(), "{again}");
    let t = s.get_as("/api/v1/platform/analytics/usage-trends?from=-2h&granularity=hour&metrics=requests", &root);
    assert_eq!(t.status, 200);
    let last = t.json()["trends"]["points"].as_array().unwrap().last().unwrap().clone();
    assert!(last["values"]["requests"].as_f64().unwrap() >= 13.0, "{last}");
    assert_eq!(s.get_as("/api/v1/platform/analytics/overview", &a).status, 403, "tenant owners see their tenant only");
}

#[test]
fn issue21_peer_comparison_is_k_anonymous_and_excludes_the_tenant() {
    let s = TestServer::start();
    let me = s.token("owner@t0.test", "t0", "owner");
    // Four peers on the same plan: fewer than k = 5, withheld with the reason.
    let mut peers = Vec::new();
    for i in 1..=4 {
        peers.push(s.token(&format!("owner@t{i}.test"), &format!("t{i}"), "owner"));
    }
    let r = s.get_as("/api/v1/t/t0/analytics/comparative?from=-1d", &me);
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json()["comparative"].clone();
    assert_eq!(c["cohort_size"], 4, "the tenant is not its own peer: {c}");
    assert!(c["withheld"].as_str().unwrap().contains("at least 5"), "{c}");
    assert!(c["metrics"].as_object().unwrap().is_empty(), "nothing leaks when withheld");
    // A fifth peer: bands appear; the tenant made more requests than all of them.
    peers.push(s.token("owner@t5.test", "t5", "owner"));
    for (i, t) in peers.iter().enumerate() {
        for _ in 0..=i {
            s.get_as(&format!("/api/v1/t/t{}/customers", i + 1), t);
        }
    }
    for _ in 0..30 {
        s.get_as("/api/v1/t/t0/customers", &me);
    }
    let c = s.get_as("/api/v1/t/t0/analytics/comparative?from=-1d", &me).json()["comparative"].clone();
    assert!(c["withheld"].is_null(), "{c}");
    let req = &c["metrics"]["requests"];
    assert_eq!(req["peers"], 5);
    assert_eq!(req["percentile"], 100.0, "above every peer: {req}");
    assert!(
        req["p25"].as_f64().unwrap() <= req["p50"].as_f64().unwrap()
            && req["p50"].as_f64().unwrap() <= req["p75"].as_f64().unwrap()
    );
    let text = c.to_string();
    for slug in ["t1", "t2", "t3", "t4", "t5"] {
        assert!(!text.contains(&format!("\"{slug}\"")), "no peer is named: {text}");
    }
}

#[test]
fn issue21_the_cli_prints_a_tenants_and_the_platforms_numbers() {
    let s = TestServer::start();
    let owner = s.token("owner@acme.test", "acme", "owner");
    for _ in 0..4 {
        s.get_as("/api/v1/t/acme/customers", &owner);
    }
    tenantd::limits::flush_usage(&s.app).unwrap();
    let o = s.cli(&["analytics", "overview", "--tenant", "acme", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["requests"].as_i64().unwrap() >= 4, "{v}");
    let o = s.cli(&["analytics", "overview"]);
    assert!(common::stdout(&o).contains("platform from"), "{}", common::stdout(&o));
    let o = s.cli(&[
        "analytics",
        "trends",
        "--tenant",
        "acme",
        "--granularity",
        "hour",
        "--from",
        "-3h",
        "--metrics",
        "requests",
    ]);
    assert!(o.status.success());
    assert!(common::stdout(&o).lines().count() >= 4, "{}", common::stdout(&o));
    let o = s.cli(&["analytics", "trends", "--granularity", "fortnight"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("granularity"), "{}", common::stderr(&o));
}

/// `analytics trends … --json` through the CLI, its points only (what downsampling must keep).
fn points(data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["analytics", "trends", "--json"];
    all.extend_from_slice(args);
    let o = common::cli(data, &all);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["points"].clone()
}

#[test]
fn issue21_downsampling_keeps_every_day_and_month_and_drops_old_hours() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::init_acme(dir.path());
    let o = common::cli(&data, &["bench", "analytics-history", "--tenants", "3", "--days", "150"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    // A fixed range (day-aligned start, the end on the hour) so before and after compare.
    let now = tenantd::util::now_unix();
    let to = tenantd::util::rfc3339(now - now % 3600);
    let from = tenantd::util::rfc3339(now - now % 86_400 - 140 * 86_400);
    let month_from = tenantd::util::rfc3339(now - now % 86_400 - 30 * 86_400 - 7 * 3600);
    let views: Vec<Vec<&str>> = vec![
        vec!["--tenant", "t000001", "--granularity", "day", "--from", &from, "--to", &to],
        vec!["--tenant", "t000002", "--granularity", "week", "--from", &from, "--to", &to],
        vec!["--granularity", "month", "--from", &from, "--to", &to],
        // A partial first day still within the hourly retention.
        vec!["--tenant", "t000000", "--granularity", "day", "--from", &month_from, "--to", &to],
    ];
    let before: Vec<serde_json::Value> = views.iter().map(|v| points(&data, v)).collect();
    assert!(before[0].as_array().unwrap().len() >= 140);
    let overview = |slug: &str| {
        let o = common::cli(
            &data,
            &["analytics", "overview", "--tenant", slug, "--from", &month_from, "--to", &to, "--json"],
        );
        assert!(o.status.success(), "{}", common::stderr(&o));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("quotas");
        v
    };
    let overview_before = overview("t000001");

    let o = common::cli(&data, &["analytics", "downsample", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(d["days_written"].as_i64().unwrap() >= 3 * 140, "{d}");
    assert!(d["hourly_rows_deleted"].as_i64().unwrap() > 0, "{d}");
    assert!(d["user_rows_coarsened"].as_i64().unwrap() > 0, "{d}");

    for (v, b) in views.iter().zip(&before) {
        assert_eq!(&points(&data, v), b, "the series of {v:?} changed when downsampled");
    }
    assert_eq!(overview("t000001"), overview_before);
    // Nothing hourly is left past the retention; asking for those hours says so.
    let catalog = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let old: i64 = catalog
        .query_row("SELECT count(*) FROM usage_hourly WHERE hour < ?1", [now - now % 86_400 - 90 * 86_400], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(old, 0);
    let o = common::cli(
        &data,
        &[
            "analytics",
            "trends",
            "--json",
            "--tenant",
            "t000001",
            "--granularity",
            "hour",
            "--from",
            "-120d",
            "--to",
            "-115d",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["notice"].as_str().unwrap().contains("analytics_hourly_days"), "{v}");
    // A second run has almost nothing to do and changes nothing.
    let o = common::cli(&data, &["analytics", "downsample", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["hourly_rows_deleted"], 0, "{d}");
    assert_eq!(points(&data, &views[0]), before[0]);
}

#[test]
fn issue21_retention_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::init_acme(dir.path());
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "analytics_hourly_days = 90\nanalytics_daily_days = 100\n").unwrap();
    let o = common::cli_with_env(&data, &[("TENANTD_CONFIG", &cfg)], &["analytics", "downsample"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(common::stderr(&o).contains("analytics_daily_days"), "{}", common::stderr(&o));
}

#[test]
fn issue21_short_retentions_roll_months_and_keep_the_monthly_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::init_acme(dir.path());
    let cfg = dir.path().join("short.toml");
    std::fs::write(&cfg, "analytics_hourly_days = 2\nanalytics_daily_days = 33\n").unwrap();
    let run = |args: &[&str]| {
        let o = common::cli_with_env(&data, &[("TENANTD_CONFIG", &cfg)], args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    run(&["bench", "analytics-history", "--tenants", "2", "--days", "200"]);
    let now = tenantd::util::now_unix();
    let to = tenantd::util::rfc3339(now - now % 3600);
    let from = tenantd::util::rfc3339(now - now % 86_400 - 190 * 86_400);
    let month = ["analytics", "trends", "--json", "--granularity", "month", "--from", &from, "--to", &to];
    let before = run(&month)["points"].clone();
    let d = run(&["analytics", "downsample", "--json"]);
    assert!(d["months_written"].as_i64().unwrap() >= 2 * 3, "{d}");
    assert!(d["daily_rows_deleted"].as_i64().unwrap() > 0, "{d}");
    // Requests, errors and distinct users per month survive; the first month (partial in the
    // hourly data, whole in the monthly) may only grow.
    let after = run(&month)["points"].clone();
    let (b, a) = (before.as_array().unwrap(), after.as_array().unwrap());
    assert_eq!(a.len(), b.len());
    for (x, y) in b.iter().zip(a).skip(1) {
        for m in ["requests", "errors", "active_users", "p95_ms"] {
            assert_eq!(x["values"][m], y["values"][m], "{m} of {}", x["start"]);
        }
    }
    let catalog = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let monthly: i64 = catalog.query_row("SELECT count(*) FROM usage_monthly", [], |r| r.get(0)).unwrap();
    assert!(monthly >= 6);
    // Days that only exist as months are answered with a notice.
    let days = run(&["analytics", "trends", "--json", "--granularity", "day", "--from", &from, "--to", &to]);
    assert!(days["notice"].as_str().unwrap().contains("analytics_daily_days"), "{days}");
}

#[test]
fn issue21_the_flask_appbuilder_paths_take_the_tenant_from_x_tenant_the_host_or_the_query() {
    let s = TestServer::start();
    let a = s.token("owner@acme.test", "acme", "owner");
    s.token("owner@globex.test", "globex", "owner");
    s.get_as("/api/v1/t/acme/customers", &a);
    tenantd::auth::create_user(&s.app, "root@ops.test", common::PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let get = |path: &str, token: &str, headers: &[(&str, &str)]| {
        let auth = format!("Bearer {token}");
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        s.client().request("GET", path, &h, &[]).unwrap()
    };
    // The tenant from X-Tenant or ?tenant=: the tenant route's document.
    let o = get("/analytics/api/overview?from=-1d", &a, &[("X-Tenant", "acme")]);
    assert_eq!(o.status, 200, "{}", o.text());
    assert_eq!(o.json()["tenant"], "acme");
    assert!(o.json()["overview"]["requests"].as_i64().unwrap() >= 1);
    let t = get("/analytics/api/usage-trends?tenant=acme&granularity=hour&from=-2h", &a, &[]);
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["trends"]["granularity"], "hour");
    assert_eq!(get("/analytics/api/comparative?tenant=acme", &a, &[]).status, 200);
    assert_eq!(get("/analytics/api/overview?format=csv", &a, &[("X-Tenant", "acme")]).status, 200);
    // Another tenant is a 404, as on every tenant route; two different tenants a 400.
    assert_eq!(get("/analytics/api/overview", &a, &[("X-Tenant", "globex")]).status, 404);
    assert_eq!(get("/analytics/api/overview?tenant=nope", &a, &[]).status, 404);
    let c = get("/analytics/api/overview?tenant=globex", &a, &[("X-Tenant", "acme")]);
    assert_eq!(c.status, 400);
    assert_eq!(c.json()["error"]["code"], "tenant_conflict");
    // No tenant: the platform's, for platform admins only.
    assert_eq!(get("/analytics/api/overview", &a, &[]).status, 403);
    let p = get("/analytics/api/overview?from=-1d", &root, &[]);
    assert_eq!(p.status, 200, "{}", p.text());
    assert!(p.json()["overview"]["tenants"].as_i64().unwrap() >= 2);
    assert_eq!(get("/analytics/api/usage-trends", &root, &[]).status, 200);
    let c = get("/analytics/api/comparative", &root, &[]);
    assert_eq!(c.status, 400);
    assert_eq!(c.json()["error"]["code"], "tenant_required");
    assert_eq!(get("/analytics/api/nothing", &root, &[]).status, 404);
}

#[test]
fn issue21_records_per_table_and_their_growth_since_the_first_count() {
    let s = TestServer::start();
    let owner = s.token("owner@acme.test", "acme", "owner");
    let o = s.get_as("/api/v1/t/acme/analytics/overview?from=-7d", &owner).json();
    let rows = |v: &serde_json::Value, table: &str| {
        v["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).cloned().unwrap()
    };
    let before = rows(&o, "customers");
    let n0 = before["rows"].as_i64().unwrap();
    for i in 0..3 {
        let body = serde_json::json!({"name": format!("R{i}"), "email": format!("r{i}@records.test")});
        assert_eq!(s.post_json("/api/v1/t/acme/customers", Some(&owner), &body).status, 201);
    }
    let o = s.get_as("/api/v1/t/acme/analytics/overview?from=-7d", &owner).json();
    let after = rows(&o, "customers");
    assert_eq!(after["rows"].as_i64().unwrap(), n0 + 3);
    assert_eq!(after["rows_before"].as_i64().unwrap(), n0, "{after}");
    assert_eq!(after["growth"].as_i64().unwrap(), 3, "{after}");
    let csv = s.get_as("/api/v1/t/acme/analytics/overview?format=csv", &owner).text();
    assert!(csv.contains(&format!("rows_customers,{}", n0 + 3)), "{csv}");
}
