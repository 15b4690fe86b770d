//! A minimal blocking HTTP/1.1 client over one keep-alive connection, for `tenantd bench`,
//! `loadtest` and the integration tests (which also need to send malformed requests no real
//! client library would produce).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// Connect timeout; reads wait up to `read_timeout`.
    connect_timeout: Duration,
    read_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None, connect_timeout: Duration::from_secs(5), read_timeout: Duration::from_secs(30) }
    }

    /// A client that gives up after `timeout` on connect and on each read (probes: the
    /// healthcheck command and the systemd watchdog).
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
        Client { addr, conn: None, connect_timeout: timeout, read_timeout: timeout }
    }

    fn stream(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.connect_timeout)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.read_timeout))?;
            s.set_write_timeout(Some(self.read_timeout))?;
            self.conn = Some(BufReader::new(s));
        }
        self.conn.as_mut().ok_or_else(|| std::io::Error::other("no connection"))
    }

    /// Sends a request with the given extra headers and body; retries once on a stale
    /// keep-alive connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        match self.raw(&raw, method == "HEAD") {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.raw(&raw, method == "HEAD")
            }
        }
    }

    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// One GET on a fresh connection, closed afterwards, never retried: for probes, where a
    /// retry would double the time a hung server takes to be noticed and a kept-alive
    /// connection could hide a dead accept thread.
    pub fn get_once(&mut self, path: &str) -> std::io::Result<Response> {
        self.conn = None;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        let r = self.raw(head.as_bytes(), false);
        self.conn = None;
        r
    }

    /// Writes raw bytes and reads one response (for malformed-request tests).
    pub fn raw(&mut self, bytes: &[u8], head_only: bool) -> std::io::Result<Response> {
        let s = self.stream()?;
        s.get_mut().write_all(bytes)?;
        let r = read_response(s, head_only);
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

/// The address to reach a server bound to `addr` from this host: a wildcard bind (0.0.0.0 or
/// [::]) is reached over loopback.
pub fn local_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => (std::net::Ipv4Addr::LOCALHOST, addr.port()).into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Reads one response from a connection (also for tests that hold raw sockets).
pub fn read_response(s: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    if s.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    let status: u16 =
        line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad("bad status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        s.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find =
        |n: &str| headers.iter().find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if !head_only {
        if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            s.read_exact(&mut body)?;
        } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                line.clear();
                s.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk size"))?;
                let mut chunk = vec![0; n + 2];
                s.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
    }
    Ok(Response { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::local_address;

    #[test]
    fn wildcard_binds_are_reached_over_loopback() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(local_address(a("0.0.0.0:8080")), a("127.0.0.1:8080"));
        assert_eq!(local_address(a("[::]:9000")), a("[::1]:9000"));
        assert_eq!(local_address(a("10.1.2.3:80")), a("10.1.2.3:80"));
    }
}
