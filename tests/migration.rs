//! Issue 19: migration tools. Source databases are made here with SQLite (shapes the real apps
//! have: a tenant root, dependents, a self-reference, a lookup, a junction, users with
//! Werkzeug hashes, a view and triggers); `issue19_real_apps_*` converts databases written by
//! Flask-AppBuilder and Django themselves (made by scripts/real-sources.sh in .ci/run).
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::ServerCli as _;
use common::{cli, cli_with_schema, stderr, stdout, within, TestServer, PASSWORD};
use rusqlite::Connection;
use serde_json::{json, Value};

/// Werkzeug 3.1.9 `generate_password_hash(PASSWORD)` (scrypt 32768:8:1).
const WERKZEUG: &str = "scrypt:32768:8:1$Gy3aK1bdjiKtodGk$1177e088c01d23a51346e2a6a8b59bf30244dd0bc24fed1bd99c9c4712ff6301307b6505db97a5f98e0b3a92092057ccdf942f42635116c292d3f4bd8482da50";

const SHARED_SCHEMA: &str = "
    CREATE TABLE accounts (id INTEGER PRIMARY KEY, slug TEXT, name TEXT NOT NULL);
    CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT, is_admin INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE memberships (account_id INTEGER NOT NULL REFERENCES accounts(id), user_id INTEGER NOT NULL REFERENCES users(id),
                              PRIMARY KEY (account_id, user_id));
    CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
    CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER REFERENCES accounts(id),
                           parent_id INTEGER REFERENCES projects(id), title TEXT NOT NULL, owner_id INTEGER REFERENCES users(id));
    CREATE TABLE tasks (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id), body TEXT,
                        done INTEGER NOT NULL DEFAULT 0, score REAL, blob BLOB);
    CREATE TABLE task_labels (task_id INTEGER NOT NULL REFERENCES tasks(id), label_id INTEGER NOT NULL REFERENCES labels(id),
                              PRIMARY KEY (task_id, label_id));
    CREATE TABLE outside (x);
    CREATE INDEX tasks_project ON tasks(project_id);
    CREATE VIEW open_tasks AS SELECT * FROM tasks WHERE done = 0;
    CREATE TRIGGER tasks_done AFTER UPDATE OF done ON tasks BEGIN UPDATE projects SET title = title WHERE id = NEW.project_id; END;
";
/// Created after the rows: it calls a function only the source app defines.
const APP_TRIGGER: &str =
    "CREATE TRIGGER tasks_leak AFTER INSERT ON tasks BEGIN INSERT INTO outside (x) VALUES (notify_app(NEW.id)); END;";

/// A shared database: three accounts (two whose slugs collide once slugified), their
/// projects and tasks, one project with no account, labels shared by all.
fn shared_source(dir: &Path) -> PathBuf {
    let path = dir.join("shared.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(SHARED_SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO accounts VALUES (1, 'acme', 'Acme Corp'), (2, 'Globex Inc', 'Globex'), (3, 'globex-inc', 'Globex Two');
         INSERT INTO labels (name) VALUES ('urgent'), ('later');",
    )
    .unwrap();
    c.execute(
        "INSERT INTO users VALUES (1, 'Alice@Acme.test', ?1, 1), (2, 'bob@globex.test', ?1, 0), (3, 'no-email', ?1, 0)",
        [WERKZEUG],
    )
    .unwrap();
    c.execute_batch(
        "INSERT INTO memberships VALUES (1, 1), (2, 2), (3, 2), (1, 3);
         INSERT INTO projects (id, account_id, parent_id, title, owner_id) VALUES
           (1, 1, NULL, 'Roadrunner', 1), (2, 1, 1, 'Roadrunner phase 2', NULL), (3, 2, NULL, 'Reactor', 2),
           (4, 3, NULL, 'Reactor two', NULL), (5, NULL, NULL, 'Orphaned idea', NULL);",
    )
    .unwrap();
    let mut insert = c
        .prepare("INSERT INTO tasks (id, project_id, body, done, score, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .unwrap();
    for i in 1..=200i64 {
        let project = 1 + i % 5;
        insert
            .execute(rusqlite::params![i, project, format!("task {i} ü"), i % 3 == 0, i as f64 / 7.0, vec![i as u8; 3]])
            .unwrap();
        c.execute("INSERT INTO task_labels VALUES (?1, ?2)", [i, 1 + i % 2]).unwrap();
    }
    // Deleted ids: the AUTOINCREMENT counter is past the highest row.
    c.execute_batch(
        "INSERT INTO projects (id, account_id, title) VALUES (90, 1, 'gone'); DELETE FROM projects WHERE id = 90;",
    )
    .unwrap();
    c.execute_batch(APP_TRIGGER).unwrap();
    path
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

fn login(s: &TestServer, email: &str, password: &str) -> tenantd::http::client::Response {
    s.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": password}))
}

#[test]
fn issue19_analyze_reports_roles_candidates_and_blockers_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let src = shared_source(dir.path());
    let before = std::fs::read(&src).unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let o = cli(&data, &["migration", "analyze-schema", "--source-db", src.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = json_of(&o);
    assert_eq!(a["candidates"][0]["split_by"], "accounts.id", "{}", a["candidates"]);
    assert_eq!(a["split_by"], "accounts.id");
    let role = |t: &str| a["tables"].as_array().unwrap().iter().find(|x| x["name"] == t).unwrap()["role"].clone();
    assert_eq!(role("accounts"), "root");
    assert_eq!(role("projects"), "self_referencing");
    assert_eq!(role("tasks"), "dependent");
    assert_eq!(role("labels"), "lookup");
    assert_eq!(role("users"), "system");
    let tasks = a["tables"].as_array().unwrap().iter().find(|x| x["name"] == "tasks").unwrap();
    assert_eq!(tasks["rows"], 200);
    assert_eq!(tasks["path"], "tasks.project_id → projects.account_id → accounts");
    assert_eq!(tasks["views"], json!(["open_tasks"]));
    let done = tasks["columns"].as_array().unwrap().iter().find(|c| c["name"] == "done").unwrap();
    assert_eq!(done["distinct"], 2);
    assert_eq!(a["tenants_found"], 3);
    let findings = a["findings"].to_string();
    assert!(findings.contains("rows_without_tenant") && findings.contains("projects"), "{findings}");
    assert!(
        findings.contains("tasks_leak") && findings.contains("notify_app"),
        "a trigger calling an app function: {findings}"
    );
    assert_eq!(std::fs::read(&src).unwrap(), before, "the source is never written");
    // --emit-config writes a config migrate-from-config accepts.
    let cfg = dir.path().join("m.json");
    let o = cli(
        &data,
        &["migration", "analyze-schema", "--source-db", src.to_str().unwrap(), "--emit-config", cfg.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["sources"][0]["tenant"]["split_by"], "accounts.id");
    assert_eq!(parsed["sources"][0]["tenant"]["slug_from"], "slug");
    let o = cli(&data, &["migration", "migrate-from-config", "--config-file", cfg.to_str().unwrap(), "--dry-run"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("3 tenants planned, nothing written"), "{}", stdout(&o));
}

#[test]
fn issue19_split_keeps_schema_serves_data_signs_in_validates_and_rolls_back() {
    let s = TestServer::start();
    let src = shared_source(s.dir.path());
    let data = s.data_dir();
    let files_before = common::files_under(&data).len();
    // A dry run plans and writes nothing.
    let o = s.cli(&[
        "migration",
        "convert-to-multitenant",
        "--source-db",
        src.to_str().unwrap(),
        "--split-by",
        "accounts.id",
        "--slug-from",
        "slug",
        "--name-from",
        "name",
        "--schema-mode",
        "keep",
        "--dry-run",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = json_of(&o);
    assert_eq!(plan["tenants"].as_array().unwrap().len(), 3);
    assert_eq!(common::files_under(&data).len(), files_before, "a dry run writes nothing in the data dir");

    let o = s.cli(&[
        "migration",
        "convert-to-multitenant",
        "--source-db",
        src.to_str().unwrap(),
        "--split-by",
        "accounts.id",
        "--slug-from",
        "slug",
        "--name-from",
        "name",
        "--schema-mode",
        "keep",
        "--json",
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    let run = r["run_id"].as_str().unwrap().to_string();
    assert_eq!(r["registered"], 3, "{r}");
    let slugs: Vec<&str> = r["tenants"].as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme", "globex-inc", "globex-inc-2"], "slugified, the collision numbered");
    let src_report = &r["sources"][0];
    assert_eq!(src_report["mapping"]["left_behind"]["projects"], 1, "the project with no account: {src_report}");
    assert_eq!(src_report["mapping"]["left_behind"]["tasks"], 40);
    assert!(src_report["not_recreated"].to_string().contains("tasks_leak"), "{}", src_report["not_recreated"]);
    assert!(src_report["users"]["skipped"].to_string().contains("no valid email"));
    // Rows per tenant: acme has projects 1 and 2 and their tasks.
    let acme = &r["tenants"][0];
    assert_eq!(acme["rows"]["projects"], 2);
    assert_eq!(acme["rows"]["tasks"], 80);
    assert_eq!(acme["rows"]["labels"], 2, "lookups go to every tenant");
    assert_eq!(acme["members"][0]["role"], "owner", "the first admin owns the tenant");

    // Served by the running server once it sees the catalog change; the imported Werkzeug
    // hash signs in (and is re-hashed).
    let mut res = None;
    within(Duration::from_secs(3), || {
        let r = login(&s, "alice@acme.test", PASSWORD);
        let ok = r.status == 200;
        res = Some(r);
        ok
    })
    .unwrap_or_else(|| panic!("imported user could not sign in: {}", res.as_ref().unwrap().text()));
    let token = res.unwrap().json()["token"].as_str().unwrap().to_string();
    let projects = s.get_as("/api/v1/t/acme/projects?order_by=id", &token);
    assert_eq!(projects.status, 200, "{}", projects.text());
    let items = projects.json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 2, "{items}");
    assert_eq!(items[1]["parent_id"], 1, "original keys kept");
    assert_eq!(s.get_as("/api/v1/t/globex-inc/projects", &token).status, 404, "alice is not in globex");
    // New rows continue after the source's AUTOINCREMENT counter, not after the highest row.
    let made = s.post_json("/api/v1/t/acme/projects", Some(&token), &json!({"title": "after import", "account_id": 1}));
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.json()["id"], 91);
    let status = stdout(&s.cli(&["schema", "status"]));
    assert!(status.contains("custom"), "{status}");

    // validate passes, then reports a row changed behind its back.
    let o = s.cli(&["migration", "validate", &run]);
    assert!(!o.status.success(), "the project created above is a difference: {}", stdout(&o));
    assert!(stdout(&o).contains("projects"), "{}", stdout(&o));
    let o = s.cli(&["migration", "validate", &run, "--json"]);
    let v = json_of(&o);
    assert_eq!(v["tenants"].as_array().unwrap().iter().filter(|t| t["ok"] == true).count(), 2, "{v}");

    // Rollback removes the tenants and the users the run created, and is audited.
    let o = s.cli(&["migration", "rollback", &run, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rb = json_of(&o);
    assert_eq!(rb["tenants_removed"].as_array().unwrap().len(), 3);
    assert_eq!(rb["users_removed"], 2);
    let list = stdout(&s.cli(&["tenant", "list"]));
    assert!(!list.contains("globex-inc"), "{list}");
    assert!(!stdout(&s.cli(&["user", "list"])).contains("alice@acme.test"));
    let o = s.cli(&["migration", "rollback", &run]);
    assert_eq!(o.status.code(), Some(2), "twice: {}", stderr(&o));
    let audit = Connection::open(data.join("catalog.db")).unwrap();
    let n: i64 = audit
        .query_row(
            "SELECT count(*) FROM platform_audit WHERE action = 'migration.rollback' AND resource = ?1",
            [&run],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn issue19_fleet_mode_uses_the_emitted_schema_and_refuses_a_different_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = shared_source(dir.path());
    let schema_dir = dir.path().join("schema");
    let data = dir.path().join("data");
    let o = cli(
        &data,
        &[
            "migration",
            "analyze-schema",
            "--source-db",
            src.to_str().unwrap(),
            "--split-by",
            "accounts.id",
            "--emit-schema",
            schema_dir.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sql = std::fs::read_to_string(schema_dir.join("0001_initial.sql")).unwrap();
    assert!(
        sql.contains("CREATE TABLE projects") && sql.contains("tasks_done") && !sql.contains("tasks_leak"),
        "{sql}"
    );
    assert!(cli_with_schema(&data, &schema_dir, &["init"]).status.success());
    // One source database becomes one tenant on the fleet's schema.
    let o = cli_with_schema(
        &data,
        &schema_dir,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            src.to_str().unwrap(),
            "--tenant-slug",
            "whole",
            "--tenant-name",
            "Whole DB",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    assert_eq!(r["tenants"][0]["rows"]["tasks"], 200);
    let status = stdout(&cli_with_schema(&data, &schema_dir, &["schema", "status"]));
    assert!(status.contains("whole") && status.contains("current"), "{status}");
    // A source with another shape is refused, naming the difference; nothing is registered.
    let other = dir.path().join("other.db");
    let c = Connection::open(&other).unwrap();
    c.execute_batch(&SHARED_SCHEMA.replace("body TEXT,", "body TEXT, extra TEXT,")).unwrap();
    drop(c);
    let o = cli_with_schema(
        &data,
        &schema_dir,
        &["migration", "convert-to-multitenant", "--source-db", other.to_str().unwrap(), "--tenant-slug", "other"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("tasks.extra"), "{}", stderr(&o));
    assert!(!stdout(&cli(&data, &["tenant", "list"])).contains("other"));
}

#[test]
fn issue19_bad_input_gets_one_line_and_registers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    assert!(cli(&data, &["tenant", "create", "acme", "--name", "Acme"]).status.success());
    let src = shared_source(dir.path());
    let run = |args: &[&str]| {
        let mut all = vec!["migration", "convert-to-multitenant", "--schema-mode", "keep"];
        all.extend_from_slice(args);
        cli(&data, &all)
    };
    let one_line = |o: &std::process::Output, code: i32, needle: &str| {
        assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
        let err = stderr(o);
        assert!(err.contains(needle), "{needle:?} in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    };
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not a database").unwrap();
    one_line(&run(&["--source-db", text.to_str().unwrap(), "--tenant-slug", "x"]), 2, "not a SQLite database");
    let corrupt = dir.path().join("corrupt.db");
    let mut bytes = std::fs::read(&src).unwrap();
    for b in bytes.iter_mut().skip(100).take(8000) {
        *b = 0xA5;
    }
    std::fs::write(&corrupt, bytes).unwrap();
    let o = run(&["--source-db", corrupt.to_str().unwrap(), "--tenant-slug", "x"]);
    one_line(&o, 2, "corrupt");
    one_line(&run(&["--source-db", "/nonexistent/app.db", "--tenant-slug", "x"]), 2, "cannot read source");
    one_line(&run(&["--source-db", src.to_str().unwrap(), "--tenant-slug", "acme"]), 2, "already exists");
    one_line(&run(&["--source-db", src.to_str().unwrap(), "--tenant-slug", "Bad Slug!"]), 2, "invalid tenant slug");
    one_line(&run(&["--source-db", src.to_str().unwrap(), "--split-by", "nope.id"]), 2, "no table \"nope\"");
    one_line(&run(&["--source-db", src.to_str().unwrap(), "--split-by", "accounts.nope"]), 2, "no column \"nope\"");
    // A config naming an unknown column: the JSON pointer says where.
    let cfg = dir.path().join("bad.json");
    std::fs::write(
        &cfg,
        json!({"sources": [{"url": src, "tenant": {"slug": "y"}}],
        "tables": [{"name": "tasks"}, {"name": "projects", "columns": {"titel": {"rename": "name"}}}]})
        .to_string(),
    )
    .unwrap();
    one_line(
        &cli(&data, &["migration", "migrate-from-config", "--config-file", cfg.to_str().unwrap()]),
        2,
        "/tables/1/columns/titel",
    );
    // A source locked by its own writer.
    let lock = Connection::open(&src).unwrap();
    lock.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE accounts SET name = name;").unwrap();
    one_line(&run(&["--source-db", src.to_str().unwrap(), "--tenant-slug", "locked"]), 2, "locked");
    drop(lock);
    let list = stdout(&cli(&data, &["tenant", "list"]));
    assert!(list.contains("1 tenants"), "only acme: {list}");
    let tenants = std::fs::read_dir(data.join("tenants")).unwrap().count();
    assert_eq!(tenants, 1, "no half-registered tenant directory");
    let leftovers: Vec<PathBuf> = common::files_under(&data.join("tmp"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn issue19_cross_tenant_rows_block_the_run_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let src = shared_source(dir.path());
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "CREATE TABLE task_links (a INTEGER NOT NULL REFERENCES tasks(id), b INTEGER NOT NULL REFERENCES tasks(id), PRIMARY KEY (a, b));
         INSERT INTO task_links VALUES (5, 10), (2, 3), (1, 4);", // 5, 10: acme; 2: globex-inc, 3: globex-inc-2; 4: no tenant
    )
    .unwrap();
    drop(c);
    let o = cli(&data, &["migration", "analyze-schema", "--source-db", src.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "a blocker: {}", stderr(&o));
    let a = json_of(&o);
    assert!(a["findings"].to_string().contains("cross_tenant_rows"), "{}", a["findings"]);
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            src.to_str().unwrap(),
            "--split-by",
            "accounts.id",
            "--schema-mode",
            "keep",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_of(&o);
    assert_eq!(r["registered"], 0, "all or nothing: {r}");
    assert_eq!(r["sources"][0]["mapping"]["cross_tenant"]["task_links"], 1);
    assert_eq!(
        r["sources"][0]["mapping"]["left_behind"]["task_links"], 1,
        "a link to a task of no tenant stays behind"
    );
    assert_eq!(std::fs::read_dir(data.join("tenants")).map(|d| d.count()).unwrap_or(0), 0);
    // --continue-on-error keeps the tenants that validated.
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            src.to_str().unwrap(),
            "--split-by",
            "accounts.id",
            "--schema-mode",
            "keep",
            "--continue-on-error",
            "--json",
        ],
    );
    let r = json_of(&o);
    assert_eq!(r["registered"], 3, "{r}");
    assert_eq!(o.status.code(), Some(1), "still reported as not ok");
}

/// Databases written by Flask-AppBuilder and Django themselves (scripts/real-sources.sh, run by
/// .ci/run, which sets TENANTD_REAL_SOURCES and TENANTD_TEST_BIN to the release binary: the
/// apps' default hashes take 600,000-1,000,000 PBKDF2 rounds). Every active user signs in with
/// the password the app was given and is a member of exactly the tenants it belonged to.
#[test]
fn issue19_rows_of_no_tenant_go_to_the_null_tenant_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let src = shared_source(dir.path());
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            src.to_str().unwrap(),
            "--split-by",
            "accounts.id",
            "--slug-from",
            "slug",
            "--null-tenant",
            "unassigned",
            "--schema-mode",
            "keep",
            "--no-source-backup",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    let unassigned = r["tenants"].as_array().unwrap().iter().find(|t| t["slug"] == "unassigned").unwrap().clone();
    assert_eq!(unassigned["rows"]["projects"], 1, "{unassigned}");
    assert_eq!(unassigned["rows"]["tasks"], 40);
    assert!(
        r["sources"][0]["mapping"]["left_behind"].as_object().unwrap().is_empty(),
        "{}",
        r["sources"][0]["mapping"]
    );
    let totals = r["sources"][0]["totals"].as_array().unwrap();
    assert!(totals.iter().all(|t| t["ok"] == true), "{totals:?}");
    // Without the snapshot, validate reads the source itself.
    let runs = std::fs::read_dir(data.join("backups/migrations")).unwrap().count();
    assert_eq!(runs, 1);
    let v = cli(&data, &["migration", "validate", r["run_id"].as_str().unwrap()]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
}

#[test]
fn issue19_a_tenant_on_its_own_schema_is_migrated_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let src = shared_source(dir.path());
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            src.to_str().unwrap(),
            "--tenant-slug",
            "own",
            "--schema-mode",
            "keep",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Fleet migrations leave it alone.
    let o = cli(&data, &["schema", "migrate", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(json_of(&o)["outcomes"].as_array().unwrap().is_empty());
    let o = cli(&data, &["schema", "migrate", "--tenant", "own"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--schema-dir"), "{}", stderr(&o));
    let own = dir.path().join("own-migrations");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("0001_priority.sql"), "ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;")
        .unwrap();
    let o = cli(&data, &["schema", "migrate", "--tenant", "own", "--schema-dir", own.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(json_of(&o)["outcomes"][0]["status"], "migrated");
    let status = stdout(&cli(&data, &["schema", "status"]));
    assert!(status.lines().any(|l| l.starts_with("own") && l.contains("custom")), "{status}");
    let list = stdout(&cli(&data, &["tenant", "list"]));
    let id = list.lines().find(|l| l.starts_with("own ")).unwrap().split_whitespace().last().unwrap().to_string();
    let c = Connection::open(data.join("tenants").join(id).join("data.db")).unwrap();
    let p: i64 = c.query_row("SELECT sum(priority) FROM tasks", [], |r| r.get(0)).unwrap();
    assert_eq!(p, 600);
    // Again: nothing to do.
    let o = cli(&data, &["schema", "migrate", "--tenant", "own", "--schema-dir", own.to_str().unwrap(), "--json"]);
    assert_eq!(json_of(&o)["already_current"], 1);
}
