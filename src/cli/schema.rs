//! `tenantd schema …`: fleet migrations.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{interactive, print_json, CliResult};
use crate::app::App;
use crate::fleet::{self, MigrateOptions};
use crate::ids::Slug;

#[derive(Subcommand, Debug)]
pub enum SchemaCmd {
    /// Versions of every tenant against the schema's target, and file drift.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Migrate every tenant to the target version (snapshot first, one transaction each).
    #[command(
        after_help = "Exit status: 0 when every tenant is at the target version, 1 when any failed.\n\nExamples:\n  tenantd schema migrate --dry-run\n  tenantd schema migrate --canary 5 --parallel 2\n  tenantd schema migrate --canary-tenants acme,globex\n  tenantd schema migrate --tenant imported-co --schema-dir imported-co-migrations/"
    )]
    Migrate {
        /// Migrate snapshot copies only and report what would fail; tenant files are untouched.
        #[arg(long)]
        dry_run: bool,
        /// Migrate the first N tenants (stable order) first; stop if any of them fails.
        #[arg(long, value_name = "N")]
        canary: Option<usize>,
        /// Canary tenants by slug instead of the first N.
        #[arg(long, value_name = "a,b", value_delimiter = ',')]
        canary_tenants: Vec<String>,
        /// Tenants migrated at once (1..=64).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: u16,
        /// Migrate this tenant only: to the fleet's target, or, for a tenant on its own schema
        /// (`migration --schema-mode keep`), with the migrations in --schema-dir.
        #[arg(long, value_name = "SLUG", conflicts_with_all = ["canary", "canary_tenants"])]
        tenant: Option<String>,
        /// The numbered migrations of a tenant on its own schema (its imported schema is version 0).
        #[arg(long, value_name = "DIR", requires = "tenant")]
        schema_dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Restore exactly the tenants migrated by the last run from their snapshots.
    #[command(
        after_help = "Writes made to those tenants after the migration are lost: export them first if needed.\nRolled-back tenants are held at their old version until the next `schema migrate`."
    )]
    Rollback {
        #[arg(long)]
        json: bool,
    },
    /// Index advice tenant admins applied (idx_advised_*), across the fleet; `--write` turns it
    /// into the next migration file so `schema migrate` rolls it out to every tenant.
    #[command(
        after_help = "Tenant admins apply advice for their own tenant (API or the Queries page). This command\nfinds those indexes in every tenant file and, with --write, adds them as the next numbered\nmigration in tenant_schema_dir (CREATE INDEX IF NOT EXISTS), for `schema migrate` with its\ncanaries, snapshots and ledger.\n\nExamples:\n  tenantd schema advise\n  tenantd schema advise --min-tenants 3 --write\n  tenantd schema migrate --canary 5"
    )]
    Advise {
        /// Only indexes present in at least this many tenants.
        #[arg(long, default_value_t = 1, value_name = "N")]
        min_tenants: usize,
        /// Write them as the next migration in tenant_schema_dir.
        #[arg(long)]
        write: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(app: Arc<App>, cmd: SchemaCmd) -> CliResult {
    match cmd {
        SchemaCmd::Status { json } => status(&app, json),
        SchemaCmd::Migrate { dry_run, tenant: Some(slug), schema_dir, json, .. } => {
            let slug = Slug::parse(&slug)?;
            let own = match &schema_dir {
                Some(dir) => Some(fleet::own_schema(&app, &slug, dir)?),
                None => None,
            };
            let r = fleet::migrate_tenant(&app, &slug, own.as_ref(), dry_run)?;
            report(&r, json)
        }
        SchemaCmd::Migrate { dry_run, canary, canary_tenants, parallel, json, .. } => {
            let canary_tenants = canary_tenants.iter().map(|s| Slug::parse(s)).collect::<Result<Vec<_>, _>>()?;
            let opts = MigrateOptions { dry_run, canary, canary_tenants, parallel: parallel as usize };
            migrate(&app, &opts, json)
        }
        SchemaCmd::Advise { min_tenants, write, json } => advise(&app, min_tenants, write, json),
        SchemaCmd::Rollback { json } => {
            let r = fleet::rollback(&app)?;
            if json {
                print_json(&r)?;
            } else {
                for o in &r.restored {
                    println!("restored {:<24} v{} -> v{}", o.slug, o.to_version, o.from_version);
                }
                for (s, e) in &r.failed {
                    println!("FAILED   {s:<24} {e}");
                }
                println!("run {}: {} restored, {} failed", r.run_id, r.restored.len(), r.failed.len());
            }
            Ok(if r.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn status(app: &App, json: bool) -> CliResult {
    let s = fleet::status(app)?;
    if json {
        print_json(&s)?;
    } else {
        println!("target version {} ({} migration files)", s.target, s.files.len());
        for f in &s.files {
            match &f.drift {
                Some(d) => println!("  DRIFT {d}"),
                None => println!("  v{:<4} {}  sha256 {}…", f.version, f.name, &f.sha256[..12]),
            }
        }
        println!("{:<24} {:>7} {:>7}  {:<8} DETAIL", "TENANT", "FILE", "CATALOG", "STATE");
        for t in &s.tenants {
            let v = t.version.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            let detail = t.detail.clone().or(t.last_outcome.clone()).unwrap_or_default();
            println!("{:<24} {:>7} {:>7}  {:<8} {detail}", t.slug, v, t.catalog_version, t.state);
        }
        let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("{} tenants: {}", s.tenants.len(), counts.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn migrate(app: &App, opts: &MigrateOptions, json: bool) -> CliResult {
    let show = interactive() && !json;
    let progress = |label: &str, done: usize, total: usize| {
        if show && (done == total || done.is_multiple_of(25)) {
            eprint!("\r{label}: {done}/{total}   ");
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        }
    };
    let r = fleet::migrate(app, opts, &progress)?;
    report(&r, json)
}

fn report(r: &fleet::MigrateReport, json: bool) -> CliResult {
    if json {
        print_json(r)?;
    } else {
        for d in &r.drift {
            println!("DRIFT {d}");
        }
        for o in &r.outcomes {
            let err = o.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            println!(
                "{:<14} {:<24} v{} -> v{}  {:.1} ms{err}",
                o.status, o.slug, o.from_version, o.to_version, o.duration_ms
            );
        }
        if r.stopped_after_canary {
            println!("canary failed: stopped before touching the other tenants");
        }
        let verb = if r.dry_run { "would migrate" } else { "migrated" };
        println!(
            "{} tenants, {} already at v{}, {verb} {}, failed {} ({:.0} ms){}",
            r.tenants,
            r.already_current,
            r.target,
            r.migrated(),
            r.failed(),
            r.elapsed_ms,
            r.run_id.map(|id| format!(", run {id}")).unwrap_or_default()
        );
    }
    Ok(if r.success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn advise(app: &App, min_tenants: usize, write: bool, json: bool) -> CliResult {
    let mut found = crate::store::advisor::fleet_applied(&app.catalog, &app.paths)?;
    found.retain(|i| i.tenants.len() >= min_tenants);
    let written = if write && !found.is_empty() {
        let Some(dir) = app.config.tenant_schema_dir.as_deref() else {
            return Err(super::CliError::usage(
                "the built-in demo schema cannot take new migrations: copy assets/schema to a directory, set tenant_schema_dir to it, and run this again",
            ));
        };
        Some(crate::store::advisor::write_migration(dir, app.store.schema().target(), &found)?)
    } else {
        None
    };
    if json {
        print_json(&serde_json::json!({"indexes": found, "written": written}))?;
    } else {
        for i in &found {
            println!("{:>4} tenant(s)  {}", i.tenants.len(), i.sql);
        }
        println!("{} advised index(es) in at least {min_tenants} tenant(s)", found.len());
        match &written {
            Some(p) => println!("wrote {}: run `tenantd schema migrate` to apply it to every tenant", p.display()),
            None if write => println!("nothing to write"),
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
