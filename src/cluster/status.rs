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
/// of its own. Other stores give `None` here: `StoreLag` lists them in the background.
fn replication(data_dir: &std::path::Path, store: &str, node: &str, tenants: &[crate::ids::TenantId]) -> Option<Value> {
    // Where `moves::replica_url` (what moves restore from) puts each tenant: only a file:// store.
    store.split('?').next()?.strip_prefix("file://")?;
    let in_store = |id: &crate::ids::TenantId| -> Option<std::path::PathBuf> {
        let url = super::moves::replica_url(store, node, id.as_str());
        url.split('?').next()?.strip_prefix("file://").map(std::path::PathBuf::from)
    };
    Some(compare(data_dir, tenants, |id| in_store(id).and_then(|p| newest_txid(&p))))
}

/// Each tenant's newest local transaction (Litestream's meta dir) against `stored`'s.
fn compare(
    data_dir: &std::path::Path,
    tenants: &[crate::ids::TenantId],
    stored: impl Fn(&crate::ids::TenantId) -> Option<u64>,
) -> Value {
    let (mut behind, mut unreplicated, mut unwatched, mut lag_max) = (0u64, 0u64, 0u64, 0u64);
    for id in tenants {
        // `meta-dir: <data_dir>/litestream`, as `tenantd litestream config` writes it.
        let local = newest_txid(&data_dir.join("litestream").join(id.as_str()).join("data.db-litestream"));
        let remote = stored(id);
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
    json!({
        "tenants_behind": behind,
        "lag_txids_max": lag_max,
        "not_in_store": unreplicated,
        // No Litestream state beside the file: Litestream is not running here, or has not
        // picked the tenant up yet.
        "not_watched": unwatched,
    })
}

/// How often the store is listed when it is not a directory.
const LIST_EVERY_SECS: i64 = 10;
/// `litestream ltx` processes at a time.
const LISTERS: usize = 4;

/// The lag of a store that is not a directory (S3 and other object stores). Litestream lists
/// it (`litestream ltx -json -level all <replica URL>`, one process and one listing per
/// tenant), so the sync thread lists every `LIST_EVERY_SECS` in a thread of its own, one run
/// at a time, and node reports carry the last result with when it was taken
/// (`listed_at`, `listed_in_ms`).
#[derive(Default)]
pub struct StoreLag {
    last: parking_lot::Mutex<Option<Value>>,
    running: std::sync::atomic::AtomicBool,
    started_at: std::sync::atomic::AtomicI64,
}

impl StoreLag {
    fn last(&self) -> Option<Value> {
        self.last.lock().clone()
    }

    /// How far the store is behind `tenants`: read now from a directory store; for an object
    /// store the last listing, or one made now in this thread if nothing here ever listed (a
    /// CLI: a server's sync thread lists).
    pub fn report(&self, app: &App, c: &Cluster, tenants: &[crate::ids::TenantId]) -> Option<Value> {
        if !object_store(&c.config.store) {
            return replication(&app.paths.data_dir, &c.config.store, c.this(), tenants);
        }
        if self.started_at.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return Some(listed(&app.paths.data_dir, &c.config.store, c.this(), tenants, &c.config.litestream));
        }
        self.last()
    }

    /// Starts a listing when the store is an object store and the last one is old enough.
    pub fn maybe_list(app: &App, c: &std::sync::Arc<Cluster>) {
        use std::sync::atomic::Ordering;
        let store = &c.config.store;
        let now = crate::util::now_unix();
        let lag = &c.store_lag;
        if !object_store(store)
            || now - lag.started_at.load(Ordering::Relaxed) < LIST_EVERY_SECS
            || lag.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        lag.started_at.store(now, Ordering::Relaxed);
        let (cluster, data_dir) = (c.clone(), app.paths.data_dir.clone());
        let tenants = app.catalog.conn().and_then(|conn| crate::catalog::tenants::list(&conn, false));
        let spawned = std::thread::Builder::new().name("tenantd-store-lag".into()).spawn(move || {
            let c = &cluster;
            let v = match tenants {
                Ok(t) => {
                    let ids: Vec<_> = t.into_iter().map(|t| t.id).collect();
                    listed(&data_dir, &c.config.store, c.this(), &ids, &c.config.litestream)
                }
                Err(e) => json!({"error": e.to_string()}),
            };
            *c.store_lag.last.lock() = Some(v);
            c.store_lag.running.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            crate::log::warn(&format!("cluster: cannot start listing the store: {e}"));
            lag.running.store(false, Ordering::Release);
        }
    }
}

/// A store `litestream ltx` has to list (S3-compatible): set, and not a directory.
fn object_store(store: &str) -> bool {
    !store.is_empty() && !store.starts_with("file://")
}

/// The lag against what `litestream ltx` lists under each tenant's replica URL, with when it
/// was listed and how long that took. A listing that fails counts the tenant as not in the
/// store, and the first failure is reported.
fn listed(
    data_dir: &std::path::Path,
    store: &str,
    node: &str,
    tenants: &[crate::ids::TenantId],
    litestream: &str,
) -> Value {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let found: parking_lot::Mutex<std::collections::HashMap<&str, u64>> = Default::default();
    let error: parking_lot::Mutex<Option<String>> = Default::default();
    std::thread::scope(|s| {
        for _ in 0..LISTERS.min(tenants.len()) {
            s.spawn(|| {
                while let Some(id) = tenants.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let url = super::moves::replica_url(store, node, id.as_str());
                    let out = std::process::Command::new(litestream)
                        .args(["ltx", "-json", "-level", "all", &url])
                        .stdin(std::process::Stdio::null())
                        .output();
                    match out {
                        Ok(o) if o.status.success() => {
                            if let Some(max) = newest_listed(&String::from_utf8_lossy(&o.stdout)) {
                                found.lock().insert(id.as_str(), max);
                            }
                        }
                        Ok(o) => {
                            let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
                            error.lock().get_or_insert(format!("litestream ltx {url}: {msg}"));
                        }
                        Err(e) => {
                            error.lock().get_or_insert(format!("{litestream}: {e}"));
                        }
                    }
                }
            });
        }
    });
    let found = found.into_inner();
    let mut v = compare(data_dir, tenants, |id| found.get(id.as_str()).copied());
    if let Some(e) = error.into_inner() {
        v["error"] = json!(e);
    }
    v["listed_at"] = json!(crate::util::rfc3339(crate::util::now_unix()));
    v["listed_in_ms"] = json!(started.elapsed().as_millis() as u64);
    v
}

/// The highest `max_txid` in `litestream ltx -json` output (hex strings); None for none.
fn newest_listed(json: &str) -> Option<u64> {
    let files: Vec<Value> = serde_json::from_str(json).ok()?;
    files.iter().filter_map(|f| f["max_txid"].as_str().and_then(|t| u64::from_str_radix(t, 16).ok())).max()
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
    fn the_newest_listed_transaction_is_read_from_litestream_s_json() {
        let out = r#"[{"level":0,"min_txid":"0000000000000001","max_txid":"0000000000000001","size":567},
                      {"level":0,"min_txid":"0000000000000002","max_txid":"000000000000002a","size":191},
                      {"level":9,"min_txid":"0000000000000001","max_txid":"0000000000000002","size":567}]"#;
        assert_eq!(newest_listed(out), Some(42));
        assert_eq!(newest_listed("[]"), None);
        assert_eq!(newest_listed("not json"), None);
    }

    #[test]
    fn a_store_listing_that_cannot_run_says_why() {
        let data = std::env::temp_dir().join(format!("tenantd-lag-{}", crate::util::random_hex(4)));
        let ids = vec![crate::ids::TenantId::parse("00000000000000a1").unwrap()];
        let v = listed(&data, "s3://bucket/x", "a", &ids, "/nonexistent/litestream");
        assert_eq!(v["not_watched"], 1, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("/nonexistent/litestream")), "{v}");
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
        assert!(replication(&data, "s3://bucket/x", "a", &ids).is_none(), "object stores are listed apart");
        let _ = std::fs::remove_dir_all(&root);
    }
}
