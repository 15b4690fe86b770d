//! Threat detection with simple, explainable rules. Each detection raises an alert (audit
//! entry, `alerts` row, counter, optional webhook); credential stuffing also blocks the address
//! for a while. Counters are in memory, per window, and bounded.
//!
//! - credential stuffing: one address failing sign-in for many distinct accounts (any tenant);
//! - brute force: an account locked by repeated failures (see `auth::login`);
//! - enumeration: one principal collecting many 404/403 answers from a tenant in a minute;
//! - mass delete: one principal deleting many records of a tenant in a minute;
//! - mass export: one principal reading many rows of a tenant in a minute (lists, exports);
//! - admin sign-in from a new address: an owner, admin or platform admin signing in from an
//!   address never seen for them before;
//! - rate-limit storms: see `limits` (auto-throttle alert).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::app::App;
use crate::catalog::tenants::TenantRecord;

const MAX_KEYS: usize = 100_000;
const STUFFING_WINDOW: i64 = 600;

/// (tenant id, principal) → (minute, count in that minute).
type PerMinute = Mutex<HashMap<(String, String), (i64, u64)>>;

#[derive(Default)]
pub struct Threats {
    failures: Mutex<HashMap<IpAddr, (i64, HashSet<String>)>>,
    blocked: Mutex<HashMap<IpAddr, i64>>,
    misses: PerMinute,
    deletes: PerMinute,
    /// hash(tenant id, principal) → (minute, rows read in that minute). Keyed by a hash so a
    /// read costs no allocation.
    reads: Mutex<HashMap<u64, (i64, u64)>>,
    hasher: std::collections::hash_map::RandomState,
}

fn bounded<K, V>(map: &mut HashMap<K, V>) {
    if map.len() >= MAX_KEYS {
        map.clear();
    }
}

/// Ends the message of a credential-stuffing alert that blocked its address: the security
/// metrics (issue 21) count blocked addresses from the stored alerts by it.
pub const ADDRESS_BLOCKED: &str = "; address blocked";

/// Addresses blocked right now for credential stuffing (in memory: a restart forgets them).
pub fn blocked_addresses(app: &App, now: i64) -> Vec<IpAddr> {
    app.threats.blocked.lock().iter().filter(|(_, until)| **until > now).map(|(ip, _)| *ip).collect()
}

/// Seconds an address stays blocked, if it is.
pub fn blocked(app: &App, ip: Option<IpAddr>, now: i64) -> Option<i64> {
    let ip = ip?;
    app.threats.blocked.lock().get(&ip).copied().filter(|until| *until > now).map(|until| until - now)
}

/// A failed sign-in for `email` from `ip`.
pub fn login_failed(app: &App, ip: Option<IpAddr>, email: &str, now: i64) {
    let Some(ip) = ip else { return };
    let cfg = &app.config.threats;
    let distinct = {
        let mut map = app.threats.failures.lock();
        bounded(&mut map);
        let e = map.entry(ip).or_insert_with(|| (now, HashSet::new()));
        if now - e.0 >= STUFFING_WINDOW {
            *e = (now, HashSet::new());
        }
        if e.1.len() < 10_000 {
            e.1.insert(email.trim().to_lowercase());
        }
        e.1.len() as u64
    };
    if distinct >= cfg.stuffing_accounts {
        if cfg.block_addresses {
            let mut b = app.threats.blocked.lock();
            bounded(&mut b);
            b.insert(ip, now + cfg.block_seconds as i64);
        }
        app.limits.alerts.raise_full(
            None,
            "credential_stuffing",
            now / STUFFING_WINDOW,
            format!(
                "{distinct} accounts failed to sign in from one address within 10 minutes{}",
                if cfg.block_addresses { ADDRESS_BLOCKED } else { "" }
            ),
            Some(ip.to_string()),
            None,
            80,
        );
    }
}

/// An account just got locked by repeated failures.
pub fn account_locked(app: &App, user_id: i64, ip: Option<IpAddr>, now: i64) {
    app.limits.alerts.raise_full(
        None,
        "brute_force",
        now / 600,
        "repeated wrong passwords locked an account".into(),
        ip.map(|i| i.to_string()),
        Some(format!("user:{user_id}")),
        60,
    );
}

fn per_minute(map: &PerMinute, key: (String, String), now: i64) -> u64 {
    let mut m = map.lock();
    bounded(&mut m);
    let e = m.entry(key).or_insert((now / 60, 0));
    if e.0 != now / 60 {
        *e = (now / 60, 0);
    }
    e.1 += 1;
    e.1
}

/// A 404 or 403 answered to `principal` on a tenant route.
pub fn miss(app: &App, t: &TenantRecord, principal: &str, ip: Option<IpAddr>, now: i64) {
    let n = per_minute(&app.threats.misses, (t.id.to_string(), principal.to_string()), now);
    if n == app.config.threats.enumeration_misses {
        app.limits.alerts.raise_full(
            Some((&t.id, t.slug.as_str())),
            "enumeration",
            now / 60,
            format!("{n} not-found or forbidden answers to one caller within a minute"),
            ip.map(|i| i.to_string()),
            Some(principal.to_string()),
            50,
        );
    }
}

/// A record deleted by `principal`.
pub fn deleted(app: &App, t: &crate::ids::TenantId, slug: &str, principal: &str, now: i64) {
    let n = per_minute(&app.threats.deletes, (t.to_string(), principal.to_string()), now);
    if n == app.config.threats.mass_delete {
        app.limits.alerts.raise_full(
            Some((t, slug)),
            "mass_delete",
            now / 60,
            format!("{n} records deleted by one caller within a minute"),
            None,
            Some(principal.to_string()),
            70,
        );
    }
}

/// `rows` read by `principal` from a tenant (called once per request that read rows).
pub fn rows_read(app: &App, t: &TenantRecord, principal: &str, ip: Option<IpAddr>, rows: u64, now: i64) {
    use std::hash::BuildHasher;
    let limit = app.config.threats.mass_export_rows;
    let key = app.threats.hasher.hash_one((t.id.as_str(), principal));
    let (before, after) = {
        let mut m = app.threats.reads.lock();
        bounded(&mut m);
        let e = m.entry(key).or_insert((now / 60, 0));
        if e.0 != now / 60 {
            *e = (now / 60, 0);
        }
        let before = e.1;
        e.1 += rows;
        (before, e.1)
    };
    // Once per minute and caller: when the count crosses the threshold.
    if before < limit && after >= limit {
        app.limits.alerts.raise_full(
            Some((&t.id, t.slug.as_str())),
            "mass_export",
            now / 60,
            format!("{after} rows read by one caller within a minute"),
            ip.map(|i| i.to_string()),
            Some(principal.to_string()),
            60,
        );
    }
}

/// After a successful sign-in: owners, admins and platform admins signing in from an address
/// never seen for them raise an alert (the first address of an account does not).
pub fn signed_in(
    app: &App,
    user: &crate::catalog::identity::User,
    ip: Option<IpAddr>,
    now: i64,
) -> crate::error::Result<()> {
    let Some(ip) = ip else { return Ok(()) };
    let address = ip.to_string();
    let (known, any, admin_in): (bool, bool, Vec<(String, String)>) = {
        let conn = app.catalog.conn()?;
        let known: bool = conn.query_row(
            "SELECT count(*) > 0 FROM user_addresses WHERE user_id = ?1 AND address = ?2",
            rusqlite::params![user.id, address],
            |r| r.get(0),
        )?;
        let any: bool =
            conn.query_row("SELECT count(*) > 0 FROM user_addresses WHERE user_id = ?1", [user.id], |r| r.get(0))?;
        let admin_in = crate::catalog::identity::tenants_of(&conn, user.id)?
            .into_iter()
            .filter(|(_, _, _, role)| role == "owner" || role == "admin")
            .map(|(id, slug, _, _)| (id, slug))
            .collect();
        (known, any, admin_in)
    };
    if known {
        return Ok(());
    }
    app.catalog.background_write(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO user_addresses(user_id, address, first_seen) VALUES (?1, ?2, ?3)",
            rusqlite::params![user.id, address, now],
        )?;
        Ok(())
    })?;
    if !any {
        return Ok(());
    }
    let msg = format!("{} signed in from an address not seen for them before", user.email);
    // Platform-wide for platform admins, and in every tenant where the user is owner or admin.
    let tenants: Vec<(crate::ids::TenantId, String)> = admin_in
        .into_iter()
        .filter_map(|(id, slug)| crate::ids::TenantId::parse(&id).ok().map(|t| (t, slug)))
        .collect();
    let targets =
        user.is_platform_admin.then_some(None).into_iter().chain(tenants.iter().map(|(t, s)| Some((t, s.as_str()))));
    for target in targets {
        let principal = Some(format!("user:{}", user.id));
        app.limits.alerts.raise_full(
            target,
            "new_admin_address",
            now,
            msg.clone(),
            Some(address.clone()),
            principal,
            40,
        );
    }
    Ok(())
}
