//! The tenant's analytics dashboard (`/admin/t/{slug}/analytics`): KPI cards, charts of requests,
//! p95 latency and errors over the chosen range with their numbers beside them, where the
//! tenant stands among its plan's peers (a percentile band chart and its table), its health score
//! and security numbers, and CSV links. Data from `analytics`, as the API's. Also the KPI cards
//! the tenant home and the platform console show.

use maud::{html, Markup};

use super::charts::{self, Series};
use super::{page, Chrome};
use crate::analytics::{self, Granularity};
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

/// `?days=7|30|90`, 30 otherwise.
pub fn days(req: &Req) -> i64 {
    match req.query_param("days") {
        Some("7") => 7,
        Some("90") => 90,
        _ => 30,
    }
}

/// A KPI card: a label, the value, and a sparkline of its recent days.
pub fn kpi(label: &str, value: String, spark: &[Option<f64>]) -> Markup {
    html! { div.card.kpi { div.label { (label) } div.value { (value) } (charts::sparkline(label, spark)) } }
}

pub fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", x * 100.0)).unwrap_or_else(|| "–".into())
}

pub fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x} ms")).unwrap_or_else(|| "–".into())
}

/// The tenant home's cards: requests, error rate, p95 and active users over the last 7 days, by
/// day (one overview and one short trend: cheap).
pub fn home_kpis(ctx: &Ctx<'_>, t: &crate::catalog::tenants::TenantRecord) -> Result<Markup> {
    let now = analytics::now();
    let (from, to) = (now - 7 * 86_400, now);
    crate::limits::flush_usage(ctx.app)?;
    let plan = crate::limits::plan(ctx.app, t)?;
    let conn = ctx.app.catalog.conn()?;
    let o = analytics::overview(&conn, &t.id, &plan, from, to)?;
    let metrics = ["requests", "error_rate", "p95_ms", "active_users"];
    let tr = analytics::trends(&conn, Some(&t.id), from, to, Granularity::Day, &metrics)?;
    drop(conn);
    let series =
        |m: &str| -> Vec<Option<f64>> { tr.points.iter().map(|p| p.values.get(m).copied().flatten()).collect() };
    Ok(html! {
        h2 { "Last 7 days" }
        div.kpis {
            (kpi("Requests", o.requests.to_string(), &series("requests")))
            (kpi("Error rate", pct(o.error_rate), &series("error_rate")))
            (kpi("p95 latency", ms(o.latency_ms.get("p95").copied().flatten()), &series("p95_ms")))
            (kpi("Active users (7 days)", o.active_users.get("weekly").copied().unwrap_or(0).to_string(), &series("active_users")))
        }
        p { a href={ "/admin/t/" (t.slug) "/analytics?days=7" } { "More in Analytics →" } }
    })
}

pub fn page_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let days = days(req);
    let now = analytics::now();
    let (from, to) = (now - days * 86_400, now);
    crate::limits::flush_usage(ctx.app)?;
    let plan = crate::limits::plan(ctx.app, t)?;
    let conn = ctx.app.catalog.conn()?;
    let o = analytics::overview(&conn, &t.id, &plan, from, to)?;
    let metrics = ["requests", "errors", "p95_ms", "active_users"];
    let tr = analytics::trends(&conn, Some(&t.id), from, to, Granularity::Day, &metrics)?;
    let cmp = analytics::comparative(&conn, &t.id, &t.plan, ctx.app.config.analytics_min_cohort, from, to)?;
    let health = analytics::health::score(&analytics::health::inputs_with(&conn, t, &plan, &o, from, to)?);
    // Failed sign-ins are in the tenant's own audit chain.
    let opened = ctx.app.open_tenant(t)?;
    let sec = analytics::security::tenant(&conn, &*opened.handle.scan_conn()?, &t.id, from, to, now, 30)?;
    drop(conn);
    let bands: Vec<charts::Band<'_>> = cmp
        .metrics
        .iter()
        .map(|(m, s)| charts::Band { metric: m, value: s.value, p25: s.p25, p50: s.p50, p75: s.p75 })
        .collect();
    let labels: Vec<String> = tr.points.iter().map(|p| p.start.get(..10).unwrap_or("").to_string()).collect();
    let series =
        |m: &str| -> Vec<Option<f64>> { tr.points.iter().map(|p| p.values.get(m).copied().flatten()).collect() };
    let (requests, errors, p95, users) =
        (series("requests"), series("errors"), series("p95_ms"), series("active_users"));
    let base = format!("/api/v1/t/{}/analytics", t.slug);
    let chrome = Chrome::for_ctx(ctx, "Analytics", "analytics")?;
    Ok(page(
        &chrome,
        html! {
            h1 { "Analytics" }
            p.lead {
                "Last " (days) " days · data until " (o.data_until.as_deref().unwrap_or("–")) " · "
                a href="?days=7" { "7 days" } " · " a href="?days=30" { "30 days" } " · " a href="?days=90" { "90 days" }
                " · CSV: " a href={ (base) "/usage-trends?format=csv&granularity=day&from=-" (days) "d" } { "series" }
                " " a href={ (base) "/overview?format=csv&from=-" (days) "d" } { "totals" }
                " " a href={ (base) "/security?format=csv&from=-" (days) "d" } { "security" }
            }
            div.kpis {
                (kpi("Requests", o.requests.to_string(), &requests))
                (kpi("Error rate", pct(o.error_rate), &errors))
                (kpi("p95 latency", ms(o.latency_ms.get("p95").copied().flatten()), &p95))
                (kpi("Active users (30 days)", o.active_users.get("monthly").copied().unwrap_or(0).to_string(), &users))
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
                (charts::percentile_bands("You among your plan's peers", &bands))
                p.small { "Band: the middle half of your peers (p25 to p75); tick: their median; diamond: you. Each metric on its own scale." }
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
            h2 { "Health" }
            p {
                "Score " strong { (format!("{:.1}", health.score)) } " of 100"
                @if health.at_risk { " · " span.badge.suspended { "at risk" } }
                " · weakest: " (super::platform_analytics::weakest(&health))
            }
            div.scroll {
                table.data {
                    thead { tr { th { "Component" } th.num { "Points" } th.num { "Of" } th { "Why" } } }
                    tbody {
                        @for c in &health.components {
                            tr { td { (c.name) } td.num { (format!("{:.1}", c.points)) } td.num { (c.weight) } td { (c.explain) } }
                        }
                    }
                }
            }
            h2 { "Security" }
            (super::platform_analytics::security_section(&sec))
        },
    ))
}
