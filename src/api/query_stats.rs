//! Query monitoring for tenant admins: `GET /query-stats` (per statement, like
//! `pg_stat_statements`), `GET /slow-queries` (with plans), `GET /index-advice` and
//! `POST /index-advice/apply`. The UI page (`ui::queries`) uses the same functions.

use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::store::advisor::{self, Advice};

/// The tenant's statements, most total time first.
pub fn statements(ctx: &Ctx<'_>) -> Result<Vec<crate::store::stats::StatementStat>> {
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    Ok(opened.handle.stats.statements())
}

pub fn slow(ctx: &Ctx<'_>) -> Result<Vec<crate::store::stats::SlowQuery>> {
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    Ok(opened.handle.stats.slow_queries())
}

/// Current proposals for this tenant, costliest first.
pub fn advice(ctx: &Ctx<'_>) -> Result<Vec<Advice>> {
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let conn = opened.handle.scan_conn()?;
    let schema = opened.handle.schema_info(&conn)?;
    advisor::advise(&conn, &schema, &opened.handle.stats.statements())
}

pub fn query_stats(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let opened = ctx.app.open_tenant(t)?;
    let stats = &opened.handle.stats;
    Ok(Resp::json(
        200,
        &json!({
            "statements": stats.statements(),
            "evicted_statements": stats.evicted(),
            "slow_query_ms": ctx.app.config.query_monitor.slow_query_ms,
            "query_cache_bytes": ctx.app.query_cache.tenant_bytes(&t.id),
        }),
    ))
}

pub fn slow_queries(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    Ok(Resp::json(200, &json!({"items": slow(ctx)?, "slow_query_ms": ctx.app.config.query_monitor.slow_query_ms})))
}

pub fn index_advice(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    Ok(Resp::json(200, &json!({"items": advice(ctx)?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    index: String,
}

pub fn apply(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let body: ApplyBody = req.json()?;
    let (applied, plan) = apply_advice(ctx, req, &body.index)?;
    Ok(Resp::json(200, &json!({"applied": applied, "plan_after": plan})))
}

/// Creates the proposed index named `index` (only a current proposal: no SQL comes from the
/// caller) with a `index.create` entry in the tenant's audit trail in the same transaction.
/// Returns the proposal and the plan of its costliest statement afterwards.
pub fn apply_advice(ctx: &Ctx<'_>, req: &Req, index: &str) -> Result<(Advice, Vec<String>)> {
    let t = ctx.tenant()?;
    let proposals = advice(ctx)?;
    let Some(a) = proposals.into_iter().find(|a| a.index == index) else {
        return Err(Error::NotFound(format!(
            "index advice {:?} (not a current proposal: GET index-advice lists them)",
            crate::ids::truncate_for_message(index)
        )));
    };
    let actor = ctx.principal()?.actor();
    // Work applies the plan's storage ceiling and statement deadline to the index build.
    let w = ctx.work(req, Some(false))?;
    w.change_schema(
        &a.sql,
        &crate::audit::Entry {
            actor: &actor,
            source: req.client.map(|ip| ip.to_string()).as_deref(),
            user_agent: req.header("user-agent"),
            request_id: Some(&req.id),
            action: "index.create",
            resource: Some(&a.table),
            outcome: "ok",
            risk: 0,
            details: json!({"index": a.index, "columns": a.columns, "sql": a.sql}),
        },
    )?;
    crate::log::request("INFO", &req.id, &format!("tenant {} applied index advice: {}", t.slug, a.sql));
    let plan = match a.statements.first() {
        Some(sql) => w.explain(sql)?,
        None => Vec::new(),
    };
    Ok((a, plan))
}
