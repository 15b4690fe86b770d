//! `GET/PUT /api/v1/t/{slug}/security-policy`: IP allow and deny lists, MFA requirement,
//! session lifetime and idle timeout, whether API keys are accepted.

use crate::app::App;
use crate::catalog::identity;
use crate::catalog::tenants::TenantRecord;
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::security::Policy;
use crate::util::now_unix;

pub fn get(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let p = crate::auth::policy(ctx.app, &ctx.tenant()?.id)?;
    Ok(Resp::json(200, &p.policy))
}

pub fn put(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let policy: Policy = req.json()?;
    let actor = ctx.principal()?.actor();
    let saved = save(ctx.app, ctx.tenant()?, policy, &actor, Some(req))?;
    Ok(Resp::json(200, &saved))
}

/// Validates, stores (with a `policy.update` entry in the tenant's audit trail) and returns the
/// normalised policy. Shared by the API and `tenantd policy set`.
pub fn save(app: &App, t: &TenantRecord, policy: Policy, actor: &str, req: Option<&Req>) -> Result<Policy> {
    let compiled = policy.compile()?;
    let p = compiled.policy;
    let mut settings = identity::tenant_settings(&*app.catalog.conn()?, &t.id)?;
    settings["security"] = serde_json::to_value(&p).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    settings["require_mfa"] = serde_json::json!(p.require_mfa);
    app.change(|tx| identity::update_tenant_config(tx, &t.id, None, None, &settings, now_unix()))?;
    let opened = app.open_tenant(t)?;
    let conn = opened.handle.writer()?;
    crate::limits::lift_ceiling(&opened.handle, &conn)?;
    let tx = crate::db::WriteTx::begin(&conn)?;
    let source = req.and_then(|r| r.client).map(|ip| ip.to_string());
    crate::audit::append(
        &tx,
        now_unix(),
        &crate::audit::Entry {
            actor,
            source: source.as_deref(),
            user_agent: req.and_then(|r| r.header("user-agent")),
            request_id: req.map(|r| r.id.as_str()),
            action: "policy.update",
            resource: Some("security-policy"),
            outcome: "ok",
            risk: 0,
            details: serde_json::to_value(&p).unwrap_or_default(),
        },
    )?;
    tx.commit()?;
    app.audit_dirty.mark(&t.id);
    Ok(p)
}
