//! Fleet schema migrations: status, migrate (dry run, canary, parallel, continue on error,
//! snapshot first) and rollback of the last run. The ledger of every run and per-tenant outcome
//! lives in the catalog (`catalog::ledger`). Rules over the whole fleet, so a domain module on
//! top of `store` (it was `store::fleet`; storage knows no rules).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::json;

use crate::app::App;
use crate::catalog::audit;
use crate::catalog::ledger::{self, TenantOutcome};
use crate::catalog::tenants::{self, TenantRecord};
use crate::db::{self, Durability};
use crate::error::{Error, Result};
use crate::ids::Slug;
use crate::store::schema::TenantSchema;
use crate::util::{now_unix, par_map, random_hex};

/// Reads a tenant file's `user_version` without writing anything.
fn file_version(path: &Path) -> Result<i64> {
    db::user_version(&db::open_read_only(path)?)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2)
}

// ---------------------------------------------------------------------------------------------
// status

#[derive(Debug, Serialize)]
pub struct FileStatus {
    pub version: i64,
    pub name: String,
    pub sha256: String,
    /// Set when the file changed since it was first applied.
    pub drift: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TenantSchemaStatus {
    pub slug: String,
    pub id: String,
    pub tenant_status: String,
    pub version: Option<i64>,
    pub catalog_version: i64,
    /// current | behind | ahead | held | drift | missing | error
    pub state: String,
    pub detail: Option<String>,
    pub last_run: Option<i64>,
    pub last_outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub target: i64,
    pub files: Vec<FileStatus>,
    pub tenants: Vec<TenantSchemaStatus>,
    pub counts: std::collections::BTreeMap<String, usize>,
}

pub fn status(app: &App) -> Result<FleetStatus> {
    let schema = app.store.schema();
    let conn = app.catalog.conn()?;
    let files = file_statuses(app, &conn)?;
    let list = tenants::list(&conn, false)?;
    drop(conn);
    let statuses = par_map(&list, default_threads(), &|_| {}, |t| tenant_status(app, t));
    let mut counts = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(statuses.len());
    for s in statuses {
        let s = s?;
        *counts.entry(s.state.clone()).or_insert(0) += 1;
        out.push(s);
    }
    Ok(FleetStatus { target: schema.target(), files, tenants: out, counts })
}

fn file_statuses(app: &App, conn: &Connection) -> Result<Vec<FileStatus>> {
    let known = ledger::file_hashes(conn)?;
    Ok(app
        .store
        .schema()
        .migrations
        .iter()
        .map(|m| {
            let drift = known.iter().find(|(v, _, _)| *v == m.version).and_then(|(_, name, sha)| {
                (sha != &m.sha256).then(|| {
                    format!(
                        "{} changed since it was first applied (was {}…, now {}…)",
                        name,
                        &sha[..12],
                        &m.sha256[..12]
                    )
                })
            });
            FileStatus { version: m.version, name: m.name.clone(), sha256: m.sha256.clone(), drift }
        })
        .collect())
}

fn tenant_status(app: &App, t: &TenantRecord) -> Result<TenantSchemaStatus> {
    let schema = app.store.schema();
    let path = app.paths.tenant_db(&t.id);
    let last = ledger::last_outcome(&*app.catalog.conn()?, t.id.as_str())?;
    let (version, state, detail) = match db::open_read_only(&path) {
        Err(_) => (None, "missing", Some(format!("no data file at {}", path.display()))),
        Ok(conn) => match (db::user_version(&conn), db::schema_fingerprint(&conn)) {
            (Ok(v), Ok(_)) if t.custom_schema => (
                Some(v),
                "custom",
                Some("keeps its own schema (migration --schema-mode keep); not fleet-migrated".into()),
            ),
            (Ok(v), Ok(fp)) => {
                let (state, detail) = if v > schema.target() {
                    ("ahead", None)
                } else if Some(fp.as_str()) != schema.fingerprint(v) && v > 0 {
                    ("drift", Some(format!("tables differ from schema version {v}")))
                } else if v == schema.target() {
                    ("current", None)
                } else if t.schema_hold.is_some_and(|h| v >= h) {
                    ("held", Some("rolled back; `schema migrate` releases the hold".into()))
                } else {
                    ("behind", None)
                };
                (Some(v), state, detail)
            }
            (Err(e), _) | (_, Err(e)) => (None, "error", Some(e.log_detail())),
        },
    };
    Ok(TenantSchemaStatus {
        slug: t.slug.to_string(),
        id: t.id.to_string(),
        tenant_status: t.status.as_str().into(),
        version,
        catalog_version: t.schema_version,
        state: state.into(),
        detail,
        last_run: last.as_ref().map(|l| l.0),
        last_outcome: last.map(|l| match l.2 {
            Some(e) => format!("{}: {e}", l.1),
            None => l.1,
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// migrate

#[derive(Default)]
pub struct MigrateOptions {
    pub dry_run: bool,
    pub canary: Option<usize>,
    pub canary_tenants: Vec<Slug>,
    pub parallel: usize,
}

#[derive(Debug, Serialize)]
pub struct MigrateReport {
    pub run_id: Option<i64>,
    pub dry_run: bool,
    pub target: i64,
    pub tenants: usize,
    pub already_current: usize,
    pub outcomes: Vec<TenantOutcome>,
    pub stopped_after_canary: bool,
    pub drift: Vec<String>,
    pub elapsed_ms: f64,
}

impl MigrateReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.status == "failed" || o.status == "would_fail").count()
    }
    pub fn migrated(&self) -> usize {
        self.outcomes.iter().filter(|o| o.status == "migrated" || o.status == "would_migrate").count()
    }
    /// True when every tenant is (or, for a dry run, would be) at the target version.
    pub fn success(&self) -> bool {
        self.failed() == 0 && !self.stopped_after_canary
    }
}

struct Pending {
    tenant: TenantRecord,
    from: i64,
}

/// Migrates the fleet to the schema's target version.
pub fn migrate(
    app: &App,
    opts: &MigrateOptions,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<MigrateReport> {
    let started = Instant::now();
    let schema = app.store.schema();
    let target = schema.target();
    let parallel = opts.parallel.max(1);
    let list = tenants::list(&*app.catalog.conn()?, false)?;
    let drift: Vec<String> = file_statuses(app, &*app.catalog.conn()?)?.into_iter().filter_map(|f| f.drift).collect();

    // Phase 1: read versions only. A no-op run stops here having written nothing.
    let total = list.len();
    let versions = par_map(&list, parallel.max(default_threads()), &|n| progress("reading versions", n, total), |t| {
        file_version(&app.paths.tenant_db(&t.id))
    });
    let mut pending = Vec::new();
    let mut outcomes = Vec::new();
    let mut already_current = 0;
    for (t, v) in list.into_iter().zip(versions) {
        match v {
            // Tenants on their own schema are migrated on their own (`--tenant`), never here.
            Ok(_) if t.custom_schema => {}
            Ok(v) if v >= target => already_current += 1,
            Ok(v) => pending.push(Pending { tenant: t, from: v }),
            Err(e) => outcomes.push(outcome(&t, -1, target, "failed", Some(e.log_detail()), 0.0, None)),
        }
    }
    let mut report = MigrateReport {
        run_id: None,
        dry_run: opts.dry_run,
        target,
        tenants: total,
        already_current,
        outcomes,
        stopped_after_canary: false,
        drift,
        elapsed_ms: 0.0,
    };
    if pending.is_empty() && report.outcomes.is_empty() {
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        return Ok(report);
    }

    let run_id = app.change(|tx| {
        if !opts.dry_run {
            for m in &schema.migrations {
                ledger::remember_file(tx, m.version, &m.name, &m.sha256, now_unix())?;
            }
        }
        ledger::start_run(tx, target, opts.dry_run, now_unix())
    })?;
    report.run_id = Some(run_id);
    for o in &report.outcomes {
        app.catalog.write(|tx| ledger::record(tx, run_id, o, now_unix()))?;
    }

    // Phase 2: canaries first, in stable order (or the named ones).
    let (canaries, rest) = split_canaries(pending, opts)?;
    let run_batch = |batch: &[Pending], label: &str| -> Vec<TenantOutcome> {
        let n = batch.len();
        par_map(batch, parallel, &|k| progress(label, k, n), |p| {
            let o = if opts.dry_run { dry_run_one(app, p, target) } else { migrate_one(app, p, target, run_id) };
            if let Err(e) = app.change(|tx| {
                ledger::record(tx, run_id, &o, now_unix())?;
                if o.status == "migrated" {
                    tenants::set_schema_version(tx, &p.tenant.id, o.to_version, None)?;
                }
                Ok(())
            }) {
                crate::log::warn(&format!("could not record migration of {}: {}", p.tenant.slug, e.log_detail()));
            }
            o
        })
    };
    if !canaries.is_empty() {
        let results = run_batch(&canaries, "canary");
        let failed = results.iter().any(|o| o.status == "failed" || o.status == "would_fail");
        report.outcomes.extend(results);
        if failed {
            report.stopped_after_canary = true;
        }
    }
    if !report.stopped_after_canary {
        report.outcomes.extend(run_batch(&rest, "migrating"));
    }

    let status = if report.stopped_after_canary {
        "stopped"
    } else if report.failed() > 0 {
        "failed"
    } else {
        "done"
    };
    let (m, f) = (report.migrated() as i64, report.failed() as i64);
    let skipped = (total - report.outcomes.len()) as i64;
    app.change(|tx| {
        ledger::finish_run(tx, run_id, status, m, f, skipped, now_unix())?;
        if !opts.dry_run {
            audit::append(
                tx,
                now_unix(),
                &audit::Event {
                    actor: "cli",
                    action: "schema.migrate",
                    tenant_id: None,
                    resource: Some(&format!("run:{run_id}")),
                    outcome: status,
                    details: json!({"target": target, "migrated": m, "failed": f}),
                },
            )?;
        }
        Ok(())
    })?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

fn split_canaries(pending: Vec<Pending>, opts: &MigrateOptions) -> Result<(Vec<Pending>, Vec<Pending>)> {
    if !opts.canary_tenants.is_empty() {
        for s in &opts.canary_tenants {
            if !pending.iter().any(|p| &p.tenant.slug == s) {
                return Err(Error::invalid(
                    "canary_not_pending",
                    format!("canary tenant {s} is unknown or has nothing to migrate"),
                ));
            }
        }
        Ok(pending.into_iter().partition(|p| opts.canary_tenants.contains(&p.tenant.slug)))
    } else if let Some(n) = opts.canary {
        let mut canaries = pending;
        let rest = canaries.split_off(n.min(canaries.len()));
        Ok((canaries, rest))
    } else {
        Ok((Vec::new(), pending))
    }
}

fn outcome(
    t: &TenantRecord,
    from: i64,
    to: i64,
    status: &str,
    error: Option<String>,
    duration_ms: f64,
    snapshot: Option<String>,
) -> TenantOutcome {
    TenantOutcome {
        tenant_id: t.id.to_string(),
        slug: t.slug.to_string(),
        from_version: from,
        to_version: to,
        status: status.into(),
        error,
        duration_ms,
        snapshot,
    }
}

/// Takes the tenant's write lock, snapshots the committed state through a second connection
/// (WAL readers see exactly the last commit, and nobody can commit while we hold the lock), then
/// migrates and commits. So no write can slip in between the snapshot and the migration.
/// (The backup API cannot read from the connection that holds the write transaction: it
/// answers SQLITE_LOCKED.)
fn migrate_one(app: &App, p: &Pending, target: i64, run_id: i64) -> TenantOutcome {
    migrate_one_with(app, p, target, run_id, app.store.schema())
}

/// `migrate_one` with the migrations of `schema` (a tenant on its own schema has its own).
fn migrate_one_with(app: &App, p: &Pending, target: i64, run_id: i64, schema: &TenantSchema) -> TenantOutcome {
    let started = Instant::now();
    let path = app.paths.tenant_db(&p.tenant.id);
    let snapshot = app.paths.backups(&p.tenant.id).join(format!("premigrate-run{run_id}-v{}.db", p.from));
    let res = (|| -> Result<i64> {
        let mut conn = db::open_existing(&path, Durability::Normal)?;
        crate::replica::capture::install(&conn, &path)?;
        if p.tenant.custom_schema {
            db::distrust_schema(&conn)?;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from = db::user_version(&tx)?;
        if from >= target {
            return Ok(from);
        }
        crate::store::remove_db_files(&snapshot);
        let reader = db::open_existing(&path, Durability::Normal)?;
        crate::store::snapshot_into(&reader, &snapshot)?;
        drop(reader);
        schema.apply_in(&tx, from, target)?;
        tx.commit()?;
        Ok(from)
    })();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match res {
        Ok(from) => outcome(&p.tenant, from, target, "migrated", None, ms, Some(snapshot.display().to_string())),
        Err(e) => {
            crate::store::remove_db_files(&snapshot);
            outcome(&p.tenant, p.from, target, "failed", Some(error_text(&e)), ms, None)
        }
    }
}

fn error_text(e: &Error) -> String {
    match e {
        Error::Invalid { message, .. } => message.clone(),
        other => other.log_detail(),
    }
}

/// The migrations in `dir` of a tenant on its own schema, checked over the schema it was
/// imported with (version 0, read from its file).
pub fn own_schema(app: &App, slug: &Slug, dir: &Path) -> Result<TenantSchema> {
    let t = app.tenant(slug)?;
    let conn = db::open_read_only(&app.paths.tenant_db(&t.id))?;
    let mut stmt = conn.prepare(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND tbl_name NOT LIKE '\\_tenantd\\_%' ESCAPE '\\' AND tbl_name NOT LIKE '\\_litestream\\_%' ESCAPE '\\' \
         ORDER BY type = 'table' DESC, rowid",
    )?;
    let ddl: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    drop(stmt);
    // Only a tenant still at its imported schema (version 0) lets the files be replayed on it
    // first; past it, they are checked as they are applied.
    let base = (db::user_version(&conn)? == 0).then_some(ddl.as_slice());
    TenantSchema::from_dir_over(dir, base)
}

/// Migrates one tenant: to the fleet's target, or, for a tenant on its own schema (`migration
/// --schema-mode keep`), with its own numbered migrations (`own`; the imported schema is
/// version 0). Snapshot first, one transaction, recorded in the ledger and the platform audit
/// like a fleet run, so `schema rollback` restores it.
pub fn migrate_tenant(app: &App, slug: &Slug, own: Option<&TenantSchema>, dry_run: bool) -> Result<MigrateReport> {
    let started = Instant::now();
    let t = app.tenant(slug)?;
    let schema = match (t.custom_schema, own) {
        (true, Some(s)) => s,
        (true, None) => {
            return Err(Error::invalid(
                "own_schema",
                format!("tenant {slug} keeps its own schema: give its migrations with --schema-dir DIR"),
            ))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "fleet_schema",
                format!(
                "tenant {slug} is on the fleet's schema (tenant_schema_dir); --schema-dir is for tenants on their own"
            ),
            ))
        }
        (false, None) => app.store.schema().as_ref(),
    };
    let target = schema.target();
    let from = file_version(&app.paths.tenant_db(&t.id))?;
    let mut report = MigrateReport {
        run_id: None,
        dry_run,
        target,
        tenants: 1,
        already_current: usize::from(from >= target),
        outcomes: Vec::new(),
        stopped_after_canary: false,
        drift: Vec::new(),
        elapsed_ms: 0.0,
    };
    if from < target {
        let run_id = app.change(|tx| ledger::start_run(tx, target, dry_run, now_unix()))?;
        report.run_id = Some(run_id);
        let p = Pending { tenant: t.clone(), from };
        let o = if dry_run {
            dry_run_one_with(app, &p, target, schema)
        } else {
            migrate_one_with(app, &p, target, run_id, schema)
        };
        let ok = o.status == "migrated" || o.status == "would_migrate";
        app.change(|tx| {
            ledger::record(tx, run_id, &o, now_unix())?;
            let migrated = i64::from(ok);
            ledger::finish_run(tx, run_id, if ok { "done" } else { "failed" }, migrated, 1 - migrated, 0, now_unix())?;
            if o.status == "migrated" {
                tenants::set_schema_version(tx, &t.id, target, None)?;
                audit::append(
                    tx,
                    now_unix(),
                    &audit::Event {
                        actor: "cli",
                        action: "schema.migrate",
                        tenant_id: Some(t.id.as_str()),
                        resource: Some(t.slug.as_str()),
                        outcome: "ok",
                        details: json!({"run": run_id, "from": from, "to": target, "own_schema": t.custom_schema}),
                    },
                )?;
            }
            Ok(())
        })?;
        report.outcomes.push(o);
    }
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

/// Migrates a throwaway copy; the tenant's own file is only read.
fn dry_run_one(app: &App, p: &Pending, target: i64) -> TenantOutcome {
    dry_run_one_with(app, p, target, app.store.schema())
}

fn dry_run_one_with(app: &App, p: &Pending, target: i64, schema: &TenantSchema) -> TenantOutcome {
    let started = Instant::now();
    let copy: PathBuf = app.paths.tmp().join(format!("dryrun-{}-{}.db", p.tenant.id, random_hex(4)));
    let res = (|| -> Result<()> {
        std::fs::create_dir_all(app.paths.tmp())?;
        let src = db::open_read_only(&app.paths.tenant_db(&p.tenant.id))?;
        crate::store::snapshot_into(&src, &copy)?;
        drop(src);
        let mut conn = Connection::open(&copy)?;
        if p.tenant.custom_schema {
            db::distrust_schema(&conn)?;
        }
        schema.migrate(&mut conn, target)?;
        Ok(())
    })();
    crate::store::remove_db_files(&copy);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match res {
        Ok(()) => outcome(&p.tenant, p.from, target, "would_migrate", None, ms, None),
        Err(e) => outcome(&p.tenant, p.from, target, "would_fail", Some(error_text(&e)), ms, None),
    }
}

// ---------------------------------------------------------------------------------------------
// rollback

#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub run_id: i64,
    pub restored: Vec<TenantOutcome>,
    pub failed: Vec<(String, String)>,
}

/// Restores exactly the tenants migrated by the last real run from their pre-migration
/// snapshots, and holds them at that version so the lazy migration does not redo it.
pub fn rollback(app: &App) -> Result<RollbackReport> {
    let conn = app.catalog.conn()?;
    let run_id = ledger::last_rollbackable_run(&conn)?
        .ok_or_else(|| Error::invalid("nothing_to_roll_back", "no migration run with migrated tenants to roll back"))?;
    let rows = ledger::outcomes(&conn, run_id, "migrated")?;
    drop(conn);
    let mut report = RollbackReport { run_id, restored: Vec::new(), failed: Vec::new() };
    for row in rows {
        match restore_one(app, &row) {
            Ok(()) => {
                let mut o = row.clone();
                o.status = "rolled_back".into();
                app.change(|tx| {
                    ledger::record(tx, run_id, &o, now_unix())?;
                    let id = crate::ids::TenantId::parse(&o.tenant_id)?;
                    tenants::set_schema_version(tx, &id, o.from_version, Some(o.from_version))
                })?;
                report.restored.push(o);
            }
            Err(e) => report.failed.push((row.slug.clone(), error_text(&e))),
        }
    }
    let status = if report.failed.is_empty() { "rolled_back" } else { "failed" };
    app.change(|tx| {
        tx.execute("UPDATE migration_runs SET status = ?2 WHERE id = ?1", rusqlite::params![run_id, status])?;
        audit::append(
            tx,
            now_unix(),
            &audit::Event {
                actor: "cli",
                action: "schema.rollback",
                tenant_id: None,
                resource: Some(&format!("run:{run_id}")),
                outcome: if report.failed.is_empty() { "ok" } else { "partial" },
                details: json!({"restored": report.restored.len(), "failed": report.failed.len()}),
            },
        )?;
        Ok(())
    })?;
    Ok(report)
}

fn restore_one(app: &App, row: &TenantOutcome) -> Result<()> {
    let id = crate::ids::TenantId::parse(&row.tenant_id)?;
    let snapshot = row
        .snapshot
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| Error::invalid("snapshot_missing", "the pre-migration snapshot is gone"))?;
    app.store.evict(&id);
    let mut live = db::open_existing(&app.paths.tenant_db(&id), Durability::Normal)?;
    // The backup API writes through SQLite's locking, so a running server's connections see the
    // restored content on their next transaction instead of a file swapped under them.
    live.restore(rusqlite::MAIN_DB, &snapshot, None::<fn(rusqlite::backup::Progress)>)?;
    // Written through the backup API, not commits the capture hook sees: the log (and the
    // replicas) go on from an image, taken now (this may be a CLI that exits next).
    crate::replica::capture::replaced(&app.paths.tenant_db(&id));
    crate::replica::capture::opened(&app.paths.tenant_db(&id));
    Ok(())
}
