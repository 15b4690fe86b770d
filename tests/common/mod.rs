//! Test fixture: the server side is `tenantd::testkit` (a real server on 127.0.0.1:0 with a
//! temp data dir, stopped on drop), re-exported here; what stays is the runner for the real
//! `tenantd` binary (its path is only known to integration tests) and a few file helpers.
#![allow(dead_code, unused_imports, reason = "each test binary uses part of the fixture")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use tenantd::testkit::{config, TestServer, PASSWORD};

/// The binary under test: this build's, or `TENANTD_TEST_BIN` (to show that a regression
/// test fails against an older build).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("TENANTD_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tenantd").to_string()))
}

/// A fresh data dir (in `dir`) holding tenant `acme` on the enterprise plan (limits a load
/// test does not reach), for tests that run the real binary.
pub fn init_acme(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    assert!(cli(&data, &["init"]).status.success());
    let o = cli(&data, &["tenant", "create", "acme", "--name", "Acme", "--plan", "enterprise"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    data
}

/// `init_acme` plus an owner of acme signing in with `email` and `password`.
pub fn init_acme_with_owner(dir: &Path, email: &str, password: &str) -> std::path::PathBuf {
    let data = init_acme(dir);
    let o = cli(&data, &["user", "create", email, "--password", password, "--tenant", "acme", "--role", "owner"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    data
}

pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    command(data_dir, args).output().unwrap()
}

/// `cli` with the tenant schema (numbered migrations) in `schema_dir`.
pub fn cli_with_schema(data_dir: &Path, schema_dir: &Path, args: &[&str]) -> Output {
    command(data_dir, args).env("TENANTD_TENANT_SCHEMA_DIR", schema_dir).output().unwrap()
}

/// `cli` with extra environment variables (e.g. TMPDIR, to see what a command leaves there).
pub fn cli_with_env(data_dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = command(data_dir, args);
    c.envs(env.iter().copied());
    c.output().unwrap()
}

/// The real binary without `--data-dir` (commands aimed at a server's URL), run in `cwd`.
pub fn cli_in(cwd: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env("TENANTD_LOG", "quiet")
        .env_remove("TENANTD_CONFIG")
        .env_remove("TENANTD_DATA_DIR")
        .env_remove("TENANTD_TEST_BIN")
        .env_remove("TENANTD_REAL_SOURCES")
        .env_remove("TENANTD_PG_URL")
        .current_dir(cwd);
    c.output().unwrap()
}

fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("TENANTD_LOG", "quiet")
        .env_remove("TENANTD_CONFIG")
        // The test harness's own variables are not config keys (the CLI warns about those).
        .env_remove("TENANTD_TEST_BIN")
        .env_remove("TENANTD_REAL_SOURCES")
        .env_remove("TENANTD_PG_URL")
        .current_dir(data_dir.parent().unwrap_or(data_dir));
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `check` until it holds or `limit` passes; returns how long it took. Used only to
/// assert an upper bound on propagation time (e.g. "within one second"), never to wait for
/// something we could observe directly.
pub fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file below `dir` (for "no file touched" checks).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// Starts `tenantd serve` on 127.0.0.1:0 against `data_dir` and returns the child, its address
/// (read from its "listening on" log line) and the rest of its stderr.
pub fn spawn_serve(
    data_dir: &Path,
) -> (std::process::Child, std::net::SocketAddr, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    spawn_serve_with_env(data_dir, &[])
}

/// `spawn_serve` with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
pub fn spawn_serve_with_env(
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    spawn_serve_limited(data_dir, env, "")
}

/// `spawn_serve_with_env` under shell `ulimit` options (e.g. `-n 256`, `-f 2048`), applied to
/// the server process alone; the server replaces the shell, so the child is the server.
pub fn spawn_serve_limited(
    data_dir: &Path,
    env: &[(&str, &str)],
    ulimit: &str,
) -> (std::process::Child, std::net::SocketAddr, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    use std::io::BufRead;
    let script = if ulimit.is_empty() { "exec \"$@\"".to_string() } else { format!("ulimit {ulimit} && exec \"$@\"") };
    let mut child = Command::new("sh")
        .args(["-c", &script, "sh", bin()])
        .args(["--data-dir", data_dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .env_remove("TENANTD_LOG")
        .env_remove("TENANTD_TEST_BIN")
        .env_remove("TENANTD_REAL_SOURCES")
        .env_remove("TENANTD_PG_URL")
        // Never notify a service manager the test runner itself may be running under.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    (child, addr, lines)
}

/// Kills a spawned server when a test ends early (a failed assertion), so it never outlives
/// the test holding ports, files or inherited locks.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `TestServer::cli`: the real binary against a test server's data dir.
pub trait ServerCli {
    fn cli(&self, args: &[&str]) -> Output;
}

impl ServerCli for TestServer {
    fn cli(&self, args: &[&str]) -> Output {
        cli(&self.data_dir(), args)
    }
}
