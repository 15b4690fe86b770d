//! The tenant's query monitoring page: statement statistics, slow queries with plans, index
//! advice with an apply button (a CSRF-checked form, audited like the API).

use maud::html;

use super::tenant::act;
use super::{csrf_field, field, flash, form, page as layout, Chrome};
use crate::api::query_stats;
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};
use crate::util::rfc3339;

fn ms(v: f64) -> String {
    format!("{v:.3}")
}

pub fn page(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let statements = query_stats::statements(ctx)?;
    let slow = query_stats::slow(ctx)?;
    let advice = query_stats::advice(ctx)?;
    let slow_ms = ctx.app.config.query_monitor.slow_query_ms;
    let action = format!("/admin/t/{}/queries/apply", t.slug);
    let chrome = Chrome::for_ctx(ctx, "Queries", "queries")?;
    Ok(layout(
        &chrome,
        html! {
            h1 { "Queries" }
            p.lead { "What the data API ran against " (t.name) "'s database since it was last opened: time per statement, slow statements with their plans, and indexes that would avoid full scans." }
            (flash(req))
            h2 { "Index advice" }
            @if advice.is_empty() {
                div.card { p { "No advice: no tracked statement filters or sorts on a column by scanning its whole table." } }
            }
            @for a in &advice {
                div.card {
                    p { code { (a.sql) } }
                    p { (a.calls) " calls, " (ms(a.total_ms)) " ms in total would use it. Plan today:" }
                    pre { @for l in &a.plan { (l) "\n" } }
                    form.inline method="post" action=(action) {
                        (csrf_field(ctx))
                        input type="hidden" name="index" value=(a.index);
                        button type="submit" { "Create index" }
                    }
                }
            }
            h2 { "Statements" }
            table.data {
                thead { tr { th { "Statement" } th { "Calls" } th { "Total ms" } th { "Mean ms" } th { "Max ms" } th { "Rows" } } }
                tbody {
                    @for s in &statements {
                        tr { td title=(s.sql) { code { (s.sql) } } td { (s.calls) } td { (ms(s.total_ms)) } td { (ms(s.mean_ms)) } td { (ms(s.max_ms)) } td { (s.rows) } }
                    }
                }
            }
            h2 { "Slow queries (" (slow_ms) " ms and slower)" }
            table.data {
                thead { tr { th { "Time" } th { "ms" } th { "Rows" } th { "Statement" } th { "Plan" } } }
                tbody {
                    @for s in &slow {
                        tr {
                            td { (rfc3339(s.at)) } td { (ms(s.ms)) } td { (s.rows) }
                            td title=(s.sql) { code { (s.sql) } }
                            td { @for l in &s.plan { (l) br; } }
                        }
                    }
                }
            }
        },
    ))
}

pub fn apply(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let f = form(req)?;
    let loc = format!("/admin/t/{}/queries", ctx.tenant()?.slug);
    let index = field(&f, "index").unwrap_or("").to_string();
    act(&loc, &format!("created index {index}"), || query_stats::apply_advice(ctx, req, &index).map(|_| ()))
}
