use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // tenantd patch: set when a request's body was left unread beyond what is worth draining
    // (see `EqualReader`'s `DRAIN_LIMIT`); the connection then ends after that request.
    abandoned: Arc<AtomicBool>,
}

/// tenantd patch: the lingering close after an abandoned body reads and drops what the client
/// still sends for at most this long, this much, and this long per read.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 << 20;
const LINGER_READ: Duration = Duration::from_secs(1);

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// tenantd patch: a version above 1.1
    VersionNotSupported,
    /// tenantd patch: the request line alone exceeds `MAX_HEAD_BYTES`
    RequestLineTooLong,
    /// tenantd patch: the request line and headers together exceed `MAX_HEAD_BYTES`
    HeadTooLarge(HTTPVersion),
}

/// tenantd patch: the most a request head (request line, headers and their line ends) may take.
/// The published code read heads of any length into memory. The packaged nginx site allows the
/// same: four header buffers of 16 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next_reader();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// tenantd patch: answers a request that could not be read with a JSON error body,
    /// `{"error":{"code","message"}}`, and `Connection: close`.
    fn refuse(&mut self, status: u16, version: HTTPVersion, code: &str, message: &str) {
        use std::io::Write;
        let mut writer = self.sink.next_writer();
        let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
        let reason = crate::StatusCode(status).default_reason_phrase();
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let head = format!(
            "HTTP/{} {status} {reason}\r\nServer: tenantd\r\nDate: {date}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            if version == HTTPVersion(1, 0) { "1.0" } else { "1.1" },
            body.len(),
        );
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(body.as_bytes());
        let _ = writer.flush();
        drop(writer);
        // The client may still be sending the head or a body: do not reset the answer away.
        self.linger();
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// tenantd patch: `used` counts the bytes of the request head read so far; a line that would
    /// take it past `MAX_HEAD_BYTES` is not read, and the answer is `Ok(None)`.
    fn read_next_line(&mut self, used: &mut usize) -> IoResult<Option<AsciiString>> {
        let mut buf = Vec::new();
        let budget = MAX_HEAD_BYTES.saturating_sub(*used);
        match self.next_header_source.read_crlf_line(&mut buf, budget) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            // tenantd patch: a keep-alive connection that stayed idle past the read timeout is
            // closed without an answer; a request that stalled midway gets its 408.
            Err(e) if timed_out(&e) && buf.is_empty() && *used == 0 => {
                return Err(IoError::new(ErrorKind::ConnectionAborted, "idle connection timed out"))
            }
            Err(e) => return Err(e),
        }
        *used += buf.len();
        buf.truncate(buf.len().saturating_sub(2)); // removing the "\r\n"
        AsciiString::from_ascii(buf)
            .map(Some)
            .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"))
    }

    /// tenantd patch: after a request whose body was abandoned, the connection ends: the answer
    /// is out (the body reader comes back only after the response writer is gone), so send the
    /// end of the stream, read and drop what the client still sends for a while, and close.
    fn linger(&mut self) {
        let Ok(reader) = self.next_header_source.turn() else { return };
        if reader.get_mut().start_linger(LINGER_READ).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let (mut left, mut buf) = (LINGER_BYTES, [0u8; 8192]);
        while left > 0 && Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // tenantd patch: never read the rest of an abandoned body as a request.
        self.next_header_source.turn().map_err(ReadError::ReadIoError)?;
        if self.abandoned.load(Ordering::SeqCst) {
            self.linger();
            let e = IoError::new(ErrorKind::ConnectionAborted, "a request body was left unread");
            return Err(ReadError::ReadIoError(e));
        }
        // tenantd patch: waiting for a new request: the keep-alive idle timeout applies until
        // its first byte arrives (unless that byte is already buffered).
        if let Ok(reader) = self.next_header_source.turn() {
            if reader.buffer().is_empty() {
                reader.get_mut().await_request();
            }
        }
        let mut used = 0;
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self
                    .read_next_line(&mut used)
                    .map_err(|e| not_ascii_or(e, ReadError::WrongRequestLine))?
                    .ok_or(ReadError::RequestLineTooLong)?;
                if has_bare_cr_or_lf(&line) {
                    return Err(ReadError::WrongRequestLine);
                }

                let parsed = parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?;
                if parsed.2 > (1, 1) {
                    return Err(ReadError::VersionNotSupported);
                }
                parsed
            };

            // getting all headers
            let headers = {
                let mut headers: Vec<crate::Header> = Vec::new();
                loop {
                    let line = self
                        .read_next_line(&mut used)
                        .map_err(|e| not_ascii_or(e, ReadError::WrongHeader(version.clone())))?
                        .ok_or_else(|| ReadError::HeadTooLarge(version.clone()))?;

                    if line.is_empty() {
                        break;
                    };
                    if has_bare_cr_or_lf(&line) {
                        return Err(ReadError::WrongHeader(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // tenantd patch: an unknown `Expect` is refused here, before this request takes its
        // place in the writer chain. Refused later (in `new_request`), its writer was dropped
        // out of turn, and the 417 could overtake the answer to an earlier pipelined request.
        let expect = headers.iter().find(|h| h.field.equiv("Expect"));
        if expect.is_some_and(|h| !h.value.as_str().eq_ignore_ascii_case("100-continue")) {
            return Err(ReadError::ExpectationFailed(version));
        }

        // building the writer for the request
        let writer = self.sink.next_writer();

        // follow-up for next potential request
        let mut data_source = self.source.next_reader();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            // tenantd patch: a peer that reset before its address was read has none; the
            // published code unwrapped the error and panicked the connection's thread.
            self.remote_addr.as_ref().ok().copied().flatten(),
            data_source,
            writer,
            Some(self.abandoned.clone()),
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BadContentLength => ReadError::WrongHeader(version),
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            // tenantd patch: if that request's body was abandoned, linger (see `linger`).
            if self.next_header_source.turn().is_ok() && self.abandoned.load(Ordering::SeqCst) {
                self.linger();
            }
            return None;
        }

        loop {
            let rq = match self.read() {
                // tenantd patch: every refusal here carries a JSON error body in tenantd's
                // shape; the published code sent empty 400, 408 and 417 answers. After each
                // one the connection closes: where the next request would start is unknown.
                Err(ReadError::WrongRequestLine) => {
                    let message = "the request line is not `METHOD target HTTP/1.x`";
                    self.refuse(400, HTTPVersion(1, 1), "bad_request_line", message);
                    return None;
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let message = "a header line is not `Name: value` in ASCII";
                    self.refuse(400, ver, "bad_header", message);
                    return None;
                }

                Err(ReadError::VersionNotSupported) => {
                    let message = "this server speaks HTTP/1.0 and HTTP/1.1";
                    self.refuse(505, HTTPVersion(1, 1), "http_version_not_supported", message);
                    return None;
                }

                Err(ReadError::RequestLineTooLong) => {
                    let message = "the request line is longer than 64 KiB";
                    self.refuse(414, HTTPVersion(1, 1), "uri_too_long", message);
                    return None;
                }

                Err(ReadError::HeadTooLarge(ver)) => {
                    let message = "the request line and headers together exceed 64 KiB";
                    self.refuse(431, ver, "headers_too_large", message);
                    return None;
                }

                Err(ReadError::ReadIoError(ref err)) if timed_out(err) => {
                    let message = "the request head did not arrive in time";
                    self.refuse(408, HTTPVersion(1, 1), "request_timeout", message);
                    return None;
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let message = "the only expectation understood is `Expect: 100-continue`";
                    self.refuse(417, ver, "expectation_failed", message);
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            // tenantd patch: versions above 1.1 are refused in `read`, before a request exists.
            // The published code answered here through a second writer, which waits for the
            // request's own writer to be dropped: the connection hung.

            // tenantd patch: a request with both Content-Length and Transfer-Encoding has no
            // trustworthy length (RFC 9112 section 6.1). The server answers it, and the
            // connection ends there: whatever follows on it is never read as another request.
            let count = |name: &'static str| rq.headers().iter().filter(|h| h.field.equiv(name)).count();
            if count("Content-Length") > 1
                || (count("Content-Length") > 0 && count("Transfer-Encoding") > 0)
            {
                self.no_more_requests = true;
            }

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// tenantd patch: a head line that is not ASCII is refused with `refused` (400); the published
/// code closed the connection without an answer. Other errors stay I/O errors.
fn not_ascii_or(e: IoError, refused: ReadError) -> ReadError {
    match e.kind() {
        ErrorKind::InvalidInput => refused,
        _ => ReadError::ReadIoError(e),
    }
}

/// tenantd patch: a read that hit the socket's read timeout (`WouldBlock` is how Unix reports it).
fn timed_out(e: &IoError) -> bool {
    matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

/// tenantd patch: a CR or LF left inside a line (its CRLF is gone) is a bare one. A front proxy
/// may take a bare LF for a line end (RFC 9112 section 2.2 allows it), so a line that holds one
/// is refused rather than read differently from the proxy.
fn has_bare_cr_or_lf(line: &AsciiString) -> bool {
    line.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
