//! `tenantd analytics overview|trends [--tenant SLUG] [--json]`, `tenantd analytics revenue`
//! and `tenantd analytics downsample`: the analytics API's numbers in a terminal (a tenant's,
//! or the platform's without `--tenant`; revenue is the platform's).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{print_json, CliResult};
use crate::analytics::{self, revenue, Granularity};
use crate::app::App;
use crate::ids::Slug;

#[derive(Subcommand, Debug)]
pub enum AnalyticsCmd {
    /// KPIs over a range: requests, errors, latency percentiles, active users, quotas.
    #[command(
        after_help = "Examples:\n  tenantd analytics overview --tenant acme --from -7d\n  tenantd analytics overview --json"
    )]
    Overview {
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
        /// RFC 3339, a date, or relative (-30d, -12h, -2w); default: 30 days ago.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A series per hour, day, week or month with its change against the period before.
    #[command(
        after_help = "Examples:\n  tenantd analytics trends --tenant acme --granularity day --metrics requests,p95_ms"
    )]
    Trends {
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long, default_value = "day")]
        granularity: String,
        /// Comma-separated; default: all.
        #[arg(long)]
        metrics: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sums whole days of hourly usage into daily rollups and whole months of those into monthly
    /// ones, then deletes what is past `analytics_hourly_days` / `analytics_daily_days`. The
    /// server does this a minute after start and after each UTC midnight; safe to run any time, again.
    #[command(after_help = "Examples:\n  tenantd analytics downsample\n  tenantd analytics downsample --json")]
    Downsample {
        /// Act as if it were this time (RFC 3339): for benchmarks and tests of the next days' runs.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The platform's revenue per month: MRR, its movements, churn, retention, ARPA and LTV.
    #[command(
        after_help = "Examples:\n  tenantd analytics revenue\n  tenantd analytics revenue --from 2026-01-01 --json"
    )]
    Revenue {
        /// RFC 3339, a date, or relative (-30d, -12h, -2w); default: the last 12 months.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(app: Arc<App>, cmd: AnalyticsCmd) -> CliResult {
    let tenant = |s: &Option<String>| -> CliResult<Option<crate::catalog::tenants::TenantRecord>> {
        Ok(match s {
            Some(s) => Some(app.tenant(&Slug::parse(s)?)?),
            None => None,
        })
    };
    match cmd {
        AnalyticsCmd::Overview { tenant: slug, from, to, json } => {
            let (from, to) = analytics::range(from.as_deref(), to.as_deref(), analytics::now())?;
            let conn = app.catalog.conn()?;
            match tenant(&slug)? {
                Some(t) => {
                    let plan = app.config.plans.get(&t.plan).cloned().unwrap_or_default();
                    let o = analytics::overview(&conn, &t.id, &plan, from, to)?;
                    if json {
                        print_json(&o)?;
                    } else {
                        println!(
                            "{} from {} to {} (data until {})",
                            t.slug,
                            o.from,
                            o.to,
                            o.data_until.as_deref().unwrap_or("-")
                        );
                        println!("requests {}  errors {}  error rate {}", o.requests, o.errors, rate(o.error_rate));
                        println!(
                            "latency p50 {}  p95 {}  p99 {}",
                            ms(o.latency_ms.get("p50")),
                            ms(o.latency_ms.get("p95")),
                            ms(o.latency_ms.get("p99"))
                        );
                        println!("active users: {:?}", o.active_users);
                        for q in &o.quotas {
                            println!(
                                "quota {}: {} of {} ({}% left), runs out {}",
                                q.name,
                                q.used,
                                q.limit,
                                q.headroom_percent,
                                q.runs_out.as_deref().unwrap_or("not this period")
                            );
                        }
                    }
                }
                None => {
                    let o = analytics::platform_overview(&conn, from, to)?;
                    if json {
                        print_json(&o)?;
                    } else {
                        println!(
                            "platform from {} to {}: {} tenants, {} active",
                            o.from, o.to, o.tenants, o.active_tenants
                        );
                        println!(
                            "requests {}  errors {}  error rate {}  p95 {}",
                            o.requests,
                            o.errors,
                            rate(o.error_rate),
                            ms(o.latency_ms.get("p95"))
                        );
                        for (slug, n, e) in &o.top_tenants {
                            println!("  {slug:<24} {n:>10} requests  error rate {}", rate(*e));
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalyticsCmd::Downsample { as_of, json } => {
            let keep = analytics::rollup::Retention::of(&app.config);
            let now = match as_of.as_deref() {
                Some(t) => crate::util::parse_time(t)
                    .ok_or_else(|| crate::cli::CliError::usage(format!("--as-of {t:?}: use an RFC 3339 time")))?,
                None => analytics::now(),
            };
            let d = analytics::rollup::downsample(&app.catalog, now, keep)?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "{} tenants: {} days and {} months written; {} hourly and {} daily rows past retention deleted; \
                     {} user rows coarsened ({:.1} s). Hourly kept from {}, daily from {}.",
                    d.tenants,
                    d.days_written,
                    d.months_written,
                    d.hourly_rows_deleted,
                    d.daily_rows_deleted,
                    d.user_rows_coarsened,
                    d.seconds,
                    d.hourly_from,
                    d.daily_from
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalyticsCmd::Trends { tenant: slug, from, to, granularity, metrics, json } => {
            let (from, to) = analytics::range(from.as_deref(), to.as_deref(), analytics::now())?;
            let g = Granularity::parse(&granularity)?;
            let metrics = analytics::metrics(metrics.as_deref())?;
            let t = tenant(&slug)?;
            let tr = analytics::trends(&*app.catalog.conn()?, t.as_ref().map(|t| &t.id), from, to, g, &metrics)?;
            if json {
                print_json(&tr)?;
            } else {
                println!("{:<21} {}", "START", tr.metrics.iter().map(|m| format!("{m:>14}")).collect::<String>());
                for p in &tr.points {
                    let vals: String = tr
                        .metrics
                        .iter()
                        .map(|m| {
                            format!(
                                "{:>14}",
                                p.values
                                    .get(m)
                                    .copied()
                                    .flatten()
                                    .map(|v| format!("{v:.2}"))
                                    .unwrap_or_else(|| "-".into())
                            )
                        })
                        .collect();
                    println!("{:<21} {vals}", p.start);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AnalyticsCmd::Revenue { from, to, json } => {
            let now = analytics::now();
            let (from, to) = revenue::range(from.as_deref(), to.as_deref(), now)?;
            let currencies = revenue::plan_currencies(&app.config.plans);
            let r = revenue::revenue(&*app.catalog.conn()?, from, to, now, &currencies)?;
            if json {
                print_json(&r)?;
            } else {
                print_revenue(&r);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_revenue(r: &revenue::Revenue) {
    println!("platform revenue from {} to {} (data until {})", r.from, r.to, r.data_until);
    println!(
        "{:<8} {:<4} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6} {:>8} {:>8}",
        "MONTH",
        "CUR",
        "START MRR",
        "NEW",
        "EXPANSION",
        "REACTIV",
        "CONTRACT",
        "CHURN",
        "END MRR",
        "CUST",
        "LOGO CH",
        "NRR"
    );
    let money = |c: i64| format!("{:.2}", c as f64 / 100.0);
    for m in &r.months {
        let mv = &m.movements;
        println!(
            "{:<8} {:<4} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6} {:>8} {:>8}{}",
            m.month,
            m.currency,
            money(m.start_mrr_cents),
            money(mv.new_mrr_cents),
            money(mv.expansion_mrr_cents),
            money(mv.reactivation_mrr_cents),
            money(mv.contraction_mrr_cents),
            money(mv.churn_mrr_cents),
            money(m.end_mrr_cents),
            m.customers_end,
            rate(m.logo_churn_rate),
            rate(m.net_revenue_retention),
            if m.partial { "  (so far)" } else { "" }
        );
    }
    for s in &r.summary {
        println!(
            "{}: MRR {} → {}, ARR {}, net revenue retention {}",
            s.currency,
            money(s.start_mrr_cents),
            money(s.end_mrr_cents),
            money(s.arr_cents),
            rate(s.net_revenue_retention)
        );
    }
}

fn rate(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", x * 100.0)).unwrap_or_else(|| "-".into())
}

fn ms(v: Option<&Option<f64>>) -> String {
    v.copied().flatten().map(|x| format!("{x} ms")).unwrap_or_else(|| "-".into())
}
