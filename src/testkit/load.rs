//! `TestServer::loadtest`: `tenantd loadtest --scenario` in process, against the kit's server,
//! with its report as values.
//!
//! ```
//! use tenantd::testkit::TestServer;
//!
//! let s = TestServer::start();
//! let report = s.loadtest(r#"
//!     tenants = 2
//!     rows = 20
//!     [[stage]]
//!     name = "steady"
//!     duration = "300ms"
//!     concurrency = 2
//!     mix = "read=8,write=2"
//! "#);
//! let steady = &report.stages[0];
//! assert_eq!(steady.name, "steady");
//! assert!(steady.total.requests > 0 && steady.total.p99_ms >= steady.total.p50_ms);
//! assert!(steady.ops["write"].requests > 0);
//! assert_eq!(report.errors(), 0);
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use super::TestServer;

/// Every stage of a run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub stages: Vec<StageReport>,
    /// The report as `tenantd loadtest --scenario … --json` prints it (with the time series).
    pub json: Value,
}

impl LoadReport {
    /// Requests that got no 2xx answer, over every stage.
    pub fn errors(&self) -> u64 {
        self.stages.iter().map(|s| s.total.errors).sum()
    }
}

/// One stage: its totals, and figures per operation (`read`, or `table.read` over several
/// tables).
#[derive(Debug, Clone)]
pub struct StageReport {
    pub name: String,
    pub total: OpReport,
    pub ops: BTreeMap<String, OpReport>,
}

#[derive(Debug, Clone)]
pub struct OpReport {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn op(v: &Value) -> OpReport {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    OpReport {
        requests: v["requests"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
        rps: f("rps"),
        p50_ms: f("p50_ms"),
        p95_ms: f("p95_ms"),
        p99_ms: f("p99_ms"),
        max_ms: f("max_ms"),
    }
}

impl TestServer {
    /// Runs `scenario` (the `--scenario` TOML: tenants, rows, stages with durations, ramps,
    /// mixes per table, tenant weights) against this server; tenants `load-00001…` are
    /// provisioned in its data dir first. Panics on a bad scenario, naming the line.
    pub fn loadtest(&self, scenario: &str) -> LoadReport {
        let json = match crate::cli::loadtest_in_process(&self.app, self.addr(), scenario) {
            Ok(v) => v,
            Err(e) => panic!("testkit: loadtest: {e}"),
        };
        let stages = json["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| StageReport {
                name: s["stage"].as_str().map_or_else(|| format!("stage {}", i + 1), str::to_string),
                total: op(s),
                ops: s["ops"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), op(v))).collect(),
            })
            .collect();
        LoadReport { stages, json }
    }
}
