//! Operators' view: /metrics (checked by a strict text-format parser), /health/detailed,
//! readiness faults (read-only data dir, low disk, a broken tenant) and worker autoscaling.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use common::{within, TestServer, PASSWORD};
use serde_json::Value;
use tenantd::http::router::{Access, Route, Router, Scope};
use tenantd::http::{Ctx, Method, Req, Resp};

/// One parsed exposition: series (name + sorted labels) → value, and each family's type.
struct Parsed {
    series: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses Prometheus text format 0.0.4 strictly: HELP/TYPE before samples, one TYPE per
/// family, valid names, quoted and escaped label values, float values, no duplicate series,
/// counters ending in `_total`, histogram buckets cumulative and ending in `+Inf` = `_count`.
fn parse(text: &str) -> Parsed {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeMap::new();
    let mut last_family: Option<String> = None;
    let family_of = |name: &str, types: &BTreeMap<String, String>| -> Option<String> {
        if types.contains_key(name) {
            return Some(name.to_string());
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suf| name.strip_suffix(suf))
            .find(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            .map(str::to_string)
    };
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, arg) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(valid_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => assert!(!arg.is_empty(), "empty help: {line:?}"),
                "TYPE" => {
                    last_family = Some(name.to_string());
                    assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg), "{line:?}");
                    assert!(types.insert(name.to_string(), arg.to_string()).is_none(), "TYPE twice: {line:?}");
                    if arg == "counter" {
                        assert!(name.ends_with("_total"), "counter without _total: {name}");
                    }
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "blank line in exposition");
        let (name_labels, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"))),
            None => (name_labels, ""),
        };
        assert!(valid_name(name), "bad sample name {line:?}");
        let family = family_of(name, &types).unwrap_or_else(|| panic!("sample before its TYPE: {line:?}"));
        assert_eq!(Some(&family), last_family.as_ref(), "{line:?} not grouped under its family");
        let mut pairs = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, v) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(valid_name(k), "bad label name {k:?}");
            let mut end = None;
            let mut escaped = false;
            for (i, c) in v.char_indices() {
                match (escaped, c) {
                    (true, '\\' | '"' | 'n') => escaped = false,
                    (true, _) => panic!("bad escape in {line:?}"),
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
            pairs.push(format!("{k}={}", &v[..end]));
            rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
        }
        pairs.sort();
        let key = format!("{name}{{{}}}", pairs.join(","));
        assert!(series.insert(key.clone(), value).is_none(), "duplicate series {key}");
    }
    // Histograms: cumulative buckets, +Inf equals _count.
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (k, v) in series.iter().filter(|(k, _)| k.starts_with(&format!("{family}_bucket{{"))) {
            let labels = &k[k.find('{').unwrap() + 1..k.len() - 1];
            let (le, others): (Vec<&str>, Vec<&str>) = labels.split(',').partition(|p| p.starts_with("le="));
            let le = le[0].trim_start_matches("le=");
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            by_series.entry(others.join(",")).or_default().push((le, *v));
        }
        for (labels, mut buckets) in by_series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{family}{{{labels}}} not cumulative");
            let last = buckets.last().unwrap();
            assert!(last.0.is_infinite(), "{family}{{{labels}}} has no +Inf bucket");
            let count = series[&format!("{family}_count{{{labels}}}")];
            assert_eq!(last.1, count, "{family}{{{labels}}}: +Inf bucket != _count");
        }
    }
    Parsed { series, types }
}

fn scrape(s: &TestServer) -> Parsed {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    parse(&r.text())
}

#[test]
fn metrics_parse_cover_the_operator_list_and_stay_bounded_under_random_urls() {
    let s = TestServer::start();
    s.create_tenant("acme");
    let t = s.token("a@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    assert_eq!(s.get("/api/v1/t/acme/customers").status, 401);
    let m = scrape(&s);
    for family in [
        "tenantd_build_info",
        "tenantd_http_requests_total",
        "tenantd_http_request_duration_seconds",
        "tenantd_rate_limited_total",
        "tenantd_quota_rejected_total",
        "tenantd_tenants_open",
        "tenantd_tenant_lru_hits_total",
        "tenantd_tenant_lru_misses_total",
        "tenantd_tenant_lru_evictions_total",
        "tenantd_pool_waits_total",
        "tenantd_cache_hits_total",
        "tenantd_cache_misses_total",
        "tenantd_sqlite_busy_retries_total",
        "tenantd_workers",
        "tenantd_workers_busy",
        "tenantd_metering_flush_lag_seconds",
        "tenantd_audit_anchor_lag_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(m.types.contains_key(family), "missing {family}");
    }
    assert_eq!(m.series["tenantd_http_requests_total{method=GET,route=/api/v1/t/{slug}/{table},status=2xx}"], 1.0);
    assert_eq!(m.series["tenantd_http_requests_total{method=GET,route=/api/v1/t/{slug}/{table},status=4xx}"], 1.0);
    assert_eq!(m.series["tenantd_errors_total{code=unauthorized}"], 1.0);
    assert!(m.series["tenantd_tenants_open{}"] >= 1.0);

    // Requests to random URLs, random tenant slugs and random methods: after a first round has
    // touched every kind of route and error, 10,000 more add no series at all.
    let mut c = s.client();
    let mut junk = BTreeSet::new();
    let mut flood = |n: u32| {
        for i in 0..n {
            let word = format!("r{:08x}", rand::random::<u32>());
            junk.insert(word.clone());
            let path = match i % 4 {
                0 => format!("/{word}/{i}"),
                1 => format!("/api/v1/t/{word}/customers"),
                2 => format!("/api/v1/t/acme/{word}?q={word}"),
                _ => format!("/admin/t/{word}/x"),
            };
            let method = ["GET", "POST", "DELETE", "BREW"][(i % 7 % 4) as usize];
            let r = c.request(method, &path, &[], b"").unwrap();
            assert!(r.status >= 400, "{method} {path}: {}", r.status);
        }
    };
    flood(500);
    let before = scrape(&s);
    flood(10_000);
    let after = scrape(&s);
    let before_keys: BTreeSet<&String> = before.series.keys().collect();
    let after_keys: BTreeSet<&String> = after.series.keys().collect();
    assert_eq!(before_keys, after_keys, "10,000 random requests changed the series set");
    assert!(after.series.len() < 2000, "{} series", after.series.len());
    for k in after.series.keys() {
        assert!(!junk.iter().any(|w| k.contains(w.as_str())), "client input in a label: {k}");
        assert!(!k.contains("acme"), "tenant slug in a label: {k}");
    }
    let flooded = after.series["tenantd_http_requests_total{method=any,route=unmatched,status=4xx}"]
        - before.series["tenantd_http_requests_total{method=any,route=unmatched,status=4xx}"];
    assert!(flooded >= 5_000.0, "the flood is counted: {flooded}");
}

#[test]
fn metrics_are_only_for_allowed_addresses() {
    let s = TestServer::start_with(|c| c.metrics_allow = vec!["10.0.0.0/8".into()]);
    let r = s.get("/metrics");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "ip_denied");
}

#[test]
fn detailed_health_is_for_platform_admins_and_reports_components() {
    let s = TestServer::start();
    s.create_tenant("acme");
    assert_eq!(s.get("/health/detailed").status, 401);
    let member = s.token("m@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/health/detailed", &member).status, 403);
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let root = s.login("root@ops.test");
    let r = s.get_as("/health/detailed", &root);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/health+json"));
    assert!(r.header("cache-control").unwrap().contains("max-age"));
    let body = r.json();
    assert_eq!(body["status"], "pass", "{body}");
    let checks = &body["checks"];
    for key in [
        "catalog:responseTime",
        "datadir:freeSpace",
        "memory:residentBytes",
        "cpu:loadAverage1m",
        "tenants:open",
        "pool:waits",
        "metering:backlog",
        "cache:authHitRatio",
        "workers:size",
        "workers:busy",
    ] {
        assert!(checks[key][0]["observedValue"] != Value::Null || key.ends_with("Ratio"), "{key}: {body}");
        assert_eq!(checks[key][0]["status"], "pass", "{key}: {body}");
    }
    assert_eq!(checks["workers:size"][0]["observedValue"], 4);
    assert!(checks["memory:residentBytes"][0]["observedValue"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn readiness_fails_when_disk_space_is_under_the_threshold() {
    let s = TestServer::start_with(|c| c.min_free_disk_bytes = u64::MAX / 8);
    let r = s.get("/health/readiness");
    assert_eq!(r.status, 503);
    let b = r.json();
    assert_eq!(b["checks"]["datadir:freeSpace"][0]["status"], "fail", "{b}");
    assert_eq!(s.get("/health/liveness").status, 200, "liveness never looks at disks");
}

#[test]
fn one_broken_tenant_is_a_warning_not_a_failure() {
    let s = TestServer::start();
    let rec = s.create_tenant("acme");
    let t = s.token("a@acme.test", "acme", "owner");
    s.app.store.evict(&rec.id);
    let db = s.app.paths.tenant_db(&rec.id);
    std::fs::rename(&db, db.with_extension("moved")).unwrap();
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 503);
    let r = s.get("/health/readiness");
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["status"], "warn", "{b}");
    assert_eq!(b["checks"]["tenants:unavailable"][0]["status"], "warn");
    std::fs::rename(db.with_extension("moved"), &db).unwrap();
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).status, 200);
    assert_eq!(s.get("/health/readiness").json()["status"], "pass");
}

/// Remounts `dir` read-only for the guard's lifetime (needs CAP_SYS_ADMIN, which CI has: it
/// runs as root).
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn mount(dir: &std::path::Path) -> ReadOnly {
        let ok = |args: &[&str]| Command::new("mount").args(args).status().is_ok_and(|s| s.success());
        let d = dir.to_str().unwrap();
        assert!(ok(&["--bind", d, d]) && ok(&["-o", "remount,bind,ro", d, d]), "mount needs root");
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn readiness_fails_on_a_read_only_data_dir_and_recovers() {
    let s = TestServer::start();
    assert_eq!(s.get("/health/readiness").status, 200);
    let ro = ReadOnly::mount(&s.data_dir());
    let failed = within(Duration::from_secs(5), || s.get("/health/readiness").status == 503);
    assert!(failed.is_some(), "readiness did not fail on a read-only data dir");
    let b = s.get("/health/readiness").json();
    assert_eq!(b["checks"]["datadir:writable"][0]["status"], "fail", "{b}");
    assert_eq!(s.get("/health/liveness").status, 200);
    drop(ro);
    assert!(within(Duration::from_secs(5), || s.get("/health/readiness").status == 200).is_some());
}

/// A route whose handler blocks until the test opens the gate: workers busy, CPU idle.
static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

fn wait_at_gate(_: &Ctx<'_>, _: &Req) -> tenantd::error::Result<Resp> {
    let (open, cv) = &GATE;
    let guard = open.lock().unwrap();
    let _unused = cv.wait_timeout_while(guard, Duration::from_secs(20), |open| !*open).unwrap();
    Ok(Resp::json(200, &"through"))
}

#[test]
fn the_worker_pool_grows_while_requests_wait_and_shrinks_when_idle() {
    let mut router: Router = tenantd::api::router();
    router.push(Route {
        method: Method::Get,
        scope: Scope::Global,
        pattern: "/test/gate",
        handler: wait_at_gate,
        access: Access::Public,
    });
    let s = TestServer::with_router_and(router, |c| {
        c.workers_min = 2;
        c.workers_max = Some(4);
        c.workers_idle_seconds = 1;
    });
    let pool = &s.state().pool;
    assert_eq!(pool.size(), 2);
    let addr = s.addr();
    // Four: tiny_http starts four connection threads and adds more only when none is free at
    // accept time, so a fifth long-lived connection can wait in its queue until one closes.
    let blocked: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = tenantd::http::client::Client::new(addr);
                c.get("/test/gate").unwrap().status
            })
        })
        .collect();
    // Four requests wait behind two busy workers while the CPU idles: the pool grows to four.
    assert!(within(Duration::from_secs(10), || pool.size() == 4 && pool.busy() == 4).is_some(), "{}", pool.size());
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    for b in blocked {
        assert_eq!(b.join().unwrap(), 200);
    }
    let metrics = scrape(&s);
    assert_eq!(metrics.series["tenantd_worker_scaling_total{direction=up}"], 2.0);
    // Idle: one worker retired per idle second, down to the minimum and no further.
    assert!(within(Duration::from_secs(15), || pool.size() == 2).is_some(), "{}", pool.size());
    assert_eq!(pool.shrunk.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(s.get("/health/liveness").status, 200);
}
