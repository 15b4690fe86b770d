//! Health score (issue 21, item 7): one number per tenant, 0–100, made of six weighted
//! components whose points add up to it, each shown with its value and how it was scored.
//! The inputs come from the tenant's overview (errors, latency, quotas), its current
//! subscription, its security alerts and its requests against the previous period of the same
//! length. The rules are in `FORMULA` and docs/analytics.md; they are deliberately simple
//! (linear between two anchors) so an operator can redo any score by hand.

use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::tenants::TenantRecord;
use crate::config::PlanConfig;
use crate::error::Result;

/// A score under this is "at risk".
pub const AT_RISK_BELOW: f64 = 60.0;

/// Weights, summing to 100.
pub const WEIGHTS: [(&str, f64); 6] = [
    ("errors", 25.0),
    ("latency", 15.0),
    ("quota_headroom", 15.0),
    ("payment", 20.0),
    ("security_alerts", 15.0),
    ("activity_trend", 10.0),
];

/// Error rate at which the errors component is worth nothing (5%).
const ERROR_RATE_ZERO: f64 = 0.05;
/// Headroom on the tightest quota from which the quota component is worth everything.
const HEADROOM_FULL_PERCENT: f64 = 50.0;
/// Security alerts in the range at which the security component is worth nothing.
const ALERTS_ZERO: f64 = 5.0;

pub const FORMULA: &str = "score = sum over components of weight x factor, each factor in 0..1: \
errors 25 x (1 - error_rate / 5%); \
latency 15 x (2 - p95 / plan latency_target_ms), i.e. full at or under the target, none at twice it; \
quota_headroom 15 x (tightest quota's headroom % / 50); \
payment 20 x (1 active, trialing or no subscription; 0.5 incomplete or paused; 0.25 past_due; 0 unpaid, canceled, incomplete_expired); \
security_alerts 15 x (1 - security alerts in the range / 5); \
activity_trend 10 x (requests / previous period's requests), full when the previous period had none and this one has some, none when both had none. \
Factors are clamped to 0..1; no traffic leaves errors and latency at full. at_risk: score < 60.";

/// What a score is computed from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Inputs {
    pub error_rate: Option<f64>,
    pub p95_ms: Option<f64>,
    pub latency_target_ms: u64,
    /// The tightest quota's headroom, in percent.
    pub min_headroom_percent: Option<f64>,
    /// The current subscription's status; none without one.
    pub payment_status: Option<String>,
    pub security_alerts: i64,
    pub requests: i64,
    pub previous_requests: i64,
}

#[derive(Debug, Serialize)]
pub struct Component {
    pub name: &'static str,
    /// The measured value (a rate, ms, percent, a status, a count or a change in percent).
    pub value: serde_json::Value,
    pub weight: f64,
    /// 0..=1: the share of the weight earned.
    pub factor: f64,
    /// weight x factor, to one decimal.
    pub points: f64,
    pub explain: String,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub score: f64,
    pub at_risk: bool,
    pub components: Vec<Component>,
}

fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

fn payment_factor(status: Option<&str>) -> f64 {
    match status {
        None | Some("active" | "trialing") => 1.0,
        Some("incomplete" | "paused") => 0.5,
        Some("past_due") => 0.25,
        // unpaid, canceled, incomplete_expired, and anything unknown: the worst.
        Some(_) => 0.0,
    }
}

/// The score of `i`: the components' points, summed.
pub fn score(i: &Inputs) -> Health {
    use serde_json::json;
    let target = i.latency_target_ms.max(1) as f64;
    let trend = match (i.previous_requests, i.requests) {
        (0, 0) => (None, 0.0),
        (0, _) => (None, 1.0),
        (p, n) => (Some(((n - p) as f64 / p as f64 * 1000.0).round() / 10.0), n as f64 / p as f64),
    };
    let parts: [(serde_json::Value, f64, String); 6] = [
        (
            json!(i.error_rate),
            i.error_rate.map_or(1.0, |e| 1.0 - e / ERROR_RATE_ZERO),
            match i.error_rate {
                Some(e) => format!("error rate {:.2}%; none at 5%", e * 100.0),
                None => "no requests: nothing failed".into(),
            },
        ),
        (
            json!(i.p95_ms),
            i.p95_ms.map_or(1.0, |p| 2.0 - p / target),
            match i.p95_ms {
                Some(p) => format!("p95 {p} ms against the plan's {target} ms target"),
                None => "no requests: no latency".into(),
            },
        ),
        (
            json!(i.min_headroom_percent),
            i.min_headroom_percent.map_or(1.0, |h| h / HEADROOM_FULL_PERCENT),
            match i.min_headroom_percent {
                Some(h) => format!("{h}% left on the tightest quota; full from 50%"),
                None => "no quota".into(),
            },
        ),
        (
            json!(i.payment_status),
            payment_factor(i.payment_status.as_deref()),
            match &i.payment_status {
                Some(s) => format!("subscription {s}"),
                None => "no subscription: neutral".into(),
            },
        ),
        (
            json!(i.security_alerts),
            1.0 - i.security_alerts as f64 / ALERTS_ZERO,
            format!("{} security alerts in the range; none left at 5", i.security_alerts),
        ),
        (
            json!(trend.0),
            trend.1,
            format!("{} requests against {} in the previous period", i.requests, i.previous_requests),
        ),
    ];
    let components: Vec<Component> = WEIGHTS
        .iter()
        .zip(parts)
        .map(|((name, weight), (value, factor, explain))| {
            let factor = (clamp01(factor) * 1000.0).round() / 1000.0;
            Component { name, value, weight: *weight, factor, points: (weight * factor * 10.0).round() / 10.0, explain }
        })
        .collect();
    // The sum of the rounded points, so the parts shown add up to the score exactly.
    let score = (components.iter().map(|c| c.points).sum::<f64>() * 10.0).round() / 10.0;
    Health { score, at_risk: score < AT_RISK_BELOW, components }
}

/// Gathers a tenant's inputs over `[from, to)` from the catalog.
pub fn inputs(conn: &Connection, t: &TenantRecord, plan: &PlanConfig, from: i64, to: i64) -> Result<Inputs> {
    let o = super::overview(conn, &t.id, plan, from, to)?;
    inputs_with(conn, t, plan, &o, from, to)
}

/// The inputs of many tenants at once (the platform's list): three passes over the usage
/// rollups of every tenant and one grouped query each for alerts and subscriptions, instead
/// of an overview per tenant (which at 10,000 tenants took the console tens of seconds). The
/// same numbers as `inputs`: error rate and p95 over the range, headroom on this month's
/// requests and on the last measured storage, the previous period's requests.
pub fn inputs_all<P: std::ops::Deref<Target = PlanConfig>>(
    conn: &Connection,
    tenants: &[(TenantRecord, P)],
    from: i64,
    to: i64,
) -> Result<Vec<Inputs>> {
    use super::rollup::{merge_hist, scan, Scope};
    use super::Granularity::Day;
    use std::collections::HashMap;
    #[derive(Default)]
    struct Acc {
        requests: i64,
        errors: i64,
        hist: Vec<u64>,
        storage: (i64, i64),
        month_requests: i64,
        previous: i64,
    }
    // Rows of tenants not in the list (deleted ones) are skipped.
    let index: HashMap<&str, usize> = tenants.iter().enumerate().map(|(i, (t, _))| (t.id.as_str(), i)).collect();
    let mut per: Vec<Acc> = (0..tenants.len()).map(|_| Acc::default()).collect();
    let mut with = |id: &str, f: &mut dyn FnMut(&mut Acc)| {
        if let Some(a) = index.get(id).and_then(|i| per.get_mut(*i)) {
            f(a);
        }
    };
    scan(conn, Scope::All, from, to, Day, |r| {
        with(r.tenant, &mut |a| {
            a.requests += r.requests;
            a.errors += r.errors;
            merge_hist(&mut a.hist, r.hist);
            if r.storage > 0 && r.at >= a.storage.0 {
                a.storage = (r.at, r.storage);
            }
        })
    })?;
    let (month_start, _) = crate::util::month_bounds(to);
    scan(conn, Scope::All, month_start, to, Day, |r| with(r.tenant, &mut |a| a.month_requests += r.requests))?;
    let start = from - from.rem_euclid(3600);
    scan(conn, Scope::All, start - (to - from), start, Day, |r| with(r.tenant, &mut |a| a.previous += r.requests))?;
    let alerts = super::security::tenant_alert_counts(conn, from, to)?;
    let payments: HashMap<String, String> = conn
        .prepare("SELECT tenant_id, status FROM billing_subscriptions WHERE ended_at IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(tenants
        .iter()
        .zip(&per)
        .map(|((t, plan), a)| {
            let quotas = [
                super::headroom(a.month_requests as f64, plan.monthly_requests as f64),
                super::headroom(a.storage.1 as f64, plan.storage_bytes as f64),
            ];
            Inputs {
                error_rate: (a.requests > 0).then(|| a.errors as f64 / a.requests as f64),
                p95_ms: crate::limits::meter::quantile(&a.hist, 0.95),
                latency_target_ms: plan.latency_target_ms,
                min_headroom_percent: quotas.into_iter().reduce(f64::min),
                payment_status: payments.get(t.id.as_str()).cloned(),
                security_alerts: alerts.get(t.id.as_str()).copied().unwrap_or(0),
                requests: a.requests,
                previous_requests: a.previous,
            }
        })
        .collect())
}

/// The same, from an overview of `[from, to)` the caller already has.
pub fn inputs_with(
    conn: &Connection,
    t: &TenantRecord,
    plan: &PlanConfig,
    o: &super::Overview,
    from: i64,
    to: i64,
) -> Result<Inputs> {
    // The previous period ends where the overview's first hour starts, so no hour counts twice.
    let start = from - from.rem_euclid(3600);
    let previous = super::requests_between(conn, &t.id, start - (to - from), start)?;
    let payment = crate::catalog::billing::current(conn, &t.id)?.map(|s| s.status);
    Ok(Inputs {
        error_rate: o.error_rate,
        p95_ms: o.latency_ms.get("p95").copied().flatten(),
        latency_target_ms: plan.latency_target_ms,
        min_headroom_percent: o.quotas.iter().map(|q| q.headroom_percent).reduce(f64::min),
        payment_status: payment,
        security_alerts: super::security::tenant_alert_count(conn, &t.id, from, to)?,
        requests: o.requests,
        previous_requests: previous,
    })
}

#[derive(Debug, Serialize)]
pub struct TenantHealth {
    pub tenant: String,
    pub plan: String,
    #[serde(flatten)]
    pub health: Health,
}

/// Tenants by score, lowest first ("at risk" at the top); ties by slug.
pub fn rank(mut list: Vec<TenantHealth>) -> Vec<TenantHealth> {
    list.sort_by(|a, b| a.health.score.total_cmp(&b.health.score).then_with(|| a.tenant.cmp(&b.tenant)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Inputs {
        Inputs {
            error_rate: Some(0.0),
            p95_ms: Some(20.0),
            latency_target_ms: 500,
            min_headroom_percent: Some(90.0),
            payment_status: Some("active".into()),
            security_alerts: 0,
            requests: 100,
            previous_requests: 100,
        }
    }

    fn sum(h: &Health) -> f64 {
        (h.components.iter().map(|c| c.points).sum::<f64>() * 10.0).round() / 10.0
    }

    #[test]
    fn weights_sum_to_100() {
        assert_eq!(WEIGHTS.iter().map(|w| w.1).sum::<f64>(), 100.0);
    }

    #[test]
    fn a_healthy_tenant_scores_100_and_a_failing_one_0() {
        let h = score(&healthy());
        assert_eq!(h.score, 100.0);
        assert!(!h.at_risk);
        let worst = Inputs {
            error_rate: Some(0.5),
            p95_ms: Some(5000.0),
            latency_target_ms: 500,
            min_headroom_percent: Some(0.0),
            payment_status: Some("unpaid".into()),
            security_alerts: 40,
            requests: 0,
            previous_requests: 1000,
        };
        let h = score(&worst);
        assert_eq!(h.score, 0.0);
        assert!(h.at_risk);
    }

    #[test]
    fn scores_stay_in_bounds_and_components_add_up_to_the_score() {
        // A grid over every input, extremes and odd values included.
        for e in [None, Some(0.0), Some(0.013), Some(0.05), Some(2.0), Some(f64::NAN)] {
            for p in [None, Some(0.0), Some(333.0), Some(750.0), Some(1e9)] {
                for hr in [None, Some(0.0), Some(12.3), Some(100.0)] {
                    for pay in [None, Some("past_due"), Some("paused"), Some("canceled"), Some("weird")] {
                        for (alerts, n, prev) in [(0, 0, 0), (3, 7, 0), (9, 1, 3), (-1, 50, 49)] {
                            let i = Inputs {
                                error_rate: e,
                                p95_ms: p,
                                latency_target_ms: 500,
                                min_headroom_percent: hr,
                                payment_status: pay.map(str::to_string),
                                security_alerts: alerts,
                                requests: n,
                                previous_requests: prev,
                            };
                            let h = score(&i);
                            assert!((0.0..=100.0).contains(&h.score), "{i:?}: {}", h.score);
                            assert!((sum(&h) - h.score).abs() < 1e-9, "{i:?}");
                            assert_eq!(h.components.len(), WEIGHTS.len());
                            for c in &h.components {
                                assert!((0.0..=c.weight).contains(&c.points), "{i:?}: {c:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn each_component_is_scored_as_documented() {
        let points = |i: &Inputs, name: &str| score(i).components.into_iter().find(|c| c.name == name).unwrap().points;
        let i = Inputs { error_rate: Some(0.025), ..healthy() };
        assert_eq!(points(&i, "errors"), 12.5, "half of 25 at half of 5%");
        let i = Inputs { p95_ms: Some(750.0), ..healthy() };
        assert_eq!(points(&i, "latency"), 7.5, "half of 15 at 1.5 x the target");
        let i = Inputs { min_headroom_percent: Some(25.0), ..healthy() };
        assert_eq!(points(&i, "quota_headroom"), 7.5);
        let i = Inputs { payment_status: Some("past_due".into()), ..healthy() };
        assert_eq!(points(&i, "payment"), 5.0);
        let i = Inputs { payment_status: None, ..healthy() };
        assert_eq!(points(&i, "payment"), 20.0, "no subscription is neutral");
        let i = Inputs { security_alerts: 2, ..healthy() };
        assert_eq!(points(&i, "security_alerts"), 9.0);
        let i = Inputs { requests: 25, previous_requests: 100, ..healthy() };
        assert_eq!(points(&i, "activity_trend"), 2.5);
        let i = Inputs { requests: 0, previous_requests: 0, ..healthy() };
        assert_eq!(points(&i, "activity_trend"), 0.0, "idle in both periods");
    }

    #[test]
    fn at_risk_tenants_come_first() {
        let mk = |slug: &str, i: Inputs| TenantHealth { tenant: slug.into(), plan: "free".into(), health: score(&i) };
        let ranked = rank(vec![
            mk("fine", healthy()),
            mk("late", Inputs { payment_status: Some("unpaid".into()), error_rate: Some(0.05), ..healthy() }),
            mk("noisy", Inputs { security_alerts: 5, ..healthy() }),
            mk("also-fine", healthy()),
        ]);
        let order: Vec<&str> = ranked.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(order, ["late", "noisy", "also-fine", "fine"]);
        assert!(ranked[0].health.at_risk && !ranked[1].health.at_risk);
        assert!(ranked.windows(2).all(|w| w[0].health.score <= w[1].health.score));
    }
}
