//! Identity: passwords, sessions, API keys, TOTP, roles. `authenticate` turns a credential into
//! a `Principal`; `authorize` checks it against a tenant and a permission. Both run from an
//! in-memory cache on the hot path (a warm request does no catalog query); the cache is dropped
//! whenever the catalog changes.

mod events;
mod legacy;
mod login;
pub mod password;
pub mod perms;
pub mod totp;
mod touches;

pub use login::{login, logout, mfa_confirm, mfa_enroll, refused_addresses, LoginOk, LoginRequest};
pub use touches::Touches;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::app::App;
use crate::catalog::identity::{self, User};
use crate::catalog::tenants::TenantRecord;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::util::{now_unix, random_hex, sha256_hex};
use perms::{Action, PermSet, Resource};

pub const SESSION_PREFIX: &str = "tds_";
pub const KEY_PREFIX: &str = "tdk_";
/// last_seen is written back at most this often per session (idle expiry is accurate to it).
const TOUCH_EVERY_SECONDS: i64 = 60;
const CACHE_MAX: usize = 100_000;

#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    pub id: i64,
    pub email: String,
    pub is_platform_admin: bool,
    pub mfa_enabled: bool,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            id: u.id,
            email: u.email.clone(),
            is_platform_admin: u.is_platform_admin,
            mfa_enabled: u.totp_enabled,
        }
    }
}

pub struct SessionInfo {
    /// `user:<id>`, for audit and the per-caller limiter (built once, not per request).
    pub actor: String,
    pub token_hash: String,
    pub user: UserInfo,
    pub expires_at: i64,
    pub idle_seconds: i64,
    pub csrf_token: String,
    pub created_at: i64,
    last_seen: AtomicI64,
    /// `last_seen` before the current request (a tenant's stricter idle timeout checks it).
    prev_seen: AtomicI64,
    last_written: AtomicI64,
}

#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub actor: String,
    pub id: String,
    pub tenant_id: TenantId,
    pub perms: Arc<PermSet>,
    last_written: Arc<AtomicI64>,
}

/// Who is calling.
#[derive(Clone)]
pub enum Principal {
    User(Arc<SessionInfo>),
    ApiKey(KeyInfo),
}

impl Principal {
    pub fn user(&self) -> Option<&UserInfo> {
        match self {
            Principal::User(s) => Some(&s.user),
            Principal::ApiKey(_) => None,
        }
    }

    /// For audit entries and the per-caller limiter: `user:<id>` or `api_key:<id>`.
    pub fn actor(&self) -> String {
        self.actor_str().to_string()
    }

    pub fn actor_str(&self) -> &str {
        match self {
            Principal::User(s) => &s.actor,
            Principal::ApiKey(k) => &k.actor,
        }
    }
}

/// Permissions of (tenant, user), `None` for "not a member".
type RoleCache = crate::util::IdMap<(TenantId, i64), Option<Arc<PermSet>>>;

/// Hot-path caches, cleared on every catalog change.
#[derive(Default)]
pub struct AuthCache {
    sessions: Mutex<HashMap<String, Option<Arc<SessionInfo>>>>,
    keys: Mutex<HashMap<String, Option<KeyInfo>>>,
    roles: Mutex<RoleCache>,
    policies: Mutex<crate::util::IdMap<TenantId, Arc<crate::security::Compiled>>>,
    /// (tenant, address) → minute of the last `security.ip_denied` audit entry (one a minute).
    denied: Mutex<HashMap<(TenantId, IpAddr), i64>>,
    failures: Mutex<HashMap<IpAddr, (u32, i64)>>,
    /// Uses of API keys and sessions not yet written to the catalog (`take_touches`).
    touches: Mutex<Touches>,
    /// Session and API-key lookups answered from memory / from the catalog.
    pub hits: std::sync::atomic::AtomicU64,
    pub misses: std::sync::atomic::AtomicU64,
}

impl AuthCache {
    fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn invalidate(&self) {
        self.sessions.lock().clear();
        self.keys.lock().clear();
        self.roles.lock().clear();
        self.policies.lock().clear();
    }
}

fn bounded_insert<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>, k: K, v: V) {
    if map.len() >= CACHE_MAX {
        map.clear();
    }
    map.insert(k, v);
}

/// A token from `Authorization: Bearer`, `X-API-Key` or the UI cookie, to a principal.
/// Anything unknown, expired or revoked is `Unauthorized`.
pub fn authenticate(app: &App, token: &str, now: i64) -> Result<Principal> {
    let hash = sha256_hex(token.as_bytes());
    if token.starts_with(KEY_PREFIX) {
        return api_key(app, &hash, now).map(Principal::ApiKey);
    }
    let cached = app.auth.sessions.lock().get(&hash).cloned();
    app.auth.count(cached.is_some());
    let session = match cached {
        Some(s) => s,
        None => {
            let conn = app.catalog.conn()?;
            let loaded = match identity::session_by_hash(&conn, &hash)? {
                Some(s) if !s.revoked => identity::user_by_id(&conn, s.user_id)?.map(|u| {
                    // A use the flush has not written yet counts (see `take_touches`).
                    let seen =
                        app.auth.touches.lock().sessions.get(&hash).map_or(s.last_seen_at, |&t| t.max(s.last_seen_at));
                    Arc::new(SessionInfo {
                        actor: format!("user:{}", u.id),
                        token_hash: hash.clone(),
                        user: UserInfo::from(&u),
                        expires_at: s.expires_at,
                        idle_seconds: s.idle_seconds,
                        csrf_token: s.csrf_token,
                        created_at: s.created_at,
                        last_seen: AtomicI64::new(seen),
                        prev_seen: AtomicI64::new(seen),
                        last_written: AtomicI64::new(seen),
                    })
                }),
                _ => None,
            };
            bounded_insert(&mut app.auth.sessions.lock(), hash.clone(), loaded.clone());
            loaded
        }
    };
    let s = session.ok_or(Error::Unauthorized)?;
    if now >= s.expires_at || now - s.last_seen.load(Ordering::Relaxed) > s.idle_seconds {
        return Err(Error::Unauthorized);
    }
    s.prev_seen.store(s.last_seen.swap(now, Ordering::Relaxed), Ordering::Relaxed);
    if now - s.last_written.swap(now, Ordering::Relaxed) >= TOUCH_EVERY_SECONDS {
        app.auth.touches.lock().sessions.insert(hash, now);
    }
    Ok(Principal::User(s))
}

fn api_key(app: &App, hash: &str, now: i64) -> Result<KeyInfo> {
    let cached = app.auth.keys.lock().get(hash).cloned();
    app.auth.count(cached.is_some());
    let key = match cached {
        Some(k) => k,
        None => {
            let loaded = match identity::api_key_by_hash(&*app.catalog.conn()?, hash)? {
                Some(k) if k.revoked_at.is_none() => {
                    let perms = perms::for_scope(&k.scope)
                        .ok_or_else(|| Error::Internal(format!("api key {} has scope {}", k.id, k.scope)))?
                        .restrict_tables(k.tables.as_deref());
                    Some(KeyInfo {
                        actor: format!("api_key:{}", k.id),
                        id: k.id.clone(),
                        tenant_id: TenantId::parse(&k.tenant_id)?,
                        perms: Arc::new(perms),
                        last_written: Arc::new(AtomicI64::new(k.last_used_at.unwrap_or(0))),
                    })
                }
                _ => None,
            };
            bounded_insert(&mut app.auth.keys.lock(), hash.to_string(), loaded.clone());
            loaded
        }
    };
    let key = key.ok_or(Error::Unauthorized)?;
    if now - key.last_written.swap(now, Ordering::Relaxed) >= TOUCH_EVERY_SECONDS {
        app.auth.touches.lock().keys.insert(key.id.clone(), now);
    }
    Ok(key)
}

/// The caller's permissions in a tenant. A caller with no standing in the tenant gets the same
/// 404 as for a tenant that does not exist (never a 403 that confirms it exists).
pub fn standing(app: &App, who: &Principal, tenant: &TenantRecord) -> Result<Arc<PermSet>> {
    let hidden = || Error::NotFound(format!("tenant {:?}", tenant.slug.as_str()));
    match who {
        Principal::ApiKey(k) => {
            if k.tenant_id != tenant.id {
                return Err(hidden());
            }
            if !policy(app, &tenant.id)?.policy.api_keys_allowed {
                return Err(Error::Forbidden {
                    code: "api_keys_disabled",
                    message: "this tenant's security policy does not accept API keys".into(),
                });
            }
            Ok(k.perms.clone())
        }
        Principal::User(s) => {
            let perms = role_perms(app, &tenant.id, s.user.id)?.ok_or_else(hidden)?;
            let p = policy(app, &tenant.id)?;
            let now = crate::util::now_unix();
            let too_old = p.policy.session_ttl_minutes.is_some_and(|m| now - s.created_at > m * 60);
            let idle =
                p.policy.idle_timeout_minutes.is_some_and(|m| now - s.prev_seen.load(Ordering::Relaxed) > m * 60);
            if too_old || idle {
                return Err(Error::Unauthenticated {
                    code: "session_expired",
                    message: "this tenant's security policy ends sessions sooner: sign in again".into(),
                });
            }
            if !s.user.mfa_enabled && p.policy.require_mfa {
                return Err(Error::Forbidden {
                    code: "mfa_required",
                    message: "this tenant requires two-factor authentication: enrol at /api/v1/auth/mfa/enroll".into(),
                });
            }
            Ok(perms)
        }
    }
}

/// The tenant's security policy, cached until the catalog generation moves. The MFA
/// requirement set through the settings endpoint lives in the same place.
pub fn policy(app: &App, tenant: &TenantId) -> Result<Arc<crate::security::Compiled>> {
    if let Some(p) = app.auth.policies.lock().get(tenant) {
        return Ok(p.clone());
    }
    let settings = identity::tenant_settings(&*app.catalog.conn()?, tenant)?;
    let mut p: crate::security::Policy = settings
        .get("security")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_else(crate::security::Policy::default_open);
    p.require_mfa |= settings.get("require_mfa").and_then(|v| v.as_bool()).unwrap_or(false);
    let compiled = Arc::new(p.compile()?);
    bounded_insert(&mut app.auth.policies.lock(), tenant.clone(), compiled.clone());
    Ok(compiled)
}

/// A request as domain code sees it: plain values the HTTP layer hands over (`http::Req::caller`),
/// so rules here never depend on HTTP types. Borrowed, so building one allocates nothing on the
/// hot path (the user agent is one scan of the few request headers).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub request_id: &'a str,
    /// The request path as sent (for audit entries).
    pub path: &'a str,
    /// The client's address: the peer, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy.
    pub client: Option<IpAddr>,
    /// The `User-Agent` header (for audit entries and sessions).
    pub user_agent: Option<&'a str>,
}

/// Refuses clients the tenant's IP policy excludes (403 `ip_denied`), with a `security.ip_denied`
/// entry in its audit trail (at most one a minute per address).
pub fn check_address(app: &App, tenant: &TenantRecord, caller: &Caller<'_>) -> Result<()> {
    let p = policy(app, &tenant.id)?;
    let Some(ip) = caller.client else { return Ok(()) };
    if p.admits(ip) {
        return Ok(());
    }
    let minute = crate::util::now_unix() / 60;
    let first = app.auth.denied.lock().insert((tenant.id.clone(), ip), minute) != Some(minute);
    if first {
        let source = ip.to_string();
        let entry = crate::audit::Entry {
            actor: "anonymous",
            source: Some(&source),
            user_agent: caller.user_agent,
            request_id: Some(caller.request_id),
            action: "security.ip_denied",
            resource: Some(caller.path),
            outcome: "denied",
            risk: 50,
            details: serde_json::json!({}),
        };
        if let Err(e) = crate::audit::record(app, tenant, &entry) {
            crate::log::warn(&format!("could not audit a denied address: {}", e.log_detail()));
        }
    }
    Err(Error::Forbidden { code: "ip_denied", message: "your address is not allowed for this tenant".into() })
}

/// `standing`, then the permission: a member lacking it gets 403.
pub fn authorize(
    app: &App,
    who: &Principal,
    tenant: &TenantRecord,
    action: Action,
    resource: Resource<'_>,
) -> Result<Arc<PermSet>> {
    let perms = standing(app, who, tenant)?;
    if !perms.allows(action, resource) {
        let what = match resource {
            Resource::Table(t) => t.to_string(),
            Resource::Area(a) => a.as_str().to_string(),
        };
        return Err(Error::Forbidden {
            code: "forbidden",
            message: format!("your role does not allow can_{} on {what}", action.as_str()),
        });
    }
    Ok(perms)
}

fn role_perms(app: &App, tenant: &TenantId, user_id: i64) -> Result<Option<Arc<PermSet>>> {
    let key = (tenant.clone(), user_id);
    if let Some(p) = app.auth.roles.lock().get(&key) {
        return Ok(p.clone());
    }
    let conn = app.catalog.conn()?;
    let perms = match identity::membership_of(&conn, tenant, user_id)? {
        None => None,
        Some(role) => Some(Arc::new(match perms::builtin(&role) {
            Some(p) => p,
            None => match identity::custom_role(&conn, tenant, &role)? {
                Some(list) => PermSet::from_strings(&list)?,
                // A membership naming a deleted role grants nothing.
                None => PermSet::default(),
            },
        })),
    };
    bounded_insert(&mut app.auth.roles.lock(), key, perms.clone());
    Ok(perms)
}

/// Creates a user (CLI, demo, tests): policy-checked, argon2id-hashed.
pub fn create_user(app: &App, email: &str, password: &str, platform_admin: bool) -> Result<i64> {
    let email = validate_email(email)?;
    password::check_policy(password, &email, &app.config.auth)?;
    let hash = password::hash(password, &app.config.auth)?;
    app.change(|tx| identity::insert_user(tx, &email, &hash, platform_admin, now_unix()))
}

pub fn validate_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(Error::invalid(
            "invalid_email",
            format!("{:?} is not an email address", crate::ids::truncate_for_message(email)),
        ))
    }
}

/// Sets a new password (ends every session of the user).
pub fn reset_password(app: &App, email: &str, password: &str) -> Result<()> {
    let user = identity::user_by_email(&*app.catalog.conn()?, email.trim())?
        .ok_or_else(|| Error::NotFound(format!("user {:?}", crate::ids::truncate_for_message(email))))?;
    password::check_policy(password, &user.email, &app.config.auth)?;
    let hash = password::hash(password, &app.config.auth)?;
    app.change(|tx| identity::set_password(tx, user.id, &hash, now_unix()))
}

/// A password that passes the policy, for `user reset-password` without `--password`.
pub fn generate_password() -> String {
    format!("{}-{}-{}", random_hex(4), random_hex(4), random_hex(4))
}
