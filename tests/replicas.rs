//! Read replicas (issue 22): mirrors follow every commit, are valid SQLite at every instant,
//! answer reads within the lag bound or at a bookmark, and are verified, rebuilt and purged.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::ServerCli as _;
use common::{stdout, within, TestServer};
use serde_json::json;

fn replicated(policy: &str) -> TestServer {
    TestServer::start_with(|c| {
        c.replicas.count = 2;
        c.replicas.read_policy = policy.into();
        c.replicas.max_lag_ms = 60_000;
        c.replicas.bookmark_wait_ms = 2_000;
    })
}

fn mirror(s: &TestServer, replica: &str, slug: &str) -> PathBuf {
    let t = s.app.tenant(&tenantd::ids::Slug::parse(slug).unwrap()).unwrap();
    s.data_dir().join("replicas").join(replica).join(format!("{}.db", t.id))
}

fn count(db: &Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

fn integrity(db: &Path) -> String {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

fn create(s: &TestServer, token: &str, name: &str) -> (i64, u64) {
    let r = s.post_json("/api/v1/t/acme/customers", Some(token), &json!({"name": name}));
    assert_eq!(r.status, 201, "{}", r.text());
    let bookmark = r.header("tenantd-bookmark").expect("a write carries Tenantd-Bookmark").parse().unwrap();
    (r.json()["id"].as_i64().unwrap(), bookmark)
}

#[test]
fn mirrors_follow_every_commit_and_reads_see_their_writes() {
    let s = replicated("replica");
    let token = s.token("owner@acme.test", "acme", "owner");
    let mut last = 0;
    for i in 0..40 {
        let (id, bookmark) = create(&s, &token, &format!("c{i}"));
        assert!(bookmark > last, "positions only grow: {bookmark} after {last}");
        last = bookmark;
        // Read-your-writes: the read carrying the bookmark finds the row, on whichever copy.
        let auth = format!("Bearer {token}");
        let r = s
            .client()
            .request(
                "GET",
                &format!("/api/v1/t/acme/customers/{id}"),
                &[("Authorization", &auth), ("Tenantd-Bookmark", &bookmark.to_string())],
                b"",
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let by = r.header("tenantd-served-by").unwrap().to_string();
        assert!(by.starts_with("replica-"), "a replica reached the bookmark within the wait: {by}");
    }
    for name in ["replica-1", "replica-2"] {
        let path = mirror(&s, name, "acme");
        within(Duration::from_secs(10), || count(&path, "customers") == 40).expect("the mirror caught up");
        assert_eq!(integrity(&path), "ok");
    }
    // A bookmark that is not a number is refused.
    let auth = format!("Bearer {token}");
    let r = s
        .client()
        .request("GET", "/api/v1/t/acme/customers", &[("Authorization", &auth), ("Tenantd-Bookmark", "soon")], b"")
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_bookmark");
    // Beside the running server: every mirror has the primary's pages at the same position.
    let out = s.cli(&["replica", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), common::stderr(&out));
    assert!(stdout(&out).contains("0 differ"), "{}", stdout(&out));
    let out = s.cli(&["replica", "status", "--json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status.as_array().unwrap().len(), 2);
    assert!(status[0]["tenants"].as_u64().unwrap() >= 1);
}

#[test]
fn an_idle_tenant_s_capture_files_are_closed_and_its_next_commit_reopens_them() {
    let s = replicated("replica");
    let token = s.token("owner@acme.test", "acme", "owner");
    let (_, first) = create(&s, &token, "before");
    let replication = s.app.replication.clone().unwrap();
    assert!(replication.close_idle_files(Duration::ZERO) >= 1, "acme's log and WAL were open");
    assert_eq!(replication.close_idle_files(Duration::ZERO), 0, "nothing left open");
    let (_, second) = create(&s, &token, "after");
    assert_eq!(second, first + 1, "the next commit is captured, right after the last");
    for name in ["replica-1", "replica-2"] {
        let path = mirror(&s, name, "acme");
        within(Duration::from_secs(10), || count(&path, "customers") == 2).expect("the mirror has both rows");
    }
    assert!(replication.close_idle_files(Duration::from_secs(3600)) == 0, "acme committed just now");
}

#[test]
fn the_primary_policy_keeps_reads_on_the_primary() {
    let s = replicated("primary");
    let token = s.token("owner@acme.test", "acme", "owner");
    let (id, _) = create(&s, &token, "one");
    let r = s.get_as(&format!("/api/v1/t/acme/customers/{id}"), &token);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("tenantd-served-by"), Some("primary"));
}

#[test]
fn a_schema_change_reaches_the_mirrors_and_a_damaged_mirror_is_rebuilt() {
    let s = replicated("replica");
    let token = s.token("owner@acme.test", "acme", "owner");
    create(&s, &token, "before");
    // DDL on the tenant file through tenantd's writer is a commit like any other.
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let opened = s.app.open_tenant(&t).unwrap();
    opened
        .handle
        .writer()
        .unwrap()
        .execute_batch("CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (7);")
        .unwrap();
    s.app.store.after_write(&opened.handle);
    drop(opened);
    let m1 = mirror(&s, "replica-1", "acme");
    within(Duration::from_secs(10), || {
        rusqlite::Connection::open_with_flags(&m1, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT x FROM extra", [], |r| r.get::<_, i64>(0)))
            .is_ok_and(|x| x == 7)
    })
    .expect("the new table reached replica-1");
    // Damage replica-2's copy: verify notices, rebuild repairs.
    let m2 = mirror(&s, "replica-2", "acme");
    within(Duration::from_secs(10), || m2.is_file()).unwrap();
    let out = s.cli(&["replica", "verify", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", stdout(&out));
    {
        // Fold its WAL in, then scribble over page 2 of the file.
        let c = rusqlite::Connection::open(&m2).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(c);
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&m2).unwrap();
        f.write_all_at(&[0x5A; 4096], 4096).unwrap();
    }
    let out = s.cli(&["replica", "verify", "--tenant", "acme"]);
    assert!(!out.status.success(), "a damaged mirror fails verify: {}", stdout(&out));
    let out = s.cli(&["replica", "rebuild", "replica-2", "--tenant", "acme"]);
    assert!(out.status.success(), "{}{}", stdout(&out), common::stderr(&out));
    let out = s.cli(&["replica", "verify", "--tenant", "acme"]);
    assert!(out.status.success(), "{}{}", stdout(&out), common::stderr(&out));
    assert_eq!(integrity(&m2), "ok");
    // A mirror deleted outright is made again from the log's last image.
    let m1 = mirror(&s, "replica-1", "acme");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", m1.display()));
    }
    create(&s, &token, "after");
    within(Duration::from_secs(10), || m1.is_file() && count(&m1, "customers") == 2).expect("replica-1 was remade");
    // Bad input: an unknown replica.
    let out = s.cli(&["replica", "rebuild", "replica-9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("replica-1, replica-2"), "{}", common::stderr(&out));
}

#[test]
fn purge_leaves_no_copy_in_replicas_the_change_log_or_backups() {
    let s = replicated("replica");
    let token = s.token("owner@acme.test", "acme", "owner");
    create(&s, &token, "needle-9f3c2a");
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    // A snapshot too (compressed: found by its directory, named by the tenant id).
    tenantd::backup::create(&s.app, &t, tenantd::backup::Kind::Manual).unwrap();
    assert!(s.data_dir().join("backups").join(t.id.as_str()).is_dir());
    let m1 = mirror(&s, "replica-1", "acme");
    within(Duration::from_secs(10), || m1.is_file() && count(&m1, "customers") == 1).unwrap();
    let actor = tenantd::tenancy::Actor::cli();
    let slug = tenantd::ids::Slug::parse("acme").unwrap();
    tenantd::tenancy::soft_delete(&s.app, &slug, &actor).unwrap();
    tenantd::tenancy::purge(&s.app, &slug, &actor).unwrap();
    let leftovers: Vec<PathBuf> = common::files_under(&s.data_dir())
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains(t.id.as_str())
                || std::fs::read(p).is_ok_and(|b| b.windows(13).any(|w| w == b"needle-9f3c2a"))
        })
        .collect();
    assert!(leftovers.is_empty(), "copies left: {leftovers:?}");
}

#[test]
fn without_replicas_no_header_and_no_log() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    let r = s.post_json("/api/v1/t/acme/customers", Some(&token), &json!({"name": "x"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.header("tenantd-bookmark"), None);
    assert!(!s.data_dir().join("changes").exists());
    let out = s.cli(&["replica", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("[replicas] count"), "{}", common::stderr(&out));
}

#[test]
fn kill_9_while_shipping_leaves_valid_mirrors_that_resume() {
    use tenantd::http::client::Client;
    let dir = tempfile::tempdir().unwrap();
    let data = common::init_acme_with_owner(dir.path(), "owner@acme.test", common::PASSWORD);
    let config = dir.path().join("tenantd.toml");
    std::fs::write(&config, "[replicas]\ncount = 2\nread_policy = \"replica\"\n\n[limits]\nenabled = false\n").unwrap();
    let env = [("TENANTD_CONFIG", config.to_str().unwrap())];
    let (child, addr, _log) = common::spawn_serve_with_env(&data, &env);
    let mut child = common::KillOnDrop(child);
    let login = Client::new(addr)
        .request(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            json!({"email": "owner@acme.test", "password": common::PASSWORD}).to_string().as_bytes(),
        )
        .unwrap();
    let token = login.json()["token"].as_str().unwrap().to_string();
    // Two writers; the server dies under them.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (acked, auth) = (acked.clone(), format!("Bearer {token}"));
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("w{w}-{i}");
                    let body = json!({"name": name}).to_string();
                    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                    match Client::new(addr).request("POST", "/api/v1/t/acme/customers", &headers, body.as_bytes()) {
                        Ok(r) if r.status == 201 => acked.lock().unwrap().push(name),
                        _ => break,
                    }
                }
            })
        })
        .collect();
    within(Duration::from_secs(20), || acked.lock().unwrap().len() >= 150).expect("writes were acknowledged");
    std::process::Command::new("kill").args(["-KILL", &child.0.id().to_string()]).status().unwrap();
    let _ = child.0.wait();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let t = {
        let out = common::cli(&data, &["tenant", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        list.as_array().unwrap().iter().find(|t| t["slug"] == "acme").unwrap()["id"].as_str().unwrap().to_string()
    };
    let mirrors: Vec<PathBuf> =
        ["replica-1", "replica-2"].iter().map(|r| data.join("replicas").join(r).join(format!("{t}.db"))).collect();
    // Whatever point they were at, the mirrors are whole databases.
    for m in &mirrors {
        assert_eq!(integrity(m), "ok", "{}", m.display());
    }
    // Nothing acknowledged is missing on the primary.
    let primary = data.join("tenants").join(&t).join("data.db");
    let names = |db: &Path| -> std::collections::HashSet<String> {
        let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut stmt = c.prepare("SELECT name FROM customers").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    let on_primary = names(&primary);
    assert!(acked.iter().all(|n| on_primary.contains(n)), "an acknowledged write is missing on the primary");
    // Restarted, the mirrors resume from their positions and catch up with the primary.
    let (child, _addr, _log) = common::spawn_serve_with_env(&data, &env);
    let _child = common::KillOnDrop(child);
    for m in &mirrors {
        within(Duration::from_secs(20), || names(m).len() == on_primary.len()).expect("the mirror caught up");
    }
    let out = common::cli(&data, &["replica", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), common::stderr(&out));
}

#[test]
fn a_corrupt_primary_is_read_from_a_replica_with_an_alert_until_promote_repairs_it() {
    let s = replicated("primary");
    let token = s.token("owner@acme.test", "acme", "owner");
    for i in 0..30 {
        create(&s, &token, &format!("row-{i}"));
    }
    let m1 = mirror(&s, "replica-1", "acme");
    within(Duration::from_secs(10), || m1.is_file() && count(&m1, "customers") == 30).expect("the mirror caught up");
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let path = s.app.paths.tenant_db(&t.id);
    // Closed, its WAL folded into the file, then the customers table's root page overwritten.
    s.app.store.evict(&t.id);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let (root, page_size): (i64, i64) = c
        .query_row(
            "SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master WHERE name = 'customers'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(c);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&vec![0xA5; page_size as usize], ((root - 1) * page_size) as u64).unwrap();
    }
    let raised = s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed);
    let r = s.get_as("/api/v1/t/acme/customers?per_page=100", &token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("tenantd-served-by").unwrap().starts_with("replica-"), "{:?}", r.header("tenantd-served-by"));
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 30);
    // The next reads go to the mirror at once, without touching the damaged file.
    let again = s.get_as("/api/v1/t/acme/customers/1", &token);
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.header("tenantd-served-by").unwrap().starts_with("replica-"));
    assert!(s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed) > raised, "an alert was raised");
    // Writes cannot go on on a damaged file; promote repairs it from the mirror.
    let out = s.cli(&["replica", "promote", "--tenant", "acme", "--from", "replica-1"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    within(Duration::from_secs(20), || {
        let r = s.get_as("/api/v1/t/acme/customers?per_page=100", &token);
        r.status == 200
            && r.header("tenantd-served-by") == Some("primary")
            && r.json()["items"].as_array().unwrap().len() == 30
    })
    .expect("the primary answers again after promote");
    create(&s, &token, "after-repair");
}

#[test]
fn an_unusable_replica_directory_leaves_writes_alone_lags_and_alerts() {
    let s = replicated("replica");
    let token = s.token("owner@acme.test", "acme", "owner");
    create(&s, &token, "before");
    let m2 = mirror(&s, "replica-2", "acme");
    within(Duration::from_secs(10), || m2.is_file() && count(&m2, "customers") == 1).unwrap();
    // replica-2's directory turns into a file: every apply to it fails (as on a full disk).
    let dir = s.data_dir().join("replicas").join("replica-2");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let raised = s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed);
    let mut bookmark = 0;
    for i in 0..10 {
        bookmark = create(&s, &token, &format!("during-{i}")).1;
    }
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let r = s.app.replication.clone().unwrap();
    within(Duration::from_secs(10), || r.stats[1].errors.load(std::sync::atomic::Ordering::Relaxed) > 0)
        .expect("errors counted");
    let status = r.status(std::slice::from_ref(&t.id));
    assert!(status[1].lag_commits_max > 0, "replica-2 falls behind: {:?}", status[1]);
    // replica-1 is unaffected, and reads keep being answered (by it or the primary).
    let m1 = mirror(&s, "replica-1", "acme");
    within(Duration::from_secs(10), || count(&m1, "customers") == 11).expect("replica-1 keeps up");
    let auth = format!("Bearer {token}");
    let r = s
        .client()
        .request(
            "GET",
            "/api/v1/t/acme/customers",
            &[("Authorization", &auth), ("Tenantd-Bookmark", &bookmark.to_string())],
            b"",
        )
        .unwrap();
    assert_eq!(r.json()["total"], 11, "answered by {:?}", r.header("tenantd-served-by"));
    assert_ne!(r.header("tenantd-served-by"), Some("replica-2"));
    within(Duration::from_secs(5), || s.app.limits.alerts.raised.load(std::sync::atomic::Ordering::Relaxed) > raised)
        .expect("a replica_errors alert");
    // Once the directory is usable again, a rebuild brings the mirror back.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let out = s.cli(&["replica", "rebuild", "replica-2", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    within(Duration::from_secs(10), || s.cli(&["replica", "verify", "--tenant", "acme"]).status.success()).unwrap();
}
