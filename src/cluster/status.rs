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

/// How far the store is behind this node's tenant files (each tenant's newest transaction
/// Litestream took against the newest in the store), when the store is a directory
/// (`file://…`): per tenant, the newest transaction Litestream has taken from the file (its
/// `<data_dir>/litestream/<id>/data.db-litestream/ltx/<level>/<min>-<max>.ltx`, with the
/// `meta-dir` `tenantd litestream config` writes) against the newest in the store
/// (under the tenant's replica URL, `…/ltx/…`). Litestream reports no replica position
/// of its own, and an object store would need its API to list, so other stores give `None`.
pub fn replication(
    data_dir: &std::path::Path,
    store: &str,
    node: &str,
    tenants: &[crate::ids::TenantId],
) -> Option<Value> {
    // Where `moves::replica_url` (what moves restore from) puts each tenant: only a file:// store.
    store.split('?').next()?.strip_prefix("file://")?;
    let in_store = |id: &crate::ids::TenantId| -> Option<std::path::PathBuf> {
        let url = super::moves::replica_url(store, node, id.as_str());
        url.split('?').next()?.strip_prefix("file://").map(std::path::PathBuf::from)
    };
    let (mut behind, mut unreplicated, mut unwatched, mut lag_max) = (0u64, 0u64, 0u64, 0u64);
    for id in tenants {
        // `meta-dir: <data_dir>/litestream`, as `tenantd litestream config` writes it.
        let local = newest_txid(&data_dir.join("litestream").join(id.as_str()).join("data.db-litestream"));
        let remote = in_store(id).and_then(|p| newest_txid(&p));
        match (local, remote) {
            (Some(l), Some(r)) if l > r => {
                behind += 1;
                lag_max = lag_max.max(l - r);
            }
            (Some(_), None) => unreplicated += 1,
            (None, _) => unwatched += 1,
            _ => {}
        }
    }
    Some(json!({
        "tenants_behind": behind,
        "lag_txids_max": lag_max,
        "not_in_store": unreplicated,
        // No Litestream state beside the file: Litestream is not running here, or has not
        // picked the tenant up yet.
        "not_watched": unwatched,
    }))
}

/// The highest transaction id of the LTX files under `dir/ltx/<level>/`.
fn newest_txid(dir: &std::path::Path) -> Option<u64> {
    let mut newest = None;
    for level in std::fs::read_dir(dir.join("ltx")).ok()?.flatten() {
        for f in std::fs::read_dir(level.path()).into_iter().flatten().flatten() {
            let name = f.file_name();
            let max = name
                .to_str()
                .and_then(|n| n.strip_suffix(".ltx"))
                .and_then(|n| n.split_once('-'))
                .and_then(|(_, max)| u64::from_str_radix(max, 16).ok());
            newest = newest.max(max);
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_transaction_is_read_from_the_ltx_names() {
        let dir = std::env::temp_dir().join(format!("tenantd-ltx-{}", crate::util::random_hex(4)));
        assert_eq!(newest_txid(&dir), None);
        for (level, name) in [
            ("0", "0000000000000001-0000000000000001.ltx"),
            ("0", "0000000000000002-000000000000000a.ltx"),
            ("9", "0000000000000001-0000000000000003.ltx"),
            ("0", "junk"),
        ] {
            std::fs::create_dir_all(dir.join("ltx").join(level)).unwrap();
            std::fs::write(dir.join("ltx").join(level).join(name), b"").unwrap();
        }
        assert_eq!(newest_txid(&dir), Some(10));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lag_compares_litestream_s_local_and_stored_transactions() {
        let root = std::env::temp_dir().join(format!("tenantd-lag-{}", crate::util::random_hex(4)));
        let (data, store) = (root.join("data"), root.join("store"));
        let ltx = |dir: std::path::PathBuf, max: u64| {
            std::fs::create_dir_all(dir.join("ltx/0")).unwrap();
            std::fs::write(dir.join(format!("ltx/0/0000000000000001-{max:016x}.ltx")), b"").unwrap();
        };
        let ids: Vec<crate::ids::TenantId> =
            ["00000000000000a1", "00000000000000b2", "00000000000000c3", "00000000000000d4"]
                .iter()
                .map(|i| crate::ids::TenantId::parse(i).unwrap())
                .collect();
        let local = |id: &crate::ids::TenantId| data.join("litestream").join(id.as_str()).join("data.db-litestream");
        let url = format!("file://{}", store.display());
        let stored = |id: &crate::ids::TenantId| {
            std::path::PathBuf::from(
                super::super::moves::replica_url(&url, "a", id.as_str()).trim_start_matches("file://"),
            )
        };
        ltx(local(&ids[0]), 7); // caught up
        ltx(stored(&ids[0]), 7);
        ltx(local(&ids[1]), 12); // 5 behind
        ltx(stored(&ids[1]), 7);
        ltx(local(&ids[2]), 3); // not in the store yet; ids[3]: not watched
        let r = replication(&data, &url, "a", &ids).unwrap();
        assert_eq!(r, json!({"tenants_behind": 1, "lag_txids_max": 5, "not_in_store": 1, "not_watched": 1}));
        assert!(replication(&data, "s3://bucket/x", "a", &ids).is_none(), "object stores are not listed");
        let _ = std::fs::remove_dir_all(&root);
    }
}
