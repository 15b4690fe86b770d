//! `tenantd loadtest` end to end: the real binary provisions tenants in a live server's data dir,
//! loads it over HTTP, and its JSON report adds up (issue 6, item 6).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ServerCli as _;
use common::{stderr, stdout, TestServer};
use serde_json::Value;
use tenantd::ids::Slug;

fn url(s: &TestServer) -> String {
    format!("http://{}", s.addr())
}

fn run_json(s: &TestServer, extra: &[&str]) -> (Output, Value) {
    let url = url(s);
    let mut args = vec!["loadtest", "--url", &url, "--json"];
    args.extend_from_slice(extra);
    let out = s.cli(&args);
    let report = report(&out);
    (out, report)
}

fn report(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

fn count(s: &TestServer, slug: &str, sql: &str) -> i64 {
    let t = s.app.tenant(&Slug::parse(slug).unwrap()).unwrap();
    let conn = tenantd::db::open_read_only(&s.app.paths.tenant_db(&t.id)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

const CUSTOMERS: &str = "SELECT count(*) FROM customers";

/// A credentials file (`creds.json`) for acme's owner, in a directory the CLI can run in.
fn acme_credentials(s: &TestServer) -> tempfile::TempDir {
    let token = s.token("owner@acme.test", "acme", "owner");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("creds.json"), serde_json::json!([{"slug": "acme", "token": token}]).to_string())
        .unwrap();
    dir
}

/// The real binary loading `s` with the credentials in `dir`, without a data dir.
fn remote_cli(s: &TestServer, dir: &Path, extra: &[&str]) -> Output {
    Command::new(common::bin())
        .args(["loadtest", "--url", &url(s), "--credentials"])
        .arg(dir.join("creds.json"))
        .args(extra)
        .env("TENANTD_LOG", "quiet")
        .env_remove("TENANTD_CONFIG")
        .env_remove("TENANTD_DATA_DIR")
        .current_dir(dir)
        .output()
        .unwrap()
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
    let rows = count(&s, "load-00001", CUSTOMERS) + count(&s, "load-00002", CUSTOMERS);
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
    assert_eq!(count(&s, "load-00001", CUSTOMERS), 30, "reads only: the seed is not repeated");
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
    let dir = acme_credentials(&s);
    let args = ["--mix", "list=1,write=1", "--rows", "20", "--duration", "300ms", "--concurrency", "2", "--json"];
    let out = remote_cli(&s, dir.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let r = report(&out);
    assert!(r["requests"].as_u64().unwrap() > 0);
    assert_eq!(r["errors"], 0);
    assert!(r["ops"].get("read").is_none(), "operations outside the mix are not reported");
    let written = r["ops"]["write"]["ok"].as_u64().unwrap();
    assert!(written > 0, "{r}");
    assert_eq!(count(&s, "acme", CUSTOMERS) as u64, written);
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

// --- issue 18, item 7: any tenant schema ------------------------------------------------------

/// A tenant schema that is not the demo's: `books` points at `authors`, has a UNIQUE isbn, a
/// value-list CHECK, a range CHECK narrower than the values loadtest tries first, NOT NULL
/// columns of several declared types, and a nullable BLOB; `tags` has no INTEGER PRIMARY KEY.
const LIBRARY: &str = "
CREATE TABLE authors (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    email TEXT NOT NULL UNIQUE CHECK (email LIKE '%@%'),
    born  DATE
);
CREATE TABLE books (
    id           INTEGER PRIMARY KEY,
    author_id    INTEGER NOT NULL REFERENCES authors(id),
    title        TEXT NOT NULL,
    isbn         TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL CHECK (status IN ('draft', 'published', 'retired')),
    pages        INTEGER NOT NULL CHECK (pages BETWEEN 1 AND 3),
    price        REAL CHECK (price >= 0),
    published_at TIMESTAMP,
    in_print     BOOLEAN NOT NULL,
    cover        BLOB,
    added_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX books_author ON books(author_id);
CREATE TABLE tags (name TEXT PRIMARY KEY);
";

/// A server whose tenants get the library schema, and the schema dir for the CLI.
fn library_server() -> (TestServer, tempfile::TempDir) {
    let schema = tempfile::tempdir().unwrap();
    std::fs::write(schema.path().join("0001_library.sql"), LIBRARY).unwrap();
    let dir = schema.path().to_path_buf();
    (TestServer::start_with(|c| c.tenant_schema_dir = Some(dir)), schema)
}

/// `tenantd loadtest` on the server's data dir, with the same tenant schema.
fn library_cli(s: &TestServer, schema: &tempfile::TempDir, extra: &[&str]) -> Output {
    let url = url(s);
    let mut args = vec!["loadtest", "--url", &url];
    args.extend_from_slice(extra);
    common::cli_with_schema(&s.data_dir(), schema.path(), &args)
}

#[test]
fn r18_7_loadtest_seeds_and_writes_a_table_of_another_schema() {
    let (s, schema) = library_server();
    let args = ["--table", "books", "--tenants", "2", "--rows", "40", "--mix", "read=40,list=20,write=40"];
    let args: Vec<&str> = args.into_iter().chain(["--duration", "700ms", "--concurrency", "4", "--json"]).collect();
    let out = library_cli(&s, &schema, &args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nreport: {r}", stderr(&out));
    assert!(stderr(&out).contains("40 rows of books each (and 40 of authors)"), "{}", stderr(&out));
    assert_eq!(r["table"], "books");
    assert_eq!(r["errors"], 0, "{r}");
    for op in ["read", "list", "write"] {
        assert!(r["ops"][op]["ok"].as_u64().unwrap() > 0, "no successful {op}: {r}");
    }

    // Every successful write is a row, each pointing at a seeded author, none sharing an isbn.
    let mut books = 0;
    for slug in ["load-00001", "load-00002"] {
        assert_eq!(count(&s, slug, "SELECT count(*) FROM authors"), 40);
        assert_eq!(count(&s, slug, "SELECT count(*) FROM books WHERE id <= 40"), 40, "seeded ids 1..=40");
        let n = count(&s, slug, "SELECT count(*) FROM books");
        assert_eq!(count(&s, slug, "SELECT count(*) FROM books b JOIN authors a ON a.id = b.author_id"), n);
        assert_eq!(count(&s, slug, "SELECT count(DISTINCT isbn) FROM books"), n);
        assert!(count(&s, slug, "SELECT count(DISTINCT author_id) FROM books") > 1, "keys spread over the authors");
        assert_eq!(count(&s, slug, "SELECT count(*) FROM books WHERE price IS NULL OR published_at IS NULL"), 0);
        books += n;
    }
    assert_eq!(books as u64, 80 + r["ops"]["write"]["ok"].as_u64().unwrap());

    // A second run reuses the tenants and its writes meet none of the first run's values.
    let again = library_cli(&s, &schema, &args);
    let r2 = report(&again);
    assert_eq!(again.status.code(), Some(0), "stderr: {}\nreport: {r2}", stderr(&again));
    assert!(stderr(&again).contains("(0 created, 2 reused)"), "{}", stderr(&again));
    assert_eq!(r2["errors"], 0, "{r2}");
    assert!(r2["ops"]["write"]["ok"].as_u64().unwrap() > 0, "no successful write in the second run: {r2}");
}

#[test]
fn r18_7_loadtest_defaults_to_the_first_table_the_data_api_serves() {
    let (s, schema) = library_server();
    let args = ["--tenants", "1", "--rows", "10", "--mix", "read=1,write=1", "--duration", "300ms", "--json"];
    let out = library_cli(&s, &schema, &args);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nreport: {r}", stderr(&out));
    assert_eq!(r["table"], "authors", "authors comes first by name; tags has no INTEGER PRIMARY KEY");
    assert_eq!(r["errors"], 0, "{r}");
    let written = r["ops"]["write"]["ok"].as_u64().unwrap();
    assert!(written > 0, "{r}");
    assert_eq!(count(&s, "load-00001", "SELECT count(*) FROM authors") as u64, 10 + written);
    assert_eq!(count(&s, "load-00001", "SELECT count(*) FROM books"), 0, "only the loaded table and its parents");
}

#[test]
fn r18_7_an_unknown_or_unserved_table_is_a_one_line_error() {
    let (s, schema) = library_server();
    for (table, expect) in [
        ("nope", "unknown --table \"nope\": the tenant schema has tables authors, books"),
        ("tags", "--table tags is not served by the data API"),
    ] {
        let out = library_cli(&s, &schema, &["--table", table, "--duration", "1s"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{table}: {err}");
        assert_eq!(err.lines().count(), 1, "{table}: one line, got {err:?}");
        assert!(err.starts_with("tenantd: ") && err.contains(expect), "{table}: {err}");
    }
    assert!(s.app.tenant(&Slug::parse("load-00001").unwrap()).is_err(), "nothing was provisioned");
}

#[test]
fn r18_7_remote_runs_find_the_table_in_the_openapi_document() {
    let s = TestServer::start();
    let dir = acme_credentials(&s);
    let run = |extra: &[&str]| {
        let args: Vec<&str> =
            ["--duration", "300ms", "--concurrency", "2", "--json"].iter().chain(extra).copied().collect();
        remote_cli(&s, dir.path(), &args)
    };
    let out = run(&["--table", "projects", "--mix", "list=1,write=1"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nreport: {r}", stderr(&out));
    assert_eq!(r["table"], "projects");
    let written = r["ops"]["write"]["ok"].as_u64().unwrap();
    assert!(written > 0, "{r}");
    assert_eq!(count(&s, "acme", "SELECT count(*) FROM projects") as u64, written);

    let out = run(&["--table", "nope"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown --table \"nope\": the tenant's data API has tables customers, notes, projects, tasks"),
        "{err}"
    );
}
