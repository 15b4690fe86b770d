//! The listening socket and the descriptors the server may use: binding with TCP_NODELAY,
//! raising RLIMIT_NOFILE, and refusing a `max_open_tenants` the limit cannot hold.

use crate::error::{Error, Result};

/// Binds with TCP_NODELAY on the listening socket; Linux copies it to every accepted socket.
/// tiny_http writes headers and body separately, so with Nagle's algorithm a response larger
/// than its 1 KiB buffer waits for the client's delayed ACK (40 ms) before the body goes out.
/// `timeouts`: the keep-alive idle limit and the limit within a request (see our tiny_http
/// fork's `Timeouts`).
pub(super) fn bind(listen: &str, timeouts: tiny_http::Timeouts) -> Result<tiny_http::Server> {
    let refuse = |e: &dyn std::fmt::Display| Error::invalid("listen", format!("cannot listen on {listen}: {e}"));
    let listener = std::net::TcpListener::bind(listen).map_err(|e| refuse(&e))?;
    if let Err(e) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        crate::log::warn(&format!("could not set TCP_NODELAY: {e}"));
    }
    tiny_http::Server::from_listener_with_timeouts(listener, None, Some(timeouts)).map_err(|e| refuse(&e))
}

/// Raises the soft RLIMIT_NOFILE towards 65,536 (as far as the hard limit allows); returns the
/// limit in force.
pub(super) fn raise_fd_limit() -> Option<u64> {
    // Each open tenant costs ~3 fds per connection; the default soft limit (often 1024) is too
    // small for max_open_tenants=256 plus sockets.
    match rlimit::increase_nofile_limit(65_536) {
        Ok(n) => Some(n),
        Err(e) => {
            crate::log::warn(&format!("could not raise RLIMIT_NOFILE: {e}"));
            None
        }
    }
}

/// File descriptors an open tenant may need: the file and WAL of its writer connection and of one
/// pooled reader (opened only when its reads overlap), and the shared-memory index. A tenant used
/// one request at a time holds three.
const FDS_PER_TENANT: u64 = 5;
/// For sockets, the catalog and everything else.
const FDS_RESERVED: u64 = 128;

/// Refuses to start when `max_open_tenants` cannot all be open within the fd limit: otherwise
/// opens start failing with "too many open files" only once the server is busy (measured:
/// 10,000 allowed under a 20,000 limit failed at 6,255 open tenants).
pub fn check_fd_budget(max_open_tenants: usize, limit: Option<u64>) -> Result<()> {
    let Some(limit) = limit else { return Ok(()) };
    let needed = max_open_tenants as u64 * FDS_PER_TENANT + FDS_RESERVED;
    if needed > limit {
        let fits = limit.saturating_sub(FDS_RESERVED) / FDS_PER_TENANT;
        return Err(Error::invalid(
            "max_open_tenants",
            format!(
                "max_open_tenants = {max_open_tenants} needs about {needed} file descriptors but this process may \
                 open {limit}: lower max_open_tenants to {fits} or less, or raise the limit (LimitNOFILE= in the \
                 systemd unit, ulimit -n)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fd_budget_refuses_more_open_tenants_than_the_limit_allows() {
        assert!(super::check_fd_budget(256, Some(2048)).is_ok());
        assert!(super::check_fd_budget(10_000, None).is_ok(), "unknown limit: not refused");
        let e = super::check_fd_budget(10_000, Some(20_000)).err().unwrap().to_string();
        assert!(e.contains("max_open_tenants = 10000") && e.contains("3974"), "{e}");
    }
}
