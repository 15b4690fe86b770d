//! Backups (issue 22): snapshots with digests, restores by id (in place, undone, or into a new
//! tenant), point-in-time restores through the change log, retention, damaged snapshots.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::time::Duration;

use common::ServerCli as _;
use common::{stderr, stdout, within, TestServer};
use serde_json::{json, Value};

fn add(s: &TestServer, token: &str, slug: &str, names: &[&str]) {
    for n in names {
        let r = s.post_json(&format!("/api/v1/t/{slug}/customers"), Some(token), &json!({"name": n}));
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

/// The customers' names the API returns for `slug`, sorted.
fn names(s: &TestServer, token: &str, slug: &str) -> Vec<String> {
    let r = s.get_as(&format!("/api/v1/t/{slug}/customers?per_page=100"), token);
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v: Vec<String> =
        r.json()["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn backups(s: &TestServer, slug: &str) -> Vec<Value> {
    let out = s.cli(&["backup", "list", slug, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out)).unwrap().as_array().unwrap().clone()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", stdout(out), stderr(out));
    stdout(out)
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn issue22_snapshots_restore_in_place_undo_and_fork() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    add(&s, &token, "acme", &["a1", "a2", "a3"]);
    let out = ok(&s.cli(&["backup", "create", "acme"]));
    assert!(out.starts_with("backup "), "{out}");
    add(&s, &token, "acme", &["b1", "b2"]);
    let list = backups(&s, "acme");
    assert_eq!(list.len(), 1);
    let first = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["kind"], "manual");
    assert!(list[0]["sha256"].as_str().unwrap().len() == 64 && list[0]["compressed_bytes"].as_u64().unwrap() > 0);
    assert!(list[0]["position"].is_null(), "no change log without replicas");
    assert!(ok(&s.cli(&["backup", "verify", "acme"])).contains("1 checked, 0 failed"));

    // In place: the running server answers with the restored rows.
    let out = ok(&s.cli(&["backup", "restore", "acme", "--id", &first]));
    assert!(out.contains("undoes this"), "{out}");
    let before = sorted(&["a1", "a2", "a3"]);
    within(Duration::from_secs(5), || names(&s, &token, "acme") == before).expect("the server sees the restored file");
    // The audit chain is the restored one, and it verifies against its (new) anchor.
    ok(&s.cli(&["audit", "verify"]));
    // Undo: the state the restore replaced was kept as a pre-restore snapshot.
    let undo = backups(&s, "acme").into_iter().find(|b| b["kind"] == "pre-restore").expect("a pre-restore snapshot");
    ok(&s.cli(&["backup", "restore", "acme", "--id", undo["id"].as_str().unwrap()]));
    let after = sorted(&["a1", "a2", "a3", "b1", "b2"]);
    within(Duration::from_secs(5), || names(&s, &token, "acme") == after).expect("the restore was undone");

    // Into a new tenant: the original is left alone.
    ok(&s.cli(&["backup", "restore", "acme", "--id", &first, "--as", "acme-copy"]));
    let copy = s.token("owner@acme.test", "acme-copy", "owner");
    assert_eq!(names(&s, &copy, "acme-copy"), before);
    assert_eq!(names(&s, &token, "acme"), after);

    // Bad input: one line, exit 2, nothing changed.
    for (args, says) in [
        (vec!["backup", "restore", "acme", "--id", "nope"], "not found"),
        (vec!["backup", "restore", "acme", "--id", "../../etc"], "not found"),
        (vec!["backup", "restore", "acme", "--at", "-5m"], "change log is off"),
        (vec!["backup", "restore", "acme", "--at", "yesterday"], "is not an instant"),
        (vec!["backup", "restore", "acme", "--id", &first, "--as", "acme"], "already exists"),
        (vec!["backup", "list", "nobody"], "not found"),
    ] {
        let out = s.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
    assert_eq!(names(&s, &token, "acme"), after);
}

#[test]
fn issue22_point_in_time_restore_replays_the_change_log_to_the_millisecond() {
    let s = TestServer::start_with(|c| c.replicas.count = 1);
    let token = s.token("owner@acme.test", "acme", "owner");
    add(&s, &token, "acme", &["base1", "base2"]);
    ok(&s.cli(&["backup", "create", "acme"]));
    let position = backups(&s, "acme")[0]["position"].as_u64().expect("a position with the change log on");
    assert!(position > 0);
    add(&s, &token, "acme", &["early1", "early2", "early3"]);
    // Every commit so far is at or before `at`; every one after, later (the clock moved on).
    let at = tenantd::util::now_millis();
    within(Duration::from_secs(1), || tenantd::util::now_millis() > at).unwrap();
    add(&s, &token, "acme", &["late1", "late2"]);
    let instant = tenantd::backup::rfc3339_ms(at);

    let out = ok(&s.cli(&["backup", "restore", "acme", "--at", &instant, "--as", "acme-then"]));
    assert!(out.contains("commits of the change log"), "{out}");
    let then = sorted(&["base1", "base2", "early1", "early2", "early3"]);
    let copy = s.token("owner@acme.test", "acme-then", "owner");
    assert_eq!(names(&s, &copy, "acme-then"), then);

    // In place: the tenant goes back, and its replica follows.
    let out = ok(&s.cli(&["backup", "restore", "acme", "--at", &instant, "--json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["built"]["commits_applied"].as_u64().unwrap() >= 3, "{report}");
    within(Duration::from_secs(5), || names(&s, &token, "acme") == then).expect("the server sees the restore");
    within(Duration::from_secs(10), || s.cli(&["replica", "verify", "--tenant", "acme"]).status.success())
        .expect("the replica follows the restore");
    ok(&s.cli(&["audit", "verify"]));
    // Writes go on after a restore, and reach the replica.
    add(&s, &token, "acme", &["after"]);
    within(Duration::from_secs(10), || s.cli(&["replica", "verify", "--tenant", "acme"]).status.success()).unwrap();

    // Instants the backups and the log do not cover.
    for (at, says) in [("2999-01-01T00:00:00Z", "in the future"), ("2000-01-01T00:00:00Z", "earliest restorable")] {
        let out = s.cli(&["backup", "restore", "acme", "--at", at]);
        assert_eq!(out.status.code(), Some(2), "{at}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{at}: {}", stderr(&out));
    }
}

#[test]
fn issue22_retention_keeps_the_newest_and_a_damaged_snapshot_is_refused() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    add(&s, &token, "acme", &["x"]);
    for _ in 0..3 {
        ok(&s.cli(&["backup", "create", "acme"]));
    }
    assert_eq!(backups(&s, "acme").len(), 3);
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    // The free plan keeps 7 days: a week and a day later, only the newest is left.
    let now = tenantd::util::now_millis();
    assert_eq!(tenantd::backup::prune(&s.app, &t, now).unwrap(), 0);
    assert_eq!(tenantd::backup::prune(&s.app, &t, now + 8 * 86_400_000).unwrap(), 2);
    let left = backups(&s, "acme");
    assert_eq!(left.len(), 1);

    // One byte changed in the stored file: verify fails, restore refuses, the tenant is intact.
    let file = s.data_dir().join("backups").join(t.id.as_str()).join(left[0]["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let out = s.cli(&["backup", "verify", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAIL") && stdout(&out).contains("SHA-256"), "{}", stdout(&out));
    let out = s.cli(&["backup", "restore", "acme", "--id", left[0]["id"].as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
    assert_eq!(names(&s, &token, "acme"), vec!["x".to_string()]);
}

#[test]
fn issue22_owners_list_snapshot_and_fork_through_the_api() {
    let s = TestServer::start_with(|c| c.replicas.count = 1);
    let owner = s.token("owner@acme.test", "acme", "owner");
    let member = s.token("member@acme.test", "acme", "member");
    add(&s, &owner, "acme", &["k1", "k2"]);
    let r = s.post_json("/api/v1/t/acme/backups", Some(&owner), &json!({}));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    // One a minute: the next is refused with when to come back.
    let r = s.post_json("/api/v1/t/acme/backups", Some(&owner), &json!({}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "backup_too_soon");
    assert!(r.header("retry-after").is_some());
    let r = s.get_as("/api/v1/t/acme/backups", &owner);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"][0]["id"], id.as_str());
    assert_eq!(r.json()["point_in_time"], true);
    // A member without settings rights sees none of it.
    assert_eq!(s.get_as("/api/v1/t/acme/backups", &member).status, 403);

    add(&s, &owner, "acme", &["k3"]);
    let r = s.post_json("/api/v1/t/acme/backups/restore", Some(&owner), &json!({"id": id, "as": "acme-fork"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["tenant"], "acme-fork");
    // The caller owns the fork; it holds the snapshot's rows.
    let login = s.login("owner@acme.test");
    assert_eq!(names(&s, &login, "acme-fork"), sorted(&["k1", "k2"]));
    assert_eq!(names(&s, &owner, "acme"), sorted(&["k1", "k2", "k3"]));

    for (body, status, code) in [
        (json!({"id": id}), 400, "missing_field"),
        (json!({"as": "x-1"}), 400, "invalid_target"),
        (json!({"id": id, "at": "-1m", "as": "x-2"}), 400, "invalid_target"),
        (json!({"at": "soon", "as": "x-3"}), 400, "invalid_time"),
        (json!({"id": "20990101T000000Z-abcdef", "as": "x-4"}), 404, "not_found"),
        (json!({"id": id, "as": "acme-fork"}), 409, "slug_taken"),
        (json!({"id": id, "as": "Not A Slug"}), 400, "invalid_slug"),
        (json!({"id": id, "as": "x-5", "extra": 1}), 400, "invalid_json"),
    ] {
        let r = s.post_json("/api/v1/t/acme/backups/restore", Some(&owner), &body);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{body}: {}",
            r.text()
        );
    }
}

#[test]
fn issue22_litestream_tables_stay_invisible_and_its_config_is_written() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    add(&s, &token, "acme", &["y"]);
    let state = |s: &TestServer| {
        let out = s.cli(&["schema", "status", "--json"]);
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["tenants"].as_array().unwrap().iter().find(|t| t["slug"] == "acme").unwrap()["state"].clone()
    };
    let before = state(&s);
    let spec_before = s.get_as("/api/v1/t/acme/openapi.json", &token).text();
    // What Litestream 0.5 adds to every database it replicates.
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let conn = rusqlite::Connection::open(s.app.paths.tenant_db(&t.id)).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
         CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
    )
    .unwrap();
    drop(conn);
    s.app.store.evict(&t.id);
    for table in ["_litestream_seq", "_litestream_lock"] {
        let r = s.get_as(&format!("/api/v1/t/acme/{table}"), &token);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (400, Some("unknown_table")),
            "{table}: {}",
            r.text()
        );
        let listed =
            r.json()["error"]["message"].as_str().unwrap().split("this tenant has").nth(1).unwrap().to_string();
        assert!(!listed.contains("_litestream"), "{}", r.text());
    }
    let spec = s.get_as("/api/v1/t/acme/openapi.json", &token).text();
    assert!(!spec.contains("_litestream"), "the OpenAPI document shows Litestream's tables");
    assert_eq!(spec.len(), spec_before.len());
    assert_eq!(state(&s), before, "Litestream's tables are not schema drift");
    assert_eq!(names(&s, &token, "acme"), vec!["y".to_string()]);

    // The configuration: one process watching tenants/, or several with the fleet split.
    let out_dir = s.data_dir().parent().unwrap().join("ls");
    let out_s = out_dir.to_str().unwrap();
    ok(&s.cli(&["litestream", "config", "--replica-url", "s3://bucket/tenantd", "--out", out_s]));
    let yml = std::fs::read_to_string(out_dir.join("litestream.yml")).unwrap();
    assert!(yml.contains("watch: true") && yml.contains("url: s3://bucket/tenantd/tenants"), "{yml}");
    assert!(out_dir.join("tenantd-litestream.service").is_file());
    ok(&s.cli(&["litestream", "config", "--replica-url", "file:///srv/r", "--out", out_s, "--processes", "2"]));
    let both = std::fs::read_to_string(out_dir.join("litestream-1.yml")).unwrap()
        + &std::fs::read_to_string(out_dir.join("litestream-2.yml")).unwrap();
    assert!(both.contains(&format!("url: file:///srv/r/tenants/{}/data.db", t.id)), "{both}");
    for (args, says) in [
        (vec!["litestream", "config", "--replica-url", "/srv/r", "--out", out_s], "replica URL starts with"),
        (vec!["litestream", "config", "--replica-url", "s3://b", "--out", out_s, "--processes", "0"], "1..=64"),
    ] {
        let out = s.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}
