//! `GET /api/v1/t/{slug}/usage?from=&to=&granularity=hour|day`: the tenant's metered usage.

use serde_json::json;

use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::limits::meter;
use crate::util::{now_unix, parse_time, rfc3339};

/// Parses the report window: RFC 3339 times or dates; defaults to the last 24 hours.
pub fn window(from: Option<&str>, to: Option<&str>, granularity: Option<&str>) -> Result<(i64, i64, bool)> {
    let bad = |k: &str, v: &str| {
        Error::invalid(
            "invalid_parameter",
            format!(
                "{k}={:?}: use a date (2026-11-27) or an RFC 3339 UTC time (2026-11-27T12:00:00Z)",
                crate::ids::truncate_for_message(v)
            ),
        )
    };
    let now = now_unix();
    let from = match from {
        Some(v) => parse_time(v).ok_or_else(|| bad("from", v))?,
        None => now - 86_400,
    };
    let to = match to {
        Some(v) => parse_time(v).ok_or_else(|| bad("to", v))?,
        None => now + 1,
    };
    if from >= to {
        return Err(Error::invalid("invalid_parameter", "from must be before to"));
    }
    if to - from > 400 * 86_400 {
        return Err(Error::invalid("invalid_parameter", "the window is at most 400 days"));
    }
    let day = match granularity.unwrap_or("hour") {
        "hour" => false,
        "day" => true,
        g => {
            return Err(Error::invalid(
                "invalid_parameter",
                format!("granularity {:?}: use hour or day", crate::ids::truncate_for_message(g)),
            ))
        }
    };
    Ok((from, to, day))
}

pub fn report(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let (from, to, day) = window(req.query_param("from"), req.query_param("to"), req.query_param("granularity"))?;
    // Include what the meter still holds, so a report reflects requests up to now.
    crate::limits::flush_usage(ctx.app)?;
    let items = meter::report(&*ctx.app.catalog.conn()?, &t.id, from, to, day)?;
    let plan = crate::limits::plan(ctx.app, t)?;
    Ok(Resp::json(
        200,
        &json!({"from": rfc3339(from), "to": rfc3339(to), "granularity": if day { "day" } else { "hour" },
                "plan": t.plan, "monthly_requests_quota": plan.monthly_requests, "storage_quota_bytes": plan.storage_bytes,
                "items": items}),
    ))
}
