//! Faults an operator hits (issue 18), each reproduced against the real binary or a real
//! server on a socket: running out of descriptors, idle keep-alive connections, and a stop
//! under load.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{within, TestServer};
use tenantd::http::client::Client;

fn kill(child: &std::process::Child, signal: &str) {
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
}

/// Issue 18, item 1: with 256 descriptors, idle connections use them all up. The published
/// tiny_http panicked its accept thread on the refused `dup` and the process stayed deaf; now
/// the accept loop backs off, and serves again once the idle connections are gone.
#[test]
fn r18_1_the_accept_loop_survives_running_out_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("TENANTD_MAX_OPEN_TENANTS", "8"), ("TENANTD_LOG", "")];
    let (child, addr, lines) = common::spawn_serve_limited(&data, &env, "-n 256");
    let mut child = common::KillOnDrop(child);
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    assert_eq!(Client::new(addr).get_once("/health/liveness").unwrap().status, 200);

    // Each accepted connection costs the server two descriptors; 400 idle ones are more than
    // 256 allow (the rest wait in the listen backlog, or time out connecting).
    let mut idle = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    // The back-off count checked below proves the descriptors ran out.
    assert!(idle.len() > 100, "only {} connections opened", idle.len());
    // Probes are refused or unanswered meanwhile, but the process lives.
    let probe = Client::with_timeout(addr, Duration::from_millis(500)).get_once("/health/liveness");
    assert!(child.0.try_wait().unwrap().is_none(), "the server died (probe: {probe:?})");

    drop(idle);
    let back = within(Duration::from_secs(5), || {
        Client::with_timeout(addr, Duration::from_millis(500))
            .get_once("/health/liveness")
            .is_ok_and(|r| r.status == 200)
    });
    let took = back.unwrap_or_else(|| panic!("no answer within 5 s of the idle connections closing"));
    eprintln!("serving again {} ms after the idle connections closed", took.as_millis());
    assert!(took < Duration::from_secs(2), "took {took:?} (the issue asks for 1 s; 2 s allows for a busy machine)");

    let metrics = Client::new(addr).get_once("/metrics").unwrap().text();
    let backoffs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tenantd_accept_backoffs_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tenantd_accept_backoffs_total in /metrics"));
    assert!(backoffs >= 1.0, "{backoffs}");

    kill(&child.0, "-TERM");
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    let log = log.join().unwrap();
    let warned = log.iter().filter(|l| l.contains("out of file descriptors")).count();
    assert!(warned >= 1, "no log line about the descriptors: {log:#?}");
    assert!(warned <= 3, "one line per burst, not one per back-off: {warned}");
}

/// Reads until the server closes the connection or `limit` passes; the time it took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(started.elapsed()),
            Err(_) => return None,
        }
    }
}

const LIVENESS: &[u8] = b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n";

/// Issue 18, item 1: a kept-alive connection waiting for its next request is closed after
/// `keep_alive_idle_seconds`, while a request under way still has `read_timeout_seconds`.
#[test]
fn r18_1_idle_keep_alive_connections_close_after_their_own_timeout() {
    let s = TestServer::start_with(|c| {
        c.keep_alive_idle_seconds = 1;
        c.read_timeout_seconds = 6;
    });
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.write_all(LIVENESS).unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    assert_eq!(tenantd::http::client::read_response(&mut reader, false).unwrap().status, 200);
    let took = closed_within(&mut conn, Duration::from_secs(10)).expect("the idle connection stayed open");
    assert!(took < Duration::from_secs(4), "closed after {took:?}: the 6 s read timeout, not the 1 s idle one");

    // A head that pauses longer than the idle timeout once it has begun is still read whole.
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    conn.write_all(b"GET /health/liveness HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    conn.write_all(b"Host: x\r\n\r\n").unwrap();
    let mut reader = std::io::BufReader::new(conn);
    assert_eq!(tenantd::http::client::read_response(&mut reader, false).unwrap().status, 200);
}

/// One request on a new connection. `Ok(None)`: the connection was refused or never completed
/// (the request was not sent); `Err`: the request was sent and got no answer.
fn exchange(addr: std::net::SocketAddr, path: &str) -> Result<Option<u16>, String> {
    let Ok(conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else { return Ok(None) };
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut conn = std::io::BufReader::new(conn);
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.get_mut().write_all(head.as_bytes()).map_err(|e| format!("write: {e}"))?;
    tenantd::http::client::read_response(&mut conn, false).map(|r| Some(r.status)).map_err(|e| format!("read: {e}"))
}

/// Issue 18, item 6: SIGTERM under load from clients that keep connecting until the port is
/// closed. Every request that was sent gets an answer (a refused connection is fine: nothing was
/// sent), readiness fails during the grace while requests are still served, and the server
/// exits 0. Before the fix, the listener stayed open through the stop while nobody served the
/// requests read meanwhile, and then closed with connections still queued: those requests were
/// reset or closed unanswered.
#[test]
fn r18_6_a_stop_under_load_answers_every_request_that_was_sent() {
    // The fault was a race (against 07ff7c0 one stop in two or three lost requests): three stops.
    for round in 0..3 {
        stop_under_load(round);
    }
}

fn stop_under_load(round: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (child, addr, _lines) = common::spawn_serve_with_env(&data, &[("TENANTD_SHUTDOWN_GRACE_MS", "300")]);
    let mut child = common::KillOnDrop(child);
    let answered = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (answered, unanswered) = (answered.clone(), unanswered.clone());
            std::thread::spawn(move || loop {
                match exchange(addr, "/health/liveness") {
                    Ok(Some(_)) => answered.fetch_add(1, Ordering::Relaxed),
                    Ok(None) => return,
                    Err(e) => {
                        unanswered.lock().push(e);
                        0
                    }
                };
            })
        })
        .collect();
    assert!(within(Duration::from_secs(10), || answered.load(Ordering::Relaxed) > 300).is_some());
    kill(&child.0, "-TERM");
    let stopped_at = answered.load(Ordering::Relaxed);
    // The signal is handled a moment later: ask until readiness stops answering 200.
    let asked = Instant::now();
    let mut readiness = exchange(addr, "/health/readiness");
    while readiness == Ok(Some(200)) && asked.elapsed() < Duration::from_secs(2) {
        readiness = exchange(addr, "/health/readiness");
    }
    for c in clients {
        c.join().unwrap();
    }
    let status = child.0.wait().unwrap();
    let unanswered = unanswered.lock().clone();
    assert!(unanswered.is_empty(), "round {round}: {} requests got no answer: {unanswered:?}", unanswered.len());
    assert_eq!(readiness, Ok(Some(503)), "round {round}: readiness must fail while the listener still answers");
    let after = answered.load(Ordering::Relaxed) - stopped_at;
    assert!(after > 0, "round {round}: nothing was answered after SIGTERM");
    eprintln!("round {round}: {after} requests answered after SIGTERM");
    assert_eq!(status.code(), Some(0));
}

/// The files under `dir`, by name (for "nothing was written here" checks).
fn names_under(dir: &std::path::Path) -> Vec<String> {
    common::files_under(dir).iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect()
}

/// Issue 18, item 2: a tenant file, its directory or its WAL replaced by a symlink is never
/// followed. Before the fix the server opened the link's target, served its rows and wrote a
/// `-wal` and `-shm` beside it, outside the data dir.
#[test]
fn r18_2_tenant_files_are_never_followed_through_symlinks() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start();
    let t = s.create_tenant("acme");
    let token = s.token("a@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &token).status, 200);
    let outside = tempfile::tempdir().unwrap();
    let tenant_dir = s.data_dir().join("tenants").join(t.id.as_str());
    let db = tenant_dir.join("data.db");
    let refused = |what: &str| {
        s.app.store.evict(&t.id);
        let r = s.get_as("/api/v1/t/acme/customers", &token);
        assert_eq!(r.status, 503, "{what}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "tenant_unavailable", "{what}");
    };

    // The database file is a link to a copy outside the data dir.
    s.app.store.evict(&t.id);
    let copy = outside.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let real = tenant_dir.join("real.db");
    std::fs::rename(&db, &real).unwrap();
    symlink(&copy, &db).unwrap();
    refused("data.db is a symlink");
    assert_eq!(names_under(outside.path()), ["copy.db"], "something was written outside the data dir");
    let ready = s.get("/health/readiness").json();
    let check = &ready["checks"]["tenants:unavailable"][0];
    assert_eq!(check["status"], "warn", "{ready}");
    assert!(check["output"].as_str().unwrap().contains("symlink"), "{ready}");
    std::fs::remove_file(&db).unwrap();
    std::fs::rename(&real, &db).unwrap();

    // Its WAL is a link: SQLite would write the log through it.
    let wal = tenant_dir.join("data.db-wal");
    let _ = std::fs::remove_file(&wal);
    symlink(outside.path().join("wal"), &wal).unwrap();
    refused("data.db-wal is a symlink");
    std::fs::remove_file(&wal).unwrap();

    // The tenant's directory is a link to a directory outside.
    let moved = outside.path().join("moved");
    std::fs::rename(&tenant_dir, &moved).unwrap();
    symlink(&moved, &tenant_dir).unwrap();
    let before = names_under(outside.path());
    refused("the tenant directory is a symlink");
    assert_eq!(names_under(outside.path()), before, "something was written outside the data dir");

    // Its assets directory is a link: a logo is neither stored nor read through it.
    let assets = tenant_dir.join("assets");
    let _ = std::fs::remove_dir_all(&assets);
    let elsewhere = outside.path().join("assets");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, &assets).unwrap();
    let png = b"\x89PNG\r\n\x1a\n0000";
    let stored = tenantd::tenancy::assets::set_logo(&s.app, &t, png);
    assert!(matches!(stored, Err(tenantd::error::Error::TenantUnavailable { .. })), "{stored:?}");
    assert!(names_under(&elsewhere).is_empty(), "a logo was written outside the data dir");
    std::fs::remove_file(&assets).unwrap();

    // Put back, the tenant serves again.
    std::fs::remove_file(&tenant_dir).unwrap();
    std::fs::rename(&moved, &tenant_dir).unwrap();
    s.app.store.evict(&t.id);
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &token).status, 200);
}

/// Issue 18, item 3: under a file-size limit (`ulimit -f`, as `LimitFSIZE=` sets), a write
/// past it used to kill the server with SIGXFSZ. Now the write fails like one on a full disk:
/// 507 `insufficient_storage` (not the tenant's quota), reads and liveness keep working,
/// nothing committed is lost, and the audit chains verify afterwards.
#[test]
fn r18_3_a_write_past_the_file_size_limit_is_refused_and_the_server_lives() {
    let dir = tempfile::tempdir().unwrap();
    let password = "tangerine-orbit-42-xyz";
    let data = common::init_acme_with_owner(dir.path(), "ada@acme.test", password);
    // dash counts `ulimit -f` in 512-byte blocks: 4 MiB per file.
    let (child, addr, _lines) = common::spawn_serve_limited(&data, &[], "-f 8192");
    let mut child = common::KillOnDrop(child);
    let mut c = Client::new(addr);
    let login = serde_json::json!({"email": "ada@acme.test", "password": password});
    let token =
        c.request("POST", "/api/v1/auth/login", &[("Content-Type", "application/json")], login.to_string().as_bytes());
    let token = token.unwrap().json()["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let row = serde_json::json!({"name": "Big", "company": "x".repeat(200_000)}).to_string();
    let (mut created, mut refusal) = (0, None);
    for _ in 0..200 {
        let r = c.request("POST", "/api/v1/t/acme/customers", &headers, row.as_bytes()).unwrap();
        if r.status == 201 {
            created += 1;
        } else {
            refusal = Some(r);
            break;
        }
    }
    let r = refusal.expect("200 rows of 200 kB fitted under a 4 MiB file-size limit");
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "insufficient_storage");
    assert!(created >= 1);
    assert!(child.0.try_wait().unwrap().is_none(), "the server died");
    // Reads and liveness go on; every committed row is there.
    let list = c.request("GET", "/api/v1/t/acme/customers?per_page=1", &headers, b"").unwrap();
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.json()["total"].as_i64().unwrap() >= created, "{}", list.text());
    assert_eq!(c.get("/health/liveness").unwrap().status, 200);
    kill(&child.0, "-TERM");
    child.0.wait().unwrap();
    let v = common::cli(&data, &["audit", "verify"]);
    assert!(v.status.success(), "{}{}", common::stdout(&v), common::stderr(&v));
}
