//! Errors to HTTP in one exhaustive match, and the headers every response carries.

use std::cell::RefCell;
use std::io::Write as _;

use serde_json::json;

use super::Resp;
use crate::error::Error;

/// Status, stable code and client-safe message for an error. Anything unexpected is a bare 500;
/// its detail goes to the log with the request id, never to the client.
pub fn error_parts(e: &Error) -> (u16, &'static str, String) {
    match e {
        Error::Invalid { code, message } => (400, code, message.clone()),
        Error::NotFound(what) => (404, "not_found", format!("{what} not found")),
        Error::NoRoute => (404, "not_found", "no such endpoint".into()),
        Error::Elsewhere { retry_safe, .. } => (if *retry_safe { 307 } else { 421 }, "tenant_elsewhere", e.to_string()),
        Error::TenantMoving => (503, "tenant_moving", e.to_string()),
        Error::Conflict { code, message } => (409, code, message.clone()),
        Error::TenantSuspended => (423, "tenant_suspended", e.to_string()),
        Error::PaymentRequired { .. } => (402, "payment_required", e.to_string()),
        Error::TenantUnavailable { .. } => (503, "tenant_unavailable", "tenant data is temporarily unavailable".into()),
        Error::PayloadTooLarge { .. } => (413, "payload_too_large", e.to_string()),
        Error::HeadersTooLarge(message) => (431, "headers_too_large", message.clone()),
        Error::RequestTimeout => (408, "request_timeout", e.to_string()),
        Error::Retry(message) => (503, "busy", message.clone()),
        Error::Unauthorized => (401, "unauthorized", e.to_string()),
        Error::Unauthenticated { code, message } => (401, code, message.clone()),
        Error::Forbidden { code, message } => (403, code, message.clone()),
        Error::TooManyRequests { code, message, .. } => (429, code, message.clone()),
        Error::StorageQuota => (507, "storage_quota_exceeded", e.to_string()),
        Error::InsufficientStorage => (507, "insufficient_storage", e.to_string()),
        Error::QueryTimeout => (503, "query_timeout", e.to_string()),
        Error::UnsupportedMediaType => (415, "unsupported_media_type", e.to_string()),
        Error::MethodNotAllowed { .. } => (405, "method_not_allowed", e.to_string()),
        Error::Pool(_) => (503, "busy", "the server is busy; retry shortly".into()),
        // SQLITE_FULL comes from `max_page_count` (the storage quota), SQLITE_INTERRUPT from the
        // progress handler enforcing the query time budget.
        Error::Sqlite(s) if s.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
            (507, "storage_quota_exceeded", Error::StorageQuota.to_string())
        }
        Error::Sqlite(s) if s.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            (503, "query_timeout", Error::QueryTimeout.to_string())
        }
        Error::Sqlite(_) | Error::Io(_) | Error::Internal(_) => (500, "internal", "internal error".into()),
    }
}

pub fn error_response(e: &Error) -> Resp {
    let (status, code, message) = error_parts(e);
    let mut resp = Resp::json(status, &json!({"error": {"code": code, "message": message}}));
    resp.error = Some(code);
    match e {
        Error::MethodNotAllowed { allow } => resp.headers.push(("Allow".into(), allow.clone())),
        Error::Elsewhere { node, location, .. } => {
            resp.headers.push(("Location".into(), location.clone()));
            resp.headers.push(("Tenantd-Node".into(), node.clone()));
        }
        Error::TenantMoving => resp.headers.push(("Retry-After".into(), "1".into())),
        Error::TooManyRequests { retry_after, rate, .. } => {
            resp.headers.push(("Retry-After".into(), (*retry_after).max(1).to_string()));
            resp.rate_limit = *rate;
        }
        Error::Unauthorized | Error::Unauthenticated { .. } => {
            resp.headers.push(("WWW-Authenticate".into(), "Bearer realm=\"tenantd\"".into()))
        }
        _ => {}
    }
    resp
}

/// Security headers for API responses (pages set their own CSP later).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
];

/// A header value is only sent when it cannot split the response: no CR, LF or other control
/// characters, ASCII only.
pub fn header_value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

pub fn header_name_ok(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// How the request asked to be answered: what the encoder needs from it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Framing {
    /// `HEAD`: the head carries the body's length, the body is not sent.
    pub head: bool,
    /// An HTTP/1.0 request gets an `HTTP/1.0` status line.
    pub http10: bool,
    /// The connection header to send back: `close` when the client asked for it (tiny_http closes
    /// the connection after this answer), `keep-alive` for an HTTP/1.0 client that asked to keep it.
    pub connection: Option<&'static str>,
}

/// Encodes a whole response (status line, headers, body) into one buffer, so it reaches the socket
/// in one write. tiny_http's own writer formats each header with `write!` through a mutex-guarded
/// writer, about 650 instructions a header; every API answer carries 16 of them.
///
/// Names and values from this file and the server are constants or ids we minted; only the
/// handler's own headers are checked for characters that could split the response.
pub fn encode(resp: Resp, id: &str, hsts: Option<u64>, framing: Framing) -> Vec<u8> {
    let Resp { status, content_type, headers, body, rate_limit, .. } = resp;
    let mut out = Vec::with_capacity(640 + body.len());
    let version = if framing.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let reason = tiny_http::StatusCode(status).default_reason_phrase();
    let _ = write!(out, "{version} {status} {reason}\r\n");
    let mut line = |name: &str, value: &str| {
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    };
    line("Server", "tenantd");
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        let now = crate::util::now_unix();
        if d.0 != now {
            *d = (now, crate::util::http_date(now));
        }
        line("Date", &d.1);
    });
    if let Some(c) = framing.connection {
        line("Connection", c);
    }
    line("Content-Type", content_type);
    line("X-Request-Id", id);
    let page = content_type.starts_with("text/html");
    for (k, v) in SECURITY_HEADERS {
        // A handler's own value wins (the CDN's sandbox CSP for user-supplied SVG).
        if headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
            continue;
        }
        line(k, if page && *k == "Content-Security-Policy" { crate::ui::PAGE_CSP } else { v });
    }
    if let Some(max_age) = hsts {
        line("Strict-Transport-Security", &format!("max-age={max_age}; includeSubDomains"));
    }
    let mut has_cache = false;
    for (k, v) in &headers {
        if !header_name_ok(k) || !header_value_ok(v) {
            crate::log::request("WARN", id, &format!("dropped response header {k:?}: unsafe characters"));
            continue;
        }
        has_cache |= k.eq_ignore_ascii_case("cache-control");
        line(k, v);
    }
    if !has_cache {
        line("Cache-Control", "no-store");
    }
    if let Some([limit, remaining, reset]) = rate_limit {
        let mut n = itoa_buf();
        line("RateLimit-Limit", n.fmt(limit));
        line("RateLimit-Remaining", n.fmt(remaining));
        line("RateLimit-Reset", n.fmt(reset));
    }
    // 1xx, 204 and 304 answers have no body and no length (RFC 9110 §8.6).
    let bodiless = matches!(status, 100..=199 | 204 | 304);
    if !bodiless {
        let mut n = itoa_buf();
        line("Content-Length", n.fmt(body.len() as u64));
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless && !framing.head {
        out.extend_from_slice(&body);
    }
    out
}

thread_local! {
    /// The `Date` value, formatted once a second per worker.
    static DATE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Decimal formatting of a `u64` without an allocation.
struct Digits([u8; 20]);

fn itoa_buf() -> Digits {
    Digits([0; 20])
}

impl Digits {
    fn fmt(&mut self, mut n: u64) -> &str {
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        std::str::from_utf8(&self.0[i..]).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_refused() {
        assert!(header_value_ok("abc 123"));
        assert!(!header_value_ok("a\r\nSet-Cookie: x"));
        assert!(!header_value_ok("a\nb"));
        assert!(!header_name_ok("X:Y"));
    }

    #[test]
    fn encodes_one_wire_response() {
        let mut resp = Resp::json(201, &json!({"a": 1}));
        resp.headers.push(("Location".into(), "/x/1".into()));
        resp.headers.push(("X-Bad".into(), "a\r\nSet-Cookie: y".into()));
        resp.rate_limit = Some([100, 0, 18_446_744_073_709_551_615]);
        let wire = String::from_utf8(encode(resp, "req1", Some(60), Framing::default())).unwrap();
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, r#"{"a":1}"#);
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 201 Created");
        for want in [
            "Content-Length: 7",
            "Content-Type: application/json",
            "X-Request-Id: req1",
            "Location: /x/1",
            "Cache-Control: no-store",
            "Strict-Transport-Security: max-age=60; includeSubDomains",
            "RateLimit-Limit: 100",
            "RateLimit-Remaining: 0",
            "RateLimit-Reset: 18446744073709551615",
        ] {
            assert!(lines.contains(&want), "{want} missing from {lines:?}");
        }
        assert!(lines.iter().any(|l| l.starts_with("Date: ") && l.ends_with(" GMT")));
        assert!(!head.contains("Set-Cookie") && !head.contains("Connection"));
    }

    #[test]
    fn head_bodiless_and_http10_framing() {
        let head = Framing { head: true, http10: true, connection: Some("keep-alive") };
        let wire = String::from_utf8(encode(Resp::json(200, &json!([1, 2])), "r", None, head)).unwrap();
        assert!(wire.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(wire.contains("\r\nConnection: keep-alive\r\n") && wire.contains("\r\nContent-Length: 5\r\n"));
        assert!(wire.ends_with("\r\n\r\n"), "HEAD sends no body: {wire:?}");
        let mut cached = Resp::empty(304);
        cached.headers.push(("Cache-Control".into(), "max-age=5".into()));
        let wire = String::from_utf8(encode(cached, "r", None, Framing::default())).unwrap();
        assert!(!wire.contains("Content-Length") && !wire.contains("no-store") && wire.ends_with("\r\n\r\n"));
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let (s, c, m) = error_parts(&Error::Internal("secret path /etc/x".into()));
        assert_eq!((s, c), (500, "internal"));
        assert!(!m.contains("secret"));
    }
}
