//! The tenant's analytics dashboard (`/admin/t/{slug}/analytics`): KPI cards, charts of requests,
//! p95 latency and errors over the chosen range with their numbers beside them, where the
//! tenant stands among its plan's peers, and CSV links. Data from `analytics`, as the API's.

use maud::html;

use super::charts::{self, Series};
use super::{page, Chrome};
use crate::analytics::{self, Granularity};
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

pub fn page_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let days: i64 = match req.query_param("days") {
        Some("7") => 7,
        Some("90") => 90,
        _ => 30,
    };
    let now = analytics::now();
    let (from, to) = (now - days * 86_400, now);
    crate::limits::flush_usage(ctx.app)?;
    let plan = crate::limits::plan(ctx.app, t)?;
    let conn = ctx.app.catalog.conn()?;
    let o = analytics::overview(&conn, &t.id, &plan, from, to)?;
    let metrics = ["requests", "errors", "p95_ms", "active_users"];
    let tr = analytics::trends(&conn, Some(&t.id), from, to, Granularity::Day, &metrics)?;
    let cmp = analytics::comparative(&conn, &t.id, &t.plan, ctx.app.config.analytics_min_cohort, from, to)?;
    drop(conn);
    let labels: Vec<String> = tr.points.iter().map(|p| p.start.get(..10).unwrap_or("").to_string()).collect();
    let series =
        |m: &str| -> Vec<Option<f64>> { tr.points.iter().map(|p| p.values.get(m).copied().flatten()).collect() };
    let (requests, errors, p95, users) =
        (series("requests"), series("errors"), series("p95_ms"), series("active_users"));
    let base = format!("/api/v1/t/{}/analytics", t.slug);
    let chrome = Chrome::for_ctx(ctx, "Analytics", "analytics")?;
    let card = |label: &str, value: String, spark: &[Option<f64>]| {
        html! { div.card.kpi { div.label { (label) } div.value { (value) } (charts::sparkline(label, spark)) } }
    };
    let pct = |v: Option<f64>| v.map(|x| format!("{:.2}%", x * 100.0)).unwrap_or_else(|| "–".into());
    let ms = |v: Option<f64>| v.map(|x| format!("{x} ms")).unwrap_or_else(|| "–".into());
    Ok(page(
        &chrome,
        html! {
            h1 { "Analytics" }
            p.lead {
                "Last " (days) " days · data until " (o.data_until.as_deref().unwrap_or("–")) " · "
                a href="?days=7" { "7 days" } " · " a href="?days=30" { "30 days" } " · " a href="?days=90" { "90 days" }
                " · CSV: " a href={ (base) "/usage-trends?format=csv&granularity=day&from=-" (days) "d" } { "series" }
                " " a href={ (base) "/overview?format=csv&from=-" (days) "d" } { "totals" }
            }
            div.kpis {
                (card("Requests", o.requests.to_string(), &requests))
                (card("Error rate", pct(o.error_rate), &errors))
                (card("p95 latency", ms(o.latency_ms.get("p95").copied().flatten()), &p95))
                (card("Active users (30 days)", o.active_users.get("monthly").copied().unwrap_or(0).to_string(), &users))
            }
            @for (title, unit, values, bar) in [("Requests per day", "requests", &requests, true), ("p95 latency per day", "ms", &p95, false), ("Errors per day", "errors", &errors, true)] {
                @let s = Series { title, labels: &labels, values, unit };
                section.chart-block {
                    h2 { (title) }
                    @if bar { (charts::bars(&s)) } @else { (charts::line(&s)) }
                    details { summary { "The numbers" } (charts::data_table(&s)) }
                }
            }
            h2 { "Quotas" }
            div.scroll {
                table.data {
                    thead { tr { th { "Quota" } th.num { "Used" } th.num { "Limit" } th.num { "Headroom" } th { "Runs out" } } }
                    tbody {
                        @for q in &o.quotas {
                            tr { td { (q.name) } td.num { (q.used) } td.num { (q.limit) } td.num { (q.headroom_percent) "%" } td { (q.runs_out.as_deref().unwrap_or("not this period")) } }
                        }
                    }
                }
            }
            h2 { "Among your plan's peers" }
            @if let Some(why) = &cmp.withheld {
                p { "Withheld: " (why) "." }
            } @else {
                div.scroll {
                    table.data {
                        thead { tr { th { "Metric" } th.num { "You" } th.num { "Percentile" } th.num { "Peers p25" } th.num { "p50" } th.num { "p75" } } }
                        tbody {
                            @for (m, s) in &cmp.metrics {
                                tr {
                                    td { (m) }
                                    td.num { (s.value.map(|v| format!("{v:.2}")).unwrap_or_default()) }
                                    td.num { (s.percentile.map(|v| format!("{v}")).unwrap_or_else(|| "–".into())) }
                                    td.num { (s.p25.map(|v| format!("{v:.2}")).unwrap_or_default()) }
                                    td.num { (s.p50.map(|v| format!("{v:.2}")).unwrap_or_default()) }
                                    td.num { (s.p75.map(|v| format!("{v:.2}")).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}
