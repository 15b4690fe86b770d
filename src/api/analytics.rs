//! `GET /api/v1/t/{slug}/analytics/overview` and `/analytics/usage-trends` (issue 21, first
//! slice): the tenant's KPIs and series, JSON or CSV (`?format=csv` or `Accept: text/csv`).

use serde_json::json;

use crate::analytics::{self, Granularity};
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::util::rfc3339;

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
    // Records per table now, and their growth since `from` (counted in the tenant's file).
    let now = analytics::now();
    // The usage numbers do not depend on the tenant's file: if it cannot be read, they still answer.
    let tables = match analytics::records::snapshot(ctx.app, t, now) {
        Ok(counts) => analytics::records::growth(&*ctx.app.catalog.conn()?, t, &counts, from, now)?,
        Err(e) => {
            crate::log::warn(&format!("analytics: records of {} not counted: {}", t.slug, e.log_detail()));
            Vec::new()
        }
    };
    if wants_csv(req) {
        let mut out = String::from("metric,value\n");
        for r in &tables {
            out.push_str(&format!("rows_{},{}\n", r.table, r.rows));
        }
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
    Ok(Resp::json(
        200,
        &json!({"tenant": t.slug.as_str(), "plan": t.plan, "overview": o, "tables": tables, "health": health}),
    ))
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
    let o = super::platform_views::overview(ctx.app, req.query_param("from"), req.query_param("to"))?;
    Ok(Resp::json(200, &json!({"overview": *o.value, "computed_at": rfc3339(o.computed_at)})))
}

/// `GET /api/v1/platform/analytics/usage-trends`: the platform's series (all tenants summed).
pub fn platform_trends(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let g = Granularity::parse(req.query_param("granularity").unwrap_or("day"))?;
    let metrics = analytics::metrics(req.query_param("metrics"))?;
    let snap = super::platform_views::trends(ctx.app, req.query_param("from"), req.query_param("to"), g, metrics)?;
    let tr = &*snap.value;
    if wants_csv(req) {
        let mut out = format!("start,{}\n", tr.metrics.join(","));
        for p in &tr.points {
            let vals: Vec<String> = tr.metrics.iter().map(|m| num(p.values.get(m).copied().flatten())).collect();
            out.push_str(&format!("{},{}\n", p.start, vals.join(",")));
        }
        return Ok(csv_resp(out, "platform-usage-trends"));
    }
    Ok(Resp::json(200, &json!({"trends": tr, "computed_at": rfc3339(snap.computed_at)})))
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

/// `GET /api/v1/platform/analytics/revenue`: MRR and its movements per month, currency and
/// plan, from the billing ledger. CSV: the months, or the plans with `table=by_plan`.
pub fn platform_revenue(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    use analytics::revenue;
    let now = analytics::now();
    let (from, to) = revenue::range(req.query_param("from"), req.query_param("to"), now)?;
    let table = req.query_param("table").unwrap_or("months");
    if !matches!(table, "months" | "by_plan") {
        return Err(crate::error::Error::invalid(
            "invalid_parameter",
            format!("table={:?}: use months or by_plan", crate::ids::truncate_for_message(table)),
        ));
    }
    let currencies = revenue::plan_currencies(&ctx.app.config.plans);
    let r = revenue::revenue(&*ctx.app.catalog.conn()?, from, to, now, &currencies)?;
    if wants_csv(req) {
        let body = if table == "by_plan" { revenue_plans_csv(&r) } else { revenue_months_csv(&r) };
        return Ok(csv_resp(body, &format!("platform-revenue-{}", table.replace('_', "-"))));
    }
    Ok(Resp::json(200, &json!({"revenue": r})))
}

const MOVEMENT_COLS: &str =
    "new_mrr_cents,expansion_mrr_cents,contraction_mrr_cents,churn_mrr_cents,reactivation_mrr_cents";

fn movements_csv(m: &analytics::revenue::Movements) -> String {
    format!(
        "{},{},{},{},{}",
        m.new_mrr_cents, m.expansion_mrr_cents, m.contraction_mrr_cents, m.churn_mrr_cents, m.reactivation_mrr_cents
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn revenue_months_csv(r: &analytics::revenue::Revenue) -> String {
    let mut out = format!(
        "month,currency,partial,start_mrr_cents,{MOVEMENT_COLS},net_new_mrr_cents,end_mrr_cents,arr_cents,\
         customers_start,new_customers,reactivated_customers,churned_customers,customers_end,logo_churn_rate,\
         gross_revenue_churn_rate,net_revenue_churn_rate,net_revenue_retention,gross_revenue_retention,arpa_cents,ltv_cents\n"
    );
    for m in &r.months {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            m.month,
            m.currency,
            m.partial,
            m.start_mrr_cents,
            movements_csv(&m.movements),
            m.net_new_mrr_cents,
            m.end_mrr_cents,
            m.arr_cents,
            m.customers_start,
            m.new_customers,
            m.reactivated_customers,
            m.churned_customers,
            m.customers_end,
            opt(m.logo_churn_rate),
            opt(m.gross_revenue_churn_rate),
            opt(m.net_revenue_churn_rate),
            opt(m.net_revenue_retention),
            opt(m.gross_revenue_retention),
            opt(m.arpa_cents),
            opt(m.ltv_cents),
        ));
    }
    out
}

fn revenue_plans_csv(r: &analytics::revenue::Revenue) -> String {
    let mut out = format!(
        "month,currency,plan,start_mrr_cents,{MOVEMENT_COLS},transfer_in_mrr_cents,transfer_out_mrr_cents,\
         end_mrr_cents,customers_end\n"
    );
    for p in &r.by_plan {
        // Plan names come from the config (validated names), but quote them anyway: CSV.
        out.push_str(&format!(
            "{},{},\"{}\",{},{},{},{},{},{}\n",
            p.month,
            p.currency,
            p.plan.replace('"', "\"\""),
            p.start_mrr_cents,
            movements_csv(&p.movements),
            p.transfer_in_mrr_cents,
            p.transfer_out_mrr_cents,
            p.end_mrr_cents,
            p.customers_end,
        ));
    }
    out
}
