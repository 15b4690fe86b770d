//! The final report of `tenantd loadtest`: a table for people, one JSON object for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::driver::{Load, Outcome};
use super::stats::OpStats;

/// What the run (or one stage of a scenario) was, for the report's header.
pub struct Header<'a> {
    pub url: &'a str,
    pub load: &'a Load<'a>,
    /// uniform, zipf or weighted.
    pub distribution: &'a str,
    /// A scenario's stage name.
    pub stage: Option<&'a str>,
}

fn op_json(s: &OpStats, secs: f64) -> Value {
    json!({
        "requests": s.requests(),
        "ok": s.ok,
        "errors": s.error_count(),
        "rps": s.requests() as f64 / secs,
        "p50_ms": s.latency.quantile_ms(0.50),
        "p95_ms": s.latency.quantile_ms(0.95),
        "p99_ms": s.latency.quantile_ms(0.99),
        "max_ms": s.latency.quantile_ms(1.0),
        "mean_ms": s.latency.mean_ms(),
        "errors_by_status": s.errors,
    })
}

fn all(out: &Outcome) -> OpStats {
    let mut total = OpStats::default();
    for s in &out.ops {
        total.merge(s);
    }
    total
}

/// The time series: per window, requests per second, errors and latency percentiles of the
/// requests that started in it (answered ones; errors count apart).
pub fn series_json(load: &Load<'_>, out: &Outcome) -> Value {
    let w = load.window.as_secs_f64().max(1e-9);
    Value::Array(
        out.series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "t_s": (i as f64 * w * 1000.0).round() / 1000.0,
                    "requests": s.requests,
                    "rps": s.requests as f64 / w,
                    "errors": s.errors,
                    "p50_ms": s.latency.quantile_ms(0.50),
                    "p95_ms": s.latency.quantile_ms(0.95),
                    "p99_ms": s.latency.quantile_ms(0.99),
                })
            })
            .collect(),
    )
}

/// One JSON object: the run's parameters, totals, per-operation figures (named `read` etc.
/// for one table, `table.read` for several) and the time series. Latencies in milliseconds,
/// percentiles over every answered request.
pub fn to_json(h: &Header<'_>, out: &Outcome) -> Value {
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let l = h.load;
    let mut ops = serde_json::Map::new();
    let mut mix = BTreeMap::new();
    for (i, s) in out.ops.iter().enumerate() {
        let name = l.mix.name(i, l.tables);
        mix.insert(name.clone(), l.mix.parts[i].weight);
        ops.insert(name, op_json(s, secs));
    }
    let tables: Vec<&str> = l.tables.iter().map(|t| t.name.as_str()).collect();
    let mut v = op_json(&all(out), secs);
    let extra = json!({
        "stage": h.stage,
        "url": h.url,
        "tenants": l.targets.len(),
        "concurrency": l.concurrency,
        "concurrency_from": l.ramp_from,
        "duration_s": l.duration.as_secs_f64(),
        "elapsed_s": out.elapsed.as_secs_f64(),
        "distribution": h.distribution,
        "mix": mix,
        "rows": l.rows,
        "table": tables.first(),
        "tables": tables,
        "rate": l.rate.map(|(from, to)| if from == to { json!(from) } else { json!({"from": from, "to": to}) }),
        "ops": ops,
        "window_s": l.window.as_secs_f64(),
        "series": series_json(l, out),
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

/// The report as text: a header line, a row per operation and the errors by status.
pub fn text(h: &Header<'_>, out: &Outcome) -> String {
    let mut t = String::new();
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let l = h.load;
    let pace = match l.rate {
        Some((a, b)) if a == b => format!("open loop at {a} req/s"),
        Some((a, b)) => format!("open loop from {a} to {b} req/s"),
        None => "closed loop".to_string(),
    };
    let threads = match l.ramp_from {
        Some(from) => format!("{from} to {} connections", l.concurrency),
        None => format!("{} connections", l.concurrency),
    };
    if let Some(stage) = h.stage {
        let _ = writeln!(t, "stage {stage}:");
    }
    let tables: Vec<&str> = l.tables.iter().map(|t| t.name.as_str()).collect();
    let _ = writeln!(
        t,
        "{} tenants ({}), {threads}, {pace}, {:.1} s, mix {} on {}, against {}",
        l.targets.len(),
        h.distribution,
        secs,
        l.mix.describe(l.tables),
        tables.join(", "),
        h.url
    );
    let names: Vec<String> = (0..out.ops.len()).map(|i| l.mix.name(i, l.tables)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0).max(9);
    let _ = writeln!(
        t,
        "{:<width$} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "OP", "REQUESTS", "REQ/S", "P50_MS", "P95_MS", "P99_MS", "MAX_MS", "ERRORS"
    );
    let row = |t: &mut String, name: &str, s: &OpStats| {
        let _ = writeln!(
            t,
            "{name:<width$} {:>10} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8}",
            s.requests(),
            s.requests() as f64 / secs,
            s.latency.quantile_ms(0.50),
            s.latency.quantile_ms(0.95),
            s.latency.quantile_ms(0.99),
            s.latency.quantile_ms(1.0),
            s.error_count()
        );
    };
    for (name, s) in names.iter().zip(&out.ops) {
        row(&mut t, name, s);
    }
    let total = all(out);
    row(&mut t, "all", &total);
    if total.errors.is_empty() {
        let _ = writeln!(t, "errors: none");
    } else {
        for (status, n) in &total.errors {
            let by_op: Vec<String> = names
                .iter()
                .zip(&out.ops)
                .filter_map(|(name, s)| s.errors.get(status).map(|k| format!("{name} {k}")))
                .collect();
            let _ = writeln!(t, "errors: {status} × {n} ({})", by_op.join(", "));
        }
    }
    t
}
