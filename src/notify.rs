//! systemd readiness and watchdog (`Type=notify`, `WatchdogSec=`), spoken directly: the
//! sd_notify protocol is one datagram of `KEY=VALUE` lines sent to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading '@'), so no library is
//! needed. See sd_notify(3) and systemd.service(5) `WatchdogSec=`.
//!
//! Everything here is a no-op when `NOTIFY_SOCKET` is unset (a terminal, the tests, a container).
//!
//! The watchdog pings only while the request loop makes progress: every `WATCHDOG_USEC / 2`
//! it sends a real `GET /health/liveness` to this server over loopback with a short timeout and
//! sends `WATCHDOG=1` only when that answers 200. A wedged worker pool (every worker stuck) or a
//! dead accept thread stops the pings, and systemd kills and restarts the service.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::http::client::Client;

/// Set once draining starts: the watchdog stops probing a server that is going away.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Path(std::path::PathBuf),
    /// Linux abstract socket name (without the leading '@').
    Abstract(Vec<u8>),
}

impl Target {
    /// Parses a `NOTIFY_SOCKET` value; `None` for an empty or unusable one.
    pub fn parse(value: &str) -> Option<Target> {
        if let Some(name) = value.strip_prefix('@') {
            return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
        }
        // systemd only ever hands out absolute paths (or '@' names); vsock addresses are not
        // for us.
        value.starts_with('/').then(|| Target::Path(value.into()))
    }

    fn from_env() -> Option<Target> {
        std::env::var("NOTIFY_SOCKET").ok().and_then(|v| Target::parse(&v))
    }

    /// Sends one notification datagram.
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        match self {
            Target::Path(p) => sock.send_to(message.as_bytes(), p)?,
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(message.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

fn notify(message: &str) {
    if let Some(t) = Target::from_env() {
        if let Err(e) = t.send(message) {
            crate::log::warn(&format!("sd_notify {:?} failed: {e}", message.lines().next().unwrap_or("")));
        }
    }
}

/// The server is listening: `READY=1`, and starts the watchdog when systemd asked for one.
pub fn ready(addr: SocketAddr) {
    notify(&format!("READY=1\nSTATUS=serving on http://{addr}"));
    if let Some(interval) = watchdog_interval() {
        if let Some(target) = Target::from_env() {
            let probe = crate::http::client::local_address(addr);
            let spawned = std::thread::Builder::new()
                .name("tenantd-watchdog".into())
                .spawn(move || watchdog_loop(&target, probe, interval, &STOPPING));
            if let Err(e) = spawned {
                crate::log::error(&format!("cannot start the watchdog thread: {e}"));
            }
        }
    }
}

/// Draining has started: `STOPPING=1`, and the watchdog stops.
pub fn stopping() {
    STOPPING.store(true, Ordering::SeqCst);
    notify("STOPPING=1\nSTATUS=draining");
}

/// Half the watchdog timeout systemd set (`WATCHDOG_USEC`), as sd_watchdog_enabled(3)
/// recommends; `None` when there is no watchdog or it is meant for another process
/// (`WATCHDOG_PID`).
fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    interval_from_usec(&usec)
}

fn interval_from_usec(usec: &str) -> Option<Duration> {
    let usec: u64 = usec.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Probes `probe` every `interval` and pings `target` after each successful probe, until
/// `stop` is set. A probe waits at most `interval` (capped at 5 s), so a hung server is
/// noticed within one watchdog period.
pub fn watchdog_loop(target: &Target, probe: SocketAddr, interval: Duration, stop: &AtomicBool) {
    let timeout = interval.min(Duration::from_secs(5));
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        match probe_liveness(probe, timeout) {
            Ok(()) => {
                if failing {
                    crate::log::info("watchdog: liveness answers again; pinging systemd");
                    failing = false;
                }
                if let Err(e) = target.send("WATCHDOG=1") {
                    crate::log::warn(&format!("watchdog ping failed: {e}"));
                }
            }
            Err(why) => {
                if !failing {
                    crate::log::error(&format!("watchdog: {why}; not pinging systemd until it answers"));
                    failing = true;
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// One `GET /health/liveness` on a fresh connection.
fn probe_liveness(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match Client::with_timeout(addr, timeout).get_once("/health/liveness") {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("/health/liveness answered {}", r.status)),
        Err(e) => Err(format!("/health/liveness did not answer within {timeout:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    #[test]
    fn notify_socket_values() {
        assert_eq!(Target::parse("/run/systemd/notify"), Some(Target::Path("/run/systemd/notify".into())));
        assert_eq!(Target::parse("@sd-notify"), Some(Target::Abstract(b"sd-notify".to_vec())));
        assert_eq!(Target::parse(""), None);
        assert_eq!(Target::parse("@"), None);
        assert_eq!(Target::parse("vsock:2:1234"), None);
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        assert_eq!(interval_from_usec("30000000"), Some(Duration::from_secs(15)));
        assert_eq!(interval_from_usec("0"), None);
        assert_eq!(interval_from_usec("soon"), None);
    }

    #[test]
    fn sends_to_abstract_sockets() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tenantd-test-{}", crate::util::random_hex(8));
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Target::parse(&format!("@{name}")).unwrap().send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    /// A listener that accepts connections and never answers: a wedged worker pool.
    fn wedged() -> (std::net::TcpListener, SocketAddr) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    /// Answers every connection with a 200 (a live server).
    fn healthy() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        });
        a
    }

    fn run_watchdog(probe: SocketAddr) -> (UnixDatagram, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            let _keep = dir;
            watchdog_loop(&Target::Path(path), probe, Duration::from_millis(50), &s)
        });
        (rx, stop, h)
    }

    #[test]
    fn pings_while_liveness_answers() {
        let (rx, stop, h) = run_watchdog(healthy());
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
    }

    #[test]
    fn a_wedged_server_gets_no_pings() {
        let (_listener, addr) = wedged();
        let (rx, stop, h) = run_watchdog(addr);
        // Ten watchdog periods: a loop that pinged regardless would have sent several.
        rx.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 64];
        let got = rx.recv(&mut buf);
        assert!(got.is_err(), "pinged while the server did not answer: {:?}", got.map(|n| buf[..n].to_vec()));
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
    }
}
