//! Tenant security policy: IP allow and deny lists (CIDR, IPv4 and IPv6), whether MFA is
//! required, session lifetime and idle timeout, whether API keys are accepted. Stored in the
//! tenant's settings (`settings_json.security`), cached with the other hot-path lookups.

pub mod threats;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr> {
        let bad = || {
            Error::invalid(
                "invalid_cidr",
                format!("{:?} is not an address or CIDR block", crate::ids::truncate_for_message(s)),
            )
        };
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is matched as the IPv4 address it is.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// The policy as the API shows and takes it. Keys left out of a PUT take these defaults (open:
/// any address, keys accepted, the server's session limits).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub ip_allow: Vec<String>,
    pub ip_deny: Vec<String>,
    pub require_mfa: bool,
    /// Sessions older than this cannot be used in this tenant (None: the server's setting).
    pub session_ttl_minutes: Option<i64>,
    /// Sessions unused this long cannot be used in this tenant (None: the server's setting).
    pub idle_timeout_minutes: Option<i64>,
    pub api_keys_allowed: bool,
    /// Browser origins (`https://app.example.com`) allowed to call this tenant's API (CORS).
    pub cors_origins: Vec<String>,
}

/// A policy checked and ready for the hot path.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub policy: Policy,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ip_allow: Vec::new(),
            ip_deny: Vec::new(),
            require_mfa: false,
            session_ttl_minutes: None,
            idle_timeout_minutes: None,
            api_keys_allowed: true,
            cors_origins: Vec::new(),
        }
    }
}

impl Policy {
    pub fn default_open() -> Policy {
        Policy::default()
    }

    /// Validates and compiles; the error names the bad entry.
    pub fn compile(self) -> Result<Compiled> {
        let parse = |l: &[String]| l.iter().map(|c| Cidr::parse(c)).collect::<Result<Vec<_>>>();
        if self.ip_allow.len() + self.ip_deny.len() > 1000 {
            return Err(Error::invalid("invalid_policy", "at most 1000 address entries"));
        }
        for (k, v) in
            [("session_ttl_minutes", self.session_ttl_minutes), ("idle_timeout_minutes", self.idle_timeout_minutes)]
        {
            if v.is_some_and(|m| !(1..=525_600).contains(&m)) {
                return Err(Error::invalid("invalid_policy", format!("{k} is 1..=525600 minutes")));
            }
        }
        for o in &self.cors_origins {
            valid_origin(o)?;
        }
        let allow = parse(&self.ip_allow)?;
        let deny = parse(&self.ip_deny)?;
        // Store the normalised forms.
        let policy = Policy {
            ip_allow: allow.iter().map(Cidr::to_string).collect(),
            ip_deny: deny.iter().map(Cidr::to_string).collect(),
            ..self
        };
        Ok(Compiled { policy, allow, deny })
    }
}

/// An origin is `scheme://host[:port]`, http or https, nothing after it (RFC 6454).
fn valid_origin(o: &str) -> Result<()> {
    let bad = || {
        Error::invalid(
            "invalid_origin",
            format!("{:?} is not an origin like https://app.example.com", crate::ids::truncate_for_message(o)),
        )
    };
    let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")).ok_or_else(bad)?;
    let ok = !rest.is_empty()
        && rest.len() <= 253
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !rest.starts_with(['.', ':']);
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

impl Compiled {
    /// Whether a browser origin may call this tenant's API.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.policy.cors_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Deny wins; a non-empty allow list admits only what it lists.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// The client address: the peer, or — only when the peer is a trusted proxy — the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|c| c.contains(peer)) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else { return Some(peer) };
    let mut hops: Vec<IpAddr> = Vec::new();
    for part in xff.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            // A malformed list is not trusted at all.
            Err(_) => return Some(peer),
        }
    }
    hops.into_iter().rev().find(|ip| !trusted.iter().any(|c| c.contains(*ip))).or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.9.9")), "IPv4-mapped IPv6");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("192.0.2.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let p = Policy {
            ip_allow: vec!["10.0.0.0/8".into()],
            ip_deny: vec!["10.6.6.0/24".into()],
            ..Policy::default_open()
        }
        .compile()
        .unwrap();
        assert!(p.admits(ip("10.1.1.1")));
        assert!(!p.admits(ip("10.6.6.6")));
        assert!(!p.admits(ip("192.0.2.1")));
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = vec![Cidr::parse("127.0.0.1").unwrap()];
        assert_eq!(client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted), Some(ip("203.0.113.9")), "spoofed");
        assert_eq!(client_ip(Some(ip("127.0.0.1")), Some("1.2.3.4, 198.51.100.7"), &trusted), Some(ip("198.51.100.7")));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), Some("garbage"), &trusted), Some(ip("127.0.0.1")));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), None, &trusted), Some(ip("127.0.0.1")));
    }
}
