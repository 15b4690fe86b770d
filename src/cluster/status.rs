//! The cluster as `tenantd cluster status` and the platform console show it: every node's own
//! report, asked now.

use serde_json::{json, Value};

use super::Cluster;
use crate::app::App;

/// The cluster as `cluster status` and the console show it.
pub fn status(app: &App, c: &Cluster) -> Value {
    let nodes: Vec<Value> = c
        .config
        .nodes
        .iter()
        .map(|n| {
            let started = std::time::Instant::now();
            let answer = if n.name == c.this() {
                super::node_report(app)
            } else {
                c.client.call(n, "GET", "/api/v1/cluster/node", None)
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let placed = c.placements().iter().filter(|p| p.node == n.name).count();
            match answer {
                Ok(mut r) => {
                    r["up"] = json!(true);
                    r["url"] = json!(n.url);
                    r["weight"] = json!(n.weight);
                    r["answered_ms"] = json!((ms * 10.0).round() / 10.0);
                    r["tenants_in_directory"] = json!(placed);
                    if let Some(o) = r.as_object_mut() {
                        o.remove("tenant_list");
                    }
                    r
                }
                Err(e) => json!({
                    "node": n.name, "url": n.url, "weight": n.weight, "up": false,
                    "error": e.to_string(), "tenants_in_directory": placed,
                }),
            }
        })
        .collect();
    json!({
        "this_node": c.this(),
        "directory_node": c.config.directory_node(),
        "directory_version": c.version.load(std::sync::atomic::Ordering::Relaxed),
        "tenants": c.placements().len(),
        "nodes": nodes,
    })
}
