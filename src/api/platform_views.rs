//! The platform's analytics over every tenant, read through `App::snapshots` (`cache::snapshot`):
//! the platform API routes, the platform dashboard and the console's cards share one document
//! per kind and range. On a small platform each read computes its document (it takes
//! milliseconds); over thousands of tenants a read gets the last one computed, at most a minute
//! old or ten times what it cost, while the next is computed in the background.
//!
//! A range is kept as it was asked (`-30d`, or a time): a refresh works it out again from the
//! clock, so a kept "last 30 days" moves on with time. It is checked before anything is
//! computed, so a bad one is the reader's 400 and never a refresh's failure.

use std::any::Any;
use std::sync::Arc;

use crate::analytics::health::TenantHealth;
use crate::analytics::{self, Granularity, PlatformOverview, Trends};
use crate::app::App;
use crate::cache::snapshot::Snapshot;
use crate::error::Result;

/// Every tenant's health over `[from, to)`, lowest first, and where the data stops.
pub(crate) struct Ranked {
    pub list: Vec<TenantHealth>,
    pub data_until: Option<String>,
    pub from: i64,
    pub to: i64,
}

fn cached<T, F>(app: &Arc<App>, kind: String, from: Option<&str>, to: Option<&str>, f: F) -> Result<Snapshot<T>>
where
    T: Any + Send + Sync,
    F: FnOnce(&App, i64, i64) -> Result<T> + Send + 'static,
{
    analytics::range(from, to, analytics::now())?;
    // No range is the last 30 days: the same document as the dashboard's.
    let from = from.or(to.is_none().then_some("-30d"));
    let (from, to) = (from.map(str::to_string), to.map(str::to_string));
    let key = format!("{kind} from={from:?} to={to:?}");
    let app = app.clone();
    app.clone().snapshots.get(&key, move || {
        let (a, b) = analytics::range(from.as_deref(), to.as_deref(), analytics::now())?;
        crate::limits::flush_usage(&app)?;
        f(&app, a, b)
    })
}

pub(crate) fn overview(app: &Arc<App>, from: Option<&str>, to: Option<&str>) -> Result<Snapshot<PlatformOverview>> {
    cached(app, "overview".into(), from, to, |app, a, b| analytics::platform_overview(&*app.catalog.conn()?, a, b))
}

pub(crate) fn trends(
    app: &Arc<App>,
    from: Option<&str>,
    to: Option<&str>,
    g: Granularity,
    metrics: Vec<&'static str>,
) -> Result<Snapshot<Trends>> {
    let kind = format!("trends {g:?} {}", metrics.join(","));
    cached(app, kind, from, to, move |app, a, b| analytics::trends(&*app.catalog.conn()?, None, a, b, g, &metrics))
}

/// Tenants with a request per bucket (the dashboard's sparkline).
pub(crate) fn active_tenants(
    app: &Arc<App>,
    from: Option<&str>,
    to: Option<&str>,
    g: Granularity,
) -> Result<Snapshot<Vec<(String, i64)>>> {
    cached(app, format!("active {g:?}"), from, to, move |app, a, b| {
        analytics::active_tenants(&*app.catalog.conn()?, a, b, g)
    })
}

pub(crate) fn health(app: &Arc<App>, from: Option<&str>, to: Option<&str>) -> Result<Snapshot<Ranked>> {
    cached(app, "health".into(), from, to, |app, from, to| {
        let (list, data_until) = super::analytics_security::ranked_health(app, from, to)?;
        Ok(Ranked { list, data_until, from, to })
    })
}

/// Live tenants from which `warm` computes anything (below, a read takes milliseconds).
const WARM_FROM_TENANTS: i64 = 500;

/// Computes what the console (7 days) and the platform dashboard (30 days) show, so that their
/// first reads after a start find it: on a large platform that is seconds of work.
pub fn warm(app: &Arc<App>) -> Result<()> {
    let live: i64 =
        app.catalog.conn()?.query_row("SELECT count(*) FROM tenants WHERE status <> 'deleted'", [], |r| r.get(0))?;
    if live < WARM_FROM_TENANTS {
        return Ok(());
    }
    for days in ["-7d", "-30d"] {
        overview(app, Some(days), None)?;
        active_tenants(app, Some(days), None, Granularity::Day)?;
        health(app, Some(days), None)?;
    }
    trends(app, Some("-7d"), None, Granularity::Day, CONSOLE_SERIES.to_vec())?;
    trends(app, Some("-30d"), None, Granularity::Day, DASHBOARD_SERIES.to_vec())?;
    Ok(())
}

/// The series the console's cards draw.
pub(crate) const CONSOLE_SERIES: [&str; 2] = ["requests", "error_rate"];
/// The series the platform dashboard draws.
pub(crate) const DASHBOARD_SERIES: [&str; 3] = ["requests", "error_rate", "p95_ms"];
