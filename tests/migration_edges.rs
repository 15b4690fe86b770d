//! Issue 19: the shapes a review found mishandled in the first slice of the migration tools,
//! each on a small source made here: a junction whose deeper parent must be mapped first,
//! tables that hang off the users table, orphans, a column named `rowid`, triggers that must
//! not move, names tenantd reserves, post_sql, and one tenant failing alone.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::path::{Path, PathBuf};

use common::{cli, stderr, stdout};
use rusqlite::Connection;
use serde_json::{json, Value};

fn source(dir: &Path, sql: &str) -> PathBuf {
    let path = dir.join(format!("src-{}.db", tenantd::util::random_hex(4)));
    // Apps often run with foreign keys off: orphans are part of what sources hold.
    Connection::open(&path).unwrap().execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}")).unwrap();
    path
}

fn data_dir(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("data");
    assert!(cli(&data, &["init"]).status.success());
    data
}

fn split(data: &Path, src: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec![
        "migration",
        "convert-to-multitenant",
        "--source-db",
        src.to_str().unwrap(),
        "--split-by",
        "accounts.id",
        "--schema-mode",
        "keep",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = cli(data, &args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

fn total<'a>(r: &'a Value, table: &str) -> &'a Value {
    r["sources"][0]["totals"].as_array().unwrap().iter().find(|t| t["table"] == table).unwrap()
}

const ACCOUNTS: &str = "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
    INSERT INTO accounts VALUES (1, 'a'), (2, 'b');";

#[test]
fn issue19_a_junction_waits_for_its_deeper_parent() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    // task_labels is one step from labels (depth 2) but three from tasks: it must be mapped
    // after tasks, or none of its rows finds a tenant.
    let src = source(dir.path(), &format!("{ACCOUNTS}
        CREATE TABLE projects (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id));
        CREATE TABLE milestones (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id));
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, milestone_id INTEGER NOT NULL REFERENCES milestones(id));
        CREATE TABLE labels (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id));
        CREATE TABLE task_labels (task_id INTEGER NOT NULL REFERENCES tasks(id), label_id INTEGER NOT NULL REFERENCES labels(id),
                                  PRIMARY KEY (task_id, label_id));
        INSERT INTO projects VALUES (1, 1), (2, 2); INSERT INTO milestones VALUES (1, 1), (2, 2);
        INSERT INTO tasks VALUES (1, 1), (2, 2), (3, 1); INSERT INTO labels VALUES (1, 1), (2, 2);
        INSERT INTO task_labels VALUES (1, 1), (2, 2), (3, 1);"));
    let (code, r) = split(&data, &src, &[]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(total(&r, "task_labels")["in_tenants"], 3, "{r}");
    assert_eq!(r["tenants"][0]["rows"]["task_labels"], 2);
}

#[test]
fn issue19_tables_of_the_users_stay_with_their_users_and_lookups_make_no_members() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let src = source(dir.path(), &format!("{ACCOUNTS}
        CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT);
        CREATE TABLE user_tokens (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), token TEXT);
        CREATE TABLE memberships (account_id INTEGER NOT NULL REFERENCES accounts(id), user_id INTEGER NOT NULL REFERENCES users(id),
                                  role TEXT, PRIMARY KEY (account_id, user_id));
        CREATE TABLE countries (id INTEGER PRIMARY KEY, name TEXT, created_by INTEGER REFERENCES users(id));
        INSERT INTO users VALUES (1, 'ann@a.test', 'x'), (2, 'bo@b.test', 'x'), (3, 'root@ops.test', 'x');
        INSERT INTO user_tokens VALUES (1, 1, 'secret-of-ann'), (2, 2, 'secret-of-bo');
        INSERT INTO memberships VALUES (1, 1, 'owner'), (2, 2, 'admin');
        INSERT INTO countries VALUES (1, 'X', 3);"));
    let (code, r) = split(&data, &src, &[]);
    assert_eq!(code, Some(0), "{r}");
    let role = |t: &str| {
        r["sources"][0]["tables"].as_array().unwrap().iter().find(|x| x["source"] == t).unwrap()["role"].clone()
    };
    assert_eq!(role("user_tokens"), "system", "not a lookup copied whole into every tenant");
    assert_eq!(role("countries"), "lookup");
    let a = &r["tenants"][0];
    assert_eq!(a["rows"]["user_tokens"], 0, "ann's token is not copied anywhere: {a}");
    let members: Vec<String> = a["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}:{}", m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(members, ["ann@a.test:owner"], "root is referenced by a lookup only: a row, not a member");
    assert_eq!(a["rows"]["users"], 2, "ann, and root for the lookup's foreign key");
}

#[test]
fn issue19_orphans_are_differences_not_rows_left_by_rule() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let src = source(
        dir.path(),
        &format!(
            "{ACCOUNTS}
        CREATE TABLE projects (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, project_id INTEGER REFERENCES projects(id));
        INSERT INTO projects VALUES (1, 1), (2, NULL), (3, 99);
        INSERT INTO tasks VALUES (1, 1), (2, 2), (3, 3), (4, 42);"
        ),
    );
    let o = cli(&data, &["migration", "analyze-schema", "--source-db", src.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "orphans are a blocker");
    let (code, r) = split(&data, &src, &["--dry-run"]);
    assert_eq!(code, Some(1), "{r}");
    let m = &r["sources"][0]["mapping"];
    assert_eq!(m["orphans"]["projects"], 1, "{m}");
    assert_eq!(m["orphans"]["tasks"], 1, "task 4 points at no project");
    assert_eq!(m["left_behind"]["projects"], 1, "the NULL account is by rule");
    assert_eq!(m["left_behind"]["tasks"], 1, "task 2 follows its project");
    assert_eq!(m["cross_tenant"]["tasks"], 1, "task 3's project is an orphan");
    let (code, r) = split(&data, &src, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(r["registered"], 0, "nothing is registered when rows would be lost: {r}");
}

#[test]
fn issue19_a_column_named_rowid_does_not_hide_the_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let src = source(
        dir.path(),
        &format!(
            "{ACCOUNTS}
        CREATE TABLE notes (id TEXT PRIMARY KEY, rowid TEXT, account_id INTEGER NOT NULL REFERENCES accounts(id));
        INSERT INTO notes VALUES ('n1', 'same', 1), ('n2', 'same', 2), ('n3', 'other', 1);"
        ),
    );
    let (code, r) = split(&data, &src, &[]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["tenants"][0]["rows"]["notes"], 2);
    assert_eq!(r["tenants"][1]["rows"]["notes"], 1);
}

#[test]
fn issue19_triggers_are_checked_for_every_event_and_reserved_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let src = source(dir.path(), &format!("{ACCOUNTS}
        CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER NOT NULL REFERENCES accounts(id), n INTEGER);
        CREATE TABLE outside (x);
        INSERT INTO tasks (account_id, n) VALUES (1, 1), (2, 2);
        CREATE TRIGGER update_totals AFTER INSERT ON tasks
        BEGIN
          INSERT INTO outside (x) VALUES (NEW.id);
        END;
        CREATE TRIGGER reset_counter AFTER DELETE ON tasks
        BEGIN
          UPDATE sqlite_sequence SET seq = 0;
        END;
        CREATE TRIGGER fine AFTER UPDATE OF n ON tasks BEGIN UPDATE accounts SET name = name WHERE id = NEW.account_id; END;"));
    let cfg = dir.path().join("m.json");
    let config = json!({"sources": [{"url": src, "tenant": {"split_by": "accounts.id"}}], "schema_mode": "keep",
        "tables": [{"name": "outside", "action": "exclude"}]});
    std::fs::write(&cfg, config.to_string()).unwrap();
    let o = cli(&data, &["migration", "migrate-from-config", "--config-file", cfg.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let left = r["sources"][0]["not_recreated"].to_string();
    assert!(left.contains("update_totals") && left.contains("outside"), "{left}");
    assert!(left.contains("reset_counter") && left.contains("sqlite_sequence"), "{left}");
    assert!(!left.contains("fine"), "{left}");
    // A source table named like tenantd's own is refused, not merged into the audit chain.
    let forged =
        source(dir.path(), &format!("{ACCOUNTS} CREATE TABLE _tenantd_audit (id INTEGER PRIMARY KEY, hash TEXT);"));
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            forged.to_str().unwrap(),
            "--tenant-slug",
            "forged",
            "--schema-mode",
            "keep",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("_tenantd_audit") && stderr(&o).contains("exclude"), "{}", stderr(&o));
}

#[test]
fn issue19_post_sql_is_validated_before_it_runs_and_one_tenant_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let src = source(dir.path(), &format!("{ACCOUNTS}
        INSERT INTO accounts VALUES (3, 'c');
        CREATE TABLE projects (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id), title TEXT NOT NULL, score REAL);
        INSERT INTO projects VALUES (1, 1, ' one ', 1.5), (2, 2, ' two ', NULL), (3, 3, 'three', 2.0);"));
    let cfg = dir.path().join("m.json");
    let mut config = json!({"sources": [{"url": src, "tenant": {"split_by": "accounts.id"}}], "schema_mode": "keep",
        "tables": [{"name": "projects", "columns": {"score": {"default": 0}}}],
        "post_sql": ["UPDATE projects SET title = trim(title)"]});
    std::fs::write(&cfg, config.to_string()).unwrap();
    let o = cli(&data, &["migration", "migrate-from-config", "--config-file", cfg.to_str().unwrap(), "--json"]);
    assert!(
        o.status.success(),
        "an integer default in a REAL column, and post_sql, are no differences: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = cli(&data, &["migration", "validate", r["run_id"].as_str().unwrap()]);
    assert!(v.status.success(), "{}", stdout(&v));
    // Account 3's title becomes NULL: its tenant refuses the row and fails alone.
    let data2 = data_dir(&dir.path().join("second"));
    config["tables"][0]["columns"]["title"] = json!({"expr": "CASE WHEN t.account_id = 3 THEN NULL ELSE t.title END"});
    config["post_sql"] = json!([]);
    std::fs::write(&cfg, config.to_string()).unwrap();
    let o = cli(
        &data2,
        &["migration", "migrate-from-config", "--config-file", cfg.to_str().unwrap(), "--continue-on-error", "--json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["registered"], 2, "{r}");
    let failed = r["tenants"].as_array().unwrap().iter().find(|t| t["status"] == "failed").unwrap();
    assert!(failed["error"].as_str().unwrap().contains("projects"), "names the table: {failed}");
}
