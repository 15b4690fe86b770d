//! Security metrics (issue 21, item 6): failed sign-ins, lockouts, blocked addresses, alerts by
//! kind, MFA adoption and unused API keys over a range, for one tenant or for the platform.
//! Everything is counted from what tenantd already stores; nothing here keeps a counter:
//!
//! - failed sign-ins on known accounts are in the audit chain of each tenant the user belongs to
//!   (`auth::events`), so a tenant's count comes from its own file; failures for unknown emails
//!   are in the platform chain (`platform_audit`), which is all the platform view counts;
//! - a lockout raises a `brute_force` alert (`security::threats::account_locked`): the platform
//!   counts those, a tenant those whose principal is one of its members;
//! - a blocked address is a `credential_stuffing` alert that blocked it (platform-wide: an
//!   address belongs to no tenant), plus the addresses refused right now, which only memory has;
//! - MFA is `users.totp_enabled`, API keys `api_keys.last_used_at`.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::util::rfc3339;

/// Alert kinds raised by threat detection (`security::threats`); the others (quotas,
/// throttling, dunning) are about usage or money and do not count as security alerts.
pub const SECURITY_ALERT_KINDS: [&str; 6] =
    ["credential_stuffing", "brute_force", "enumeration", "mass_delete", "mass_export", "new_admin_address"];

/// The audit action of a failed sign-in (`auth::events`).
const LOGIN_FAILED: &str = "auth.login_failed";

#[derive(Debug, Serialize)]
pub struct Security {
    /// `tenant` or `platform`.
    pub scope: &'static str,
    pub from: String,
    pub to: String,
    /// Events are recorded as they happen (alerts within a second), so data runs up to now.
    pub data_until: String,
    pub failed_sign_ins: FailedSignIns,
    pub lockouts: Lockouts,
    pub blocked_addresses: Blocked,
    pub alerts: Alerts,
    pub mfa: Mfa,
    pub api_keys: Keys,
    /// What a number does not cover, in words.
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct FailedSignIns {
    pub total: i64,
    /// `wrong_password`, `wrong_totp`, `account_locked` (tenant) or `unknown_account` (platform).
    pub by_reason: BTreeMap<String, i64>,
    /// Distinct addresses they came from.
    pub addresses: i64,
    /// Accounts whose latest attempts failed (`users.failed_logins` > 0 now).
    pub accounts_failing_now: i64,
}

#[derive(Debug, Serialize)]
pub struct Lockouts {
    /// Accounts locked by repeated failures in the range (one per account, address and 10 minutes).
    pub in_range: i64,
    pub locked_now: i64,
}

#[derive(Debug, Serialize)]
pub struct Blocked {
    /// Addresses blocked for credential stuffing in the range (platform only).
    pub in_range: Option<i64>,
    /// Addresses refused sign-in right now, for stuffing or too many failures (platform only).
    pub now: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Alerts {
    pub total: i64,
    /// Of `SECURITY_ALERT_KINDS`; for a tenant, its members' lockouts included.
    pub security: i64,
    pub by_kind: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
pub struct Mfa {
    /// A tenant's members, or every user of the platform.
    pub users: i64,
    pub enrolled: i64,
    pub adoption_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Keys {
    /// Keys not revoked.
    pub active: i64,
    pub never_used: i64,
    /// Used once, but not in the `unused_days` before `to`.
    pub not_used_recently: i64,
    pub unused_days: i64,
}

/// `unused_days=N`: 1..=365, default 30.
pub fn unused_days(v: Option<&str>) -> Result<i64> {
    let Some(v) = v else { return Ok(30) };
    v.parse::<i64>().ok().filter(|n| (1..=365).contains(n)).ok_or_else(|| {
        Error::invalid(
            "invalid_parameter",
            format!("unused_days={:?}: use a whole number of days, 1 to 365", crate::ids::truncate_for_message(v)),
        )
    })
}

/// One tenant over `[from, to)`: `catalog` for users, keys and alerts, `audit` (a connection to
/// the tenant's own file) for its failed sign-ins.
pub fn tenant(
    catalog: &Connection,
    audit: &Connection,
    tenant: &TenantId,
    from: i64,
    to: i64,
    now: i64,
    unused_days: i64,
) -> Result<Security> {
    let (by_reason, addresses) = crate::audit::count_by_reason(audit, LOGIN_FAILED, from, to)?;
    let t = tenant.as_str();
    let (failing, locked_now, users, enrolled): (i64, i64, i64, i64) = catalog.query_row(
        "SELECT count(*) FILTER (WHERE u.failed_logins > 0), count(*) FILTER (WHERE u.locked_until > ?2), \
                count(*), count(*) FILTER (WHERE u.totp_enabled = 1) \
         FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ?1",
        params![t, now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let lockouts = member_lockouts(catalog, tenant, from, to)?;
    let by_kind = alerts_by_kind(catalog, Some(tenant), from, to)?;
    Ok(Security {
        scope: "tenant",
        from: rfc3339(from),
        to: rfc3339(to),
        data_until: rfc3339(to.min(now)),
        failed_sign_ins: FailedSignIns {
            total: by_reason.values().sum(),
            by_reason,
            addresses,
            accounts_failing_now: failing,
        },
        lockouts: Lockouts { in_range: lockouts, locked_now },
        blocked_addresses: Blocked { in_range: None, now: None },
        alerts: Alerts { total: by_kind.values().sum(), security: security_count(&by_kind) + lockouts, by_kind },
        mfa: mfa(users, enrolled),
        api_keys: keys(catalog, Some(tenant), to, unused_days)?,
        notes: vec![
            "blocked addresses are platform-wide: an address belongs to no tenant",
            "lockouts and failed sign-ins count the tenant's members, wherever they tried to sign in",
        ],
    })
}

/// Every tenant together over `[from, to)`. `blocked_now` is the addresses refused sign-in
/// right now (held in memory by `security::threats` and `auth`; the caller merges them).
pub fn platform(
    catalog: &Connection,
    from: i64,
    to: i64,
    now: i64,
    unused_days: i64,
    blocked_now: i64,
) -> Result<Security> {
    let (unknown, addresses): (i64, i64) = catalog.query_row(
        "SELECT count(*), count(DISTINCT json_extract(details, '$.source')) FROM platform_audit \
         WHERE action = ?1 AND at >= ?2 AND at < ?3",
        params![LOGIN_FAILED, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (failing, locked_now, users, enrolled): (i64, i64, i64, i64) = catalog.query_row(
        "SELECT count(*) FILTER (WHERE failed_logins > 0), count(*) FILTER (WHERE locked_until > ?1), \
                count(*), count(*) FILTER (WHERE totp_enabled = 1) FROM users",
        [now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let blocked: i64 = catalog.query_row(
        "SELECT count(DISTINCT source) FROM alerts WHERE kind = 'credential_stuffing' AND at >= ?1 AND at < ?2 \
         AND message LIKE '%' || ?3",
        params![from, to, crate::security::threats::ADDRESS_BLOCKED],
        |r| r.get(0),
    )?;
    let by_kind = alerts_by_kind(catalog, None, from, to)?;
    let by_reason = BTreeMap::from([("unknown_account".to_string(), unknown)]);
    Ok(Security {
        scope: "platform",
        from: rfc3339(from),
        to: rfc3339(to),
        data_until: rfc3339(to.min(now)),
        failed_sign_ins: FailedSignIns { total: unknown, by_reason, addresses, accounts_failing_now: failing },
        lockouts: Lockouts { in_range: by_kind.get("brute_force").copied().unwrap_or(0), locked_now },
        blocked_addresses: Blocked { in_range: Some(blocked), now: Some(blocked_now) },
        alerts: Alerts { total: by_kind.values().sum(), security: security_count(&by_kind), by_kind },
        mfa: mfa(users, enrolled),
        api_keys: keys(catalog, None, to, unused_days)?,
        notes: vec![
            "failed sign-ins on known accounts are in each tenant's own audit chain: the platform counts \
             failures for unknown emails (its own chain) and accounts failing now; see a tenant's document",
            "blocked_addresses.now is held in memory: a restart forgets it",
        ],
    })
}

/// Security alerts about one tenant in `[from, to)`: its own, and its members' lockouts (which
/// are platform-wide rows). The health score's security component.
pub fn tenant_alert_count(catalog: &Connection, tenant: &TenantId, from: i64, to: i64) -> Result<i64> {
    Ok(security_count(&alerts_by_kind(catalog, Some(tenant), from, to)?) + member_lockouts(catalog, tenant, from, to)?)
}

/// `tenant_alert_count` of every tenant with any, in two grouped queries.
pub fn tenant_alert_counts(catalog: &Connection, from: i64, to: i64) -> Result<std::collections::HashMap<String, i64>> {
    let mut out: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let kinds = SECURITY_ALERT_KINDS.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    let mut stmt = catalog.prepare_cached(&format!(
        "SELECT tenant_id, count(*) FROM alerts WHERE tenant_id IS NOT NULL AND kind IN ({kinds}) \
         AND at >= ?1 AND at < ?2 GROUP BY tenant_id"
    ))?;
    for row in stmt.query_map(params![from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (t, n) = row?;
        *out.entry(t).or_default() += n;
    }
    let mut stmt = catalog.prepare_cached(
        "SELECT m.tenant_id, count(*) FROM alerts a JOIN memberships m ON a.principal = 'user:' || m.user_id \
         WHERE a.kind = 'brute_force' AND a.at >= ?1 AND a.at < ?2 GROUP BY m.tenant_id",
    )?;
    for row in stmt.query_map(params![from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (t, n) = row?;
        *out.entry(t).or_default() += n;
    }
    Ok(out)
}

fn member_lockouts(catalog: &Connection, tenant: &TenantId, from: i64, to: i64) -> Result<i64> {
    Ok(catalog.query_row(
        "SELECT count(*) FROM alerts WHERE kind = 'brute_force' AND at >= ?2 AND at < ?3 \
         AND principal IN (SELECT 'user:' || user_id FROM memberships WHERE tenant_id = ?1)",
        params![tenant.as_str(), from, to],
        |r| r.get(0),
    )?)
}

fn alerts_by_kind(
    catalog: &Connection,
    tenant: Option<&TenantId>,
    from: i64,
    to: i64,
) -> Result<BTreeMap<String, i64>> {
    let mut stmt = catalog.prepare_cached(
        "SELECT kind, count(*) FROM alerts WHERE (?1 IS NULL OR tenant_id = ?1) AND at >= ?2 AND at < ?3 GROUP BY kind",
    )?;
    let rows = stmt.query_map(params![tenant.map(TenantId::as_str), from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn security_count(by_kind: &BTreeMap<String, i64>) -> i64 {
    SECURITY_ALERT_KINDS.iter().filter_map(|k| by_kind.get(*k)).sum()
}

fn mfa(users: i64, enrolled: i64) -> Mfa {
    let adoption_percent = (users > 0).then(|| (enrolled as f64 / users as f64 * 1000.0).round() / 10.0);
    Mfa { users, enrolled, adoption_percent }
}

/// Keys of a tenant (or of every tenant not deleted) as they stand at `to`.
fn keys(catalog: &Connection, tenant: Option<&TenantId>, to: i64, unused_days: i64) -> Result<Keys> {
    let (active, never_used, stale) = catalog.query_row(
        "SELECT count(*), count(*) FILTER (WHERE k.last_used_at IS NULL), \
                count(*) FILTER (WHERE k.last_used_at IS NOT NULL AND k.last_used_at < ?2) \
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.revoked_at IS NULL AND t.status <> 'deleted' AND (?1 IS NULL OR k.tenant_id = ?1)",
        params![tenant.map(TenantId::as_str), to - unused_days * 86_400],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(Keys { active, never_used, not_used_recently: stale, unused_days })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_days_is_bounded_and_names_the_parameter() {
        assert_eq!(unused_days(None).unwrap(), 30);
        assert_eq!(unused_days(Some("7")).unwrap(), 7);
        for bad in ["0", "366", "-1", "soon"] {
            assert!(unused_days(Some(bad)).unwrap_err().to_string().contains("unused_days"), "{bad}");
        }
    }

    #[test]
    fn only_threat_kinds_are_security_alerts() {
        let by_kind = BTreeMap::from([
            ("enumeration".to_string(), 2),
            ("quota_80".to_string(), 5),
            ("throttled".to_string(), 1),
            ("brute_force".to_string(), 1),
        ]);
        assert_eq!(security_count(&by_kind), 3);
        assert_eq!(mfa(0, 0).adoption_percent, None);
        assert_eq!(mfa(3, 1).adoption_percent, Some(33.3));
    }
}
