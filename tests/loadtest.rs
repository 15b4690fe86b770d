//! `tenantd loadtest` end to end: the real binary provisions tenants in a live server's data dir,
//! loads it over HTTP, and its JSON report adds up (issue 6, item 6).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::process::Command;

use common::{stderr, stdout, TestServer};
use serde_json::Value;
use tenantd::ids::Slug;

fn url(s: &TestServer) -> String {
    format!("http://{}", s.addr())
}

fn run_json(s: &TestServer, extra: &[&str]) -> (std::process::Output, Value) {
    let url = url(s);
    let mut args = vec!["loadtest", "--url", &url, "--json"];
    args.extend_from_slice(extra);
    let out = s.cli(&args);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}\nstderr: {}", stdout(&out), stderr(&out)));
    (out, report)
}

fn customers(s: &TestServer, slug: &str) -> i64 {
    let t = s.app.tenant(&Slug::parse(slug).unwrap()).unwrap();
    let opened = s.app.open_tenant(&t).unwrap();
    let conn = opened.handle.conn().unwrap();
    conn.query_row("SELECT count(*) FROM customers", [], |r| r.get(0)).unwrap()
}

/// |observed share - expected| within 5 standard deviations of a binomial, plus a little.
fn share_ok(count: u64, total: u64, p: f64) -> bool {
    let observed = count as f64 / total as f64;
    (observed - p).abs() <= 5.0 * (p * (1.0 - p) / total as f64).sqrt() + 0.01
}

#[test]
fn loadtest_provisions_tenants_and_reports_consistent_numbers() {
    let s = TestServer::start();
    let (out, r) =
        run_json(&s, &["--tenants", "2", "--rows", "50", "--duration", "1s", "--concurrency", "2", "--plan", "pro"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nreport: {r}", stderr(&out));
    assert!(stderr(&out).contains("2 tenants ready (2 created, 0 reused)"), "{}", stderr(&out));
    // The line scripts start their measurement window at comes after the tenants are ready.
    let err = stderr(&out);
    let ready = err.find("tenants ready").unwrap_or(usize::MAX);
    let running = err.find("loadtest: running 1s over 2 connections against http://");
    assert!(running.is_some_and(|at| at > ready), "{err}");

    let total = r["requests"].as_u64().unwrap();
    assert!(total > 20, "only {total} requests in a second");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["ok"].as_u64(), Some(total));
    assert_eq!(r["tenants"], 2);
    assert_eq!(r["distribution"], "uniform");
    let ops = &r["ops"];
    let n = |op: &str| ops[op]["requests"].as_u64().unwrap();
    assert_eq!(n("read") + n("list") + n("write"), total, "per-operation counts add up: {r}");
    for (op, p) in [("read", 0.8), ("list", 0.1), ("write", 0.1)] {
        assert!(share_ok(n(op), total, p), "{op}: {} of {total} for a weight of {p}", n(op));
        let o = &ops[op];
        let (p50, p95, p99, max) =
            (o["p50_ms"].as_f64(), o["p95_ms"].as_f64(), o["p99_ms"].as_f64(), o["max_ms"].as_f64());
        assert!(p50 > Some(0.0) && p50 <= p95 && p95 <= p99 && p99 <= max, "{op} percentiles out of order: {o}");
    }
    assert!(r["rps"].as_f64().unwrap() > 0.0);

    // Every reported write landed: 50 seeded rows per tenant plus the successful POSTs.
    let rows = customers(&s, "load-00001") + customers(&s, "load-00002");
    assert_eq!(rows as u64, 100 + ops["write"]["ok"].as_u64().unwrap());
    let t = s.app.tenant(&Slug::parse("load-00002").unwrap()).unwrap();
    assert_eq!(t.plan, "pro");
}

#[test]
fn a_second_run_reuses_tenants_and_replaces_its_keys() {
    let s = TestServer::start();
    let args = ["--tenants", "1", "--rows", "30", "--duration", "300ms", "--concurrency", "1", "--mix", "read=1"];
    let (first, _) = run_json(&s, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let (second, r) = run_json(&s, &args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(stderr(&second).contains("(0 created, 1 reused)"), "{}", stderr(&second));
    assert_eq!(r["errors"], 0);
    assert_eq!(customers(&s, "load-00001"), 30, "reads only: the seed is not repeated");
    let t = s.app.tenant(&Slug::parse("load-00001").unwrap()).unwrap();
    let keys = tenantd::catalog::identity::api_keys_of(&s.app.catalog.conn().unwrap(), &t.id).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.revoked_at.is_none()).count(), 1, "the first run's key is revoked");
}

#[test]
fn rate_limited_requests_are_reported_not_hidden() {
    let s = TestServer::start_with(|c| {
        let p = c.plans.get_mut("free").unwrap();
        p.requests_per_second = 5.0;
        p.burst = 5;
    });
    let (out, r) = run_json(&s, &["--tenants", "1", "--rows", "10", "--duration", "500ms", "--plan", "free"]);
    assert_eq!(out.status.code(), Some(1), "any failed request makes the exit status 1");
    let limited = r["errors_by_status"]["429"].as_u64().unwrap_or(0);
    assert!(limited > 0, "{r}");
    assert_eq!(r["ok"].as_u64().unwrap() + r["errors"].as_u64().unwrap(), r["requests"].as_u64().unwrap());
}

#[test]
fn credentials_file_drives_the_load_without_a_data_dir() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds.json");
    std::fs::write(&creds, serde_json::json!([{"slug": "acme", "token": token}]).to_string()).unwrap();
    let out = Command::new(common::bin())
        .args(["loadtest", "--url", &url(&s), "--credentials", creds.to_str().unwrap()])
        .args(["--mix", "list=1,write=1", "--rows", "20", "--duration", "300ms", "--concurrency", "2", "--json"])
        .env("TENANTD_LOG", "quiet")
        .env_remove("TENANTD_CONFIG")
        .env_remove("TENANTD_DATA_DIR")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(r["requests"].as_u64().unwrap() > 0);
    assert_eq!(r["errors"], 0);
    assert!(r["ops"].get("read").is_none(), "operations outside the mix are not reported");
    assert_eq!(customers(&s, "acme") as u64, r["ops"]["write"]["ok"].as_u64().unwrap());
}

#[test]
fn bad_options_exit_2_with_one_line() {
    let s = TestServer::start();
    let url = url(&s);
    for (args, expect) in [
        (vec!["--mix", "read=80,delete=20"], "invalid --mix"),
        (vec!["--mix", "read=-1"], "invalid --mix"),
        (vec!["--mix", "read=0,write=0"], "invalid --mix"),
        (vec!["--duration", "10"], "invalid --duration"),
        (vec!["--duration", "0s"], "invalid --duration"),
        (vec!["--duration", "fast"], "invalid --duration"),
        (vec!["--distribution", "pareto"], "unknown --distribution"),
        (vec!["--url", "https://127.0.0.1:1"], "invalid --url"),
        (vec!["--concurrency", "0"], "--concurrency"),
        (vec!["--rate", "0"], "--rate"),
        (vec!["--rate=-5"], "--rate"),
        (vec!["--rate", "NaN"], "--rate"),
    ] {
        let mut full = vec!["loadtest"];
        if args[0] != "--url" {
            full.extend(["--url", &url]);
        }
        full.extend(args.iter().copied());
        let out = s.cli(&full);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("tenantd: ") && err.contains(expect), "{args:?}: {err}");
        assert!(stdout(&out).is_empty());
    }
    // Nothing was provisioned by the rejected runs.
    assert!(s.app.tenant(&Slug::parse("load-00001").unwrap()).is_err());
}

#[test]
fn open_loop_sends_at_the_requested_rate() {
    let s = TestServer::start();
    let args = ["--tenants", "2", "--rows", "20", "--duration", "1s", "--concurrency", "4", "--rate", "200"];
    let (out, r) = run_json(&s, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(r["rate"], 200.0);
    // 200 req/s for 1 s over 4 connections: the schedule, not the server's speed, sets the
    // count (a closed loop against this server sends thousands).
    let n = r["requests"].as_u64().unwrap();
    assert!((150..=230).contains(&n), "{n} requests at 200/s for 1 s");
    assert!(r["p99_ms"].as_f64().unwrap() > 0.0);
}
