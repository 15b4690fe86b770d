//! Tenant lifecycle: create, suspend, resume, soft delete, purge, plan changes. Every
//! transition is one catalog transaction with its platform-audit entry.

pub mod archive;
pub mod assets;

use std::path::Path;

use serde_json::json;

use crate::app::App;
use crate::catalog::audit::{self, Event};
use crate::catalog::tenants::{self, DeletionRecord, TenantRecord, TenantStatus};
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::util::now_unix;

/// Who asked for a change, for the audit trail (`cli`, `system`, `user:<id>`).
#[derive(Clone, Debug)]
pub struct Actor(pub String);

impl Actor {
    pub fn cli() -> Self {
        Actor("cli".into())
    }
}

/// Display names: 1..=200 characters, no control characters.
pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid("invalid_name", "tenant name must be 1-200 characters without control characters"));
    }
    Ok(name.to_string())
}

pub fn validate_plan(app: &App, plan: &str) -> Result<()> {
    if app.config.plans.contains_key(plan) {
        Ok(())
    } else {
        Err(Error::invalid(
            "unknown_plan",
            format!(
                "unknown plan {:?}: configured plans are {}",
                crate::ids::truncate_for_message(plan),
                app.config.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ))
    }
}

/// Creates a tenant from a copy of the pre-migrated template.
pub fn create(app: &App, slug: &Slug, name: &str, plan: Option<&str>, actor: &Actor) -> Result<TenantRecord> {
    let name = validate_name(name)?;
    let plan = plan.unwrap_or(&app.config.default_plan).to_string();
    validate_plan(app, &plan)?;
    if tenants::find_by_slug(&*app.catalog.conn()?, slug)?.is_some() {
        return Err(Error::conflict("slug_taken", format!("a tenant with slug {:?} already exists", slug.as_str())));
    }
    let template = app.store.ensure_template()?;
    let id = TenantId::mint();
    let dir = app.paths.tenant_dir(&id);
    install_tenant_dir(app, &id, |db_tmp| Ok(std::fs::copy(&template, db_tmp).map(|_| ())?))?;
    let now = now_unix();
    let record = TenantRecord::new_active(
        id.clone(),
        slug.clone(),
        name.clone(),
        plan.clone(),
        app.store.schema().target(),
        now,
    );
    let res = app.change(|tx| {
        tenants::insert(tx, &record)?;
        tenants::insert_config(tx, &id, &name, now)?;
        tenants::set_plan(tx, &id, &plan, now)?;
        crate::billing::subscription::start(tx, app, &id, &plan, "month", &actor.0, now)?;
        record_event(tx, actor, "tenant.create", &record, json!({"name": name, "plan": plan}))
    });
    if let Err(e) = res {
        // The slug was taken between our check and the insert: leave nothing behind.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(record)
}

/// Builds `tenants/<id>/` with `data.db` written by `fill` under a temporary name first, so a
/// crash never leaves a half-written `data.db` behind.
pub(crate) fn install_tenant_dir(app: &App, id: &TenantId, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = app.paths.tenant_dir(id);
    std::fs::create_dir_all(app.paths.tenant_assets(id))?;
    let tmp = dir.join("data.db.partial");
    let res = fill(&tmp).and_then(|_| Ok(std::fs::rename(&tmp, app.paths.tenant_db(id))?));
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    res
}

pub fn suspend(app: &App, slug: &Slug, actor: &Actor) -> Result<TenantRecord> {
    transition(app, slug, actor, "tenant.suspend", |t| match t.status {
        TenantStatus::Active => Ok((TenantStatus::Suspended, None)),
        TenantStatus::Suspended => Err(Error::conflict("already_suspended", "tenant is already suspended")),
        TenantStatus::Deleted => Err(Error::conflict("tenant_deleted", "tenant is deleted; resume it first")),
    })
}

/// Resumes a suspended tenant, or restores a soft-deleted one within its grace period.
pub fn resume(app: &App, slug: &Slug, actor: &Actor) -> Result<TenantRecord> {
    transition(app, slug, actor, "tenant.resume", |t| match t.status {
        TenantStatus::Active => Err(Error::conflict("already_active", "tenant is already active")),
        TenantStatus::Suspended | TenantStatus::Deleted => Ok((TenantStatus::Active, None)),
    })
}

/// Soft delete: the tenant stops answering and is purged after the grace period.
pub fn soft_delete(app: &App, slug: &Slug, actor: &Actor) -> Result<TenantRecord> {
    let grace = i64::from(app.config.delete_grace_days) * 86_400;
    let t = transition(app, slug, actor, "tenant.delete", |t| match t.status {
        TenantStatus::Deleted => {
            Err(Error::conflict("already_deleted", "tenant is already deleted; use --purge to remove its files"))
        }
        _ => Ok((TenantStatus::Deleted, Some(now_unix() + grace))),
    })?;
    app.store.evict(&t.id);
    // A deleted tenant's assets are no longer served: its edge copies go now, and edges pull
    // nothing of a deleted tenant (`cdn::Cdn::fetch`). Restoring the tenant lets them pull again.
    crate::cdn::purge(&app.paths.data_dir, &t.id, None)?;
    Ok(t)
}

fn transition(
    app: &App,
    slug: &Slug,
    actor: &Actor,
    action: &str,
    next: impl FnOnce(&TenantRecord) -> Result<(TenantStatus, Option<i64>)>,
) -> Result<TenantRecord> {
    app.change(|tx| {
        let mut t = tenants::get_by_slug(tx, slug)?;
        let from = t.status;
        let (status, purge_after) = next(&t)?;
        let now = now_unix();
        tenants::set_status(tx, &t.id, status, now, purge_after)?;
        t.status = status;
        t.purge_after = purge_after;
        t.updated_at = now;
        record_event(tx, actor, action, &t, json!({"from": from.as_str(), "to": status.as_str()}))?;
        Ok(t)
    })
}

pub fn set_plan(app: &App, slug: &Slug, plan: &str, actor: &Actor) -> Result<TenantRecord> {
    set_plan_and_interval(app, slug, plan, None, actor)
}

/// `set_plan`, also moving a subscription to another billing interval (`month`, `year`).
pub fn set_plan_and_interval(
    app: &App,
    slug: &Slug,
    plan: &str,
    interval: Option<&str>,
    actor: &Actor,
) -> Result<TenantRecord> {
    validate_plan(app, plan)?;
    if let Some(i) = interval {
        crate::billing::subscription::check_interval(i)?;
    }
    app.change(|tx| {
        let mut t = tenants::get_by_slug(tx, slug)?;
        let old = std::mem::replace(&mut t.plan, plan.to_string());
        if old != plan || interval.is_some() {
            crate::billing::subscription::change_plan(tx, app, &t.id, plan, interval, &actor.0, now_unix())?;
        }
        if old != plan {
            tenants::set_plan(tx, &t.id, plan, now_unix())?;
            record_event(tx, actor, "tenant.set_plan", &t, json!({"from": old, "to": plan}))?;
        }
        Ok(t)
    })
}

/// Per-tenant overrides of plan limits (`{}` clears them), validated against the plan.
pub fn set_limits(app: &App, slug: &Slug, limits: &serde_json::Value, actor: &Actor) -> Result<TenantRecord> {
    let t = app.tenant(slug)?;
    let obj =
        limits.as_object().ok_or_else(|| Error::invalid("invalid_limit", "limits must be an object of plan keys"))?;
    let base = app.config.plans.get(&t.plan).cloned().unwrap_or_default();
    crate::limits::apply_overrides(&base, limits)?;
    let mut settings = crate::catalog::identity::tenant_settings(&*app.catalog.conn()?, &t.id)?;
    if obj.is_empty() {
        if let Some(m) = settings.as_object_mut() {
            m.remove("limits");
        }
    } else {
        settings["limits"] = limits.clone();
    }
    app.change(|tx| {
        crate::catalog::identity::update_tenant_config(tx, &t.id, None, None, &settings, now_unix())?;
        record_event(tx, actor, "tenant.set_limits", &t, json!({"limits": limits}))
    })?;
    Ok(t)
}

/// What a purge removed.
#[derive(Debug, serde::Serialize)]
pub struct PurgeReport {
    pub tenant_id: String,
    pub files_removed: i64,
    pub bytes_removed: i64,
}

/// Removes a tenant for good: its file with `-wal`/`-shm`, assets and backups. The directory is
/// first renamed aside, so a failure of the catalog step can put it back untouched.
pub fn purge(app: &App, slug: &Slug, actor: &Actor) -> Result<PurgeReport> {
    let t = app.tenant(slug)?;
    app.store.evict(&t.id);
    let trash = app.paths.data_dir.join("trash").join(format!("{}-{}", t.id, crate::util::random_hex(4)));
    std::fs::create_dir_all(&trash)?;
    let moves =
        [(app.paths.tenant_dir(&t.id), trash.join("tenant")), (app.paths.backups(&t.id), trash.join("backups"))];
    for (from, to) in &moves {
        if from.exists() {
            std::fs::rename(from, to)?;
        }
    }
    let (files, bytes) = dir_usage(&trash);
    let now = now_unix();
    let res = app.change(|tx| {
        tenants::insert_deletion(
            tx,
            &DeletionRecord {
                tenant_id: t.id.to_string(),
                slug: t.slug.to_string(),
                name: t.name.clone(),
                deleted_at: t.deleted_at.unwrap_or(now),
                purged_at: now,
                actor: actor.0.clone(),
                files_removed: files,
                bytes_removed: bytes,
            },
        )?;
        record_event(tx, actor, "tenant.purge", &t, json!({"files_removed": files, "bytes_removed": bytes}))?;
        tenants::delete_row(tx, &t.id)
    });
    if let Err(e) = res {
        for (from, to) in &moves {
            if to.exists() {
                let _ = std::fs::rename(to, from);
            }
        }
        let _ = std::fs::remove_dir_all(&trash);
        return Err(e);
    }
    std::fs::remove_dir_all(&trash)?;
    // Replicas' mirrors and the change log hold the tenant's rows too.
    if let Some(r) = &app.replication {
        r.forget(&t.id);
    }
    crate::replica::purge_copies(&app.paths.data_dir, &t.id)?;
    crate::cdn::purge(&app.paths.data_dir, &t.id, None)?;
    crate::cluster::forget(app, &t);
    Ok(PurgeReport { tenant_id: t.id.to_string(), files_removed: files, bytes_removed: bytes })
}

/// Purges soft-deleted tenants whose grace period is over.
pub fn purge_expired(app: &App, actor: &Actor) -> Result<Vec<(Slug, PurgeReport)>> {
    let now = now_unix();
    let due: Vec<TenantRecord> = tenants::list(&*app.catalog.conn()?, true)?
        .into_iter()
        .filter(|t| t.status == TenantStatus::Deleted && t.purge_after.is_some_and(|p| p <= now))
        .collect();
    due.into_iter().map(|t| Ok((t.slug.clone(), purge(app, &t.slug, actor)?))).collect()
}

fn dir_usage(dir: &Path) -> (i64, i64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    files += 1;
                    bytes += m.len() as i64;
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}

pub(crate) fn record_event(
    tx: &rusqlite::Connection,
    actor: &Actor,
    action: &str,
    t: &TenantRecord,
    details: serde_json::Value,
) -> Result<()> {
    audit::append(
        tx,
        now_unix(),
        &Event {
            actor: &actor.0,
            action,
            tenant_id: Some(t.id.as_str()),
            resource: Some(t.slug.as_str()),
            outcome: "ok",
            details,
        },
    )?;
    Ok(())
}
