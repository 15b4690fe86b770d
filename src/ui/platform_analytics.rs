//! The platform's analytics dashboard (`/admin/platform/analytics`, issue 21 item 8): KPI cards,
//! requests per day, revenue (MRR and its movements by month), tenants by health score, the
//! security summary and the busiest tenants, each with CSV links to the API that serves the same
//! numbers. Data from `analytics`, as the API's.

use maud::{html, Markup};

use super::analytics::{days, kpi, ms, pct};
use super::charts::{self, Series, Stack, Stacked};
use super::{page, Chrome};
use crate::analytics::health::TenantHealth;
use crate::analytics::revenue::{self, Revenue};
use crate::analytics::{self, security, Granularity};
use crate::analytics::{PlatformOverview, Trends};
use crate::api::analytics_security::blocked_now;
use crate::api::platform_views::{self, Ranked, CONSOLE_SERIES, DASHBOARD_SERIES};
use crate::cache::snapshot::Snapshot;
use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

const API: &str = "/api/v1/platform/analytics";
/// Tenants listed by health; the CSV has them all.
const HEALTH_ROWS: usize = 20;

pub fn page_get(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let days = days(req);
    let views = Views::of(ctx, days, &DASHBOARD_SERIES)?;
    let (o, tr, health) = (&*views.overview.value, &*views.trends.value, &views.health.value.list);
    let now = analytics::now();
    let conn = ctx.app.catalog.conn()?;
    let sec = security::platform(&conn, now - days * 86_400, now, now, 30, blocked_now(ctx.app, now))?;
    let revenue = revenue_of(ctx, &conn, now)?;
    drop(conn);
    let labels: Vec<String> = tr.points.iter().map(|p| p.start.get(..10).unwrap_or("").to_string()).collect();
    let (requests, errors, p95) = (views.series("requests"), views.series("error_rate"), views.series("p95_ms"));
    let active = views.active_series();
    let (mrr_value, mrr_spark) = mrr_card(revenue.as_ref());
    let chrome = Chrome::for_ctx(ctx, "Platform analytics", "platform-analytics")?;
    let req_series = Series { title: "Requests per day", labels: &labels, values: &requests, unit: "requests" };
    Ok(page(
        &chrome,
        html! {
            h1 { "Platform analytics" }
            p.lead {
                "Last " (days) " days · data until " (o.data_until.as_deref().unwrap_or("–")) (views.age_note()) " · "
                a href="?days=7" { "7 days" } " · " a href="?days=30" { "30 days" } " · " a href="?days=90" { "90 days" }
                " · CSV: " a href={ (API) "/usage-trends?format=csv&granularity=day&from=-" (days) "d" } { "series" }
                " " a href={ (API) "/health?format=csv&from=-" (days) "d" } { "health" }
                " " a href={ (API) "/security?format=csv&from=-" (days) "d" } { "security" }
                " " a href={ (API) "/revenue?format=csv" } { "revenue" }
            }
            @if let Some(n) = &o.notice { p.notice { (n) } }
            div.kpis {
                (kpi("Active tenants", format!("{} of {}", o.active_tenants, o.tenants), &active))
                (kpi("Requests", o.requests.to_string(), &requests))
                (kpi("Error rate", pct(o.error_rate), &errors))
                (kpi("p95 latency", ms(o.latency_ms.get("p95").copied().flatten()), &p95))
                (kpi("MRR", mrr_value, &mrr_spark))
            }
            section.chart-block {
                h2 { "Requests per day" }
                (charts::bars(&req_series))
                details { summary { "The numbers" } (charts::data_table(&req_series)) }
            }
            h2 { "Revenue" }
            (revenue_section(revenue.as_ref()))
            h2 { "Health" }
            (health_section(health))
            h2 { "Security" }
            (security_section(&sec))
            h2 { "Busiest tenants" }
            div.scroll {
                table.data {
                    thead { tr { th { "Tenant" } th.num { "Requests" } th.num { "Error rate" } } }
                    tbody {
                        @for (slug, n, e) in &o.top_tenants { tr { td { (slug) } td.num { (n) } td.num { (pct(*e)) } } }
                    }
                }
            }
        },
    ))
}

/// The console's cards: requests, error rate, active tenants, MRR and tenants at risk, over the
/// last 7 days by day. The at-risk count scores every tenant (one overview each).
pub fn console_kpis(ctx: &Ctx<'_>) -> Result<Markup> {
    let views = Views::of(ctx, 7, &CONSOLE_SERIES)?;
    let (o, health) = (&*views.overview.value, &views.health.value.list);
    let revenue = revenue_of(ctx, &*ctx.app.catalog.conn()?, analytics::now())?;
    let at_risk = health.iter().filter(|t| t.health.at_risk).count();
    let series = |m: &str| views.series(m);
    let active = views.active_series();
    let (mrr_value, mrr_spark) = mrr_card(revenue.as_ref());
    Ok(html! {
        h2 { "Last 7 days" small { (views.age_note()) } }
        div.kpis {
            (kpi("Requests", o.requests.to_string(), &series("requests")))
            (kpi("Error rate", pct(o.error_rate), &series("error_rate")))
            (kpi("Active tenants", format!("{} of {}", o.active_tenants, o.tenants), &active))
            (kpi("MRR", mrr_value, &mrr_spark))
            // No history of scores is kept: no sparkline.
            (kpi("Tenants at risk", format!("{at_risk} of {}", health.len()), &[]))
        }
        p { a href="/admin/platform/analytics?days=7" { "More in Platform analytics →" } }
    })
}

/// The platform-wide documents a page draws, each from `App::snapshots` (`api::platform_views`).
struct Views {
    overview: Snapshot<PlatformOverview>,
    trends: Snapshot<Trends>,
    active: Snapshot<Vec<(String, i64)>>,
    health: Snapshot<Ranked>,
}

impl Views {
    fn of(ctx: &Ctx<'_>, days: i64, series: &[&'static str]) -> Result<Views> {
        let from = format!("-{days}d");
        let from = Some(from.as_str());
        Ok(Views {
            overview: platform_views::overview(ctx.app, from, None)?,
            trends: platform_views::trends(ctx.app, from, None, Granularity::Day, series.to_vec())?,
            active: platform_views::active_tenants(ctx.app, from, None, Granularity::Day)?,
            health: platform_views::health(ctx.app, from, None)?,
        })
    }

    /// One metric of the usage series, a value per day.
    fn series(&self, metric: &str) -> Vec<Option<f64>> {
        self.trends.value.points.iter().map(|p| p.values.get(metric).copied().flatten()).collect()
    }

    fn active_series(&self) -> Vec<Option<f64>> {
        self.active.value.iter().map(|(_, n)| Some(*n as f64)).collect()
    }

    /// " (computed N s ago)" when the oldest of them is more than a few seconds old.
    fn age_note(&self) -> String {
        let oldest =
            [self.overview.computed_at, self.trends.computed_at, self.active.computed_at, self.health.computed_at]
                .into_iter()
                .min()
                .unwrap_or(0);
        let age = analytics::now() - oldest;
        if age < 5 {
            return String::new();
        }
        let ago = if age < 120 { format!("{age} s") } else { format!("{} min", age / 60) };
        format!(" (computed {ago} ago; refreshed in the background)")
    }
}

/// A year of months from the ledger; none while billing is off.
fn revenue_of(ctx: &Ctx<'_>, conn: &rusqlite::Connection, now: i64) -> Result<Option<Revenue>> {
    if matches!(crate::billing::Provider::of(ctx.app), crate::billing::Provider::None) {
        return Ok(None);
    }
    let (from, to) = revenue::range(None, None, now)?;
    let currencies = revenue::plan_currencies(&ctx.app.config.plans);
    Ok(Some(revenue::revenue(conn, from, to, now, &currencies)?))
}

/// The MRR card: the last month's MRR per currency, and the first currency's months.
fn mrr_card(r: Option<&Revenue>) -> (String, Vec<Option<f64>>) {
    let Some(r) = r else { return ("billing off".into(), Vec::new()) };
    let value: Vec<String> = r.summary.iter().map(|s| crate::billing::money(s.end_mrr_cents, &s.currency)).collect();
    let first = r.currencies.first();
    let spark =
        r.months.iter().filter(|m| Some(&m.currency) == first).map(|m| Some(m.end_mrr_cents as f64 / 100.0)).collect();
    (if value.is_empty() { "–".into() } else { value.join(" · ") }, spark)
}

fn revenue_section(r: Option<&Revenue>) -> Markup {
    let Some(r) = r else {
        return html! { p { "Billing is off (billing.provider = \"none\"): there is no revenue to show." } };
    };
    let any = r.months.iter().any(|m| m.end_mrr_cents != 0 || m.movements.net() != 0 || m.start_mrr_cents != 0);
    if !any {
        return html! { p { "No subscription in the billing ledger yet: MRR is 0 from " (r.from.get(..10).unwrap_or("")) "." } };
    }
    html! {
        p { "Last 12 months (" (r.from.get(..10).unwrap_or("")) " to " (r.data_until.get(..10).unwrap_or("")) "), per currency; amounts in the currency's units." }
        @for cur in &r.currencies { (currency_charts(r, cur)) }
    }
}

fn currency_charts(r: &Revenue, cur: &str) -> Markup {
    let months: Vec<_> = r.months.iter().filter(|m| m.currency == cur).collect();
    let labels: Vec<String> =
        months.iter().map(|m| if m.partial { format!("{} (so far)", m.month) } else { m.month.clone() }).collect();
    let units = |f: fn(&revenue::Month) -> i64| -> Vec<f64> { months.iter().map(|m| f(m) as f64 / 100.0).collect() };
    let mrr: Vec<Option<f64>> = units(|m| m.end_mrr_cents).into_iter().map(Some).collect();
    let new = units(|m| m.movements.new_mrr_cents);
    let expansion = units(|m| m.movements.expansion_mrr_cents);
    let reactivation = units(|m| m.movements.reactivation_mrr_cents);
    let contraction: Vec<f64> = units(|m| m.movements.contraction_mrr_cents).into_iter().map(|v| -v).collect();
    let churn: Vec<f64> = units(|m| m.movements.churn_mrr_cents).into_iter().map(|v| -v).collect();
    let stacks = [
        Stack { name: "new", values: &new },
        Stack { name: "expansion", values: &expansion },
        Stack { name: "reactivation", values: &reactivation },
        Stack { name: "contraction", values: &contraction },
        Stack { name: "churn", values: &churn },
    ];
    let line_title = format!("MRR at month end ({cur})");
    let bars_title = format!("MRR movements by month ({cur})");
    let s = Series { title: &line_title, labels: &labels, values: &mrr, unit: cur };
    let st = Stacked { title: &bars_title, labels: &labels, stacks: &stacks, unit: cur };
    html! {
        section.chart-block {
            h3 { (line_title) }
            (charts::line(&s))
            details { summary { "The numbers" } (charts::data_table(&s)) }
        }
        section.chart-block {
            h3 { (bars_title) }
            (charts::stacked_bars(&st))
            details { summary { "The numbers" } (charts::stacked_table(&st)) }
        }
    }
}

fn health_section(list: &[TenantHealth]) -> Markup {
    let at_risk = list.iter().filter(|t| t.health.at_risk).count();
    html! {
        p { (at_risk) " of " (list.len()) " tenants at risk (score under " (analytics::health::AT_RISK_BELOW) "); lowest first"
            @if list.len() > HEALTH_ROWS { ", the first " (HEALTH_ROWS) " shown" } "." }
        div.scroll {
            table.data {
                thead { tr { th { "Tenant" } th { "Plan" } th.num { "Score" } th { "Status" } th { "Weakest component" } } }
                tbody {
                    @for t in list.iter().take(HEALTH_ROWS) {
                        tr {
                            td { (t.tenant) } td { (t.plan) } td.num { (format!("{:.1}", t.health.score)) }
                            td { @if t.health.at_risk { span.badge.suspended { "at risk" } } @else { "ok" } }
                            td { (weakest(&t.health)) }
                        }
                    }
                }
            }
        }
    }
}

/// The component that lost the most points, with its explanation; "none" when all are full.
pub fn weakest(h: &analytics::health::Health) -> String {
    h.components
        .iter()
        .map(|c| (c, c.weight - c.points))
        .filter(|(_, lost)| *lost > 0.05)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, lost)| format!("{} (−{:.1}): {}", c.name, lost, c.explain))
        .unwrap_or_else(|| "none: full marks".into())
}

/// Failed sign-ins, lockouts, blocked addresses, alerts by kind and MFA adoption.
pub fn security_section(s: &security::Security) -> Markup {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    html! {
        div.scroll {
            table.data {
                thead { tr { th { "Measure" } th.num { "Value" } } }
                tbody {
                    tr { td { "Failed sign-ins" } td.num { (s.failed_sign_ins.total) } }
                    tr { td { "Accounts failing now" } td.num { (s.failed_sign_ins.accounts_failing_now) } }
                    tr { td { "Lockouts" } td.num { (s.lockouts.in_range) } }
                    tr { td { "Locked now" } td.num { (s.lockouts.locked_now) } }
                    @if s.blocked_addresses.in_range.is_some() || s.blocked_addresses.now.is_some() {
                        tr { td { "Blocked addresses" } td.num { (opt(s.blocked_addresses.in_range)) } }
                        tr { td { "Blocked now" } td.num { (opt(s.blocked_addresses.now)) } }
                    }
                    tr { td { "Alerts (security)" } td.num { (s.alerts.total) " (" (s.alerts.security) ")" } }
                    @for (kind, n) in &s.alerts.by_kind { tr { td { "· " (kind) } td.num { (n) } } }
                    tr { td { "MFA adoption" } td.num { (s.mfa.enrolled) " of " (s.mfa.users) " (" (s.mfa.adoption_percent.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "–".into())) ")" } }
                    tr { td { "API keys never used / active" } td.num { (s.api_keys.never_used) " / " (s.api_keys.active) } }
                }
            }
        }
    }
}
