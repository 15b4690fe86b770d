use std::io::Result as IoResult;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    Http(Connection),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Stream {
    /// tenantd patch: a second handle on the connection, or the error that refused it. The
    /// published `Clone` unwrapped `try_clone`, so a `dup` refused for want of descriptors
    /// (EMFILE) panicked the accept thread and nothing was accepted again.
    fn try_clone(&self) -> IoResult<Self> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.try_clone().map(Stream::Http),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Ok(Stream::Https(ssl_stream.clone())),
        }
    }
}

/// tenantd patch: how long a read from a connection may wait: for the first byte of the next
/// request (`idle`, the keep-alive idle timeout), or for the rest of a request's head or body
/// once it has begun (`active`). The socket carries the shorter of the two; a read that times
/// out before its own limit is retried for the rest, so the common path makes no extra system
/// call (switching the socket's timeout per request would cost two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub idle: Duration,
    pub active: Duration,
}

impl Timeouts {
    /// The timeout the socket itself carries.
    pub(crate) fn socket(&self) -> Duration {
        self.idle.min(self.active)
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(tcp_stream)
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // tenantd patch: see `Timeouts`; `None` leaves reads to the socket's own timeout.
    timeouts: Option<Timeouts>,
    // tenantd patch: true while waiting for the first byte of the next request.
    idle: bool,
}

impl RefinedTcpStream {
    /// tenantd patch: fails (and the connection closes) when the second handle cannot be had,
    /// e.g. out of file descriptors; the published code panicked.
    pub(crate) fn new<S>(
        stream: S,
        timeouts: Option<Timeouts>,
    ) -> IoResult<(RefinedTcpStream, RefinedTcpStream)>
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.try_clone()?, stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            timeouts,
            idle: true,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            timeouts: None,
            idle: false,
        };

        Ok((read, write))
    }

    /// tenantd patch: the next read waits for a new request (the idle timeout applies) until
    /// its first byte arrives.
    pub(crate) fn await_request(&mut self) {
        self.idle = true;
    }

    fn set_socket_timeout(&self, timeout: Duration) -> IoResult<()> {
        match &self.stream {
            Stream::Http(c) => c.set_read_timeout(Some(timeout)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => Ok(()),
        }
    }

    /// tenantd patch: a read bounded by the limit of the phase (see `Timeouts`).
    fn read_timed(&mut self, buf: &mut [u8], t: Timeouts) -> IoResult<usize> {
        let limit = if self.idle { t.idle } else { t.active };
        let base = t.socket();
        let (mut waited, mut current) = (Duration::ZERO, base);
        let result = loop {
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    waited += current;
                    if waited >= limit {
                        break Err(e);
                    }
                    current = (limit - waited).min(base);
                    if let Err(e) = self.set_socket_timeout(current) {
                        break Err(e);
                    }
                }
                other => break other,
            }
        };
        if current != base {
            self.set_socket_timeout(base).ok();
        }
        if matches!(result, Ok(n) if n > 0) {
            self.idle = false;
        }
        result
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }
}

impl RefinedTcpStream {
    /// tenantd patch: ends the sending half and bounds each read, for a lingering close: the
    /// peer gets everything written so far and then the end of the stream, while what it still
    /// sends is read and dropped, so that closing does not reset the connection (a reset can
    /// destroy the answer before the peer has read it).
    pub(crate) fn start_linger(&mut self, read_timeout: std::time::Duration) -> IoResult<()> {
        self.stream.shutdown(Shutdown::Write)?;
        self.timeouts = None;
        match &self.stream {
            Stream::Http(c) => c.set_read_timeout(Some(read_timeout)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => Ok(()),
        }
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self.timeouts {
            Some(t) => self.read_timed(buf, t),
            None => self.stream.read(buf),
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
