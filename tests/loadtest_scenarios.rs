//! Issue 24 item 4: `tenantd loadtest --scenario FILE`: stages with durations, ramps of
//! connections and rates, mixes per table and tenant weights, reported per stage (text, JSON,
//! and an HTML page with latency percentiles over time as SVG charts).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::ServerCli as _;
use common::{stderr, stdout, TestServer};
use serde_json::Value;
use tenantd::ids::Slug;

fn run(s: &TestServer, scenario: &str, extra: &[&str]) -> std::process::Output {
    let file = s.dir.path().join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let url = format!("http://{}", s.addr());
    let mut args = vec!["loadtest", "--url", &url, "--scenario", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    s.cli(&args)
}

fn rows_of(s: &TestServer, slug: &str, table: &str) -> i64 {
    let t = s.app.tenant(&Slug::parse(slug).unwrap()).unwrap();
    let conn = tenantd::db::open_read_only(&s.app.paths.tenant_db(&t.id)).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

const TWO_STAGES: &str = r#"
name = "smoke"
tenants = 3
rows = 50

[[stage]]
name = "warm"
duration = "1s"
concurrency = 2
mix = "read=90,list=10"

[[stage]]
name = "ramp"
duration = "1500ms"
concurrency = { from = 1, to = 4 }
rate = { from = 50, to = 200 }
mix = { customers = "write=1", projects = "list=1" }
"#;

#[test]
fn r24_4_a_scenario_runs_its_stages_and_reports_each() {
    let s = TestServer::start();
    let html = s.dir.path().join("report.html");
    let o = run(&s, TWO_STAGES, &["--json", "--html", html.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["scenario"], "smoke");
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let (warm, ramp) = (&stages[0], &stages[1]);
    assert_eq!(warm["stage"], "warm");
    assert_eq!((warm["concurrency"].as_u64(), warm["concurrency_from"].is_null()), (Some(2), true));
    assert!(warm["ops"]["customers.read"]["requests"].as_u64().unwrap() > 0, "{warm}");
    assert_eq!(ramp["concurrency_from"], 1);
    assert_eq!(ramp["rate"], serde_json::json!({"from": 50.0, "to": 200.0}));
    assert_eq!(ramp["tables"], serde_json::json!(["customers", "projects"]));
    // Open loop from 50 to 200 req/s over 1.5 s: about 187 requests (the ramp's mean, 125/s).
    let sent = ramp["requests"].as_f64().unwrap();
    assert!((110.0..=260.0).contains(&sent), "{sent} requests in the ramp");
    let writes = ramp["ops"]["customers.write"]["requests"].as_u64().unwrap();
    assert!(writes > 20 && ramp["ops"]["projects.list"]["requests"].as_u64().unwrap() > 20, "{ramp}");
    // The series covers the stage, window by window, and the ramp's rate rises.
    let series = ramp["series"].as_array().unwrap();
    assert!(series.len() >= 10, "{} windows", series.len());
    let rps = |w: &Value| w["rps"].as_f64().unwrap();
    let n = series.len();
    let early: f64 = series[..n / 3].iter().map(rps).sum::<f64>() / (n / 3) as f64;
    let late: f64 = series[n - n / 3 - 1..n - 1].iter().map(rps).sum::<f64>() / (n / 3) as f64;
    assert!(late > early * 1.5, "the rate ramps up: {early:.0}/s early, {late:.0}/s late");
    // Writes reached the tenants (3 tenants, 50 seeded rows each).
    let written: i64 = (1..=3).map(|i| rows_of(&s, &format!("load-0000{i}"), "customers")).sum::<i64>() - 150;
    assert_eq!(written as u64, writes - ramp["ops"]["customers.write"]["errors"].as_u64().unwrap());

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);
    assert!(page.contains("Latency percentiles over time") && page.matches("<svg").count() == 2, "{page}");
    assert!(page.contains("p99") && page.contains("warm") && page.contains("ramp") && page.contains("customers.write"));
    assert!(!page.contains("<script"), "the report is static");
}

#[test]
fn r24_4_tenant_weights_steer_the_load() {
    let s = TestServer::start();
    let only_first = r#"
tenants = 3
rows = 10
[tenant_weights]
"load-00002" = 0
"3" = 0
[[stage]]
duration = "700ms"
concurrency = 2
mix = "write=1"
"#;
    let o = run(&s, only_first, &[]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 tenants (weighted)"), "{}", stdout(&o));
    assert!(rows_of(&s, "load-00001", "customers") > 10);
    assert_eq!(rows_of(&s, "load-00002", "customers"), 10, "weight 0: no writes");
    assert_eq!(rows_of(&s, "load-00003", "customers"), 10, "weight 0 by number: no writes");
}

#[test]
fn r24_4_bad_scenarios_are_refused_with_the_line() {
    let s = TestServer::start();
    let cases = [
        ("[[stage]]\nduration = \"1s\"\nthreads = 4\n", "line 3"),
        (
            "tenants = 2\n\n[[stage]]\nname = \"x\"\nduration = \"1s\"\nconcurrency = { from = 9, to = 3 }\n",
            "line 3: stage \"x\"",
        ),
        ("[[stage]]\nduration = \"1s\"\nmix = { customers = \"read=1,drop=2\" }\n", "unknown operation"),
        ("[tenant_weights]\n\"load-00009\" = 2\n[[stage]]\nduration = \"1s\"\n", "load-00009"),
    ];
    for (text, want) in cases {
        let o = run(&s, text, &["--tenants", "2", "--rows", "5"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{text}: {}", stderr(&o));
    }
    let o = run(&s, TWO_STAGES, &["--mix", "read=1"]);
    assert_eq!(o.status.code(), Some(2), "a stage's mix is the scenario's: {}", stderr(&o));
    let o = run(&s, "[[stage]]\nduration = \"1s\"\nmix = { nope = \"read=1\" }\n", &["--tenants", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope") && stderr(&o).contains("customers"), "{}", stderr(&o));
}
