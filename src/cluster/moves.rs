//! Live moves and failover. Tenant data travels only through Litestream and the replica store:
//! every node replicates its tenant files to `<store>/nodes/<node>/tenants/<id>/data.db`
//! (`tenantd litestream config`), and a target restores from there.
//!
//! A move (`run`): the target follows the tenant's replica (`litestream restore -f`) into a
//! scratch file; the source freezes the tenant's writes, its last write an audit entry
//! (`tenant.move`) whose id and hash it reports; when the target's copy holds that entry it
//! holds every write before it (Litestream ships transactions in order), so the target stops
//! following, checks the file, enters the tenant and its members in its catalog and takes the
//! tenant in the directory (compare-and-set on the source); the source then keeps its copy
//! soft-deleted for `move_grace_hours`. Writes answer 503 + Retry-After only between the freeze
//! and the flip; reads never stop. A failure before the flip thaws the source.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use super::{change, identity, of, Change};
use crate::app::App;
use crate::catalog::tenants::TenantStatus;
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::tenancy::Actor;

/// Where a node's copy of a tenant is in the replica store.
pub fn replica_url(store: &str, node: &str, id: &str) -> String {
    crate::backup::litestream::join(store, &format!("nodes/{node}/tenants/{id}/data.db"))
}

fn store_of(app: &App) -> Result<String> {
    let c = of(app)?;
    if c.config.store.is_empty() {
        return Err(Error::invalid(
            "no_store",
            "moves and failover restore from the replica store: set [cluster] store (and run Litestream with tenantd litestream config)",
        ));
    }
    Ok(c.config.store.clone())
}

fn litestream(app: &App) -> Result<Command> {
    let bin = &of(app)?.config.litestream;
    let mut cmd = Command::new(bin);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    Ok(cmd)
}

fn scratch(app: &App, id: &str) -> PathBuf {
    app.paths.data_dir.join("tmp").join(format!("move-{id}"))
}

// ---------------------------------------------------------------------------------------------
// Source side.

/// Freezes the tenant's writes after one last audited write and reports what the target needs:
/// that entry's (id, hash) and the tenant's catalog side.
pub fn freeze(app: &App, slug: &Slug, to: &str) -> Result<Value> {
    let t = app.tenant(slug)?;
    if t.status == TenantStatus::Deleted {
        return Err(Error::NotFound(format!("tenant {:?}", slug.as_str())));
    }
    let opened = app.open_tenant(&t)?;
    let now = crate::util::now_unix();
    let head = app.store.freeze(&opened.handle, |conn| {
        let tx = crate::db::WriteTx::begin(conn)?;
        let head = crate::audit::append_head(
            &tx,
            now,
            &crate::audit::Entry {
                actor: "cluster",
                source: None,
                user_agent: None,
                request_id: None,
                action: "tenant.move",
                resource: None,
                outcome: "ok",
                risk: 0,
                details: json!({"from": of(app)?.this(), "to": to}),
            },
        )?;
        tx.commit()?;
        Ok(head)
    })?;
    app.audit_dirty.mark_head(&t.id, head.clone());
    let identity = identity::export(&*app.catalog.conn()?, t.id.as_str())?;
    Ok(json!({"tenant_id": t.id.as_str(), "head": [head.0, head.1], "identity": identity}))
}

pub fn thaw(app: &App, slug: &Slug) -> Result<()> {
    let t = app.tenant(slug)?;
    app.store.thaw(&t.id);
    Ok(())
}

/// After the flip: the source keeps its copy soft-deleted for the grace period (restorable,
/// purged by `purge-expired` after it), and lets go of the freeze (the tenant is unknown here
/// now, so requests for it are sent to its new node).
pub fn release(app: &App, slug: &Slug) -> Result<()> {
    let c = of(app)?;
    // This node's copy of the directory must already say where the tenant went: requests for
    // it are sent there from now on.
    super::sync(app)?;
    let actor = Actor("cluster".into());
    let t = crate::tenancy::soft_delete(app, slug, &actor)?;
    let until = crate::util::now_unix() + c.config.move_grace_hours as i64 * 3600;
    app.change(|tx| {
        crate::catalog::tenants::set_status(tx, &t.id, TenantStatus::Deleted, crate::util::now_unix(), Some(until))
    })?;
    c.moved_away.lock().insert(slug.to_string(), Instant::now());
    app.store.thaw(&t.id);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Target side.

/// Starts following the tenant's replica into a scratch file; returns when the first restore
/// is in it. The follower is kept until `finish` (or `abandon`).
pub fn seed(app: &App, tenant_id: &TenantId, from: &str) -> Result<()> {
    let c = of(app)?;
    let url = replica_url(&store_of(app)?, from, tenant_id.as_str());
    let dir = scratch(app, tenant_id.as_str());
    abandon(app, tenant_id);
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("data.db");
    let follow = || {
        litestream(app)?
            .args(["restore", "-f", "-follow-interval", "100ms", "-o"])
            .arg(&out)
            .arg(&url)
            .spawn()
            .map_err(|e| Error::invalid("litestream_missing", format!("cannot run {:?}: {e}", c.config.litestream)))
    };
    let mut child = follow()?;
    let started = Instant::now();
    while !out.with_file_name("data.db-txid").is_file() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            // A tenant created moments ago may not have its first copy in the store yet
            // (Litestream's directory watch picks new files up within seconds).
            if err.contains("no matching backup files") && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(250));
                let _ = std::fs::remove_file(&out);
                child = follow()?;
                continue;
            }
            return Err(Error::invalid(
                "seed_failed",
                format!("litestream restore of {url} ended ({status}): {}", err.trim().lines().last().unwrap_or("")),
            ));
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Err(Error::Retry(format!("the replica of {tenant_id} at {url} did not restore within 120 s")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c.followers.lock().insert(tenant_id.clone(), child);
    // Most assets are pulled now, while writes go on; `finish` pulls what was uploaded since.
    let pulled = super::files::pull_assets(app, tenant_id, from, &dir.join("assets"))
        .and_then(|_| super::files::pull_backups(app, tenant_id, from, &dir.join("backups")));
    if let Err(e) = pulled {
        crate::log::warn(&format!("move of {tenant_id}: files not all pulled yet ({e}); finish tries again"));
    }
    Ok(())
}

/// Stops a follower and removes its scratch files.
pub fn abandon(app: &App, id: &TenantId) {
    if let Some(c) = app.cluster.as_ref() {
        if let Some(mut child) = c.followers.lock().remove(id) {
            stop(&mut child);
        }
    }
    let _ = std::fs::remove_dir_all(scratch(app, id.as_str()));
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The last audit entry of a database file, read-only.
fn audit_head(path: &Path) -> Option<(i64, String)> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).ok()?;
    let _ = conn.busy_timeout(Duration::from_millis(200));
    crate::audit::head(&conn).ok().flatten()
}

/// Waits until the followed copy holds the source's last entry, stops following and installs
/// the tenant here.
pub fn finish(app: &App, body: &Value, from: &str) -> Result<Value> {
    let id = TenantId::parse(body["tenant_id"].as_str().unwrap_or(""))?;
    let want = (body["head"][0].as_i64().unwrap_or(-1), body["head"][1].as_str().unwrap_or("").to_string());
    let file = scratch(app, id.as_str()).join("data.db");
    let started = Instant::now();
    loop {
        if audit_head(&file).as_ref() == Some(&want) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            abandon(app, &id);
            return Err(Error::Retry(format!(
                "the replica of {id} did not reach the source's last write (audit entry {}) within 60 s: is Litestream running on node {from}?",
                want.0
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited_ms = started.elapsed().as_millis() as u64;
    if let Some(mut child) = of(app)?.followers.lock().remove(&id) {
        stop(&mut child);
    }
    // The source is frozen: its asset list is final.
    let pulled = super::files::pull_assets(app, &id, from, &file.with_file_name("assets"))
        .and_then(|_| super::files::pull_backups(app, &id, from, &file.with_file_name("backups")));
    if let Err(e) = pulled {
        abandon(app, &id);
        return Err(e);
    }
    install(app, &id, &file, &body["identity"], from, body["pinned"].as_bool().unwrap_or(true))?;
    let _ = std::fs::remove_dir_all(scratch(app, id.as_str()));
    let bytes = std::fs::metadata(app.paths.tenant_db(&id)).map(|m| m.len()).unwrap_or(0);
    let assets = super::files::asset_names(app, &id).map(|a| a.len()).unwrap_or(0);
    let backups = crate::backup::list(app, &id).map(|b| b.len()).unwrap_or(0);
    Ok(
        json!({"tenant_id": id.as_str(), "caught_up_ms": waited_ms, "bytes": bytes, "assets": assets, "backups": backups}),
    )
}

/// Puts a restored tenant file in place, checks it, enters the tenant in the catalog and takes
/// it in the directory (compare-and-set: it must still be on `from`). `pinned`: placed by hand
/// (rebalancing leaves it here).
pub fn install(app: &App, id: &TenantId, file: &Path, doc: &Value, from: &str, pinned: bool) -> Result<()> {
    let slug = doc["tenant"]["slug"].as_str().unwrap_or("").to_string();
    Slug::parse(&slug)?;
    {
        let conn = Connection::open(file)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(Error::Internal(format!("the restored file of {slug} fails quick_check: {ok}")));
        }
        // Litestream's bookkeeping tables start afresh with this node's Litestream.
        conn.execute_batch("DROP TABLE IF EXISTS _litestream_seq; DROP TABLE IF EXISTS _litestream_lock;")?;
    }
    for extra in ["data.db-txid", "data.db-shm", "data.db-wal"] {
        let _ = std::fs::remove_file(file.with_file_name(extra));
    }
    let dest = app.paths.tenant_db(id);
    if dest.exists() {
        // The copy this node kept after moving the tenant away (soft-deleted, in its grace
        // period) gives way; a tenant this node serves never does.
        let kept = crate::catalog::tenants::find_by_id(&*app.catalog.conn()?, id)?;
        if !kept.is_some_and(|t| t.status == TenantStatus::Deleted) {
            return Err(Error::conflict("tenant_exists", format!("node already has a file for tenant {id}")));
        }
        app.store.evict(id);
        let aside = app.paths.data_dir.join("trash").join(format!("{id}-kept-{}", crate::util::random_hex(4)));
        std::fs::create_dir_all(app.paths.data_dir.join("trash"))?;
        std::fs::rename(app.paths.tenant_dir(id), &aside)?;
        let _ = std::fs::remove_dir_all(&aside);
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(file, &dest)?;
    // The assets pulled beside the file (a move's; a failover has none to pull).
    let assets = file.with_file_name("assets");
    if assets.is_dir() {
        if let Err(e) = std::fs::rename(&assets, app.paths.tenant_assets(id)) {
            let _ = std::fs::remove_file(&dest);
            return Err(e.into());
        }
    }
    // And the snapshots pulled beside it, next to any this node kept of the tenant.
    if let Err(e) = super::files::move_into(&file.with_file_name("backups"), &app.paths.backups(id)) {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    let now = crate::util::now_unix();
    if let Err(e) = app.change(|tx| identity::import(tx, doc, now)) {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    let c = of(app)?;
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    let domains: Vec<String> =
        doc["domains"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_string)).collect();
    let flip = Change {
        slug: slug.clone(),
        tenant_id: id.to_string(),
        node: c.this().to_string(),
        state: "active".into(),
        pinned: Some(pinned),
        domains: Some(domains),
        bytes: Some(bytes),
        expect_node: Some(from.to_string()),
    };
    if let Err(e) = change(app, &[flip]) {
        // Not ours after all: take it out again so nothing answers for it here.
        let _ = app.change(|tx| crate::catalog::tenants::delete_row(tx, id));
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    app.invalidate_caches();
    if let Ok(t) = app.tenant(&Slug::parse(&slug)?) {
        if let Ok(opened) = app.open_tenant(&t) {
            if let Ok(conn) = opened.handle.conn() {
                if let Ok(Some(head)) = crate::audit::head(&conn) {
                    app.audit_dirty.mark_head(id, head);
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The orchestration, from any node's CLI.

/// What a move did and how long writes paused.
#[derive(Debug, serde::Serialize)]
pub struct MoveReport {
    pub slug: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
    /// Assets and snapshots the tenant has on the target (pulled from the source).
    pub assets: u64,
    pub backups: u64,
    pub seed_ms: u64,
    /// From the freeze to the directory naming the target.
    pub flipped_ms: u64,
    /// From the freeze to the source letting go (the router switched in between).
    pub write_pause_ms: u64,
    pub total_ms: u64,
}

/// Moves a tenant to node `to`, calling the source and the target. `pin`: the tenant stays on
/// `to` when rebalancing (a move by hand); rebalancing's own moves are not pinned. `after_flip` runs once the
/// directory names the target and before the source lets go: the router is switched there, so
/// that until it routes to the target, writes reaching the source still get 503 + Retry-After
/// rather than a redirect.
pub fn run(app: &App, slug: &Slug, to: &str, pin: bool, after_flip: &dyn Fn(&App) -> Result<()>) -> Result<MoveReport> {
    let c = of(app)?;
    store_of(app)?;
    let _ = super::sync(app);
    let p = c
        .locate(slug.as_str())
        .ok_or_else(|| Error::NotFound(format!("tenant {:?} in the cluster directory", slug.as_str())))?;
    let target = c.place(slug.as_str(), Some(to))?.clone();
    if p.node == to {
        return Err(Error::conflict("already_there", format!("{} is on node {to} already", slug.as_str())));
    }
    let source =
        c.config.node(&p.node).ok_or_else(|| Error::Internal(format!("node {} is not configured", p.node)))?.clone();
    let started = Instant::now();
    let moving = |state: &str, expect: &str| Change {
        slug: p.slug.clone(),
        tenant_id: p.tenant_id.clone(),
        node: p.node.clone(),
        state: state.into(),
        pinned: None,
        domains: None,
        bytes: None,
        expect_node: Some(expect.to_string()),
    };
    change(app, &[moving("moving", &p.node)])?;
    let seeded = c.client.call(
        &target,
        "POST",
        "/api/v1/cluster/moves/seed",
        Some(&json!({"tenant_id": p.tenant_id, "from": p.node})),
    );
    if let Err(e) = seeded {
        let _ = change(app, &[moving("active", &p.node)]);
        return Err(e);
    }
    let seed_ms = started.elapsed().as_millis() as u64;
    let pause = Instant::now();
    let path = |what: &str| format!("/api/v1/cluster/tenants/{}/{what}", slug.as_str());
    let undo = |app: &App| {
        let _ =
            c.client.call(&target, "POST", "/api/v1/cluster/moves/abandon", Some(&json!({"tenant_id": p.tenant_id})));
        let _ = c.client.call(&source, "POST", &path("thaw"), None);
        let _ = change(app, &[moving("active", &p.node)]);
    };
    let frozen = match c.client.call(&source, "POST", &path("freeze"), Some(&json!({"to": to}))) {
        Ok(f) => f,
        Err(e) => {
            undo(app);
            return Err(e);
        }
    };
    let mut body = frozen;
    body["from"] = json!(p.node);
    body["pinned"] = json!(pin);
    let finished = match c.client.call(&target, "POST", "/api/v1/cluster/moves/finish", Some(&body)) {
        Ok(f) => f,
        Err(e) => {
            undo(app);
            return Err(e);
        }
    };
    let flipped_ms = pause.elapsed().as_millis() as u64;
    let _ = super::sync(app);
    let routed = after_flip(app);
    c.client.call(&source, "POST", &path("release"), None)?;
    let write_pause_ms = pause.elapsed().as_millis() as u64;
    routed?;
    Ok(MoveReport {
        slug: slug.to_string(),
        from: p.node.clone(),
        to: to.to_string(),
        bytes: finished["bytes"].as_u64().unwrap_or(p.bytes),
        assets: finished["assets"].as_u64().unwrap_or(0),
        backups: finished["backups"].as_u64().unwrap_or(0),
        seed_ms,
        flipped_ms,
        write_pause_ms,
        total_ms: started.elapsed().as_millis() as u64,
    })
}
