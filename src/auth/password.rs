//! Passwords: argon2id hashes (PHC strings) and the password policy.

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

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

/// Verifies with the parameters stored in the hash (so raising them later keeps old hashes
/// working). A malformed stored hash verifies as false.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
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
    fn policy() {
        let c = cfg();
        assert!(check_policy("short", "a@b.c", &c).is_err());
        assert!(check_policy("qwertyuiop", "a@b.c", &c).is_err(), "common password");
        assert!(check_policy("alice.smith@example.com", "alice.smith@example.com", &c).is_err());
        assert!(check_policy("alice-2026-secure", "alice@example.com", &c).is_err(), "contains local part");
        assert!(check_policy("tangerine-orbit-42", "alice@example.com", &c).is_ok());
    }
}
