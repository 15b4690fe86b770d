//! HTTP: the server loop and worker pool (`server`), the route table (`router`), tenant
//! resolution (`resolve`), and request/response types independent of tiny_http, so handlers are
//! plain functions testable without a socket.

pub mod access;
mod background;
pub mod client;
pub mod fair;
mod listen;
pub mod resolve;
pub mod response;
pub mod router;
pub mod server;
mod stop;
mod tarpit;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::App;
use crate::auth::Principal;
use crate::catalog::tenants::TenantRecord;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Whether the method changes state (refused on suspended tenants).
    pub fn is_write(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch | Method::Delete)
    }
}

/// A parsed request: path split on `/` *before* percent-decoding, so `a%2fb` stays one segment
/// (and is then refused where a name is expected).
#[derive(Debug)]
pub struct Req {
    pub id: String,
    pub method: Method,
    pub raw_path: String,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote: Option<SocketAddr>,
    /// The client's address: the peer, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy. Policies, limits and audit use this.
    pub client: Option<std::net::IpAddr>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// What domain code needs to know about this request, as plain values.
    pub fn caller(&self) -> crate::auth::Caller<'_> {
        crate::auth::Caller {
            request_id: &self.id,
            path: &self.raw_path,
            client: self.client,
            user_agent: self.header("user-agent"),
        }
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Parses a JSON body, refusing the wrong content type (415) and malformed JSON (400).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let ct = self.header("content-type").unwrap_or("");
        if !ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
            return Err(Error::UnsupportedMediaType);
        }
        check_json_depth(&self.body, MAX_JSON_DEPTH)?;
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::invalid("invalid_json", format!("request body is not valid JSON for this endpoint: {e}"))
        })
    }
}

/// Deepest nesting of arrays and objects a JSON body may have (no endpoint needs more than 3).
pub const MAX_JSON_DEPTH: usize = 32;

/// Refuses bodies nested deeper than `max` before parsing them (a cheap scan that skips
/// strings), so no parser recursion is spent on hostile input.
pub fn check_json_depth(body: &[u8], max: usize) -> Result<()> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(Error::invalid("json_too_deep", format!("JSON nested deeper than {max} levels")));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A response before it is written: status, extra headers, body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The error code when this is an error response (for metrics).
    pub error: Option<&'static str>,
    /// `RateLimit-Limit`, `-Remaining`, `-Reset` of an admitted request: written from numbers,
    /// without the name allocations and character checks of `headers`.
    pub rate_limit: Option<[u64; 3]>,
}

impl Resp {
    pub fn json(status: u16, value: &impl Serialize) -> Resp {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Resp { status, content_type: "application/json", headers: Vec::new(), body, error: None, rate_limit: None }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Vec::new(),
            error: None,
            rate_limit: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What a handler sees: the app, the route's parameters and, on tenant routes, the tenant.
pub struct Ctx<'a> {
    pub app: &'a Arc<App>,
    pub state: &'a server::ServerState,
    pub params: Vec<(&'static str, String)>,
    pub tenant: Option<Arc<TenantRecord>>,
    /// Who is calling, on routes that require authentication.
    pub principal: Option<Principal>,
    /// The request, for shared helpers pages and the API both call (their audit entries need
    /// its id, address and user agent: `req.caller()`, worked out only when asked).
    pub req: &'a Req,
}

impl Ctx<'_> {
    pub fn param(&self, name: &str) -> Result<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| Error::Internal(format!("route has no parameter {name}")))
    }

    /// The caller; routes other than Public/TenantPublic always have one.
    pub fn principal(&self) -> Result<&Principal> {
        self.principal.as_ref().ok_or(Error::Unauthorized)
    }

    /// The signed-in user (API keys are not users).
    pub fn user(&self) -> Result<&crate::auth::UserInfo> {
        self.principal()?.user().ok_or_else(|| Error::Forbidden {
            code: "user_required",
            message: "this endpoint needs a signed-in user, not an API key".into(),
        })
    }

    /// The resolved tenant; only tenant-scoped routes have one.
    pub fn tenant(&self) -> Result<&TenantRecord> {
        self.tenant.as_deref().ok_or_else(|| Error::Internal("tenant route without a tenant".into()))
    }

    /// The tenant's data for this request (`records::Work`): `write` None for reads,
    /// Some(is_delete) for writes.
    pub fn work(&self, req: &Req, write: Option<bool>) -> Result<crate::records::Work> {
        crate::records::Work::begin(self.app, self.tenant()?, self.principal.as_ref(), &req.caller(), write)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_depth() {
        assert!(super::check_json_depth(br#"{"a": [1, {"b": "[[[[["}]}"#, 3).is_ok());
        assert!(super::check_json_depth(&[b'['; 33], 32).is_err());
        assert!(super::check_json_depth(br#""\"[[[[""#, 1).is_ok(), "brackets inside strings do not count");
    }
}
