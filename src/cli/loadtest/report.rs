//! The final report of `tenantd loadtest`: a table for people, one JSON object for machines.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::driver::{Load, Op, Outcome};
use super::stats::OpStats;

/// What the run was, for the report's header.
pub struct Header<'a> {
    pub url: &'a str,
    pub load: &'a Load<'a>,
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

/// One JSON object: the run's parameters, totals, and per-operation figures for the operations
/// in the mix. Latencies in milliseconds, percentiles over every answered request.
pub fn to_json(h: &Header<'_>, out: &Outcome) -> Value {
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let total = all(out);
    let mut ops = serde_json::Map::new();
    for op in Op::ALL {
        if h.load.mix.weight(op) > 0 {
            ops.insert(op.name().into(), op_json(&out.ops[op as usize], secs));
        }
    }
    let mix: BTreeMap<&str, u32> = Op::ALL.iter().map(|&op| (op.name(), h.load.mix.weight(op))).collect();
    let mut v = op_json(&total, secs);
    let extra = json!({
        "url": h.url,
        "tenants": h.load.targets.len(),
        "concurrency": h.load.concurrency,
        "duration_s": h.load.duration.as_secs_f64(),
        "elapsed_s": out.elapsed.as_secs_f64(),
        "distribution": h.load.distribution.name(),
        "mix": mix,
        "rows": h.load.rows,
        "table": h.load.table.name,
        "rate": h.load.rate,
        "ops": ops,
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

pub fn print_text(h: &Header<'_>, out: &Outcome) {
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let l = h.load;
    let pace = match l.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop".to_string(),
    };
    println!(
        "{} tenants ({}), {} connections, {pace}, {:.1} s, mix {} on {}, against {}",
        l.targets.len(),
        l.distribution.name(),
        l.concurrency,
        secs,
        l.mix.describe(),
        l.table.name,
        h.url
    );
    println!(
        "{:<9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "OP", "REQUESTS", "REQ/S", "P50_MS", "P95_MS", "P99_MS", "MAX_MS", "ERRORS"
    );
    let row = |name: &str, s: &OpStats| {
        println!(
            "{name:<9} {:>10} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8}",
            s.requests(),
            s.requests() as f64 / secs,
            s.latency.quantile_ms(0.50),
            s.latency.quantile_ms(0.95),
            s.latency.quantile_ms(0.99),
            s.latency.quantile_ms(1.0),
            s.error_count()
        );
    };
    for op in Op::ALL {
        if l.mix.weight(op) > 0 {
            row(op.name(), &out.ops[op as usize]);
        }
    }
    let total = all(out);
    row("all", &total);
    if total.errors.is_empty() {
        println!("errors: none");
    } else {
        for (status, n) in &total.errors {
            let by_op: Vec<String> = Op::ALL
                .iter()
                .filter_map(|&op| out.ops[op as usize].errors.get(status).map(|k| format!("{} {k}", op.name())))
                .collect();
            println!("errors: {status} × {n} ({})", by_op.join(", "));
        }
    }
}
