//! One migration run end to end: snapshot the source, plan, map (split runs), build every
//! tenant in `tmp/`, validate, then register all of them in one catalog transaction (or none).
//! Registration and rollback are `register`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::json;

use super::build::{self, Building, Tally, BATCH};
use super::config::{MigrationConfig, SchemaMode, SourceSpec};
use super::inspect::{self, Schema};
use super::map::{self, MapReport};
use super::plan::{self, Plans};
use super::source::{self, redact_url, Budget, PgReport};
use super::users::{self, SourceUser, UsersReport};
use crate::app::App;
use crate::catalog::{imports, tenants};
use crate::error::{Error, Result};
use crate::ids::{Slug, TenantId};
use crate::tenancy::Actor;
use crate::util::now_unix;

pub struct Options<'a> {
    pub dry_run: bool,
    pub no_source_backup: bool,
    pub statement_timeout: Duration,
    pub actor: Actor,
    /// (stage, done, total): table loads and tenants built, for a terminal's progress line.
    pub progress: &'a dyn Fn(&str, u64, u64),
}

/// One tenant a run makes (or would make).
#[derive(Clone, Debug, Serialize)]
pub struct TenantOutcome {
    pub slug: String,
    pub name: String,
    pub tenant_id: String,
    pub source: usize,
    pub rows: BTreeMap<String, u64>,
    pub members: Vec<SourceUser>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
    #[serde(skip)]
    pub(super) tn: i64,
    #[serde(skip)]
    pub(super) tallies: BTreeMap<String, Tally>,
}

#[derive(Debug, Serialize)]
pub struct SourceReport {
    /// The source's URL, a PostgreSQL password replaced by `***`.
    pub source: String,
    /// How a PostgreSQL source was read: tables, type mappings, what is not exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgReport>,
    pub snapshot: Option<String>,
    pub split_by: Option<String>,
    pub tables: Vec<plan::TablePlan>,
    pub mapping: MapReport,
    pub users: UsersReport,
    /// Views and triggers not recreated, with why.
    pub not_recreated: Vec<String>,
    /// Source rows per table, and what the tenants hold of them.
    pub totals: Vec<TableTotal>,
    /// Slugs that had to be changed (invalid or colliding), from → to.
    pub renamed_slugs: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct TableTotal {
    pub table: String,
    pub role: String,
    pub source_rows: u64,
    pub in_tenants: u64,
    pub left_behind_by_rule: u64,
    /// Rows lost other than by rule: orphans, rows crossing tenants, unexplained.
    pub differences: u64,
    pub ok: bool,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub dry_run: bool,
    pub schema_mode: SchemaMode,
    pub sources: Vec<SourceReport>,
    pub tenants: Vec<TenantOutcome>,
    pub registered: usize,
    pub failed: usize,
    pub users_created: usize,
    pub memberships_created: usize,
    pub elapsed_ms: f64,
    pub ok: bool,
}

pub fn new_run_id() -> String {
    format!("m{}-{}", crate::util::file_stamp(now_unix()), crate::util::random_hex(3))
}

/// The SQLite URI that opens `path` read-only (for ATTACH).
fn read_only_uri(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path)?;
    let text =
        abs.to_str().ok_or_else(|| Error::invalid("bad_path", format!("{} is not valid UTF-8", abs.display())))?;
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '%' => "%25".to_string(),
            '?' => "%3f".to_string(),
            '#' => "%23".to_string(),
            c => c.to_string(),
        })
        .collect();
    Ok(format!("file:{escaped}?mode=ro"))
}

/// The scratch database (tenant map) with the source snapshot attached as `src`.
pub fn open_reader(scratch: &Path, snapshot: &Path, budget: &Budget) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(scratch, flags)?;
    source::harden(&conn, budget)?;
    conn.execute("ATTACH DATABASE ?1 AS src", [read_only_uri(snapshot)?])
        .map_err(|e| source::source_error(snapshot, e))?;
    budget.arm();
    conn.query_row("SELECT count(*) FROM src.sqlite_master", [], |r| r.get::<_, i64>(0))
        .map_err(|e| source::source_error(snapshot, e))?;
    Ok(conn)
}

/// Turns a source value into a valid slug: lower case, runs of other characters become `-`.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(Slug::MAX_LEN).collect();
    out.trim_end_matches('-').to_string()
}

struct Prepared {
    spec: SourceSpec,
    snapshot: PathBuf,
    scratch: PathBuf,
    schema: Schema,
    plans: Plans,
    report: SourceReport,
}

/// Runs a migration (or plans it, with `dry_run`).
pub fn run(app: &App, config: &MigrationConfig, opts: &Options<'_>) -> Result<RunReport> {
    let started = Instant::now();
    let run_id = new_run_id();
    let budget = Budget::new(opts.statement_timeout);
    // A dry run writes nothing under the data dir: its snapshot and map live in the system's
    // temporary directory and are removed at the end.
    let run_dir = if opts.dry_run {
        std::env::temp_dir().join(format!("tenantd-{run_id}"))
    } else {
        app.paths.data_dir.join("backups").join("migrations").join(&run_id)
    };
    let build_dir =
        if opts.dry_run { run_dir.join("build") } else { app.paths.tmp().join(format!("migration-{run_id}")) };
    // What is stored and shown of a source never holds a password.
    let sources_text = config.sources.iter().map(|s| redact_url(&s.url)).collect::<Vec<_>>().join(", ");
    for s in &config.sources {
        source::check_source(&s.url)?;
    }
    std::fs::create_dir_all(&run_dir)?;
    if !opts.dry_run {
        app.catalog.write(|tx| imports::start_run(tx, &run_id, &sources_text, now_unix()))?;
    }
    let result = run_inner(app, config, opts, &run_id, &run_dir, &build_dir, &budget);
    let _ = std::fs::remove_dir_all(&build_dir);
    if opts.dry_run {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    match result {
        Ok(mut report) => {
            report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            if opts.no_source_backup && !opts.dry_run {
                for s in &report.sources {
                    if let Some(p) = &s.snapshot {
                        let _ = std::fs::remove_file(p);
                    }
                }
            }
            Ok(report)
        }
        Err(e) => {
            if !opts.dry_run {
                let report = json!({"error": e.to_string()}).to_string();
                let _ = app.catalog.write(|tx| imports::finish_run(tx, &run_id, "failed", "{}", &report, now_unix()));
                let _ = std::fs::remove_dir_all(&run_dir);
            }
            Err(e)
        }
    }
}

fn run_inner(
    app: &App,
    config: &MigrationConfig,
    opts: &Options<'_>,
    run_id: &str,
    run_dir: &Path,
    build_dir: &Path,
    budget: &Budget,
) -> Result<RunReport> {
    std::fs::create_dir_all(build_dir)?;
    let template = match config.schema_mode {
        SchemaMode::Fleet => Some(app.store.ensure_template()?),
        SchemaMode::Keep => None,
    };
    let mut outcomes: Vec<TenantOutcome> = Vec::new();
    let existing: BTreeSet<String> =
        tenants::list(&*app.catalog.conn()?, true)?.into_iter().map(|t| t.slug.to_string()).collect();
    let mut taken = existing.clone();
    let mut prepared = Vec::new();
    for (si, spec) in config.sources.iter().enumerate() {
        (opts.progress)(&format!("snapshot of source {}", si + 1), 0, 1);
        let snapshot = run_dir.join(format!("source-{si}.db"));
        let pg_report = source::snapshot_source(&spec.url, spec.postgres.as_ref(), &snapshot, budget)?;
        let scratch = run_dir.join(format!("map-{si}.db"));
        let reader = open_reader(&scratch, &snapshot, budget)?;
        let schema = inspect::read(&reader, "src", true)?;
        let plans = plan::plan(&schema, config, spec.tenant.split_by.as_deref())?;
        if let Some(t) = &template {
            super::register::check_fleet_schema(t, &plans, &schema)?;
        }
        let (keys, mapping) = map::build(
            &reader,
            &schema,
            &plans,
            spec.tenant.slug_from.as_deref(),
            spec.tenant.name_from.as_deref(),
            spec.tenant.null_tenant.is_some(),
            budget,
        )?;
        let counts = map::counts(&reader, &plans)?;
        let whole: BTreeMap<String, u64> = plans
            .tables
            .iter()
            .filter(|p| !p.mapped)
            .map(|p| (p.target.clone(), schema.tables[p.index].rows as u64))
            .collect();
        // Tenants: the one named, or one per key.
        let mut renamed = Vec::new();
        let mut made: Vec<(i64, String, String)> = Vec::new();
        if plans.split.is_none() {
            let slug = spec.tenant.slug.clone().unwrap_or_default();
            let slug = Slug::parse(&slug)?;
            if taken.contains(slug.as_str()) {
                return Err(Error::conflict(
                    "slug_taken",
                    format!("a tenant with slug {:?} already exists", slug.as_str()),
                ));
            }
            let name = crate::tenancy::validate_name(spec.tenant.name.as_deref().unwrap_or(slug.as_str()))?;
            taken.insert(slug.to_string());
            made.push((1, slug.to_string(), name));
        } else {
            for k in &keys {
                let raw = match (k.key == rusqlite::types::Value::Null, &spec.tenant.null_tenant) {
                    (true, Some(n)) => n.clone(),
                    _ => k.slug_source.clone().unwrap_or_else(|| map::value_text(&k.key)),
                };
                let mut slug = slugify(&raw);
                if slug.is_empty() {
                    slug = format!("tenant-{}", k.tn);
                }
                let base = slug.clone();
                let mut n = 2;
                while taken.contains(&slug) {
                    slug = format!("{}-{n}", base.chars().take(Slug::MAX_LEN - 4).collect::<String>());
                    n += 1;
                }
                if slug != raw {
                    renamed.push((raw.clone(), slug.clone()));
                }
                taken.insert(slug.clone());
                let name = k.name_source.clone().unwrap_or_else(|| raw.clone());
                let name = crate::tenancy::validate_name(&name).unwrap_or_else(|_| slug.clone());
                made.push((k.tn, slug, name));
            }
        }
        let tns: Vec<i64> = made.iter().map(|(tn, _, _)| *tn).collect();
        let user_spec = users::detect(&schema, config.users.as_ref());
        let (members, users_report) = match &user_spec {
            Some(u) => {
                let tenant_data: Vec<usize> = plans
                    .tables
                    .iter()
                    .filter(|p| plans.split.is_none() || p.role.is_tenant_data())
                    .map(|p| p.index)
                    .collect();
                users::collect(&reader, &schema, u, plans.split.is_some(), &tns, &tenant_data)?
            }
            None => (BTreeMap::new(), UsersReport::default()),
        };
        for (tn, slug, name) in made {
            let mut rows = counts.get(&tn).cloned().unwrap_or_default();
            rows.extend(whole.iter().map(|(k, v)| (k.clone(), *v)));
            if plans.split.is_none() {
                rows = plans.tables.iter().map(|p| (p.target.clone(), schema.tables[p.index].rows as u64)).collect();
            }
            outcomes.push(TenantOutcome {
                slug,
                name,
                tenant_id: TenantId::mint().to_string(),
                source: si,
                rows,
                members: members.get(&tn).cloned().unwrap_or_default(),
                status: if opts.dry_run { "planned".into() } else { "pending".into() },
                error: None,
                differences: Vec::new(),
                tn,
                tallies: BTreeMap::new(),
            });
        }
        let report = SourceReport {
            source: redact_url(&spec.url),
            postgres: pg_report,
            snapshot: (!opts.dry_run).then(|| snapshot.display().to_string()),
            split_by: spec.tenant.split_by.clone(),
            tables: plans.tables.clone(),
            mapping,
            users: users_report,
            not_recreated: Vec::new(),
            totals: Vec::new(),
            renamed_slugs: renamed,
        };
        drop(reader);
        prepared.push(Prepared { spec: spec.clone(), snapshot, scratch, schema, plans, report });
    }
    if opts.dry_run {
        if config.schema_mode == SchemaMode::Keep {
            for p in &mut prepared {
                p.report.not_recreated = build::objects_that_cannot_move(&p.schema, &p.plans.tables)?;
            }
        }
        let sources: Vec<SourceReport> = prepared.into_iter().map(|p| p.report).collect();
        let ok = sources.iter().all(|s| !s.mapping.blocked());
        return Ok(RunReport {
            run_id: run_id.to_string(),
            dry_run: true,
            schema_mode: config.schema_mode,
            sources,
            tenants: outcomes,
            registered: 0,
            failed: 0,
            users_created: 0,
            memberships_created: 0,
            elapsed_ms: 0.0,
            ok,
        });
    }
    // Build every tenant, batch by batch, source by source.
    let total = outcomes.len() as u64;
    let mut built = 0u64;
    // Rows to write, for the progress line: mapped rows once, whole tables once per tenant.
    let rows_total: u64 = prepared
        .iter()
        .enumerate()
        .map(|(si, p)| {
            let n = outcomes.iter().filter(|o| o.source == si).count() as u64;
            p.plans
                .tables
                .iter()
                .map(|t| p.schema.tables[t.index].rows as u64 * if t.mapped { 1 } else { n })
                .sum::<u64>()
        })
        .sum();
    let mut rows_done = 0u64;
    for (si, p) in prepared.iter_mut().enumerate() {
        let reader = open_reader(&p.scratch, &p.snapshot, budget)?;
        let idx: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.source == si).map(|(i, _)| i).collect();
        for chunk in idx.chunks(BATCH) {
            // A tenant whose file cannot be started, or whose rows its schema refuses, fails
            // alone (`--continue-on-error` registers the others).
            let mut batch: Vec<Building> = Vec::with_capacity(chunk.len());
            let mut members: Vec<usize> = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let o = &mut outcomes[i];
                let path = build_dir.join(format!("{}.db", o.tenant_id));
                match build::start(
                    o.tn,
                    &path,
                    config.schema_mode,
                    template.as_deref().unwrap_or(Path::new("")),
                    &p.schema,
                    &p.plans.tables,
                    crate::store::audit_tables::TENANT_AUDIT_DDL,
                ) {
                    Ok(b) => {
                        batch.push(b);
                        members.push(i);
                    }
                    Err(e) => {
                        o.status = "failed".into();
                        o.error = Some(e.to_string());
                    }
                }
            }
            let before = rows_done;
            build::load_batch(&reader, &mut batch, &p.plans.tables, budget, &mut |table, n| {
                (opts.progress)(&format!("rows ({table})"), before + n, rows_total.max(before + n));
            })?;
            rows_done += batch.iter().map(|b| b.tallies.values().map(|t| t.rows).sum::<u64>()).sum::<u64>();
            for (b, &i) in batch.into_iter().zip(&members) {
                let o = &mut outcomes[i];
                if let Some(why) = b.failed.clone() {
                    o.status = "failed".into();
                    o.error = Some(why);
                    continue;
                }
                match b.finish(&p.schema.sequences, &p.plans.tables, &config.post_sql) {
                    Ok(done) => {
                        if p.report.not_recreated.is_empty() {
                            p.report.not_recreated = done.dropped;
                        }
                        o.tallies = done.tallies;
                        o.differences = done.differences;
                        o.status = "built".into();
                    }
                    Err(e) => {
                        o.status = "failed".into();
                        o.error = Some(e.to_string());
                    }
                }
                built += 1;
                (opts.progress)("tenants built", built, total);
            }
        }
        drop(reader);
        let _ = &p.spec;
    }
    // Validate what was built against what was read.
    for o in outcomes.iter_mut().filter(|o| o.status == "built") {
        let p = &prepared[o.source];
        let path = build_dir.join(format!("{}.db", o.tenant_id));
        let expected = config.post_sql.is_empty().then_some(&o.tallies);
        let found = super::validate::check_tenant_file(&path, &p.plans.tables, expected)?;
        o.differences.extend(found);
        o.rows = o.tallies.iter().map(|(k, t)| (k.clone(), t.rows)).collect();
        if !o.differences.is_empty() {
            o.status = "failed".into();
            o.error = Some(format!("validation: {}", o.differences.join("; ")));
        }
    }
    for (si, p) in prepared.iter_mut().enumerate() {
        p.report.totals = super::validate::totals(
            &p.schema,
            &p.plans,
            &p.report.mapping,
            outcomes.iter().filter(|o| o.source == si).map(|o| &o.tallies),
        );
    }
    let totals_ok = prepared.iter().all(|p| p.report.totals.iter().all(|t| t.ok));
    let failed = outcomes.iter().filter(|o| o.status == "failed").count();
    let keep_going = config.continue_on_error;
    let register_any = (failed == 0 && totals_ok) || keep_going;
    let mut users_created = 0;
    let mut memberships_created = 0;
    let mut registered = 0;
    if register_any {
        let (r, u, m) = super::register::register(app, config, run_id, build_dir, &mut outcomes, &opts.actor)?;
        registered = r;
        users_created = u;
        memberships_created = m;
    }
    let ok = failed == 0 && totals_ok;
    let sources: Vec<SourceReport> = prepared.into_iter().map(|p| p.report).collect();
    let report = RunReport {
        run_id: run_id.to_string(),
        dry_run: false,
        schema_mode: config.schema_mode,
        sources,
        tenants: outcomes,
        registered,
        failed,
        users_created,
        memberships_created,
        elapsed_ms: 0.0,
        ok,
    };
    let status = if registered > 0 { "done" } else { "failed" };
    let manifest = super::register::manifest(config, &report);
    let text = serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?;
    let recorded = app.catalog.write(|tx| imports::finish_run(tx, run_id, status, &manifest, &text, now_unix()));
    match recorded {
        Ok(()) => Ok(report),
        // Tenants are registered: keep the snapshot and map, and say what went wrong.
        Err(e) if registered > 0 => {
            crate::log::warn(&format!(
                "migration run {run_id}: registered, but its report was not stored: {}",
                e.log_detail()
            ));
            Ok(report)
        }
        Err(e) => Err(e),
    }
}
