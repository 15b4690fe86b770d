//! From a raw request target to segments, query and tenant signals. The path is split on `/`
//! before percent-decoding; a decoded segment that could change the path's shape (`/`, `.`,
//! `..`, NUL or other control characters) is refused, so `%2e%2e` and `a%2fb` never become
//! traversal or a second segment.

use crate::error::{Error, Result};
use crate::ids::Slug;

/// A request target taken apart: raw path, decoded segments, decoded query pairs.
pub type Target = (String, Vec<String>, Vec<(String, String)>);

/// Splits `/a/b%20c?x=1` into decoded segments (`["", "a", "b c"]`) and decoded query pairs.
pub fn split_target(target: &str) -> Result<Target> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    if !path.starts_with('/') {
        return Err(Error::invalid("invalid_path", "request target must be an absolute path"));
    }
    let mut segments = Vec::new();
    for raw in path.split('/') {
        let seg = percent_decode(raw, false)?;
        if seg == "." || seg == ".." || seg.contains('/') || seg.chars().any(char::is_control) {
            return Err(Error::invalid(
                "invalid_path",
                format!("path segment {:?} is not allowed", crate::ids::truncate_for_message(raw)),
            ));
        }
        segments.push(seg);
    }
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok((path.to_string(), segments, pairs))
}

/// RFC 3986 percent-decoding to UTF-8; `plus_is_space` for query strings (HTML forms).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String> {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || (plus_is_space && b == b'+')) {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let v = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::invalid("invalid_path", "malformed percent-encoding"))?;
                out.push(v);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("invalid_path", "percent-encoding does not decode to UTF-8"))
}

/// What the `Host` header says about the tenant.
#[derive(Debug, PartialEq, Eq)]
pub enum HostSignal {
    None,
    Subdomain(Slug),
    /// A name that is not under the base domain: maybe a tenant's custom domain.
    CustomDomain(String),
}

pub fn host_signal(host: Option<&str>, base_domain: Option<&str>) -> Result<HostSignal> {
    let Some(host) = host else {
        return Ok(HostSignal::None);
    };
    let host = host.trim().to_ascii_lowercase();
    // Strip the port; an IPv6 literal is bracketed and never a tenant.
    if host.starts_with('[') {
        return Ok(HostSignal::None);
    }
    let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    if name.is_empty() || name == "localhost" || name.parse::<std::net::Ipv4Addr>().is_ok() || !name.contains('.') {
        return Ok(HostSignal::None);
    }
    if let Some(base) = base_domain {
        let base = base.to_ascii_lowercase();
        if name == base {
            return Ok(HostSignal::None);
        }
        if let Some(label) = name.strip_suffix(base.as_str()).and_then(|p| p.strip_suffix('.')) {
            if label.contains('.') {
                return Err(Error::invalid("invalid_host", "only one subdomain level names a tenant"));
            }
            return Ok(HostSignal::Subdomain(Slug::parse(label)?));
        }
    }
    Ok(HostSignal::CustomDomain(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_encoded_slashes_refused() {
        for t in ["/api/v1/t/%2e%2e/x", "/a/%2E%2E", "/a/a%2fb", "/a/%00", "/a/..", "/a/%zz", "/a/%c3"] {
            assert!(split_target(t).is_err(), "{t}");
        }
    }

    #[test]
    fn decodes_segments_and_query() {
        let (_, segs, q) = split_target("/a/b%20c?x=1&y=a+b&z").unwrap();
        assert_eq!(segs, vec!["", "a", "b c"]);
        assert_eq!(q, vec![("x".into(), "1".into()), ("y".into(), "a b".into()), ("z".into(), "".into())]);
    }

    #[test]
    fn host_signals() {
        let b = Some("example.test");
        assert_eq!(
            host_signal(Some("acme.example.test:8080"), b).unwrap(),
            HostSignal::Subdomain(Slug::parse("acme").unwrap())
        );
        assert_eq!(host_signal(Some("example.test"), b).unwrap(), HostSignal::None);
        assert_eq!(host_signal(Some("127.0.0.1:8080"), b).unwrap(), HostSignal::None);
        assert_eq!(host_signal(Some("localhost"), b).unwrap(), HostSignal::None);
        assert!(host_signal(Some("a.b.example.test"), b).is_err());
        assert!(host_signal(Some("ACME_.example.test"), b).is_err());
        assert_eq!(host_signal(Some("crm.acme.com"), b).unwrap(), HostSignal::CustomDomain("crm.acme.com".into()));
    }
}
