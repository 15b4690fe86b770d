//! Validated identifiers, parsed at the boundary. A `String` from a URL or the CLI becomes one of
//! these before it reaches SQL or a file path; only `TenantId` (minted here) is ever part of a path.

use std::fmt;

use crate::error::{Error, Result};

/// Opaque tenant id minted by tenantd: 16 lower-case hex characters (64 random bits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn mint() -> Self {
        TenantId(crate::util::random_hex(8))
    }

    /// Accepts only the exact minted shape, so a stored id can safely name a directory.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(TenantId(s.to_string()))
        } else {
            Err(Error::invalid("invalid_tenant_id", format!("{s:?} is not a tenant id")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// A tenant's public handle: `^[a-z0-9][a-z0-9-]{0,62}$`. Maps to a `TenantId` through the
/// catalog only; never part of a path on disk.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let ok_first = bytes.first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let ok_rest = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok_first && ok_rest && bytes.len() <= Self::MAX_LEN {
            Ok(Slug(s.to_string()))
        } else {
            Err(Error::invalid(
                "invalid_slug",
                format!(
                    "invalid tenant slug {:?}: use 1-63 characters a-z, 0-9 and '-', starting with a letter or digit",
                    truncate_for_message(s)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slug({})", self.0)
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for Slug {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Keeps error messages short and free of control characters, whatever the input was.
pub fn truncate_for_message(s: &str) -> String {
    let mut out: String = s.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accepted() {
        for s in ["a", "acme", "acme-2", "0x", &"a".repeat(63)] {
            assert!(Slug::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn slugs_refused() {
        let long = "a".repeat(64);
        for s in ["", "-a", "A", "Acme", "a/b", "../x", "..", "a.b", "a_b", "a\0b", "é", &long, "%2e%2e"] {
            assert!(Slug::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn tenant_ids() {
        let id = TenantId::mint();
        assert_eq!(TenantId::parse(id.as_str()).ok(), Some(id));
        assert!(TenantId::parse("../../etc/passw").is_err());
        assert!(TenantId::parse("ABCDEF0123456789").is_err());
    }
}
