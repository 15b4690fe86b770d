//! Failover: a node is gone, its tenants are restored on a survivor from the replica store.
//!
//! Every node replicates its tenant files and its catalog with Litestream to
//! `<store>/nodes/<node>/…`. The survivor restores the dead node's catalog (for each tenant's
//! members, roles, keys and settings) and every tenant the directory places on the dead node,
//! installs them (`moves::install`, which takes each in the directory with a compare-and-set on
//! the dead node) and reports what it restored. What the dead node acknowledged after its last
//! Litestream sync (`sync-interval`, 1 s by default) is lost: that is the bound docs/cluster.md
//! states and `scripts/cluster-check.sh` measures.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use super::{identity, moves, of};
use crate::app::App;
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// Restores `<store>/nodes/<node>/<path>` into `out` with `litestream restore`.
fn restore(app: &App, url: &str, out: &Path) -> Result<()> {
    let c = of(app)?;
    let res = std::process::Command::new(&c.config.litestream)
        .args(["restore", "-o"])
        .arg(out)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::invalid("litestream_missing", format!("cannot run {:?}: {e}", c.config.litestream)))?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        return Err(Error::Retry(format!(
            "litestream restore {url}: {}",
            err.trim().lines().last().unwrap_or("failed")
        )));
    }
    Ok(())
}

/// Restores every tenant the directory places on `dead` here. Tenants that fail are listed
/// with why; the others are served here when this returns.
pub fn take_over(app: &App, dead: &str) -> Result<Value> {
    let c = of(app)?;
    if dead == c.this() {
        return Err(Error::invalid("failover_self", "a node cannot take over its own tenants"));
    }
    if c.config.node(dead).is_none() {
        return Err(Error::invalid("unknown_node", format!("no node {dead:?} in [cluster] nodes")));
    }
    let store = c.config.store.trim_end_matches('/').to_string();
    if store.is_empty() {
        return Err(Error::invalid("no_store", "failover restores from the replica store: set [cluster] store"));
    }
    let started = Instant::now();
    let work = app.paths.data_dir.join("tmp").join(format!("failover-{dead}-{}", crate::util::random_hex(4)));
    std::fs::create_dir_all(&work)?;
    let catalog_file = work.join("catalog.db");
    restore(app, &crate::backup::litestream::join(&store, &format!("nodes/{dead}/catalog.db")), &catalog_file)?;
    let catalog = Connection::open_with_flags(&catalog_file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let placed: Vec<_> = c.placements().into_iter().filter(|p| p.node == dead).collect();
    let catalog = parking_lot::Mutex::new(catalog);
    // A few restores at once: each is mostly waiting on the store.
    let outcomes = crate::util::par_map(&placed, 4, &|_| {}, |p| {
        let one = || -> Result<()> {
            let id = TenantId::parse(&p.tenant_id)?;
            let file = work.join(format!("{id}.db"));
            restore(app, &moves::replica_url(&store, dead, id.as_str()), &file)?;
            let exported = identity::export(&catalog.lock(), id.as_str());
            let doc = match exported {
                Ok(doc) => doc,
                // Created after the catalog's last sync: the tenant comes back without members.
                Err(Error::NotFound(_)) => json!({
                    "id": id.as_str(),
                    "tenant": {"slug": p.slug, "name": p.slug, "status": "active", "plan": app.config.default_plan},
                    "domains": p.domains,
                }),
                Err(e) => return Err(e),
            };
            // Pinned: rebalancing must not send them back to the dead node.
            moves::install(app, &id, &file, &doc, dead, true)
        };
        one().map_err(|e| json!({"slug": p.slug, "error": e.to_string()}))
    });
    drop(catalog);
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for (p, outcome) in placed.iter().zip(outcomes) {
        match outcome {
            Ok(()) => restored.push(p.slug.clone()),
            Err(e) => failed.push(e),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    app.invalidate_caches();
    Ok(json!({
        "from": dead,
        "to": c.this(),
        "restored": restored,
        "failed": failed,
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }))
}
