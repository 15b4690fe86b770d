//! Passwords: argon2id hashes (PHC strings), the password policy, and which stored hashes can
//! be verified at all (`classify`): imported users keep the hashes of the apps they come from
//! (`legacy`) until their first sign-in re-hashes them.

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::legacy;
use crate::config::AuthConfig;
use crate::error::{Error, Result};

/// The 1,000 most common passwords (SecLists, "10-million-password-list-top-1000"), compared
/// case-insensitively.
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("../../assets/common-passwords.txt")
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
});

fn argon2(cfg: &AuthConfig) -> Result<Argon2<'static>> {
    let params = Params::new(cfg.argon2_memory_kib, cfg.argon2_iterations, cfg.argon2_parallelism, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash(password: &str, cfg: &AuthConfig) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Ok(argon2(cfg)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// What a stored password hash is: whether a user keeps a usable password (the migration
/// importer reports it), and what sign-in re-hashed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKind {
    Argon2,
    WerkzeugPbkdf2,
    WerkzeugScrypt,
    Bcrypt,
    DjangoPbkdf2,
    /// Cannot be verified: unknown, malformed or out of bounds; the reason names the scheme
    /// and the parameter, never the salt or hash.
    Unsupported(String),
}

impl HashKind {
    /// A stable name for reports and audit details.
    pub fn name(&self) -> &'static str {
        match self {
            HashKind::Argon2 => "argon2",
            HashKind::WerkzeugPbkdf2 => "werkzeug_pbkdf2",
            HashKind::WerkzeugScrypt => "werkzeug_scrypt",
            HashKind::Bcrypt => "bcrypt",
            HashKind::DjangoPbkdf2 => "django_pbkdf2",
            HashKind::Unsupported(_) => "unsupported",
        }
    }

    pub fn is_usable(&self) -> bool {
        !matches!(self, HashKind::Unsupported(_))
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// Right password, stored in an imported legacy format: replace it with argon2id.
    MatchNeedsRehash,
}

/// Bounds on an argon2 hash we did not write: the ranges `config` accepts for our own
/// (`auth.argon2_*`), so every hash this server wrote passes and an imported one cannot ask
/// for terabytes (an allocation failure aborts the process).
const ARGON2_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const ARGON2_MAX_ITERATIONS: u32 = 100;
const ARGON2_MAX_PARALLELISM: u32 = 64;

enum Stored<'a> {
    Argon2(PasswordHash<'a>),
    Legacy(legacy::Legacy<'a>),
}

fn parse(stored: &str) -> std::result::Result<Stored<'_>, String> {
    if !stored.starts_with("$argon2") {
        return legacy::parse(stored).map(Stored::Legacy);
    }
    let malformed = || "malformed argon2 hash".to_string();
    let parsed = PasswordHash::new(stored).map_err(|_| malformed())?;
    Algorithm::try_from(parsed.algorithm).map_err(|_| malformed())?;
    let params = Params::try_from(&parsed).map_err(|_| malformed())?;
    if params.m_cost() > ARGON2_MAX_MEMORY_KIB
        || params.t_cost() > ARGON2_MAX_ITERATIONS
        || params.p_cost() > ARGON2_MAX_PARALLELISM
    {
        return Err(format!(
            "argon2 m={} KiB, t={}, p={} is above the bounds of {ARGON2_MAX_MEMORY_KIB} KiB, \
             {ARGON2_MAX_ITERATIONS}, {ARGON2_MAX_PARALLELISM}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(Stored::Argon2(parsed))
}

/// Which kind of hash `stored` is, without verifying anything (cheap: parsing only).
pub fn classify(stored: &str) -> HashKind {
    match parse(stored) {
        Ok(Stored::Argon2(_)) => HashKind::Argon2,
        Ok(Stored::Legacy(l)) => l.kind(),
        Err(reason) => HashKind::Unsupported(reason),
    }
}

/// Verifies argon2 with the parameters stored in the hash (so raising them later keeps old
/// hashes working), and the legacy formats of `classify` as their apps do. A malformed or
/// out-of-bounds stored hash is a mismatch, checked before any work.
pub fn verify_any(password: &str, stored: &str) -> Verdict {
    match parse(stored) {
        Ok(Stored::Argon2(parsed)) if Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() => {
            Verdict::Match
        }
        Ok(Stored::Legacy(l)) if l.verify(password) => Verdict::MatchNeedsRehash,
        _ => Verdict::Mismatch,
    }
}

/// `verify_any` as a yes or no.
pub fn verify(password: &str, stored: &str) -> bool {
    verify_any(password, stored) != Verdict::Mismatch
}

/// Spends the same time as a real verification, for logins with an unknown email, so timing
/// does not reveal which emails exist.
pub fn verify_dummy(password: &str, cfg: &AuthConfig) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("dummy password for timing", cfg).unwrap_or_default());
    let _ = verify(password, phc);
}

/// Minimum length, not the email (or its local part), not one of the 1,000 most common.
pub fn check_policy(password: &str, email: &str, cfg: &AuthConfig) -> Result<()> {
    let weak = |why: &str| Err(Error::invalid("weak_password", why.to_string()));
    if password.chars().count() < cfg.password_min_length {
        return weak(&format!("password must be at least {} characters", cfg.password_min_length));
    }
    if password.chars().count() > 1024 {
        return weak("password must be at most 1024 characters");
    }
    let lower = password.to_lowercase();
    let email = email.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (!local.is_empty() && lower.contains(local) && local.len() >= 4) {
        return weak("password must not contain your email address");
    }
    if COMMON.contains(&lower) {
        return weak("password is one of the most common passwords; choose another");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..AuthConfig::default() }
    }

    #[test]
    fn hash_verifies_and_is_argon2id() {
        let h = hash("correct horse battery", &cfg()).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn our_argon2_hashes_match_without_a_rehash() {
        let h = hash("correct horse battery", &cfg()).unwrap();
        assert_eq!(classify(&h), HashKind::Argon2);
        assert_eq!(verify_any("correct horse battery", &h), Verdict::Match);
        assert_eq!(verify_any("correct horse batter", &h), Verdict::Mismatch);
        // The config's largest argon2 parameters are still accepted.
        let big = h.replacen("m=1024,t=1,p=1", "m=4194304,t=100,p=64", 1);
        assert_eq!(classify(&big), HashKind::Argon2);
        let bigger = h.replacen("m=1024,t=1,p=1", "m=4194305,t=1,p=1", 1);
        assert!(!classify(&bigger).is_usable());
        assert_eq!(verify_any("correct horse battery", &bigger), Verdict::Mismatch);
    }

    #[test]
    fn policy() {
        let c = cfg();
        assert!(check_policy("short", "a@b.c", &c).is_err());
        assert!(check_policy("qwertyuiop", "a@b.c", &c).is_err(), "common password");
        assert!(check_policy("alice.smith@example.com", "alice.smith@example.com", &c).is_err());
        assert!(check_policy("alice-2026-secure", "alice@example.com", &c).is_err(), "contains local part");
        assert!(check_policy("tangerine-orbit-42", "alice@example.com", &c).is_ok());
    }
}
