//! `tenantd tenant …`: lifecycle commands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::catalog::tenants::{self, TenantRecord};
use crate::ids::Slug;
use crate::tenancy::{self, archive, Actor};
use crate::util::rfc3339;

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant (a copy of the pre-migrated template; no migrations at signup).
    #[command(after_help = "Example:\n  tenantd tenant create acme --name \"Acme Corp\" --plan pro")]
    Create {
        /// Public handle: 1-63 of a-z, 0-9, '-' (first a letter or digit).
        slug: String,
        #[arg(long)]
        name: String,
        /// Plan name from the config (default: default_plan).
        #[arg(long)]
        plan: Option<String>,
        /// In a cluster: the node to create it on (default: where placement hashes the slug).
        #[arg(long)]
        node: Option<String>,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
        /// Include soft-deleted tenants.
        #[arg(long)]
        all: bool,
    },
    /// Show one tenant.
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend: reads keep working, writes answer 423 tenant_suspended.
    Suspend { slug: String },
    /// Resume a suspended tenant, or restore a soft-deleted one within its grace period.
    Resume { slug: String },
    /// Soft-delete (restorable with `resume` for delete_grace_days), or remove for good.
    #[command(
        after_help = "Examples:\n  tenantd tenant delete acme            # soft delete\n  tenantd tenant delete acme --purge --yes"
    )]
    Delete {
        slug: String,
        /// Remove the file, -wal/-shm, assets and backups now; a deletion record stays.
        #[arg(long)]
        purge: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Purge soft-deleted tenants whose grace period is over.
    PurgeExpired,
    /// Export a consistent snapshot with assets and a manifest into one archive.
    Export {
        slug: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Import an export archive or a bare SQLite file as a new tenant.
    Import {
        file: PathBuf,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
    },
    /// In a cluster: move a tenant to another node while it serves. The target follows the
    /// tenant's Litestream replica, writes pause (503 + Retry-After) until it has caught up,
    /// then the directory and the router flip; the source keeps a soft-deleted copy for
    /// [cluster] move_grace_hours.
    #[command(
        after_help = "Example:\n  tenantd tenant move acme --to node-b\n\nNeeds [cluster] store and Litestream running on the source (tenantd litestream config).\nWith [cluster] router_config set, the router's configuration is written again and reloaded."
    )]
    Move {
        slug: String,
        #[arg(long, value_name = "NODE")]
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's plan (takes effect without restart).
    SetPlan { slug: String, plan: String },
}

fn slug(s: &str) -> CliResult<Slug> {
    Ok(Slug::parse(s)?)
}

pub fn run(app: Arc<App>, cmd: TenantCmd) -> CliResult {
    let actor = Actor::cli();
    match cmd {
        TenantCmd::Move { slug: s, to, json } => {
            let switch = |app: &App| {
                super::cluster::refresh_router(app, Some(s.as_str())).map_err(|e| crate::error::Error::Retry(e.message))
            };
            let report = crate::cluster::moves::run(&app, &slug(&s)?, &to, true, &switch)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "moved {} from {} to {} ({} bytes, {} assets, {} snapshots): seeded in {} ms, writes paused {} ms (directory flipped after {} ms), {} ms in all",
                    report.slug,
                    report.from,
                    report.to,
                    report.bytes,
                    report.assets,
                    report.backups,
                    report.seed_ms,
                    report.write_pause_ms,
                    report.flipped_ms,
                    report.total_ms
                );
            }
        }
        TenantCmd::Create { slug: s, name, plan, node } => {
            if app.cluster.is_none() && node.is_some() {
                return Err(CliError::usage("--node: this node is not in a cluster ([cluster] in the config)"));
            }
            let (t, on) =
                crate::cluster::create_tenant(&app, &slug(&s)?, &name, plan.as_deref(), node.as_deref(), &actor)?;
            let on = if on.is_empty() { String::new() } else { format!(" on node {on}") };
            println!(
                "created tenant {} ({}) id {} on plan {}{on}",
                t["slug"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or(""),
                t["id"].as_str().unwrap_or(""),
                t["plan"].as_str().unwrap_or("")
            );
        }
        TenantCmd::List { json, all } => {
            let list = tenants::list(&*app.catalog.conn()?, all)?;
            if json {
                print_json(&list.iter().map(tenant_json).collect::<Vec<_>>())?;
            } else {
                print_table(&list);
            }
        }
        TenantCmd::Show { slug: s, json } => {
            let t = app.tenant(&slug(&s)?)?;
            let mut v = tenant_json(&t);
            let db = app.paths.tenant_db(&t.id);
            v["data_file"] = json!(db.display().to_string());
            v["data_bytes"] = json!(std::fs::metadata(&db).map(|m| m.len()).ok());
            if json {
                print_json(&v)?;
            } else if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    let shown = val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string());
                    println!("{k:>15}: {shown}");
                }
            }
        }
        TenantCmd::Suspend { slug: s } => {
            let t = tenancy::suspend(&app, &slug(&s)?, &actor)?;
            println!("suspended {}: reads work, writes answer 423", t.slug);
        }
        TenantCmd::Resume { slug: s } => {
            let t = tenancy::resume(&app, &slug(&s)?, &actor)?;
            println!("resumed {}", t.slug);
        }
        TenantCmd::Delete { slug: s, purge, yes } => {
            let s = slug(&s)?;
            if purge {
                let t = app.tenant(&s)?;
                if !yes
                    && !confirm(
                        &format!(
                            "Permanently remove tenant {} ({}) and all its files? Type the slug to confirm: ",
                            t.slug, t.name
                        ),
                        t.slug.as_str(),
                    )?
                {
                    return Err(CliError::usage("not confirmed; nothing removed (use --yes in scripts)"));
                }
                let r = tenancy::purge(&app, &s, &actor)?;
                println!(
                    "purged {} (id {}): {} files, {} bytes removed; deletion recorded",
                    s, r.tenant_id, r.files_removed, r.bytes_removed
                );
            } else {
                let t = tenancy::soft_delete(&app, &s, &actor)?;
                let when = t.purge_after.map(rfc3339).unwrap_or_default();
                println!("deleted {} (restorable with `tenantd tenant resume {}` until {when})", t.slug, t.slug);
            }
        }
        TenantCmd::PurgeExpired => {
            let done = tenancy::purge_expired(&app, &actor)?;
            for (s, r) in &done {
                println!("purged {s}: {} files, {} bytes", r.files_removed, r.bytes_removed);
            }
            println!("{} tenants purged", done.len());
        }
        TenantCmd::Export { slug: s, out } => {
            let m = archive::export(&app, &slug(&s)?, &out, &actor)?;
            let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
            println!(
                "exported {} (schema v{}, {} files, {bytes} bytes) to {}",
                s,
                m.schema_version,
                m.files.len(),
                out.display()
            );
        }
        TenantCmd::Import { file, slug: s, name, plan } => {
            let s = slug(&s)?;
            let opts = archive::ImportOptions { slug: &s, name: name.as_deref(), plan: plan.as_deref() };
            let t = archive::import(&app, &file, &opts, &actor)?;
            println!("imported {} as tenant {} (id {}, schema v{})", file.display(), t.slug, t.id, t.schema_version);
        }
        TenantCmd::SetPlan { slug: s, plan } => {
            let t = tenancy::set_plan(&app, &slug(&s)?, &plan, &actor)?;
            println!("{} is on plan {}", t.slug, t.plan);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tenant_json(t: &TenantRecord) -> serde_json::Value {
    json!({
        "id": t.id,
        "slug": t.slug,
        "name": t.name,
        "status": t.status,
        "plan": t.plan,
        "schema_version": t.schema_version,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "purge_after": t.purge_after.map(rfc3339),
    })
}

fn print_table(list: &[TenantRecord]) {
    println!("{:<24} {:<28} {:<10} {:<12} {:>6}  {:<20} ID", "SLUG", "NAME", "STATUS", "PLAN", "SCHEMA", "CREATED");
    for t in list {
        let name: String = t.name.chars().take(28).collect();
        println!(
            "{:<24} {:<28} {:<10} {:<12} {:>6}  {:<20} {}",
            t.slug,
            name,
            t.status.as_str(),
            t.plan,
            t.schema_version,
            rfc3339(t.created_at),
            t.id
        );
    }
    println!("{} tenants", list.len());
}

/// Asks on the terminal; without one, the answer is no.
fn confirm(prompt: &str, expected: &str) -> CliResult<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == expected)
}
