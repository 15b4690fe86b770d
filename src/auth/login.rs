//! Signing in and out: password, then TOTP or a recovery code when enrolled, with lockout
//! per account and a failure window per address; TOTP enrolment. Every attempt on a known
//! account goes to the audit trails of its tenants (`events`).

use std::net::IpAddr;

use serde::Serialize;

use super::password::Verdict;
use super::{events, password, totp, Caller, SessionInfo, UserInfo, CACHE_MAX, SESSION_PREFIX};
use crate::app::App;
use crate::catalog::identity::{self, NewSession, User};
use crate::error::{Error, Result};
use crate::util::{random_hex, sha256_hex};

/// A sign-in attempt: what the form or JSON body says, and who sends it from where.
pub struct LoginRequest<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub totp: Option<&'a str>,
    pub caller: Caller<'a>,
}

#[derive(Serialize)]
pub struct LoginOk {
    pub token: String,
    pub expires_at: i64,
    pub csrf_token: String,
    pub user: UserInfo,
}

const ADDRESS_WINDOW: i64 = 600;

fn address_blocked(app: &App, ip: Option<IpAddr>, now: i64) -> Option<i64> {
    let ip = ip?;
    let map = app.auth.failures.lock();
    let (count, since) = *map.get(&ip)?;
    (count >= app.config.auth.address_max_failures && now - since < ADDRESS_WINDOW)
        .then_some(since + ADDRESS_WINDOW - now)
}

/// Addresses refused sign-in right now after `auth.address_max_failures` failures (in memory).
pub fn refused_addresses(app: &App, now: i64) -> Vec<IpAddr> {
    let max = app.config.auth.address_max_failures;
    app.auth
        .failures
        .lock()
        .iter()
        .filter(|(_, (count, since))| *count >= max && now - *since < ADDRESS_WINDOW)
        .map(|(ip, _)| *ip)
        .collect()
}

fn address_failed(app: &App, ip: Option<IpAddr>, now: i64) {
    let Some(ip) = ip else { return };
    let mut map = app.auth.failures.lock();
    if map.len() >= CACHE_MAX {
        map.retain(|_, (_, since)| now - *since < ADDRESS_WINDOW);
    }
    let e = map.entry(ip).or_insert((0, now));
    if now - e.1 >= ADDRESS_WINDOW {
        *e = (0, now);
    }
    e.0 += 1;
}

fn invalid_credentials() -> Error {
    Error::Unauthenticated { code: "invalid_credentials", message: "email or password is incorrect".into() }
}

/// Password (then TOTP when enrolled) to a new session. Unknown emails cost the same time and
/// get the same answer as wrong passwords.
pub fn login(app: &App, req: &LoginRequest<'_>, now: i64) -> Result<LoginOk> {
    let cfg = &app.config.auth;
    if let Some(wait) = crate::security::threats::blocked(app, req.caller.client, now) {
        return Err(Error::TooManyRequests {
            code: "too_many_attempts",
            message: "this address is temporarily blocked after suspicious sign-in attempts".into(),
            retry_after: wait,
            rate: None,
        });
    }
    if let Some(wait) = address_blocked(app, req.caller.client, now) {
        return Err(Error::TooManyRequests {
            code: "too_many_attempts",
            message: "too many failed logins from this address".into(),
            retry_after: wait,
            rate: None,
        });
    }
    let user = identity::user_by_email(&*app.catalog.conn()?, req.email.trim())?;
    let Some(user) = user else {
        password::verify_dummy(req.password, cfg);
        address_failed(app, req.caller.client, now);
        crate::security::threats::login_failed(app, req.caller.client, req.email, now);
        events::unknown_account(app, req, now);
        return Err(invalid_credentials());
    };
    if let Some(until) = user.locked_until.filter(|u| *u > now) {
        password::verify_dummy(req.password, cfg);
        address_failed(app, req.caller.client, now);
        events::sign_in(app, &user, req, events::Outcome::Locked);
        return Err(Error::TooManyRequests {
            code: "account_locked",
            message: "too many failed logins: this account is locked for a while".into(),
            retry_after: until - now,
            rate: None,
        });
    }
    let verdict = password::verify_any(req.password, &user.password_hash);
    if verdict == Verdict::Mismatch {
        crate::security::threats::login_failed(app, req.caller.client, req.email, now);
        events::sign_in(app, &user, req, events::Outcome::WrongPassword);
        fail_login(app, &user, req.caller.client, now)?;
        return Err(invalid_credentials());
    }
    if user.totp_enabled {
        let Some(code) = req.totp.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(Error::Unauthenticated {
                code: "mfa_required",
                message: "enter the code from your authenticator app as \"totp\"".into(),
            });
        };
        if !check_second_factor(app, &user, code, now)? {
            events::sign_in(app, &user, req, events::Outcome::WrongCode);
            fail_login(app, &user, req.caller.client, now)?;
            return Err(Error::Unauthenticated {
                code: "invalid_totp",
                message: "the authentication code is wrong or was already used".into(),
            });
        }
    }
    if let Err(e) = crate::security::threats::signed_in(app, &user, req.caller.client, now) {
        crate::log::warn(&format!("sign-in address check failed: {}", e.log_detail()));
    }
    // Hashed before the catalog write, which holds the catalog's write lock.
    let rehash = (verdict == Verdict::MatchNeedsRehash).then(|| rehash(app, &user, req)).flatten();
    let (ok, rehashed) = start_session(app, &user, req, rehash.as_ref().map(|(_, new)| new.as_str()), now)?;
    let rehashed_from = rehash.filter(|_| rehashed).map(|(from, _)| from);
    if let Some(from) = rehashed_from {
        let msg = format!("user {} signed in with a {from} password hash: re-hashed to argon2id", user.id);
        crate::log::request("INFO", req.caller.request_id, &msg);
    }
    events::sign_in(app, &user, req, events::Outcome::Ok { rehashed_from });
    Ok(ok)
}

/// The new session, and the argon2id hash replacing a legacy one in the same transaction;
/// says whether it replaced it. No cache holds password hashes, so this needs no `app.change`.
fn start_session(
    app: &App,
    user: &User,
    req: &LoginRequest<'_>,
    rehash: Option<&str>,
    now: i64,
) -> Result<(LoginOk, bool)> {
    let cfg = &app.config.auth;
    let token = format!("{SESSION_PREFIX}{}", random_hex(32));
    let csrf = random_hex(16);
    let expires_at = now + cfg.session_ttl_minutes * 60;
    let source = req.caller.client.map(|s| s.to_string());
    let rehashed = app.catalog.write(|tx| {
        identity::record_login_success(tx, user.id)?;
        let rehashed = match rehash {
            Some(new) => identity::rehash_password(tx, user.id, &user.password_hash, new, now)?,
            None => false,
        };
        identity::insert_session(
            tx,
            &NewSession {
                token_hash: &sha256_hex(token.as_bytes()),
                user_id: user.id,
                now,
                expires_at,
                idle_seconds: cfg.idle_timeout_minutes * 60,
                csrf_token: &csrf,
                source: source.as_deref(),
                user_agent: req.caller.user_agent.map(|u| &u[..u.len().min(300)]),
            },
        )?;
        Ok(rehashed)
    })?;
    Ok((LoginOk { token, expires_at, csrf_token: csrf, user: UserInfo::from(user) }, rehashed))
}

/// A fresh argon2id hash of the password that just matched an imported legacy hash, and the
/// legacy kind's name. A failure to hash is logged and the sign-in goes on: the legacy hash
/// still works, and the next sign-in tries again.
fn rehash(app: &App, user: &User, req: &LoginRequest<'_>) -> Option<(&'static str, String)> {
    let from = password::classify(&user.password_hash).name();
    match password::hash(req.password, &app.config.auth) {
        Ok(new) => Some((from, new)),
        Err(e) => {
            let msg = format!("could not re-hash user {}'s {from} password: {}", user.id, e.log_detail());
            crate::log::request("WARN", req.caller.request_id, &msg);
            None
        }
    }
}

fn fail_login(app: &App, user: &User, source: Option<IpAddr>, now: i64) -> Result<()> {
    let cfg = &app.config.auth;
    address_failed(app, source, now);
    let failures = user.failed_logins + 1;
    let locked_until = (failures >= cfg.lockout_threshold).then(|| {
        let doublings = (failures - cfg.lockout_threshold).min(7) as u32;
        now + (cfg.lockout_base_seconds * 2i64.pow(doublings)).min(3600)
    });
    if locked_until.is_some() && user.locked_until.is_none_or(|u| u <= now) {
        crate::security::threats::account_locked(app, user.id, source, now);
    }
    app.catalog.write(|tx| identity::record_login_failure(tx, user.id, failures, locked_until))
}

/// A TOTP code (±1 step, each step usable once) or a one-time recovery code.
fn check_second_factor(app: &App, user: &User, code: &str, now: i64) -> Result<bool> {
    let Some(secret) = &user.totp_secret else {
        return Ok(false);
    };
    if let Some(step) = totp::verify(secret, code, now) {
        return app.catalog.write(|tx| identity::claim_totp_step(tx, user.id, step));
    }
    let normalized = code.to_ascii_lowercase().replace('-', "");
    app.catalog.write(|tx| identity::use_recovery_code(tx, user.id, &sha256_hex(normalized.as_bytes()), now))
}

pub fn logout(app: &App, session: &SessionInfo, now: i64) -> Result<()> {
    app.change(|tx| identity::revoke_session(tx, &session.token_hash, now))
}

/// Starts TOTP enrolment: a new secret, not active until confirmed.
pub fn mfa_enroll(app: &App, user: &UserInfo) -> Result<(String, String)> {
    let secret = totp::new_secret();
    app.change(|tx| identity::set_totp(tx, user.id, Some(&secret), false))?;
    let uri = totp::otpauth_uri(&secret, &user.email, "tenantd");
    Ok((secret, uri))
}

/// Confirms enrolment with a current code; returns ten one-time recovery codes (shown once).
pub fn mfa_confirm(app: &App, user: &UserInfo, code: &str, now: i64) -> Result<Vec<String>> {
    let u = identity::user_by_id(&*app.catalog.conn()?, user.id)?.ok_or(Error::Unauthorized)?;
    let secret =
        u.totp_secret.ok_or_else(|| Error::invalid("mfa_not_enrolled", "start with POST /api/v1/auth/mfa/enroll"))?;
    let step = totp::verify(&secret, code, now)
        .ok_or_else(|| Error::invalid("invalid_totp", "the authentication code is wrong"))?;
    let codes: Vec<String> = (0..10)
        .map(|_| {
            let h = random_hex(5);
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(c.replace('-', "").as_bytes())).collect();
    app.change(|tx| {
        identity::set_totp(tx, user.id, Some(&secret), true)?;
        identity::claim_totp_step(tx, user.id, step)?;
        identity::replace_recovery_codes(tx, user.id, &hashes)
    })?;
    Ok(codes)
}
