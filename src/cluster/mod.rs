//! Issue 23, beyond one machine: tenants placed across tenantd nodes behind nginx.
//!
//! A cluster is several ordinary tenantd nodes, each with its own data dir, catalog and tenants.
//! What they share is small:
//! - the **directory** (`directory`): which node holds each tenant. Its truth lives in the
//!   catalog of one node (`[cluster] directory`); every other node pulls a copy every
//!   `sync_interval_ms` and answers from it, so a lost node (the directory's included) stops
//!   nobody serving: only placement changes wait for the directory node.
//! - **placement** (`placement`): new tenants go where rendezvous hashing over the node weights
//!   says, unless told otherwise.
//! - the **router**: nginx, whose `map` from slug and host to upstream `nginx` renders from the
//!   directory. A request that reaches the wrong node anyway is answered 307 (or 421) to the
//!   right one, so a stale route heals.
//! - node-to-node calls (`node`): plain HTTP with the cluster's shared secret, for control only
//!   (register, freeze, install). Tenant data goes between machines through Litestream and the
//!   replica store, never through a protocol of ours.

pub mod directory;
pub mod failover;
pub mod files;
mod identity;
pub mod moves;
pub mod nginx;
mod node;
pub mod placement;
pub mod router;
mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::error::{Error, Result};
use crate::ids::Slug;
use crate::tenancy::{self, Actor};
pub use directory::{Change, Placement};
pub use node::Client;
pub use status::status;

/// `[cluster]`. Empty (no nodes) = a single node, the default.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name: one of `nodes`.
    pub name: String,
    /// The node whose catalog holds the directory's truth (default: the first node).
    pub directory: String,
    /// Shared by every node: node-to-node calls carry it as a bearer token (at least 32
    /// characters; `TENANTD_CLUSTER_SECRET` overrides it, so it can stay out of the file).
    pub secret: String,
    /// Where Litestream keeps every node's copies: an S3-compatible URL or a shared directory
    /// (`file:///srv/tenantd-store`). Node `n`'s files are under `<store>/nodes/<n>/`.
    pub store: String,
    pub nodes: Vec<NodeConfig>,
    /// The nginx configuration file `tenantd cluster nginx-config` writes after a directory
    /// change made from this node's CLI (empty: none is written).
    pub router_config: String,
    /// The command that reloads the router after `router_config` is written, e.g.
    /// `nginx -s reload` (run without a shell, split on spaces).
    pub router_reload: String,
    /// How often a node pulls the directory (ms).
    pub sync_interval_ms: u64,
    /// How long a moved tenant's old copy is kept on the source (soft-deleted, restorable).
    pub move_grace_hours: u64,
    /// The Litestream binary moves and failover restore with.
    pub litestream: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            name: String::new(),
            directory: String::new(),
            secret: String::new(),
            store: String::new(),
            nodes: Vec::new(),
            router_config: String::new(),
            router_reload: String::new(),
            sync_interval_ms: 1000,
            move_grace_hours: 24,
            litestream: "litestream".into(),
        }
    }
}

/// One node of `[[cluster.nodes]]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    /// Where the node's tenantd answers, e.g. `http://10.0.0.2:8080` (no path).
    pub url: String,
    /// Its share of new tenants, relative to the others (default 1).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.nodes.is_empty()
    }

    pub fn directory_node(&self) -> &str {
        if self.directory.is_empty() {
            self.nodes.first().map(|n| n.name.as_str()).unwrap_or("")
        } else {
            &self.directory
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !self.enabled() {
            if !self.name.is_empty() {
                return Err("cluster.nodes: list the nodes ([[cluster.nodes]] name, url, weight)".into());
            }
            return Ok(());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let ok = !n.name.is_empty()
                && n.name.len() <= 32
                && n.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(format!("cluster.nodes: {:?}: node names use a-z, 0-9 and '-' (at most 32)", n.name));
            }
            if self.nodes[..i].iter().any(|m| m.name == n.name) {
                return Err(format!("cluster.nodes: {:?} is listed twice", n.name));
            }
            let rest = n.url.strip_prefix("http://").or_else(|| n.url.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                let host = r.trim_end_matches('/');
                !host.is_empty() && !host.contains('/') && !host.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20)
            });
            if !ok {
                return Err(format!(
                    "cluster.nodes: {:?}: url {:?} must be http(s)://host:port with no path",
                    n.name, n.url
                ));
            }
            if !(n.weight > 0.0 && n.weight <= 1000.0) {
                return Err(format!("cluster.nodes: {:?}: weight {} must be in (0, 1000]", n.name, n.weight));
            }
        }
        if self.node(&self.name).is_none() {
            return Err(format!("cluster.name: {:?} is not one of cluster.nodes", self.name));
        }
        if self.node(self.directory_node()).is_none() {
            return Err(format!("cluster.directory: {:?} is not one of cluster.nodes", self.directory));
        }
        if !self.store.is_empty() {
            crate::backup::litestream::replica_url(&self.store).map_err(|e| format!("cluster.store: {e}"))?;
        }
        if !(100..=60_000).contains(&self.sync_interval_ms) {
            return Err("cluster.sync_interval_ms: in 100..=60000".into());
        }
        if self.move_grace_hours > 24 * 365 {
            return Err("cluster.move_grace_hours: at most a year".into());
        }
        Ok(())
    }
}

/// How long writes to a tenant that just moved away are answered 503 + Retry-After here.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The secret node-to-node calls carry: `TENANTD_CLUSTER_SECRET`, else `[cluster] secret`.
fn secret(config: &ClusterConfig) -> Result<String> {
    let s = std::env::var("TENANTD_CLUSTER_SECRET").ok().filter(|s| !s.is_empty()).unwrap_or(config.secret.clone());
    if s.len() < 32 {
        return Err(Error::invalid(
            "cluster_secret",
            "set [cluster] secret (or TENANTD_CLUSTER_SECRET) to the same 32+ characters on every node",
        ));
    }
    Ok(s)
}

/// The cluster as one node sees it: its config, its copy of the directory in memory, and the
/// client it calls other nodes with.
pub struct Cluster {
    pub config: ClusterConfig,
    pub client: Client,
    view: RwLock<Arc<View>>,
    /// The directory version this node's copy is at.
    pub version: AtomicI64,
    /// When this node last heard from the directory node (unix seconds; 0 = never).
    pub last_sync: AtomicI64,
    /// Requests answered 307/421 towards another node.
    pub redirects: AtomicU64,
    /// Tenants this node let go of in a move, and when: for `SETTLE` after that, writes that
    /// still reach it (a router that has not switched yet) are told to retry (503) rather than
    /// sent away (421), so a client behind the router sees only the freeze's answer.
    pub moved_away: parking_lot::Mutex<HashMap<String, std::time::Instant>>,
    /// A digest of the platform admins last copied from the directory node.
    admins_seen: parking_lot::Mutex<String>,
    /// `litestream restore -f` processes following tenants that are moving here.
    pub followers: parking_lot::Mutex<HashMap<crate::ids::TenantId, std::process::Child>>,
    /// The store's lag as last listed, for a store that is not a directory (`status::StoreLag`).
    pub store_lag: status::StoreLag,
}

#[derive(Default)]
struct View {
    by_slug: HashMap<String, Placement>,
    by_domain: HashMap<String, String>,
}

impl Cluster {
    pub fn open(config: &ClusterConfig, catalog: &crate::catalog::Catalog) -> Result<Option<Arc<Cluster>>> {
        if !config.enabled() {
            return Ok(None);
        }
        let c = Cluster {
            config: config.clone(),
            client: Client::new(secret(config)?),
            view: RwLock::new(Arc::new(View::default())),
            version: AtomicI64::new(0),
            last_sync: AtomicI64::new(0),
            redirects: AtomicU64::new(0),
            followers: Default::default(),
            moved_away: Default::default(),
            admins_seen: Default::default(),
            store_lag: Default::default(),
        };
        c.reload(&*catalog.conn()?)?;
        Ok(Some(Arc::new(c)))
    }

    pub fn this(&self) -> &str {
        &self.config.name
    }

    pub fn is_directory(&self) -> bool {
        self.config.directory_node() == self.config.name
    }

    /// Reads this node's copy of the directory from its catalog.
    pub fn reload(&self, conn: &rusqlite::Connection) -> Result<()> {
        let mut view = View::default();
        for p in directory::live(conn)? {
            for d in &p.domains {
                view.by_domain.insert(d.clone(), p.slug.clone());
            }
            view.by_slug.insert(p.slug.clone(), p);
        }
        self.version.store(directory::version(conn)?, Ordering::Relaxed);
        *self.view.write() = Arc::new(view);
        Ok(())
    }

    /// Where the directory says a slug lives (live entries only).
    pub fn locate(&self, slug: &str) -> Option<Placement> {
        self.view.read().by_slug.get(slug).cloned()
    }

    pub fn locate_domain(&self, domain: &str) -> Option<Placement> {
        let view = self.view.read();
        view.by_domain.get(domain).and_then(|s| view.by_slug.get(s)).cloned()
    }

    pub fn placements(&self) -> Vec<Placement> {
        let mut all: Vec<Placement> = self.view.read().by_slug.values().cloned().collect();
        all.sort_by(|a, b| a.slug.cmp(&b.slug));
        all
    }

    /// Whether this node let go of the tenant in a move less than `SETTLE` ago.
    pub fn settling(&self, slug: &str) -> bool {
        let mut moved = self.moved_away.lock();
        moved.retain(|_, at| at.elapsed() < SETTLE);
        moved.contains_key(slug)
    }

    /// The node the directory gives a tenant this node still has, when that is another node:
    /// after a failover, a node that comes back must not answer for what a survivor now holds.
    pub fn fenced(&self, slug: &str) -> Option<&NodeConfig> {
        let view = self.view.read();
        let p = view.by_slug.get(slug)?;
        (p.node != self.config.name && p.state != "moving").then(|| self.config.node(&p.node)).flatten()
    }

    /// The node a request for this tenant belongs on, when it is not this one.
    pub fn elsewhere(&self, p: &Placement) -> Option<&NodeConfig> {
        (p.node != self.config.name).then(|| self.config.node(&p.node)).flatten()
    }

    /// The node a new tenant goes to: `--node` when given (it must be a node), else the one
    /// its slug hashes to.
    pub fn place(&self, slug: &str, node: Option<&str>) -> Result<&NodeConfig> {
        match node {
            Some(n) => self.config.node(n).ok_or_else(|| {
                Error::invalid("unknown_node", format!("no node {n:?} in [cluster] nodes ({})", self.node_names()))
            }),
            None => placement::choose(&self.config.nodes, slug)
                .ok_or_else(|| Error::Internal("a cluster without nodes".into())),
        }
    }

    fn node_names(&self) -> String {
        self.config.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    pub fn directory_node(&self) -> Result<&NodeConfig> {
        self.config
            .node(self.config.directory_node())
            .ok_or_else(|| Error::Internal("directory node missing from the config".into()))
    }
}

/// The cluster of an app that has one, or the error a command gets without one.
pub fn of(app: &App) -> Result<&Arc<Cluster>> {
    app.cluster.as_ref().ok_or_else(|| {
        Error::invalid(
            "no_cluster",
            "this node is not in a cluster: add [cluster] name and [[cluster.nodes]] to the config",
        )
    })
}

/// Changes the directory: here when this node holds it, else through the directory node (and
/// then this node's copy is brought up to date at once).
pub fn change(app: &App, changes: &[Change]) -> Result<i64> {
    let c = of(app)?;
    if c.is_directory() {
        let names: Vec<&str> = c.config.nodes.iter().map(|n| n.name.as_str()).collect();
        let now = crate::util::now_unix();
        let v = app.change(|tx| directory::apply(tx, changes, &names, now))?;
        c.reload(&*app.catalog.conn()?)?;
        return Ok(v);
    }
    let dir = c.directory_node()?;
    let answer = c.client.call(dir, "POST", "/api/v1/cluster/directory", Some(&json!({ "changes": changes })))?;
    sync(app)?;
    answer["version"].as_i64().ok_or_else(|| Error::Internal("directory node answered without a version".into()))
}

/// The directory document a copy pulls: the rows changed after `since`.
pub fn document(app: &App, since: i64) -> Result<Value> {
    let conn = app.catalog.conn()?;
    Ok(json!({
        "node": of(app)?.this(),
        "version": directory::version(&conn)?,
        "changes": directory::since(&conn, since)?,
        // Platform admins exist on every node: the directory node's are copied to the others.
        "admins": identity::platform_admins(&conn)?,
    }))
}

/// Pulls the directory node's changes into this node's copy. Returns how many rows changed.
pub fn sync(app: &App) -> Result<usize> {
    let c = of(app)?;
    if c.is_directory() {
        // The truth is in this catalog; another process (the server, or a CLI) may have
        // changed it since this view was read. The version is one indexed lookup; the view is
        // read again only when it moved.
        let conn = app.catalog.conn()?;
        if directory::version(&conn)? != c.version.load(Ordering::Relaxed) {
            c.reload(&conn)?;
        }
        c.last_sync.store(crate::util::now_unix(), Ordering::Relaxed);
        return Ok(0);
    }
    let have = c.version.load(Ordering::Relaxed);
    let dir = c.directory_node()?;
    let doc = c.client.call(dir, "GET", &format!("/api/v1/cluster/directory?since={have}"), None)?;
    let rows: Vec<Placement> = serde_json::from_value(doc["changes"].clone())
        .map_err(|e| Error::Internal(format!("directory document from {}: {e}", dir.name)))?;
    c.last_sync.store(crate::util::now_unix(), Ordering::Relaxed);
    if let Some(admins) = doc["admins"].as_array() {
        let digest = crate::util::sha256_hex(doc["admins"].to_string().as_bytes());
        if *c.admins_seen.lock() != digest {
            let now = crate::util::now_unix();
            app.change(|tx| identity::upsert_admins(tx, admins, now))?;
            *c.admins_seen.lock() = digest;
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    app.change(|tx| directory::store(tx, &rows))?;
    c.reload(&*app.catalog.conn()?)?;
    Ok(rows.len())
}

/// Creates a tenant where placement says (or on `node`), from any node: locally, then
/// registered in the directory (a slug taken elsewhere in the cluster undoes the local create);
/// or by asking the chosen node to do the same. Returns the tenant and the node it is on.
pub fn create_tenant(
    app: &App,
    slug: &Slug,
    name: &str,
    plan: Option<&str>,
    node: Option<&str>,
    actor: &Actor,
) -> Result<(Value, String)> {
    let Some(c) = app.cluster.as_ref() else {
        let t = tenancy::create(app, slug, name, plan, actor)?;
        return Ok((serde_json::to_value(&t).map_err(|e| Error::Internal(e.to_string()))?, String::new()));
    };
    if let Some(p) = c.locate(slug.as_str()) {
        return Err(Error::conflict(
            "slug_taken",
            format!("slug {:?} is taken in the cluster (on node {})", slug.as_str(), p.node),
        ));
    }
    let target = c.place(slug.as_str(), node)?;
    if target.name != c.this() {
        let body =
            json!({"slug": slug.as_str(), "name": name, "plan": plan, "pinned": node.is_some(), "actor": actor.0});
        let t = c.client.call(target, "POST", "/api/v1/cluster/tenants", Some(&body))?;
        return Ok((t, target.name.clone()));
    }
    create_here(app, slug, name, plan, node.is_some(), actor)
}

/// Creates a tenant on this node and enters it in the directory; undone when the directory
/// refuses it or cannot be reached.
pub fn create_here(
    app: &App,
    slug: &Slug,
    name: &str,
    plan: Option<&str>,
    pinned: bool,
    actor: &Actor,
) -> Result<(Value, String)> {
    let c = of(app)?;
    let t = tenancy::create(app, slug, name, plan, actor)?;
    if let Err(e) = register(app, &t, pinned) {
        // Not in the directory: nobody could reach it, so it must not stay.
        let _ = tenancy::purge(app, slug, actor);
        return Err(match e {
            Error::Retry(m) => Error::Retry(format!("{m}; placement changes wait for the directory node")),
            other => other,
        });
    }
    Ok((serde_json::to_value(&t).map_err(|e| Error::Internal(e.to_string()))?, c.this().to_string()))
}

/// Enters a tenant of this node in the directory.
pub fn register(app: &App, t: &TenantRecord, pinned: bool) -> Result<i64> {
    let c = of(app)?;
    let conn = app.catalog.conn()?;
    let domains = crate::catalog::tenants::domains_of(&conn, &t.id)?;
    drop(conn);
    let bytes = std::fs::metadata(app.paths.tenant_db(&t.id)).map(|m| m.len()).unwrap_or(0);
    change(
        app,
        &[Change {
            slug: t.slug.to_string(),
            tenant_id: t.id.to_string(),
            node: c.this().to_string(),
            state: "active".into(),
            pinned: Some(pinned),
            domains: Some(domains),
            bytes: Some(bytes),
            expect_node: None,
        }],
    )
}

/// What this node reports about itself to `cluster status`: its tenants and their sizes, its
/// load, and how far its copy of the directory is.
pub fn node_report(app: &App) -> Result<Value> {
    let c = of(app)?;
    let conn = app.catalog.conn()?;
    let tenants = crate::catalog::tenants::list(&conn, false)?;
    drop(conn);
    let ids: Vec<crate::ids::TenantId> = tenants.iter().map(|t| t.id.clone()).collect();
    let mut bytes = 0u64;
    let list: Vec<Value> = tenants
        .iter()
        .map(|t| {
            let b = std::fs::metadata(app.paths.tenant_db(&t.id)).map(|m| m.len()).unwrap_or(0);
            bytes += b;
            json!({"slug": t.slug.as_str(), "id": t.id.as_str(), "status": t.status, "bytes": b})
        })
        .collect();
    Ok(json!({
        "node": c.this(),
        "directory_node": c.config.directory_node(),
        "directory_version": c.version.load(Ordering::Relaxed),
        "directory_synced_at": c.last_sync.load(Ordering::Relaxed),
        "tenants": list.len(),
        "bytes": bytes,
        "open_tenants": app.store.open_count(),
        "redirects_total": c.redirects.load(Ordering::Relaxed),
        "replication": c.store_lag.report(app, c, &ids),
        "tenant_list": list,
    }))
}

/// The server's directory puller: `sync` every `sync_interval_ms` until `stop`. A directory
/// node that does not answer is logged once a minute; this node keeps serving from its copy.
pub fn run_sync(app: &App, stop: &std::sync::atomic::AtomicBool) {
    let Some(c) = app.cluster.as_ref() else { return };
    let every = std::time::Duration::from_millis(c.config.sync_interval_ms);
    let mut last_warned = 0i64;
    // The directory node rewrites the router after changes no CLI made (new tenants, purges).
    let mut routed_version = c.version.load(Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        let mut outcome = sync(app).map(|_| ());
        let version = c.version.load(Ordering::Relaxed);
        if outcome.is_ok() && c.is_directory() && version != routed_version {
            outcome = router::apply(app).map(|_| ());
            routed_version = version;
        }
        status::StoreLag::maybe_list(app, c);
        if let Err(e) = outcome {
            let now = crate::util::now_unix();
            if now - last_warned >= 60 {
                crate::log::warn(&format!("cluster directory sync: {}", e.log_detail()));
                last_warned = now;
            }
        }
        let until = std::time::Instant::now() + every;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50).min(every));
        }
    }
}

/// Takes a purged tenant out of the directory when the directory still places it here (the
/// old copy of a moved tenant is purged on its source without touching the target's entry).
/// Best effort: a directory node that does not answer is logged, and the entry then names a
/// node that answers 404 for it.
pub fn forget(app: &App, t: &TenantRecord) {
    let Some(c) = app.cluster.as_ref() else { return };
    if c.locate(t.slug.as_str()).is_none_or(|p| p.node != c.this() || p.tenant_id != t.id.as_str()) {
        return;
    }
    let removal = Change {
        slug: t.slug.to_string(),
        tenant_id: t.id.to_string(),
        node: String::new(),
        state: "removed".into(),
        pinned: None,
        domains: None,
        bytes: None,
        expect_node: Some(c.this().to_string()),
    };
    if let Err(e) = change(app, &[removal]) {
        crate::log::warn(&format!("purged tenant {} stays in the cluster directory: {}", t.slug, e.log_detail()));
    }
}
