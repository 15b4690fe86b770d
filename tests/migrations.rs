//! Fleet schema migrations through the real CLI: a failing tenant, canaries, dry run, rollback,
//! lazy migrate-on-open, drift, and the no-op run that only reads.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use common::{stderr, stdout};
use tenantd::app::{App, OpenMode};
use tenantd::ids::Slug;
use tenantd::tenancy::{self, Actor};

const V1: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, code TEXT NOT NULL);\n";
/// Fails on a tenant that holds duplicate codes; fine everywhere else.
const V2_UNIQUE: &str =
    "CREATE UNIQUE INDEX items_code ON items(code);\nCREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);\n";

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Tenants at v1; `bad` (if named) gets duplicate codes so the unique index fails there.
    fn new(slugs: &[&str], bad: Option<&str>) -> Fleet {
        let f = Fleet { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(f.schema_dir()).unwrap();
        std::fs::write(f.schema_dir().join("0001_items.sql"), V1).unwrap();
        let app = f.app();
        for s in slugs {
            let t = tenancy::create(&app, &Slug::parse(s).unwrap(), s, None, &Actor::cli()).unwrap();
            let opened = app.open_tenant(&t).unwrap();
            let conn = opened.handle.conn().unwrap();
            let dup = Some(*s) == bad;
            conn.execute_batch(if dup {
                "INSERT INTO items(code) VALUES ('x'), ('x');"
            } else {
                "INSERT INTO items(code) VALUES ('x'), ('y');"
            })
            .unwrap();
        }
        drop(app);
        f
    }

    fn schema_dir(&self) -> PathBuf {
        self.dir.path().join("schema")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn add(&self, name: &str, sql: &str) {
        std::fs::write(self.schema_dir().join(name), sql).unwrap();
    }

    fn config(&self) -> tenantd::config::Config {
        let mut c = common::config(self.dir.path());
        c.tenant_schema_dir = Some(self.schema_dir());
        c
    }

    fn app(&self) -> Arc<App> {
        App::open(self.config(), OpenMode::CreateIfMissing).unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        common::cli_with_schema(&self.data_dir(), &self.schema_dir(), args)
    }

    fn db(&self, slug: &str) -> PathBuf {
        let app = self.app();
        let t = app.tenant(&Slug::parse(slug).unwrap()).unwrap();
        app.paths.tenant_db(&t.id)
    }

    fn version(&self, slug: &str) -> i64 {
        file_version(&self.db(slug))
    }

    fn catalog_version(&self, slug: &str) -> i64 {
        self.app().tenant(&Slug::parse(slug).unwrap()).unwrap().schema_version
    }

    fn items(&self, slug: &str) -> i64 {
        let c = tenantd::db::open_read_only(&self.db(slug)).unwrap();
        c.query_row("SELECT count(*) FROM items", [], |r| r.get(0)).unwrap()
    }

    fn runs(&self) -> i64 {
        let c = tenantd::db::open_read_only(&self.data_dir().join("catalog.db")).unwrap();
        c.query_row("SELECT count(*) FROM migration_runs", [], |r| r.get(0)).unwrap()
    }
}

fn file_version(p: &Path) -> i64 {
    tenantd::db::user_version(&tenantd::db::open_read_only(p).unwrap()).unwrap()
}

fn sha(p: &Path) -> String {
    tenantd::util::sha256_hex(&std::fs::read(p).unwrap())
}

#[test]
fn one_failing_tenant_keeps_its_version_and_data_while_others_proceed() {
    let f = Fleet::new(&["alpha", "bad", "gamma"], Some("bad"));
    f.add("0002_unique.sql", V2_UNIQUE);
    let o = f.cli(&["schema", "migrate", "--parallel", "2"]);
    assert_eq!(o.status.code(), Some(1), "any failure exits 1\n{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("failed") && out.contains("bad") && out.contains("UNIQUE"), "{out}");
    assert_eq!((f.version("alpha"), f.version("gamma")), (2, 2));
    assert_eq!((f.catalog_version("alpha"), f.catalog_version("gamma")), (2, 2));
    assert_eq!(f.version("bad"), 1);
    assert_eq!(f.catalog_version("bad"), 1);
    assert_eq!(f.items("bad"), 2, "the failed tenant keeps its data");
    // Each migrated tenant has a snapshot at its old version.
    let snaps = common::files_under(&f.data_dir().join("backups"));
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(snaps.iter().all(|p| file_version(p) == 1));
    // Status names the laggard.
    let o = f.cli(&["schema", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bad = v["tenants"].as_array().unwrap().iter().find(|t| t["slug"] == "bad").unwrap();
    assert_eq!(bad["state"], "behind");
    assert!(bad["last_outcome"].as_str().unwrap().starts_with("failed"));
}

#[test]
fn canary_failure_stops_before_touching_the_rest() {
    let f = Fleet::new(&["alpha", "bad", "gamma", "delta"], Some("bad"));
    f.add("0002_unique.sql", V2_UNIQUE);
    let o = f.cli(&["schema", "migrate", "--canary", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("canary failed"), "{}", stdout(&o));
    assert_eq!(f.version("alpha"), 2, "first canary (stable order) migrated");
    assert_eq!(f.version("bad"), 1);
    assert_eq!((f.version("gamma"), f.version("delta")), (1, 1), "the rest untouched");
}

#[test]
fn named_canaries_and_then_the_rest() {
    let f = Fleet::new(&["alpha", "beta", "gamma"], None);
    f.add("0002_unique.sql", V2_UNIQUE);
    let o = f.cli(&["schema", "migrate", "--canary-tenants", "gamma"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!((f.version("alpha"), f.version("beta"), f.version("gamma")), (2, 2, 2));
    let o = f.cli(&["schema", "migrate", "--canary-tenants", "nobody"]);
    assert_eq!(o.status.code(), Some(0), "nothing pending: a no-op succeeds before canaries matter");
}

#[test]
fn dry_run_reports_failures_and_leaves_files_untouched() {
    let f = Fleet::new(&["alpha", "bad"], Some("bad"));
    f.add("0002_unique.sql", V2_UNIQUE);
    let before: Vec<String> = ["alpha", "bad"].iter().map(|s| sha(&f.db(s))).collect();
    let o = f.cli(&["schema", "migrate", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let statuses: Vec<(&str, &str)> = r["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["slug"].as_str().unwrap(), o["status"].as_str().unwrap()))
        .collect();
    assert!(statuses.contains(&("alpha", "would_migrate")), "{statuses:?}");
    assert!(statuses.contains(&("bad", "would_fail")), "{statuses:?}");
    let after: Vec<String> = ["alpha", "bad"].iter().map(|s| sha(&f.db(s))).collect();
    assert_eq!(before, after, "dry run must not change tenant files");
    assert_eq!((f.version("alpha"), f.version("bad")), (1, 1));
    assert!(!f.data_dir().join("backups").exists(), "no snapshots for a dry run");
    let leftovers = common::files_under(&f.data_dir().join("tmp"));
    assert!(leftovers.is_empty(), "scratch copies removed: {leftovers:?}");
}

#[test]
fn rollback_restores_exactly_the_migrated_tenants_and_holds_them() {
    let f = Fleet::new(&["alpha", "bad", "gamma"], Some("bad"));
    f.add("0002_unique.sql", V2_UNIQUE);
    assert_eq!(f.cli(&["schema", "migrate"]).status.code(), Some(1));
    let o = f.cli(&["schema", "rollback"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("alpha") && out.contains("gamma") && !out.contains("bad"), "{out}");
    assert_eq!((f.version("alpha"), f.version("bad"), f.version("gamma")), (1, 1, 1));
    assert_eq!(f.items("alpha"), 2);
    // Held: opening the tenant does not lazily re-apply the rolled-back migration.
    let app = f.app();
    let t = app.tenant(&Slug::parse("alpha").unwrap()).unwrap();
    assert_eq!(t.schema_hold, Some(1));
    app.open_tenant(&t).unwrap();
    assert_eq!(f.version("alpha"), 1);
    drop(app);
    // A second rollback has nothing left to do.
    assert_eq!(f.cli(&["schema", "rollback"]).status.code(), Some(2));
    // Fix the data, migrate again: the hold is released.
    let c = rusqlite::Connection::open(f.db("bad")).unwrap();
    c.execute("DELETE FROM items WHERE id = 2", []).unwrap();
    drop(c);
    let o = f.cli(&["schema", "migrate"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!((f.version("alpha"), f.version("bad"), f.version("gamma")), (2, 2, 2));
    assert_eq!(f.app().tenant(&Slug::parse("alpha").unwrap()).unwrap().schema_hold, None);
}

#[test]
fn a_noop_run_only_reads_versions() {
    let f = Fleet::new(&["alpha", "beta"], None);
    let runs = f.runs();
    let files = [f.db("alpha"), f.db("beta")];
    let before: Vec<String> = files.iter().map(|p| sha(p)).collect();
    let o = f.cli(&["schema", "migrate"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("2 already at v1"), "{}", stdout(&o));
    assert_eq!(f.runs(), runs, "no run recorded");
    let after: Vec<String> = files.iter().map(|p| sha(p)).collect();
    assert_eq!(after, before, "tenant files untouched");
    assert!(!f.data_dir().join("backups").exists(), "no snapshots taken");
}

#[test]
fn lazy_migration_on_open_through_the_server() {
    let f = Fleet::new(&["alpha"], None);
    f.add("0002_unique.sql", V2_UNIQUE);
    let app = f.app();
    let server = tenantd::http::server::start(app.clone(), "127.0.0.1:0").unwrap();
    let r = tenantd::http::client::Client::new(server.addr()).get("/api/v1/t/alpha").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f.version("alpha"), 2);
    assert_eq!(app.tenant(&Slug::parse("alpha").unwrap()).unwrap().schema_version, 2);
    let conn = app.catalog.conn().unwrap();
    let actions: Vec<String> =
        tenantd::catalog::audit::list(&conn, None, 50).unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.contains(&"tenant.schema_migrated_on_open".to_string()), "{actions:?}");
    drop(conn);
    server.shutdown().unwrap();
}

#[test]
fn changed_migration_files_are_reported_as_drift() {
    let f = Fleet::new(&["alpha"], None);
    f.add("0002_unique.sql", V2_UNIQUE);
    assert!(f.cli(&["schema", "migrate"]).status.success());
    f.add(
        "0002_unique.sql",
        "CREATE UNIQUE INDEX items_code ON items(code);\nCREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT);\n",
    );
    let o = f.cli(&["schema", "status"]);
    let out = stdout(&o);
    assert!(out.contains("DRIFT") && out.contains("0002_unique.sql"), "{out}");
    // The tenant's tables no longer match what version 2 now means.
    assert!(out.contains("drift"), "{out}");
}

#[test]
fn parallel_migration_of_many_tenants() {
    let slugs: Vec<String> = (0..24).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = slugs.iter().map(String::as_str).collect();
    let f = Fleet::new(&refs, None);
    f.add("0002_unique.sql", V2_UNIQUE);
    let o = f.cli(&["schema", "migrate", "--parallel", "4", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["outcomes"].as_array().unwrap().len(), 24);
    assert!(refs.iter().all(|s| f.version(s) == 2));
}
