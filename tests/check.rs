//! Issue 24 item 2: `tenantd check`, the conformance suite operators run against their own
//! deployment: on a copy of a data dir, against a running server with a credentials file, with
//! their own checks; and it fails when isolation or roles are broken.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::{cli, cli_in, stderr, stdout, TestServer, PASSWORD};
use tenantd::check::{self, creds, Target};
use tenantd::http::router::{Access, Need, Route, Router};

/// The demo tenants (acme, globex, initech) in a stopped server's data dir.
fn demo_data_dir() -> TestServer {
    let mut s = TestServer::start();
    tenantd::demo::ensure(&s.app).unwrap();
    s.shutdown();
    s
}

fn passed_count(out: &str) -> usize {
    let line = out.lines().find(|l| l.starts_with("check result:")).unwrap_or_else(|| panic!("no summary in {out}"));
    line.split(". ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
}

#[test]
fn r24_2_the_demo_data_dir_passes_on_a_copy_and_is_left_untouched() {
    let s = demo_data_dir();
    let data = s.data_dir();
    let checks = s.dir.path().join("checks.toml");
    std::fs::write(&checks, tenantd::check::custom::EXAMPLE.replace("{{TABLE}}", "customers")).unwrap();
    let junit = s.dir.path().join("check.xml");
    let users_before = count_users(&data);
    let o = cli(&data, &["check", "--checks", checks.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("check result: ok."), "{out}");
    assert!(out.contains(", 0 failed, 0 skipped"), "{out}");
    assert!(passed_count(&out) > 500, "{out}");
    for group in [
        "isolation",
        "anonymous",
        "pages",
        "roles",
        "control",
        "audit",
        "limits",
        "security_headers",
        "custom",
        "migrations",
        "backup",
    ] {
        assert!(out.contains(&format!("check {group}::")), "no {group} checks:\n{out}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.starts_with("<?xml")
            && xml.contains("<testsuites name=\"tenantd check\"")
            && xml.contains("failures=\"0\"")
    );
    // The checks ran on a copy: no check user, no restored tenant in the original.
    assert_eq!(count_users(&data), users_before);
    let list = stdout(&cli(&data, &["tenant", "list"]));
    assert!(!list.contains("check-restore"), "{list}");
}

fn count_users(data: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    c.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap()
}

/// Two tenants with an owner and a viewer each, and the credentials file naming them.
fn two_tenants(s: &TestServer) -> std::path::PathBuf {
    let mut file = String::new();
    for slug in ["acme", "globex"] {
        for role in ["owner", "viewer"] {
            let email = format!("{role}@{slug}.test");
            s.member(&email, slug, role);
            file.push_str(&format!(
                "[[login]]\ntenant = \"{slug}\"\nrole = \"{role}\"\nemail = \"{email}\"\npassword = \"{PASSWORD}\"\n\n"
            ));
        }
    }
    let owner = s.login("owner@globex.test");
    let r =
        s.post_json("/api/v1/t/globex/customers", Some(&owner), &serde_json::json!({"name": "Globex Secret Customer"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let path = s.dir.path().join("creds.toml");
    std::fs::write(&path, file).unwrap();
    path
}

#[test]
fn r24_2_a_running_server_passes_with_a_credentials_file() {
    let s = TestServer::start();
    let creds = two_tenants(&s);
    let url = format!("http://{}", s.addr());
    let o = cli_in(s.dir.path(), &["check", "--url", &url, "--credentials", creds.to_str().unwrap(), "--quiet"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(!out.contains("... ok"), "--quiet prints failures only:\n{out}");
    assert!(out.contains("0 failed, 3 skipped"), "the data-dir checks are skipped against a URL:\n{out}");
    assert!(passed_count(&out) > 300, "{out}");
}

#[test]
fn r24_2_credentials_that_do_not_work_are_named_before_any_check() {
    let s = TestServer::start();
    let creds = two_tenants(&s);
    let text = std::fs::read_to_string(&creds).unwrap();
    // globex's viewer with a wrong password (the last login of the file).
    let at = text.rfind(PASSWORD).unwrap();
    std::fs::write(&creds, format!("{}wrong-password{}", &text[..at], &text[at + PASSWORD.len()..])).unwrap();
    let url = format!("http://{}", s.addr());
    let o = cli_in(s.dir.path(), &["check", "--url", &url, "--credentials", creds.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("tenant globex role viewer") && err.contains("401"), "{err}");
    assert!(!stdout(&o).contains("check "), "no check ran: {}", stdout(&o));
    // A role the user does not have is named too.
    std::fs::write(
        &creds,
        text.replace(
            "role = \"viewer\"\nemail = \"viewer@acme.test\"",
            "role = \"admin\"\nemail = \"viewer@acme.test\"",
        ),
    )
    .unwrap();
    let o = cli_in(s.dir.path(), &["check", "--url", &url, "--credentials", creds.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("role in acme is viewer, not admin"), "{}", stderr(&o));
}

#[test]
fn r24_2_bad_check_files_name_the_line_and_send_nothing() {
    let s = TestServer::start();
    let creds = two_tenants(&s);
    let url = format!("http://{}", s.addr());
    let checks = s.dir.path().join("checks.toml");
    let cases = [
        (
            "[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\nstatus = 200\nstatsu = 3\n",
            "line 6",
            "unknown field `statsu`",
        ),
        (
            "# mine\n[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\nstatus = 42\n",
            "line 2",
            "not an HTTP status",
        ),
        (
            "[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"auditor\"\nstatus = 200\n",
            "line 1",
            "no role of the credentials",
        ),
    ];
    for (text, line, what) in cases {
        std::fs::write(&checks, text).unwrap();
        let o = cli_in(
            s.dir.path(),
            &["check", "--url", &url, "--credentials", creds.to_str().unwrap(), "--checks", checks.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(2), "{text}");
        let err = stderr(&o);
        assert!(err.contains(line) && err.contains(what), "{text}: {err}");
        assert!(!stdout(&o).contains("check "), "{}", stdout(&o));
    }
    // A check that does not hold fails the run, with what was expected.
    std::fs::write(&checks, "[[check]]\nname = \"viewers may add customers\"\nmethod = \"POST\"\npath = \"/api/v1/t/{tenant}/customers\"\nbody = { name = \"x\" }\nas = \"viewer\"\nstatus = 201\n").unwrap();
    let o = cli_in(
        s.dir.path(),
        &[
            "check",
            "--url",
            &url,
            "--credentials",
            creds.to_str().unwrap(),
            "--checks",
            checks.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("custom::viewers may add customers (line 1) as acme's viewer")
            && out.contains("status 403 (expected 201)"),
        "{out}"
    );
    assert!(out.contains("check result: FAILED.") && out.contains(" 2 failed,"), "{out}");
}

/// The walk finds a route whose access rule lost its tenant check, a role rule too lax and a
/// platform route open to any signed-in user.
#[test]
fn r24_2_a_broken_route_table_fails_the_walk() {
    let routes = tenantd::api::router()
        .routes()
        .iter()
        .map(|r| {
            let access = match (r.method.as_str(), r.pattern) {
                ("GET", "/members") => Access::Authenticated,
                ("DELETE", "/api-keys/{key_id}") => Access::Tenant(Need::Member),
                ("GET", "/api/v1/platform/tenants") => Access::Authenticated,
                _ => r.access,
            };
            Route { method: r.method, scope: r.scope, pattern: r.pattern, handler: r.handler, access }
        })
        .collect();
    let s = TestServer::with_router(Router::new(routes));
    let creds_path = two_tenants(&s);
    let target = Target::new(s.addr(), &format!("http://{}", s.addr()));
    let file = creds::read(&creds_path).unwrap();
    let signed = creds::sign_in(&target, &file).unwrap();
    let opts = check::Options { table: None, migrate_tenants: 1, quiet: true };
    let run = check::run_all(&target, &signed, &[], None, &opts).unwrap();
    let failed: Vec<String> = run
        .results
        .iter()
        .filter(|r| matches!(r.outcome, check::Outcome::Failed(_)))
        .map(|r| format!("{}::{}", r.group, r.name))
        .collect();
    let has = |s: &str| failed.iter().any(|f| f == s);
    assert!(has("isolation::GET /api/v1/t/{slug}/members of globex as acme's owner"), "{failed:#?}");
    assert!(has("roles::DELETE /api/v1/t/{slug}/api-keys/{key_id} as acme's viewer"), "{failed:#?}");
    assert!(has("platform::GET /api/v1/platform/tenants as globex's owner"), "{failed:#?}");
    // ("GET", "/members") names the members page too: it is broken the same way.
    let broken = [
        "GET /api/v1/t/{slug}/members ",
        "GET /admin/t/{slug}/members ",
        "DELETE /api/v1/t/{slug}/api-keys/{key_id} ",
        "GET /api/v1/platform/tenants ",
    ];
    assert!(
        failed.iter().all(|f| broken.iter().any(|b| f.contains(b))),
        "only the three broken rules fail: {failed:#?}"
    );
    let leak = run.results.iter().find(|r| r.name == "GET /api/v1/t/{slug}/members of globex as acme's owner").unwrap();
    assert!(
        matches!(&leak.outcome, check::Outcome::Failed(m) if m.contains("answered 200 instead of 404")),
        "{leak:?}"
    );
}

/// A data dir's copy holds the catalog and only the tenants the checks use, however many there
/// are; the checks still pass on it.
#[test]
fn r24_2_the_copy_takes_only_the_tenants_the_checks_use() {
    let mut s = TestServer::start();
    for slug in ["t-a", "t-b", "t-c", "t-d", "t-e"] {
        s.create_tenant(slug);
    }
    s.shutdown();
    let copy = tenantd::check::local::prepare(tenantd::testkit::config(s.dir.path()), 3).unwrap();
    let copied: Vec<&str> = copy.copied.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(copied, ["t-a", "t-b", "t-c"]);
    let files = std::fs::read_dir(copy.app.paths.data_dir.join("tenants")).unwrap().count();
    assert_eq!(files, 3, "only the copied tenants' files");
    let target = Target::new(copy.addr, &format!("http://{}", copy.addr));
    let signed = creds::sign_in(&target, &copy.creds).unwrap();
    let opts = check::Options { table: None, migrate_tenants: 3, quiet: true };
    let run = check::run_all(&target, &signed, &[], Some(&copy), &opts).unwrap();
    assert_eq!(
        run.failed(),
        0,
        "{:#?}",
        run.results.iter().filter(|r| r.outcome != check::Outcome::Passed).collect::<Vec<_>>()
    );
    assert!(
        run.results.iter().any(|r| r.name.contains("the 3 copied tenants")),
        "the audit check names what it covered"
    );
    let root = copy.app.paths.data_dir.clone();
    drop(copy);
    assert!(!root.exists(), "the copy is removed");
}
