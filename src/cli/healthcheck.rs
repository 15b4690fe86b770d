//! `tenantd healthcheck`: asks a running server whether it is ready, for scripts, container
//! HEALTHCHECKs and service managers. Exit 0 ready (readiness answered 200), 1 not ready (with
//! the reason on stderr: refused, timed out, or the failing checks), 2 bad usage.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use super::{CliError, CliResult};
use crate::http::client::{self, Client};

/// Where to probe: the resolved address and the URL path of the readiness endpoint.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    /// The base URL as the operator named it (no trailing '/'), for messages.
    pub shown: String,
}

/// Parses `http://HOST[:PORT][/PREFIX]`. Only plain HTTP: the probe talks to tenantd itself on
/// its `listen` address, not to the TLS front.
pub fn parse_base(url: &str) -> Result<Target, CliError> {
    let bad = |why: &str| CliError::usage(format!("--url {url:?}: {why} (expected e.g. http://127.0.0.1:8080)"));
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err(bad("https is not supported: probe tenantd's own listen address, not the TLS front"));
    } else {
        return Err(bad("not an http:// URL"));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if prefix.contains(['?', '#']) || authority.contains('@') {
        return Err(bad("no credentials, query or fragment allowed"));
    }
    if prefix.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(bad("the path has spaces or control characters"));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| bad("no host, or a bad port"))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| bad(&format!("{host} has no address")))?;
    let path = format!("{}/health/readiness", prefix.trim_end_matches('/'));
    Ok(Target { addr, path, shown: url.trim_end_matches('/').to_string() })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; port 80 when absent.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
        None => 80,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The target derived from the config's `listen` (a wildcard bind is probed over loopback).
pub fn from_listen(listen: &str) -> Result<Target, CliError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| CliError::usage(format!("listen = {listen:?} is not an address; pass --url http://HOST:PORT")))?;
    let addr = client::local_address(addr);
    Ok(Target { addr, path: "/health/readiness".into(), shown: format!("http://{addr}") })
}

pub fn run(target: &Target, timeout: Duration) -> CliResult {
    let url = format!("{}/health/readiness", target.shown);
    let resp = Client::with_timeout(target.addr, timeout).get_once(&target.path).map_err(|e| {
        use std::io::ErrorKind::{ConnectionRefused, TimedOut, WouldBlock};
        CliError::failed(match e.kind() {
            ConnectionRefused => {
                format!("not ready: connection refused at {} (is tenantd running and listening there?)", target.addr)
            }
            TimedOut | WouldBlock => format!("not ready: no answer from {url} within {}s", timeout.as_secs_f64()),
            _ => format!("not ready: {url}: {e}"),
        })
    })?;
    match resp.status {
        200 => {
            let status = resp.json()["status"].as_str().unwrap_or("pass").to_string();
            println!("ready: {url} answered 200 ({status})");
            Ok(ExitCode::SUCCESS)
        }
        503 => Err(CliError::failed(format!("not ready: {url} answered 503: {}", failing_checks(&resp.json())))),
        s => Err(CliError::failed(format!("not ready: {url} answered {s} (is this a tenantd server?)"))),
    }
}

/// "datadir:writable (cannot write to the data dir: …), server:draining (shutting down)".
fn failing_checks(body: &serde_json::Value) -> String {
    let mut out = Vec::new();
    if let Some(checks) = body["checks"].as_object() {
        for (key, list) in checks {
            for c in list.as_array().into_iter().flatten() {
                if c["status"] == "fail" {
                    match c["output"].as_str() {
                        Some(o) => out.push(format!("{key} ({o})")),
                        None => out.push(key.clone()),
                    }
                }
            }
        }
    }
    if out.is_empty() {
        "no failing check named in the body".into()
    } else {
        format!("failing checks: {}", out.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = parse_base("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.path, "/health/readiness");
        let t = parse_base("http://[::1]:9000/tenantd/").unwrap();
        assert_eq!(t.addr, "[::1]:9000".parse().unwrap());
        assert_eq!(t.path, "/tenantd/health/readiness");
        assert_eq!(parse_base("http://127.0.0.1").unwrap().addr.port(), 80);
        for bad in ["https://127.0.0.1", "127.0.0.1:8080", "http://", "http://:80", "http://h:99999", "http://a@b"] {
            assert!(parse_base(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn listen_wildcards_map_to_loopback() {
        assert_eq!(from_listen("0.0.0.0:8080").unwrap().addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(from_listen("[::]:8080").unwrap().addr, "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn names_failing_checks() {
        let body = serde_json::json!({"checks": {
            "catalog:responseTime": [{"status": "pass"}],
            "datadir:writable": [{"status": "fail", "output": "read-only"}],
            "server:draining": [{"status": "fail"}]
        }});
        assert_eq!(failing_checks(&body), "failing checks: datadir:writable (read-only), server:draining");
    }
}
