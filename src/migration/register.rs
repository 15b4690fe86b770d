//! The end of a run: the built tenants registered all together (files moved into place, then
//! one catalog transaction), the fleet-schema check a run makes before it builds anything, and
//! `rollback`, which removes everything a run created.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::config::{MigrationConfig, SchemaMode};
use super::inspect::{self, Schema};
use super::plan::Plans;
use super::run::{RunReport, TenantOutcome};
use super::source::redact_url;
use crate::app::App;
use crate::catalog::{audit, identity, imports, tenants};
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::tenancy::Actor;
use crate::util::now_unix;

/// What a run read and created: enough for `validate` and `rollback` to work later.
pub(super) fn manifest(config: &MigrationConfig, report: &RunReport) -> String {
    let mut config = config.clone();
    for s in &mut config.sources {
        s.url = redact_url(&s.url);
    }
    json!({
        "config": config,
        "sources": report.sources.iter().map(|s| json!({"source": s.source, "snapshot": s.snapshot})).collect::<Vec<_>>(),
        "tenants": report.tenants.iter().filter(|t| t.status == "registered").map(|t| json!({
            "slug": t.slug, "tenant_id": t.tenant_id, "source": t.source, "tn": t.tn,
            "tallies": t.tallies,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Moves the built files into place and records every tenant, user and membership in one
/// catalog transaction; on failure the moved files are removed again and nothing is recorded.
pub(super) fn register(
    app: &App,
    config: &MigrationConfig,
    run_id: &str,
    build_dir: &Path,
    outcomes: &mut [TenantOutcome],
    actor: &Actor,
) -> Result<(usize, usize, usize)> {
    // Journal the ids first: a crash between moving the files and the catalog transaction
    // leaves directories that `migration rollback RUN` can still find and remove.
    app.catalog.write(|tx| {
        for o in outcomes.iter().filter(|o| o.status == "built") {
            imports::record_created(tx, run_id, "tenant", Some(&TenantId::parse(&o.tenant_id)?), None)?;
        }
        Ok(())
    })?;
    let mut moved: Vec<TenantId> = Vec::new();
    let undo = |moved: &[TenantId]| {
        for id in moved {
            let _ = std::fs::remove_dir_all(app.paths.tenant_dir(id));
        }
    };
    for o in outcomes.iter().filter(|o| o.status == "built") {
        let id = TenantId::parse(&o.tenant_id)?;
        let res = crate::tenancy::install_tenant_dir(app, &id, |tmp| {
            Ok(std::fs::rename(build_dir.join(format!("{}.db", o.tenant_id)), tmp)?)
        });
        if let Err(e) = res {
            undo(&moved);
            return Err(e);
        }
        moved.push(id);
    }
    let target = app.store.schema().target();
    let plan = config.sources.first().and_then(|s| s.tenant.plan.clone());
    let plan = plan.unwrap_or_else(|| app.config.default_plan.clone());
    crate::tenancy::validate_plan(app, &plan).inspect_err(|_| undo(&moved))?;
    let res = app.change(|tx| {
        let now = now_unix();
        let (mut users_created, mut memberships) = (0, 0);
        for o in outcomes.iter().filter(|o| o.status == "built") {
            let id = TenantId::parse(&o.tenant_id)?;
            let plan = config.sources.get(o.source).and_then(|s| s.tenant.plan.clone()).unwrap_or_else(|| plan.clone());
            let version = if config.schema_mode == SchemaMode::Fleet { target } else { 0 };
            let mut record = tenants::TenantRecord::new_active(id.clone(), Slug::parse(&o.slug)?, o.name.clone(), plan.clone(), version, now);
            record.custom_schema = config.schema_mode == SchemaMode::Keep;
            tenants::insert(tx, &record)?;
            tenants::insert_config(tx, &id, &o.name, now)?;
            tenants::set_plan(tx, &id, &plan, now)?;
            crate::billing::subscription::start(tx, app, &id, &plan, "month", &actor.0, now)?;
            if config.schema_mode == SchemaMode::Keep {
                imports::mark_custom_schema(tx, &id, Some(run_id), now)?;
            }
            imports::record_created(tx, run_id, "tenant", Some(&id), None)?;
            audit::append(
                tx,
                now,
                &audit::Event {
                    actor: &actor.0,
                    action: "tenant.create",
                    tenant_id: Some(id.as_str()),
                    resource: Some(&o.slug),
                    outcome: "ok",
                    details: json!({"name": o.name, "plan": plan, "migration_run": run_id}),
                },
            )?;
            for u in &o.members {
                let user_id = match identity::user_by_email(tx, &u.email)? {
                    Some(existing) => existing.id,
                    None => {
                        let id = identity::insert_user(tx, &u.email, &u.password_hash, false, now)?;
                        imports::record_created(tx, run_id, "user", None, Some(id))?;
                        users_created += 1;
                        id
                    }
                };
                if identity::membership_of(tx, &id, user_id)?.is_none() {
                    identity::add_membership(tx, &id, user_id, &u.role, now)?;
                    imports::record_created(tx, run_id, "membership", Some(&id), Some(user_id))?;
                    memberships += 1;
                }
            }
        }
        audit::append(
            tx,
            now,
            &audit::Event {
                actor: &actor.0,
                action: "migration.run",
                tenant_id: None,
                resource: Some(run_id),
                outcome: "ok",
                details: json!({"tenants": outcomes.iter().filter(|o| o.status == "built").count(), "users_created": users_created}),
            },
        )?;
        Ok((users_created, memberships))
    });
    match res {
        Ok((u, m)) => {
            let mut n = 0;
            for o in outcomes.iter_mut().filter(|o| o.status == "built") {
                o.status = "registered".into();
                n += 1;
            }
            Ok((n, u, m))
        }
        Err(e) => {
            undo(&moved);
            Err(e)
        }
    }
}

/// Refuses a source whose planned tables differ from the fleet's tenant schema, naming the
/// differences.
pub(super) fn check_fleet_schema(template: &Path, plans: &Plans, source: &Schema) -> Result<()> {
    let conn = crate::db::open_read_only(template)?;
    let fleet = inspect::read(&conn, "main", false)?;
    let mut diffs = Vec::new();
    let app_tables: Vec<&inspect::Table> = fleet.tables.iter().filter(|t| !t.name.starts_with("_tenantd_")).collect();
    for p in &plans.tables {
        let Some(f) = app_tables.iter().find(|t| t.name.eq_ignore_ascii_case(&p.target)) else {
            diffs.push(format!("table {} is not in the fleet schema", p.target));
            continue;
        };
        let src = &source.tables[p.index];
        for (i, c) in p.columns.iter().enumerate() {
            match f.column(c) {
                None => diffs.push(format!("column {}.{c} is not in the fleet schema", p.target)),
                Some(fc) => {
                    // The source column a plain copy reads (`t."name"`); transformed ones have none.
                    let read = src.columns.iter().find(|sc| p.select[i] == format!("t.{}", inspect::q(&sc.name)));
                    if let Some(sc) = read {
                        if !sc.decl_type.eq_ignore_ascii_case(&fc.decl_type) {
                            diffs.push(format!(
                                "column {}.{c} is {} in the source, {} in the fleet schema",
                                p.target, sc.decl_type, fc.decl_type
                            ));
                        }
                    }
                }
            }
        }
        for fc in &f.columns {
            if !p.columns.iter().any(|c| c.eq_ignore_ascii_case(&fc.name))
                && fc.not_null
                && fc.default.is_none()
                && fc.pk == 0
            {
                diffs
                    .push(format!("column {}.{} (NOT NULL, no default) is missing from the source", p.target, fc.name));
            }
        }
    }
    for f in &app_tables {
        if !plans.tables.iter().any(|p| p.target.eq_ignore_ascii_case(&f.name)) {
            diffs.push(format!("fleet table {} has no source table", f.name));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = diffs.iter().take(12).cloned().collect();
    Err(Error::invalid(
        "schema_mismatch",
        format!(
            "the source's schema differs from the fleet's tenant schema ({} differences: {}{}); make the source's schema the fleet's (`analyze-schema --emit-schema DIR`, then tenant_schema_dir = DIR), map names in a config, or use --schema-mode keep",
            diffs.len(),
            shown.join("; "),
            if diffs.len() > shown.len() { "; …" } else { "" }
        ),
    ))
}

#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub run_id: String,
    pub tenants_removed: Vec<String>,
    pub users_removed: usize,
    pub users_kept: Vec<String>,
    pub elapsed_ms: f64,
}

/// Removes every tenant, user and membership a run created, and the run's snapshot.
pub fn rollback(app: &App, run_id: &str, actor: &Actor) -> Result<RollbackReport> {
    let started = Instant::now();
    let conn = app.catalog.conn()?;
    let run = imports::run(&conn, run_id)?.ok_or_else(|| Error::NotFound(format!("migration run {run_id:?}")))?;
    if run.status == "rolled_back" {
        return Err(Error::conflict("already_rolled_back", format!("migration run {run_id} was already rolled back")));
    }
    let created = imports::created(&conn, run_id)?;
    drop(conn);
    let mut removed = Vec::new();
    for c in &created {
        let Some(tid) = c.tenant_id.as_deref().filter(|_| c.kind == "tenant") else { continue };
        let id = TenantId::parse(tid)?;
        match tenants::find_by_id(&*app.catalog.conn()?, &id)? {
            Some(t) => {
                crate::tenancy::purge(app, &t.slug, actor)?;
                removed.push(t.slug.to_string());
            }
            // Journaled but never registered (the run stopped between moving its files and
            // the catalog transaction): only its directory is left.
            None => {
                let dir = app.paths.tenant_dir(&id);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                    removed.push(format!("{tid} (files of an unregistered tenant)"));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(app.paths.tmp().join(format!("migration-{run_id}")));
    let mut users_removed = 0;
    let mut users_kept = Vec::new();
    app.change(|tx| {
        for c in &created {
            let Some(uid) = c.user_id.filter(|_| c.kind == "user") else { continue };
            let others: i64 =
                tx.query_row("SELECT count(*) FROM memberships WHERE user_id = ?1", [uid], |r| r.get(0))?;
            if others == 0 {
                users_removed += tx.execute("DELETE FROM users WHERE id = ?1", [uid])?;
            } else if let Some(u) = identity::user_by_id(tx, uid)? {
                users_kept.push(format!("{} (member of {others} other tenant(s) since the run)", u.email));
            }
        }
        imports::set_status(tx, run_id, "rolled_back", now_unix())?;
        audit::append(
            tx,
            now_unix(),
            &audit::Event {
                actor: &actor.0,
                action: "migration.rollback",
                tenant_id: None,
                resource: Some(run_id),
                outcome: "ok",
                details: json!({"tenants_removed": removed.len(), "users_removed": users_removed}),
            },
        )?;
        Ok(())
    })?;
    let _ = std::fs::remove_dir_all(app.paths.data_dir.join("backups").join("migrations").join(run_id));
    Ok(RollbackReport {
        run_id: run_id.to_string(),
        tenants_removed: removed,
        users_removed,
        users_kept,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
