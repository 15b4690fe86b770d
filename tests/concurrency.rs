//! Concurrency: the tenant LRU under parallel load, the CLI changing a data dir a server is
//! using, and graceful shutdown of the real binary on SIGTERM.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{stderr, TestServer};
use tenantd::http::client::Client;

#[test]
fn lru_evicts_under_concurrent_use_and_every_request_succeeds() {
    let s = TestServer::start_with(|c| {
        c.max_open_tenants = 4;
        c.workers_min = 8;
    });
    let slugs: Vec<String> = (0..24).map(|i| format!("t{i:02}")).collect();
    for slug in &slugs {
        s.create_tenant(slug);
    }
    let addr = s.addr();
    std::thread::scope(|scope| {
        for k in 0..6 {
            let slugs = &slugs;
            scope.spawn(move || {
                let mut c = Client::new(addr);
                for round in 0..5 {
                    for (i, slug) in slugs.iter().enumerate() {
                        if (i + k + round) % 2 == 0 {
                            let r = c.get(&format!("/api/v1/t/{slug}")).unwrap();
                            assert_eq!(r.status, 200, "{slug}: {}", r.text());
                            assert_eq!(r.json()["slug"], slug.as_str());
                        }
                    }
                }
            });
        }
    });
    let stats = &s.app.store.stats;
    assert!(s.app.store.open_count() <= 4, "LRU cap holds: {}", s.app.store.open_count());
    assert!(stats.evictions.load(Ordering::Relaxed) > 0, "evictions happened");
    assert!(stats.hits.load(Ordering::Relaxed) > 0);
}

#[test]
fn cli_changes_are_seen_by_a_running_server_within_one_second() {
    let s = TestServer::start();
    // Warm the server's lookup cache with a negative answer first.
    assert_eq!(s.get("/api/v1/t/fresh").status, 404);
    let o = s.cli(&["tenant", "create", "fresh", "--name", "Fresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = common::within(Duration::from_secs(1), || s.get("/api/v1/t/fresh").status == 200);
    assert!(seen.is_some(), "created tenant not visible within 1 s");

    let o = s.cli(&["tenant", "suspend", "fresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = common::within(Duration::from_secs(1), || s.get("/api/v1/t/fresh").json()["status"] == "suspended");
    assert!(seen.is_some(), "suspension not visible within 1 s");

    let o = s.cli(&["tenant", "delete", "fresh"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = common::within(Duration::from_secs(1), || s.get("/api/v1/t/fresh").status == 404);
    assert!(seen.is_some(), "deletion not visible within 1 s");
}

#[test]
fn cli_and_server_write_the_catalog_at_the_same_time() {
    let s = TestServer::start();
    let addr = s.addr();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut c = Client::new(addr);
            for _ in 0..200 {
                assert_eq!(c.get("/health/readiness").unwrap().status, 200);
            }
        });
        for i in 0..6 {
            let o = s.cli(&["tenant", "create", &format!("c{i}"), "--name", "C"]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        reader.join().unwrap();
    });
    let o = s.cli(&["tenant", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
}

#[test]
fn sigterm_drains_checkpoints_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = common::cli(&data, &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(common::cli(&data, &["tenant", "create", "acme", "--name", "Acme"]).status.success());
    let (mut child, addr, lines) = common::spawn_serve(&data);
    let mut c = Client::new(addr);
    for _ in 0..20 {
        assert_eq!(c.get("/api/v1/t/acme").unwrap().status, 200);
    }
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped cleanly")), "{rest:?}");
    // Checkpointed: no WAL content left behind for the catalog.
    let wal = data.join("catalog.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}
