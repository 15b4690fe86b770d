//! Issue 24 item 1: `tenantd new DIR --template …` writes a project whose two README commands
//! work: `demo` with the project's schema and sample rows, and `check` with its checks file.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, cli_in, stderr, stdout, KillOnDrop};

/// Runs `tenantd --config CONFIG demo` until it has printed its URLs (the demo tenants exist
/// then), and stops it.
fn demo_once(cwd: &Path, config: &Path) -> String {
    let child = Command::new(bin())
        .args(["--config", config.to_str().unwrap(), "demo", "--listen", "127.0.0.1:0"])
        .env("TENANTD_LOG", "quiet")
        .env_remove("TENANTD_DATA_DIR")
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut out = String::new();
    for line in std::io::BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("Try:") {
            break;
        }
    }
    out
}

#[test]
fn r24_1_every_template_demos_and_passes_its_checks() {
    for template in ["saas", "crm", "blank"] {
        let tmp = tempfile::tempdir().unwrap();
        let o = cli_in(tmp.path(), &["new", "app", "--template", template]);
        assert!(o.status.success(), "{template}: {}", stderr(&o));
        assert!(stdout(&o).contains("tenantd --config app/tenantd.toml demo"), "{}", stdout(&o));
        let app = tmp.path().join("app");
        for f in [
            "tenantd.toml",
            "README.md",
            "demo.sql",
            "checks.toml",
            "migration-config.json",
            "deploy/tenantd.service",
            "deploy/nginx-tenantd.conf",
            "schema/0001_init.sql",
        ] {
            assert!(app.join(f).is_file(), "{template}: no {f}");
        }
        let readme = std::fs::read_to_string(app.join("README.md")).unwrap();
        assert!(readme.contains("/tenantd.toml demo") && readme.contains("check --checks"), "{readme}");

        let out = demo_once(tmp.path(), &app.join("tenantd.toml"));
        assert!(out.contains("Created demo tenants acme, globex, initech"), "{template}: {out}");
        // The sample rows of demo.sql are in the demo tenants.
        let table = match template {
            "saas" => "projects",
            "crm" => "customers",
            _ => "items",
        };
        let data = app.join("data");
        assert!(data.join("catalog.db").is_file(), "{template}: the data dir is the project's");
        let tenant_dir = std::fs::read_dir(data.join("tenants")).unwrap().next().unwrap().unwrap().path();
        let db = rusqlite::Connection::open(tenant_dir.join("data.db")).unwrap();
        let rows: i64 = db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert!(rows >= 3, "{template}: {rows} rows in {table}");

        let config = app.join("tenantd.toml");
        let checks = app.join("checks.toml");
        let junit = app.join("check.xml");
        let args = ["--config", config.to_str().unwrap(), "check", "--checks", checks.to_str().unwrap()];
        let o = cli_in(tmp.path(), &[&args[..], &["--junit", junit.to_str().unwrap(), "--quiet"]].concat());
        let out = stdout(&o);
        assert!(o.status.success(), "{template}: {out}\n{}", stderr(&o));
        assert!(out.contains(", 0 failed, 0 skipped"), "{template}: {out}");
        // The template's own checks ran: 5 checks, each for both tenants that have the role.
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(
            xml.contains("<testsuite name=\"custom\" tests=\"10\" failures=\"0\" skipped=\"0\""),
            "{template}: {xml}"
        );
    }
}

#[test]
fn r24_1_new_refuses_a_non_empty_directory_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let o = cli_in(tmp.path(), &["new", "taken"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("taken is not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");

    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let o = cli_in(tmp.path(), &["new", "file"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));

    let o = cli_in(tmp.path(), &["new", "x", "--template", "shop"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("saas") && stderr(&o).contains("crm") && stderr(&o).contains("blank"),
        "{}",
        stderr(&o)
    );

    // An empty directory is fine.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    assert!(cli_in(tmp.path(), &["new", "empty", "--template", "blank"]).status.success());
}
