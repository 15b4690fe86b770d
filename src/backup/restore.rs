//! Restores: a tenant's file rebuilt as of a snapshot or an instant (`build`: the snapshot,
//! then the change log's records up to the instant), put back in place (undoable) or into a
//! new tenant (a fork).

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use super::{change_log, create, extract, find, list, rfc3339_ms, Kind, Scratch, BATCH};
use crate::app::App;
use crate::catalog::tenants::TenantRecord;
use crate::db::{self, Durability};
use crate::error::{Error, Result};
use crate::ids::Slug;
use crate::replica::log::Record;
use crate::tenancy::Actor;
use crate::util::now_millis;

/// What a restore starts from.
pub enum Target {
    /// A snapshot as it is.
    Backup(String),
    /// An instant (ms): the newest snapshot at or before it, plus the change log up to it.
    At(i64),
}

/// How a restore's file was made.
#[derive(Debug, Serialize)]
pub struct Built {
    /// The snapshot it started from (None: the change log's own image).
    pub backup: Option<String>,
    /// Commits of the change log applied on top, and the position and commit time reached.
    pub commits_applied: u64,
    pub position: Option<u64>,
    pub state_at: String,
}

/// Builds the tenant's file as of `target` into `dest`.
pub fn build(app: &App, t: &TenantRecord, target: &Target, dest: &Path) -> Result<Built> {
    match target {
        Target::Backup(b) => {
            let m = find(app, &t.id, b)?;
            extract(app, &t.id, &m, dest)?;
            let state_at = m.created_at();
            Ok(Built { backup: Some(m.id), commits_applied: 0, position: m.position, state_at })
        }
        Target::At(at) => build_at(app, t, *at, dest),
    }
}

fn build_at(app: &App, t: &TenantRecord, at: i64, dest: &Path) -> Result<Built> {
    let now = now_millis();
    if at > now {
        return Err(Error::invalid("invalid_time", format!("{} is in the future", rfc3339_ms(at))));
    }
    let log = change_log(app, &t.id);
    if !log.dir.is_dir() {
        return Err(Error::invalid(
            "restore_point_not_covered",
            "the change log is off (it is kept while replicas are on): restore a backup as it is with --id",
        ));
    }
    let snapshots = list(app, &t.id)?;
    let base = snapshots.iter().find(|m| m.created_at_ms <= at && m.position.is_some());
    let Some(base) = base else {
        let oldest = snapshots.iter().filter(|m| m.position.is_some()).map(|m| m.created_at()).next_back();
        return Err(Error::invalid(
            "restore_point_not_covered",
            match oldest {
                Some(o) => format!("no backup is older than {}: the earliest restorable instant is {o}", rfc3339_ms(at)),
                None => "this tenant has no backup taken with the change log on (replicas on): restore --at needs one; take one with `tenantd backup create`".to_string(),
            },
        ));
    };
    let from = base.position.unwrap_or(0);
    extract(app, &t.id, base, dest)?;
    let conn = Connection::open(dest)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch("PRAGMA synchronous=OFF;")?;
    let mut batch: Vec<Record> = Vec::new();
    let mut applied = 0u64;
    let mut last: Option<(u64, i64)> = None;
    let mut gap = None;
    let read = log.read_after(from, None, |r| {
        if r.time_ms > at {
            return Ok(false);
        }
        let expected = last.map(|(p, _)| p).unwrap_or(from) + 1;
        if r.position != expected {
            gap = Some((expected, r.position));
            return Ok(false);
        }
        last = Some((r.position, r.time_ms));
        batch.push(r);
        if batch.len() >= BATCH {
            applied += batch.len() as u64;
            crate::replica::mirror::apply(&conn, &batch)?;
            batch.clear();
        }
        Ok(true)
    });
    // A record past `at` stops the read after it was handed over: it is not in the batch.
    if let Err(e) = read {
        return Err(Error::invalid(
            "restore_point_not_covered",
            format!("the change log no longer reaches back to backup {} ({e})", base.id),
        ));
    }
    if let Some((want, got)) = gap {
        return Err(Error::Internal(format!("the change log skips from position {want} to {got}")));
    }
    applied += batch.len() as u64;
    crate::replica::mirror::apply(&conn, &batch)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    db::integrity_check(&conn)?;
    drop(conn);
    let (position, state_at) = match last {
        Some((p, ms)) => (Some(p), rfc3339_ms(ms)),
        None => (base.position, base.created_at()),
    };
    Ok(Built { backup: Some(base.id.clone()), commits_applied: applied, position, state_at })
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub tenant: String,
    /// The tenant that now holds the restored data (the same one, or the fork).
    pub into: String,
    pub built: Built,
    /// The snapshot of the state the restore replaced (restore it to undo), in place only.
    pub undo_backup: Option<String>,
}

/// Restores the tenant as of `target`: in place (keeping the current state as a `pre-restore`
/// snapshot first), or into a new tenant `fork_as` (the original is left alone).
pub fn restore(
    app: &App,
    t: &TenantRecord,
    target: &Target,
    fork_as: Option<&Slug>,
    actor: &Actor,
) -> Result<Restored> {
    let scratch = Scratch::new(app, "restore")?;
    let built = build(app, t, target, scratch.path())?;
    if let Some(slug) = fork_as {
        let name = format!("{} (restored to {})", t.name, built.state_at);
        let opts = crate::tenancy::archive::ImportOptions { slug, name: Some(&name), plan: Some(&t.plan) };
        let fork = crate::tenancy::archive::import(app, scratch.path(), &opts, actor)?;
        return Ok(Restored { tenant: t.slug.to_string(), into: fork.slug.to_string(), built, undo_backup: None });
    }
    let undo = create(app, t, Kind::PreRestore)?;
    let path = app.paths.tenant_db(&t.id);
    app.store.evict(&t.id);
    let mut live = db::open_existing(&path, Durability::Normal)?;
    // Through SQLite's backup API, like a fleet rollback: a running server's connections see
    // the restored content at their next transaction, not a file swapped under them.
    live.restore(rusqlite::MAIN_DB, scratch.path(), None::<fn(rusqlite::backup::Progress)>)?;
    db::integrity_check(&live)?;
    let head = crate::audit::head(&live)?;
    drop(live);
    // Not commits the capture hook saw: the log (and the replicas) go on from an image, taken
    // now (this may be a CLI that exits next).
    crate::replica::capture::replaced(&path);
    crate::replica::capture::opened(&path);
    let details = serde_json::json!({
        "backup": built.backup, "commits_applied": built.commits_applied, "state_at": built.state_at,
        "undo_backup": undo.id,
    });
    app.change(|tx| {
        // The audit chain is the restored one now: its head becomes the anchor.
        match &head {
            Some((last, hash)) => tx.execute(
                "INSERT INTO audit_anchors(tenant_id, last_id, last_hash, anchored_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(tenant_id) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash,
                   anchored_at = excluded.anchored_at",
                rusqlite::params![t.id.as_str(), last, hash, crate::util::now_unix()],
            )?,
            None => tx.execute("DELETE FROM audit_anchors WHERE tenant_id = ?1", [t.id.as_str()])?,
        };
        crate::tenancy::record_event(tx, actor, "tenant.restored", t, details.clone())
    })?;
    Ok(Restored { tenant: t.slug.to_string(), into: t.slug.to_string(), built, undo_backup: Some(undo.id) })
}

/// A restore into a new tenant that `owner` (a user id) then owns: what a tenant's own
/// people may ask for (restoring in place is the operator's).
pub fn fork(
    app: &App,
    t: &TenantRecord,
    target: &Target,
    slug: &Slug,
    actor: &Actor,
    owner: Option<i64>,
) -> Result<Restored> {
    let r = restore(app, t, target, Some(slug), actor)?;
    if let Some(user) = owner {
        let new = app.tenant(slug)?;
        app.change(|tx| crate::catalog::identity::add_membership(tx, &new.id, user, "owner", crate::util::now_unix()))?;
    }
    Ok(r)
}
