//! `tenantd migration …`: existing single-tenant databases into tenants (issue 19).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{interactive, print_json, CliError, CliResult};
use crate::app::App;
use crate::migration::analyze::{self, Analysis};
use crate::migration::config::{MigrationConfig, PgOptions, SchemaMode, SourceSpec, TenantSpec};
use crate::migration::run::{Options, RunReport};
use crate::migration::source::Budget;
use crate::tenancy::Actor;

const ANALYZE_HELP: &str = "Opens the source read-only and writes nothing (a trial split map, and a PostgreSQL source's\nsnapshot, live in the system's temporary directory and are removed).\n\nExamples:\n  tenantd migration analyze-schema --source-db app.db\n  PGPASSWORD=... tenantd migration analyze-schema --source-db postgresql://crm@db.internal/crm\n  tenantd migration analyze-schema --source-db app.db --split-by company.id --json\n  tenantd migration analyze-schema --source-db app.db --emit-config migrate.json --emit-schema schema/";

const CONVERT_HELP: &str = "One source database becomes one tenant, or with --split-by one tenant per distinct value.\nThe source is never written: a snapshot is read (VACUUM INTO of a SQLite file; a PostgreSQL\ndatabase copied into SQLite in one REPEATABLE READ READ ONLY transaction), kept under\nbackups/migrations/RUN/ for validate and rollback unless --no-source-backup. Tenants are\nbuilt in tmp/, validated, then registered all together or not at all.\n\nExit status: 0 when every tenant was registered and validated, 1 when any failed.\n\nExamples:\n  tenantd migration convert-to-multitenant --source-db acme.db --tenant-slug acme --tenant-name \"Acme\" --schema-mode keep\n  tenantd migration convert-to-multitenant --source-db shared.db --split-by company.id --slug-from slug --name-from name --dry-run\n  tenantd migration convert-to-multitenant --source-db postgresql://crm:PASSWORD@127.0.0.1/crm --split-by crm_account.id --schema-mode keep\n  tenantd migration rollback m20261207-101500-1a2b3c";

#[derive(Subcommand, Debug)]
pub enum MigrationCmd {
    /// Report tables, columns, roles for a split, candidate tenant columns and blockers.
    #[command(after_help = ANALYZE_HELP)]
    AnalyzeSchema {
        /// The source database: a SQLite file (PATH or sqlite:PATH) or
        /// postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (without a password: PGPASSWORD).
        #[arg(long, value_name = "URL")]
        source_db: String,
        #[command(flatten)]
        pg: PgFlags,
        /// Show roles and the trial split for TABLE.COLUMN (default: the best candidate).
        #[arg(long, value_name = "TABLE.COLUMN")]
        split_by: Option<String>,
        /// Write a ready migration config (JSON) for migrate-from-config.
        #[arg(long, value_name = "FILE")]
        emit_config: Option<PathBuf>,
        /// Write the source's schema as the first numbered tenant migration into DIR.
        #[arg(long, value_name = "DIR")]
        emit_schema: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Turn a source database into one tenant, or into one tenant per --split-by value.
    #[command(after_help = CONVERT_HELP)]
    ConvertToMultitenant {
        /// A SQLite file (PATH or sqlite:PATH) or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB.
        #[arg(long, value_name = "URL")]
        source_db: String,
        #[command(flatten)]
        pg: PgFlags,
        /// Slug of the one tenant (without --split-by).
        #[arg(long, value_name = "SLUG", required_unless_present = "split_by")]
        tenant_slug: Option<String>,
        #[arg(long, value_name = "NAME")]
        tenant_name: Option<String>,
        /// One tenant per distinct value of TABLE.COLUMN (a root table's key or a tenant column).
        #[arg(long, value_name = "TABLE.COLUMN", conflicts_with = "tenant_slug")]
        split_by: Option<String>,
        /// Column of the root table that gives each tenant's slug (slugified; collisions get -2, -3).
        #[arg(long, value_name = "COLUMN", requires = "split_by")]
        slug_from: Option<String>,
        #[arg(long, value_name = "COLUMN", requires = "split_by")]
        name_from: Option<String>,
        /// Rows that reach no tenant go to a new tenant with this slug (else they stay behind).
        #[arg(long, value_name = "SLUG", requires = "split_by")]
        null_tenant: Option<String>,
        #[arg(long, value_name = "PLAN")]
        plan: Option<String>,
        /// fleet: the source's schema must be the fleet's tenant schema; keep: each tenant keeps the source's.
        #[arg(long, value_name = "MODE", default_value = "fleet", value_parser = ["fleet", "keep"])]
        schema_mode: String,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        common: Common,
    },
    /// The same engine driven by a JSON config (docs/migration-config.schema.json).
    #[command(
        after_help = "Examples:\n  tenantd migration analyze-schema --source-db app.db --emit-config migrate.json\n  tenantd migration migrate-from-config --config-file migrate.json --dry-run\n  tenantd migration migrate-from-config --config-file migrate.json"
    )]
    MigrateFromConfig {
        #[arg(long, value_name = "FILE")]
        config_file: PathBuf,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        common: Common,
    },
    /// Re-check a run's tenants against its source snapshot (exit 1 on any difference).
    Validate {
        run_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove every tenant, user and membership a run created (audited).
    Rollback {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct Common {
    #[arg(long)]
    json: bool,
    /// Seconds one statement on the source may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    statement_timeout: u64,
}

/// How a PostgreSQL source is read (docs/migration.md, "PostgreSQL sources").
#[derive(Args, Debug)]
pub struct PgFlags {
    /// PostgreSQL source: the schema whose tables are read (default public).
    #[arg(long, value_name = "SCHEMA")]
    pg_schema: Option<String>,
    /// PostgreSQL source: numeric/decimal as REAL instead of TEXT with the exact digits.
    #[arg(long)]
    numeric_as_real: bool,
}

impl PgFlags {
    fn options(&self) -> Option<PgOptions> {
        let o = PgOptions { schema: self.pg_schema.clone(), numeric_as_real: self.numeric_as_real };
        (o != PgOptions::default()).then_some(o)
    }
}

#[derive(Args, Debug)]
pub struct RunFlags {
    /// Print the plan (tenants, rows per table, users, blockers) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not keep the source snapshot (validate then reads the source itself).
    #[arg(long)]
    no_source_backup: bool,
    /// Register the tenants that validated and report the others (default: all or nothing).
    #[arg(long)]
    continue_on_error: bool,
}

pub fn run(config: crate::config::Config, cmd: MigrationCmd) -> CliResult {
    match cmd {
        MigrationCmd::AnalyzeSchema { source_db, pg, split_by, emit_config, emit_schema, common } => {
            let budget = Budget::new(Duration::from_secs(common.statement_timeout));
            let mut a = analyze::analyze(&source_db, split_by.as_deref(), pg.options().as_ref(), &budget)?;
            // Without --emit-schema the fleet does not have the source's schema: tenants keep it.
            if emit_schema.is_none() {
                a.config.schema_mode = SchemaMode::Keep;
            }
            if let Some(path) = &emit_config {
                let text = serde_json::to_string_pretty(&a.config).map_err(|e| CliError::failed(e.to_string()))?;
                std::fs::write(path, text + "\n")?;
            }
            let schema_file = match &emit_schema {
                Some(dir) => Some(analyze::emit_schema(&a, dir)?),
                None => None,
            };
            if common.json {
                print_json(&a)?;
            } else {
                print_analysis(&a);
                if let Some(p) = &emit_config {
                    println!("wrote migration config {}", p.display());
                }
                if let Some(p) = &schema_file {
                    println!("wrote tenant schema {} (point tenant_schema_dir at its directory)", p.display());
                }
            }
            let blocked = a.findings.iter().any(|f| f.level == "blocker");
            Ok(if blocked { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        MigrationCmd::ConvertToMultitenant {
            source_db,
            pg,
            tenant_slug,
            tenant_name,
            split_by,
            slug_from,
            name_from,
            null_tenant,
            plan,
            schema_mode,
            run,
            common,
        } => {
            let cfg = MigrationConfig {
                version: 1,
                sources: vec![SourceSpec {
                    url: source_db,
                    postgres: pg.options(),
                    tenant: TenantSpec {
                        slug: tenant_slug,
                        name: tenant_name,
                        split_by,
                        slug_from,
                        name_from,
                        null_tenant,
                        plan,
                    },
                }],
                schema_mode: if schema_mode == "keep" { SchemaMode::Keep } else { SchemaMode::Fleet },
                continue_on_error: run.continue_on_error,
                ..Default::default()
            };
            execute(config, &cfg, &run, &common)
        }
        MigrationCmd::MigrateFromConfig { config_file, run, common } => {
            let text = std::fs::read_to_string(&config_file)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", config_file.display())))?;
            let mut cfg = MigrationConfig::parse(&text)?;
            // Relative source paths are relative to the config file.
            let base = config_file.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            for s in &mut cfg.sources {
                let p = std::path::Path::new(s.url.strip_prefix("sqlite:").unwrap_or(&s.url));
                if p.is_relative() && !s.url.contains("://") {
                    s.url = base.join(p).display().to_string();
                }
            }
            cfg.continue_on_error |= run.continue_on_error;
            execute(config, &cfg, &run, &common)
        }
        MigrationCmd::Validate { run_id, common } => {
            let app = open(config)?;
            let r = crate::migration::validate(&app, &run_id, Duration::from_secs(common.statement_timeout))?;
            if common.json {
                print_json(&r)?;
            } else {
                for t in &r.tenants {
                    let rows: u64 = t.rows.values().sum();
                    match t.ok {
                        true => println!("ok      {:<24} {rows} rows in {} tables", t.slug, t.rows.len()),
                        false => println!("DIFFERS {:<24} {}", t.slug, t.differences.join("; ")),
                    }
                }
                println!(
                    "run {}: {} tenants, {} differ",
                    r.run_id,
                    r.tenants.len(),
                    r.tenants.iter().filter(|t| !t.ok).count()
                );
            }
            Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        MigrationCmd::Rollback { run_id, json } => {
            let app = open(config)?;
            let r = crate::migration::rollback(&app, &run_id, &Actor::cli())?;
            if json {
                print_json(&r)?;
            } else {
                for s in &r.tenants_removed {
                    println!("removed tenant {s}");
                }
                for u in &r.users_kept {
                    println!("kept user {u}");
                }
                println!(
                    "run {} rolled back: {} tenants and {} users removed in {:.1} s",
                    r.run_id,
                    r.tenants_removed.len(),
                    r.users_removed,
                    r.elapsed_ms / 1000.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(config: crate::config::Config) -> CliResult<Arc<App>> {
    Ok(App::open(config, crate::app::OpenMode::MustExist)?)
}

fn execute(config: crate::config::Config, cfg: &MigrationConfig, flags: &RunFlags, common: &Common) -> CliResult {
    let app = open(config)?;
    let show = interactive() && !common.json;
    let started = std::time::Instant::now();
    let progress = move |stage: &str, done: u64, total: u64| {
        if !show {
            return;
        }
        let secs = started.elapsed().as_secs_f64();
        let eta = if done > 0 && total > done {
            format!(", ETA {:.0} s", secs / done as f64 * (total - done) as f64)
        } else {
            String::new()
        };
        eprint!("\r\x1b[K{stage}: {done}/{total} ({:.0}/s{eta})", done as f64 / secs.max(0.001));
        let _ = std::io::stderr().flush();
        if done == total && !stage.starts_with("rows") {
            eprintln!();
        }
    };
    let opts = Options {
        dry_run: flags.dry_run,
        no_source_backup: flags.no_source_backup,
        statement_timeout: Duration::from_secs(common.statement_timeout),
        actor: Actor::cli(),
        progress: &progress,
    };
    let report = crate::migration::run(&app, cfg, &opts)?;
    if common.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_report(r: &RunReport) {
    for s in &r.sources {
        println!("source {}{}", s.source, s.split_by.as_ref().map(|x| format!(" split by {x}")).unwrap_or_default());
        for note in s.postgres.iter().flat_map(|p| p.notes()) {
            println!("  {note}");
        }
        for t in &s.tables {
            let path = if t.path.is_empty() { String::new() } else { format!("  via {}", t.path) };
            println!(
                "  {:<28} {:<17}{}{path}",
                t.target,
                t.role.as_str(),
                if t.source != t.target { format!(" (from {})", t.source) } else { String::new() }
            );
        }
        for (t, n) in &s.mapping.left_behind {
            println!(
                "  left behind: {n} rows of {t} reach no tenant (e.g. {})",
                s.mapping.samples.get(t).map(|v| v.join(", ")).unwrap_or_default()
            );
        }
        for (t, n) in &s.mapping.cross_tenant {
            println!("  CROSS-TENANT: {n} rows of {t} reference two tenants' rows (or rows that do)");
        }
        for (k, n) in &s.mapping.cross_references {
            println!("  CROSS-TENANT: {n} rows reference another tenant's row through {k}");
        }
        for (t, n) in &s.mapping.orphans {
            println!(
                "  ORPHANS: {n} rows of {t} point at rows that do not exist (e.g. {})",
                s.mapping.samples.get(t).map(|v| v.join(", ")).unwrap_or_default()
            );
        }
        for (t, n) in &s.mapping.unexplained {
            println!("  UNMAPPED: {n} rows of {t} got no tenant for no known reason");
        }
        for (t, n) in &s.mapping.system_left {
            println!("  by rule: {n} rows of system table {t} belong to no tenant");
        }
        for (from, to) in &s.renamed_slugs {
            println!("  slug {from:?} became {to}");
        }
        for w in &s.not_recreated {
            println!("  not recreated: {w}");
        }
        for w in &s.users.skipped {
            println!("  user skipped: {w}");
        }
        for t in s.totals.iter().filter(|t| !t.ok) {
            println!(
                "  TOTALS DIFFER {}: source {} rows, tenants {}, left by rule {}",
                t.table, t.source_rows, t.in_tenants, t.left_behind_by_rule
            );
        }
    }
    for t in &r.tenants {
        let rows: u64 = t.rows.values().sum();
        let err = t.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
        println!("{:<11} {:<24} {:>9} rows {:>3} members{err}", t.status, t.slug, rows, t.members.len());
    }
    if r.dry_run {
        println!("dry run {}: {} tenants planned, nothing written", r.run_id, r.tenants.len());
    } else {
        println!(
            "run {}: {} tenants registered, {} failed, {} users created, {} memberships, {:.1} s{}",
            r.run_id,
            r.registered,
            r.failed,
            r.users_created,
            r.memberships_created,
            r.elapsed_ms / 1000.0,
            if r.ok { "" } else { " — NOT OK (see above; `migration rollback RUN` undoes a partial run)" }
        );
    }
}

fn print_analysis(a: &Analysis) {
    println!("source {}", a.source);
    for note in a.postgres.iter().flat_map(|p| p.notes()) {
        println!("  {note}");
    }
    for t in &a.tables {
        let role = t.role.map(|r| r.as_str()).unwrap_or("-");
        println!(
            "\n{} — {} rows{}, pk ({}), role {role}{}",
            t.name,
            t.rows,
            t.bytes.map(|b| format!(", {b} bytes")).unwrap_or_default(),
            t.primary_key.join(", "),
            t.path.as_ref().map(|p| format!(" via {p}")).unwrap_or_default()
        );
        for f in &t.foreign_keys_out {
            println!("  fk out {f}");
        }
        if !t.foreign_keys_in.is_empty() {
            println!("  fk in  {}", t.foreign_keys_in.join(", "));
        }
        if !t.indexes.is_empty() || !t.triggers.is_empty() || !t.views.is_empty() {
            println!(
                "  indexes [{}] triggers [{}] views [{}]",
                t.indexes.join(", "),
                t.triggers.join(", "),
                t.views.join(", ")
            );
        }
        if t.sampled {
            println!("  columns (profiled on a random sample of {} rows):", t.profiled_rows);
        }
        for c in &t.columns {
            let top: Vec<String> = c.most_common.iter().map(|(v, n)| format!("{v:?}×{n}")).collect();
            println!(
                "  {:<24} {:<12} nulls {:<6} distinct {:<6} {}",
                c.name,
                c.decl_type,
                c.nulls,
                c.distinct,
                top.join(" ")
            );
        }
    }
    println!("\ncandidate tenant columns:");
    for c in &a.candidates {
        println!("  {:<32} score {:>5.1}  {}", c.split_by, c.score, c.evidence.join("; "));
    }
    if let Some(s) = &a.split_by {
        println!(
            "\ntrial split by {s}: {} tenants{}",
            a.tenants_found.unwrap_or(0),
            a.largest_tenant_share.map(|x| format!(", largest holds {:.0}% of rows", x * 100.0)).unwrap_or_default()
        );
    }
    if let Some(u) = &a.users {
        println!("users: {u} (imported with their password hashes)");
    }
    println!();
    for f in &a.findings {
        println!("{:<8} {:<20} {}", f.level.to_uppercase(), f.code, f.message);
    }
    let blockers = a.findings.iter().filter(|f| f.level == "blocker").count();
    println!("{} tables, {} findings, {blockers} blockers", a.tables.len(), a.findings.len());
}
