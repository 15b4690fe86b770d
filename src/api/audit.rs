//! `GET /api/v1/t/{slug}/audit`: the tenant's audit trail, filtered and paged, or as CSV.

use serde_json::json;

use crate::audit::{self, Filter};
use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::util::{parse_time, rfc3339};

fn csv_field(s: &str) -> String {
    // RFC 4180 quoting, and a leading quote on values a spreadsheet would run as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let time = |k: &str| -> Result<Option<i64>> {
        req.query_param(k)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    Error::invalid("invalid_parameter", format!("{k}: use a date or an RFC 3339 UTC time"))
                })
            })
            .transpose()
    };
    let int = |k: &str, d: i64| -> Result<i64> {
        req.query_param(k)
            .map(|v| {
                v.parse::<i64>().map_err(|_| Error::invalid("invalid_parameter", format!("{k} must be a whole number")))
            })
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let csv = match req.query_param("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::invalid("invalid_parameter", "format is json or csv")),
    };
    let f = Filter {
        actor: req.query_param("actor").map(str::to_string),
        action: req.query_param("action").map(str::to_string),
        outcome: req.query_param("outcome").map(str::to_string),
        from: time("from")?,
        to: time("to")?,
        page: int("page", 1)?.max(1),
        per_page: if csv { int("per_page", 10_000)?.clamp(1, 100_000) } else { int("per_page", 50)?.clamp(1, 100) },
    };
    let opened = ctx.app.open_tenant(ctx.tenant()?)?;
    let (items, total) = audit::list(&*opened.handle.scan_conn()?, &f)?;
    if csv {
        let mut out = String::from("id,at,actor,source,request_id,action,resource,outcome,risk,details,hash\n");
        for e in &items {
            let fields = [
                e.id.to_string(),
                rfc3339(e.at),
                e.actor.clone(),
                e.source.clone().unwrap_or_default(),
                e.request_id.clone().unwrap_or_default(),
                e.action.clone(),
                e.resource.clone().unwrap_or_default(),
                e.outcome.clone(),
                e.risk.to_string(),
                e.details.clone(),
                e.hash.clone(),
            ];
            out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        let mut r = Resp {
            status: 200,
            content_type: "text/csv; charset=utf-8",
            headers: vec![],
            body: out.into_bytes(),
            error: None,
            rate_limit: None,
        };
        r.headers.push(("Content-Disposition".into(), "attachment; filename=\"audit.csv\"".into()));
        return Ok(r);
    }
    Ok(Resp::json(200, &json!({"items": items, "page": f.page, "per_page": f.per_page, "total": total})))
}

/// `GET /api/v1/t/{slug}/alerts`: the tenant's alerts (quotas, throttling, threats), newest first.
pub fn alerts(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let items = crate::limits::alerts::list(&*ctx.app.catalog.conn()?, Some(&t.id), 200)?;
    Ok(Resp::json(200, &json!({"items": items})))
}

/// `GET /api/v1/platform/alerts`: every alert, including platform-wide ones.
pub fn platform_alerts(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let items = crate::limits::alerts::list(&*ctx.app.catalog.conn()?, None, 500)?;
    Ok(Resp::json(200, &json!({"items": items})))
}
