//! Health endpoints in the `application/health+json` shape (draft-inadarei-api-health-check):
//! liveness never touches tenant files; readiness checks the catalog, the data dir and draining.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Value};

use crate::error::Result;
use crate::http::{Ctx, Req, Resp};

const CONTENT_TYPE: &str = "application/health+json";

fn health_response(status: &str, mut body: Value) -> Resp {
    body["status"] = json!(status);
    body["serviceId"] = json!("tenantd");
    body["version"] = json!(env!("CARGO_PKG_VERSION"));
    let code = if status == "fail" { 503 } else { 200 };
    let mut r = Resp::json(code, &body);
    r.content_type = CONTENT_TYPE;
    // Short max-age: load balancers may cache a probe for a second, never longer.
    r.with_header("Cache-Control", "max-age=1")
}

/// The process is up and its workers answer. No I/O.
pub fn liveness(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let uptime = ctx.state.started.elapsed().as_secs();
    Ok(health_response(
        "pass",
        json!({"checks": {"uptime": [{"componentType": "system", "observedValue": uptime, "observedUnit": "s", "status": "pass"}]}}),
    ))
}

struct Check {
    key: &'static str,
    status: &'static str,
    value: Value,
    unit: &'static str,
    output: Option<String>,
}

fn readiness_checks(ctx: &Ctx<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    let t0 = Instant::now();
    let catalog = ctx
        .app
        .catalog
        .conn()
        .and_then(|c| Ok(c.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0))?));
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    checks.push(match catalog {
        Ok(_) => Check { key: "catalog:responseTime", status: "pass", value: json!(ms), unit: "ms", output: None },
        Err(e) => Check {
            key: "catalog:responseTime",
            status: "fail",
            value: json!(ms),
            unit: "ms",
            output: Some(format!("catalog query failed: {e}")),
        },
    });
    let probe = ctx.app.paths.tmp().join(format!(".ready-{}", crate::util::random_hex(4)));
    let writable = std::fs::create_dir_all(ctx.app.paths.tmp())
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    checks.push(match writable {
        Ok(()) => Check { key: "datadir:writable", status: "pass", value: json!(true), unit: "", output: None },
        Err(e) => Check {
            key: "datadir:writable",
            status: "fail",
            value: json!(false),
            unit: "",
            output: Some(format!("cannot write to the data dir: {e}")),
        },
    });
    let draining = ctx.state.draining.load(Ordering::SeqCst);
    checks.push(Check {
        key: "server:draining",
        status: if draining { "fail" } else { "pass" },
        value: json!(draining),
        unit: "",
        output: draining.then(|| "shutting down".to_string()),
    });
    checks
}

fn render(checks: &[Check]) -> (String, Value) {
    let status = if checks.iter().any(|c| c.status == "fail") {
        "fail"
    } else if checks.iter().any(|c| c.status == "warn") {
        "warn"
    } else {
        "pass"
    };
    let mut map = serde_json::Map::new();
    for c in checks {
        let mut v = json!({"status": c.status, "observedValue": c.value});
        if !c.unit.is_empty() {
            v["observedUnit"] = json!(c.unit);
        }
        if let Some(o) = &c.output {
            v["output"] = json!(o);
        }
        map.insert(c.key.to_string(), json!([v]));
    }
    (status.to_string(), json!({"checks": map}))
}

/// Ready to take traffic: catalog answers, data dir writable, not draining. 503 otherwise.
pub fn readiness(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let (status, body) = render(&readiness_checks(ctx));
    Ok(health_response(&status, body))
}

/// `GET /health/`: the readiness verdict plus counts an operator glances at.
pub fn summary(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    let (status, mut body) = render(&readiness_checks(ctx));
    body["output"] = json!(format!(
        "{} open tenants, {} requests served, {} in flight",
        ctx.app.store.open_count(),
        ctx.state.requests.load(Ordering::Relaxed),
        ctx.state.inflight.load(Ordering::Relaxed)
    ));
    Ok(health_response(&status, body))
}
