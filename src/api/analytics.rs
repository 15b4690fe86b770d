//! `GET /api/v1/t/{slug}/analytics/overview` and `/analytics/usage-trends` (issue 21, first
//! slice): the tenant's KPIs and series, JSON or CSV (`?format=csv` or `Accept: text/csv`).

use serde_json::json;

use crate::analytics::{self, Granularity};
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

pub(crate) fn wants_csv(req: &Req) -> bool {
    req.query_param("format") == Some("csv") || req.header("accept").is_some_and(|a| a.contains("text/csv"))
}

pub(crate) fn csv_resp(body: String, name: &str) -> Resp {
    let mut r = Resp {
        status: 200,
        content_type: "text/csv; charset=utf-8",
        headers: vec![],
        body: body.into_bytes(),
        error: None,
        rate_limit: None,
    };
    r.headers.push(("Content-Disposition".into(), format!("attachment; filename=\"{name}.csv\"")));
    r
}

pub(crate) fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

pub fn overview(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), analytics::now())?;
    // The current hour counts: what the meter holds goes to the rollups first.
    crate::limits::flush_usage(ctx.app)?;
    let plan = crate::limits::plan(ctx.app, t)?;
    let o = analytics::overview(&*ctx.app.catalog.conn()?, &t.id, &plan, from, to)?;
    if wants_csv(req) {
        let mut out = String::from("metric,value\n");
        out.push_str(&format!("requests,{}\nerrors,{}\nerror_rate,{}\n", o.requests, o.errors, num(o.error_rate)));
        for (k, v) in &o.latency_ms {
            out.push_str(&format!("latency_{k}_ms,{}\n", num(*v)));
        }
        for (k, v) in &o.active_users {
            out.push_str(&format!("active_users_{k},{v}\n"));
        }
        out.push_str(&format!("storage_bytes,{}\n", o.storage_bytes));
        return Ok(csv_resp(out, "overview"));
    }
    // The tenant's own health score (issue 21 item 7), from the same overview.
    let inputs = analytics::health::inputs_with(&*ctx.app.catalog.conn()?, t, &plan, &o, from, to)?;
    let health = analytics::health::score(&inputs);
    Ok(Resp::json(200, &json!({"tenant": t.slug.as_str(), "plan": t.plan, "overview": o, "health": health})))
}

pub fn usage_trends(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), analytics::now())?;
    let g = Granularity::parse(req.query_param("granularity").unwrap_or("day"))?;
    let metrics = analytics::metrics(req.query_param("metrics"))?;
    crate::limits::flush_usage(ctx.app)?;
    let tr = analytics::trends(&*ctx.app.catalog.conn()?, Some(&t.id), from, to, g, &metrics)?;
    if wants_csv(req) {
        let mut out = format!("start,{}\n", tr.metrics.join(","));
        for p in &tr.points {
            let vals: Vec<String> = tr.metrics.iter().map(|m| num(p.values.get(m).copied().flatten())).collect();
            out.push_str(&format!("{},{}\n", p.start, vals.join(",")));
        }
        return Ok(csv_resp(out, "usage-trends"));
    }
    Ok(Resp::json(200, &json!({"tenant": t.slug.as_str(), "trends": tr})))
}

/// `GET /api/v1/platform/analytics/overview`: every tenant together, and the busiest ones.
pub fn platform_overview(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), analytics::now())?;
    crate::limits::flush_usage(ctx.app)?;
    let o = analytics::platform_overview(&*ctx.app.catalog.conn()?, from, to)?;
    Ok(Resp::json(200, &json!({"overview": o})))
}

/// `GET /api/v1/platform/analytics/usage-trends`: the platform's series (all tenants summed).
pub fn platform_trends(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), analytics::now())?;
    let g = Granularity::parse(req.query_param("granularity").unwrap_or("day"))?;
    let metrics = analytics::metrics(req.query_param("metrics"))?;
    crate::limits::flush_usage(ctx.app)?;
    let tr = analytics::trends(&*ctx.app.catalog.conn()?, None, from, to, g, &metrics)?;
    if wants_csv(req) {
        let mut out = format!("start,{}\n", tr.metrics.join(","));
        for p in &tr.points {
            let vals: Vec<String> = tr.metrics.iter().map(|m| num(p.values.get(m).copied().flatten())).collect();
            out.push_str(&format!("{},{}\n", p.start, vals.join(",")));
        }
        return Ok(csv_resp(out, "platform-usage-trends"));
    }
    Ok(Resp::json(200, &json!({"trends": tr})))
}

/// `GET /api/v1/t/{slug}/analytics/comparative`: where the tenant stands among its plan's peers.
pub fn comparative(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let (from, to) = analytics::range(req.query_param("from"), req.query_param("to"), analytics::now())?;
    crate::limits::flush_usage(ctx.app)?;
    let c = analytics::comparative(
        &*ctx.app.catalog.conn()?,
        &t.id,
        &t.plan,
        ctx.app.config.analytics_min_cohort,
        from,
        to,
    )?;
    Ok(Resp::json(200, &json!({"tenant": t.slug.as_str(), "comparative": c})))
}
