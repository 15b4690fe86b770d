//! Running as a service: `tenantd healthcheck` against real servers (ready, refused, hung,
//! draining, bad usage), and the systemd notify protocol (READY, WATCHDOG, STOPPING) spoken by a
//! real `tenantd serve` process to a socket the test binds.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::ServerCli as _;
use common::{stderr, stdout, TestServer};

#[test]
fn healthcheck_ready_server_exits_0() {
    let s = TestServer::start();
    let o = s.cli(&["healthcheck", "--url", &format!("http://{}", s.addr())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ready:"), "{}", stdout(&o));
}

#[test]
fn healthcheck_defaults_to_the_configs_listen_address() {
    let s = TestServer::start();
    // A wildcard bind is probed over loopback.
    let cfg = s.dir.path().join("probe.toml");
    std::fs::write(&cfg, format!("listen = \"0.0.0.0:{}\"\n", s.addr().port())).unwrap();
    let o = s.cli(&["--config", cfg.to_str().unwrap(), "healthcheck"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // And with nothing on the configured port, the same command fails.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(&cfg, format!("listen = \"{free}\"\n")).unwrap();
    let o = s.cli(&["--config", cfg.to_str().unwrap(), "healthcheck"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn healthcheck_nothing_listening_exits_1_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Bind then drop: the port is free and nothing listens on it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = common::cli(&dir.path().join("data"), &["healthcheck", "--url", &format!("http://{free}")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("connection refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn healthcheck_hung_server_times_out_with_1() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts (the kernel's backlog) but never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hung.local_addr().unwrap());
    let started = Instant::now();
    let o = common::cli(&dir.path().join("data"), &["healthcheck", "--url", &url, "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no answer"), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout was not honoured");
}

#[test]
fn healthcheck_draining_server_exits_1_naming_the_check() {
    let s = TestServer::start();
    s.state().draining.store(true, Ordering::SeqCst);
    let o = s.cli(&["healthcheck", "--url", &format!("http://{}", s.addr())]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("503") && err.contains("server:draining"), "{err}");
    assert!(!err.contains("catalog:responseTime"), "passing checks are not named: {err}");
}

#[test]
fn healthcheck_bad_urls_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["localhost:8080", "https://127.0.0.1:8080", "http://127.0.0.1:notaport", "http://"] {
        let o = common::cli(&dir.path().join("data"), &["healthcheck", "--url", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--url"), "{bad}: {}", stderr(&o));
    }
    let o = common::cli(&dir.path().join("data"), &["healthcheck", "--timeout", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Reads datagrams until one contains `want`; the socket's read timeout bounds each wait and
/// `limit` bounds the whole.
fn await_datagram(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = msg.lines().any(|l| l == want);
                seen.push(msg);
                if found {
                    return seen;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {want} within {limit:?}; got {seen:?}");
}

#[test]
fn serve_notifies_systemd_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // 200 ms watchdog: pings every 100 ms while /health/liveness answers.
    let env = [("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")];
    let (mut child, addr, lines) = common::spawn_serve_with_env(&data, &env);
    let seen = await_datagram(&sock, "READY=1", Duration::from_secs(10));
    assert!(seen[0].contains(&format!("STATUS=serving on http://{addr}")), "{seen:?}");
    assert_eq!(seen.len(), 1, "READY=1 comes first: {seen:?}");
    for _ in 0..2 {
        await_datagram(&sock, "WATCHDOG=1", Duration::from_secs(10));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    await_datagram(&sock, "STOPPING=1", Duration::from_secs(10));
    assert_eq!(child.wait().unwrap().code(), Some(0));
    drop(lines);
}

#[test]
fn serve_without_notify_socket_sends_nothing_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // WATCHDOG_USEC alone (no socket) must not start anything that fails.
    let (mut child, addr, _lines) = common::spawn_serve_with_env(&data, &[("WATCHDOG_USEC", "200000")]);
    let o = common::cli(&data, &["healthcheck", "--url", &format!("http://{addr}")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut first, addr, _lines) = common::spawn_serve(&data);
    for cmd in ["serve", "demo"] {
        let o = common::cli(&data, &[cmd, "--listen", "127.0.0.1:0"]);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", stderr(&o));
        let want = format!("already served by another tenantd (pid {})", first.id());
        assert!(stderr(&o).contains(&want), "{cmd}: {}", stderr(&o));
    }
    // The first one serves on, and other commands still run beside it.
    let o = common::cli(&data, &["healthcheck", "--url", &format!("http://{addr}")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(common::cli(&data, &["tenant", "list"]).status.success());
    // Once it has exited, the data dir is free again (the lock goes with the process).
    assert!(Command::new("kill").args(["-KILL", &first.id().to_string()]).status().unwrap().success());
    first.wait().unwrap();
    let (mut second, addr, _lines) = common::spawn_serve(&data);
    let o = common::cli(&data, &["healthcheck", "--url", &format!("http://{addr}")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(Command::new("kill").args(["-TERM", &second.id().to_string()]).status().unwrap().success());
    assert_eq!(second.wait().unwrap().code(), Some(0));
}
