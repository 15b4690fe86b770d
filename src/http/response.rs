//! Errors to HTTP in one exhaustive match, and the headers every response carries.

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
        Error::Conflict { code, message } => (409, code, message.clone()),
        Error::TenantSuspended => (423, "tenant_suspended", e.to_string()),
        Error::TenantUnavailable { .. } => (503, "tenant_unavailable", "tenant data is temporarily unavailable".into()),
        Error::PayloadTooLarge { .. } => (413, "payload_too_large", e.to_string()),
        Error::Unauthorized => (401, "unauthorized", e.to_string()),
        Error::Unauthenticated { code, message } => (401, code, message.clone()),
        Error::Forbidden { code, message } => (403, code, message.clone()),
        Error::TooManyRequests { code, message, .. } => (429, code, message.clone()),
        Error::StorageQuota => (507, "storage_quota_exceeded", e.to_string()),
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
        Error::TooManyRequests { retry_after, .. } => {
            resp.headers.push(("Retry-After".into(), (*retry_after).max(1).to_string()))
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
    fn internal_errors_do_not_leak() {
        let (s, c, m) = error_parts(&Error::Internal("secret path /etc/x".into()));
        assert_eq!((s, c), (500, "internal"));
        assert!(!m.contains("secret"));
    }
}
