//! Security metrics and health scores (issue 21, items 6 and 7):
//! `GET /api/v1/t/{slug}/analytics/security`, `GET /api/v1/platform/analytics/security` and
//! `GET /api/v1/platform/analytics/health`, JSON or CSV (`?format=csv` or `Accept: text/csv`).

use std::collections::BTreeSet;

use serde_json::json;

use super::analytics::{csv_resp, num, wants_csv};
use crate::analytics::health::{self, TenantHealth};
use crate::analytics::{self, security};
use crate::app::App;
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::util::rfc3339;

/// `metric,value` lines of a security document.
fn security_csv(s: &security::Security) -> String {
    let mut out = String::from("metric,value\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("{k},{v}\n"));
    line("failed_sign_ins", s.failed_sign_ins.total.to_string());
    for (reason, n) in &s.failed_sign_ins.by_reason {
        line(&format!("failed_sign_ins_{reason}"), n.to_string());
    }
    line("failed_sign_in_addresses", s.failed_sign_ins.addresses.to_string());
    line("accounts_failing_now", s.failed_sign_ins.accounts_failing_now.to_string());
    line("lockouts", s.lockouts.in_range.to_string());
    line("locked_now", s.lockouts.locked_now.to_string());
    line("blocked_addresses", s.blocked_addresses.in_range.map(|n| n.to_string()).unwrap_or_default());
    line("blocked_addresses_now", s.blocked_addresses.now.map(|n| n.to_string()).unwrap_or_default());
    line("alerts", s.alerts.total.to_string());
    line("security_alerts", s.alerts.security.to_string());
    for (kind, n) in &s.alerts.by_kind {
        // Kinds are tenantd's own identifiers (a-z and '_'), never caller input.
        line(&format!("alerts_{kind}"), n.to_string());
    }
    line("mfa_users", s.mfa.users.to_string());
    line("mfa_enrolled", s.mfa.enrolled.to_string());
    line("mfa_adoption_percent", num(s.mfa.adoption_percent));
    line("api_keys_active", s.api_keys.active.to_string());
    line("api_keys_never_used", s.api_keys.never_used.to_string());
    line(&format!("api_keys_not_used_{}_days", s.api_keys.unused_days), s.api_keys.not_used_recently.to_string());
    out
}

/// `GET /api/v1/t/{slug}/analytics/security?from=&to=&unused_days=`.
pub fn security(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let now = analytics::now();
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), now)?;
    let days = security::unused_days(req.query_param("unused_days"))?;
    // Failed sign-ins are in the tenant's own audit chain.
    let opened = ctx.app.open_tenant(t)?;
    let audit = opened.handle.scan_conn()?;
    let s = security::tenant(&*ctx.app.catalog.conn()?, &audit, &t.id, from, to, now, days)?;
    if wants_csv(req) {
        return Ok(csv_resp(security_csv(&s), "security"));
    }
    Ok(Resp::json(200, &json!({"tenant": t.slug.as_str(), "security": s})))
}

/// `GET /api/v1/platform/analytics/security?from=&to=&unused_days=`.
pub fn platform_security(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let now = analytics::now();
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), now)?;
    let days = security::unused_days(req.query_param("unused_days"))?;
    let s = security::platform(&*ctx.app.catalog.conn()?, from, to, now, days, blocked_now(ctx.app, now))?;
    if wants_csv(req) {
        return Ok(csv_resp(security_csv(&s), "platform-security"));
    }
    Ok(Resp::json(200, &json!({"security": s})))
}

/// Addresses refused sign-in right now. Two in-memory lists refuse them: credential stuffing
/// blocks, and too many failures.
pub(crate) fn blocked_now(app: &App, now: i64) -> i64 {
    let blocked: BTreeSet<_> = crate::security::threats::blocked_addresses(app, now)
        .into_iter()
        .chain(crate::auth::refused_addresses(app, now))
        .collect();
    blocked.len() as i64
}

/// Every live tenant's health over `[from, to)`, lowest score first, and where the data stops.
/// The API and the platform dashboard share it. One overview per tenant: O(tenants).
pub(crate) fn ranked_health(app: &App, from: i64, to: i64) -> Result<(Vec<TenantHealth>, Option<String>)> {
    let tenants = crate::catalog::tenants::list(&*app.catalog.conn()?, false)?;
    // Plans first: `limits::plan` takes a catalog connection of its own.
    let plans = tenants.iter().map(|t| crate::limits::plan(app, t)).collect::<Result<Vec<_>>>()?;
    let conn = app.catalog.conn()?;
    let with_plans: Vec<_> = tenants.into_iter().zip(plans).collect();
    let all = health::inputs_all(&conn, &with_plans, from, to)?;
    let mut list = Vec::with_capacity(with_plans.len());
    let mut last = None;
    for ((t, _), inputs) in with_plans.iter().zip(&all) {
        last = last.max(analytics::last_hour(&conn, Some(&t.id), None)?);
        list.push(TenantHealth {
            tenant: t.slug.as_str().to_string(),
            plan: t.plan.clone(),
            health: health::score(inputs),
        });
    }
    let list = health::rank(list);
    let data_until = analytics::last_hour(&conn, None, last)?.map(rfc3339);
    drop(conn);
    Ok((list, data_until))
}

/// `GET /api/v1/platform/analytics/health?from=&to=`: every tenant's score, lowest first.
pub fn platform_health(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let snap = super::platform_views::health(ctx.app, req.query_param("from"), req.query_param("to"))?;
    let super::platform_views::Ranked { list, data_until, from, to } = &*snap.value;
    if wants_csv(req) {
        let names: Vec<&str> = health::WEIGHTS.iter().map(|w| w.0).collect();
        let mut out = format!("tenant,plan,score,at_risk,{}\n", names.join(","));
        for th in list {
            let points: Vec<String> = th.health.components.iter().map(|c| c.points.to_string()).collect();
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                th.tenant,
                th.plan,
                th.health.score,
                th.health.at_risk,
                points.join(",")
            ));
        }
        return Ok(csv_resp(out, "health"));
    }
    let weights: serde_json::Map<String, serde_json::Value> =
        health::WEIGHTS.iter().map(|(k, w)| (k.to_string(), json!(w))).collect();
    let at_risk = list.iter().filter(|t| t.health.at_risk).count();
    Ok(Resp::json(
        200,
        &json!({"health": {
            "from": rfc3339(*from),
            "to": rfc3339(*to),
            "data_until": data_until,
            "computed_at": rfc3339(snap.computed_at),
            "formula": health::FORMULA,
            "weights": weights,
            "at_risk_below": health::AT_RISK_BELOW,
            "at_risk": at_risk,
            "tenants": list,
        }}),
    ))
}
