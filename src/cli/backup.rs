//! `tenantd backup create|list|verify|restore`: per-tenant snapshots and restores, beside a
//! running server or without one (snapshots read the tenant file in one read transaction; a
//! restore writes through SQLite's backup API, which a running server's connections see at
//! their next transaction).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::backup::{self, Kind, Target};
use crate::ids::Slug;
use crate::tenancy::Actor;

#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Snapshots a tenant now (or every tenant with --all), compressed, with a manifest and
    /// SHA-256 digests in backups/<tenant_id>/. Then deletes snapshots past the plan's
    /// backup_retention_days (the newest is always kept).
    #[command(after_help = "Examples:\n  tenantd backup create acme\n  tenantd backup create --all")]
    Create {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        slug: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// A tenant's snapshots, newest first: id, when, kind, commit position, sizes.
    #[command(after_help = "Examples:\n  tenantd backup list acme\n  tenantd backup list acme --json")]
    List {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Checks a tenant's snapshots (or one with --id): both SHA-256 digests and SQLite's
    /// integrity check on the extracted file. Exit 1 if any fails.
    #[command(
        after_help = "Examples:\n  tenantd backup verify acme\n  tenantd backup verify acme --id 20261207T142005Z-3fa9c1"
    )]
    Verify {
        slug: String,
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Restores a tenant to a snapshot (--id) or to an instant (--at: the newest snapshot
    /// before it plus the change log up to it; needs replicas on, which keep the log). In
    /// place, the current state is snapshotted first (restore that to undo); with --as, into a
    /// new tenant and the original is left alone.
    #[command(
        after_help = "Examples:\n  tenantd backup restore acme --at 2026-12-07T14:20:05Z\n  tenantd backup restore acme --at -15m --as acme-copy\n  tenantd backup restore acme --id 20261207T142005Z-3fa9c1"
    )]
    Restore {
        slug: String,
        /// RFC 3339 UTC (milliseconds allowed) or relative: -90s, -15m, -2h, -1d.
        #[arg(
            long,
            value_name = "TIME",
            allow_hyphen_values = true,
            required_unless_present = "id",
            conflicts_with = "id"
        )]
        at: Option<String>,
        /// A backup id from `backup list`, or `latest`.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Restore into a new tenant with this slug (a fork) instead of in place.
        #[arg(long = "as", value_name = "NEWSLUG")]
        fork_as: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 10 << 20 => format!("{} MB", b >> 20),
        b if b >= 10 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

pub fn run(app: Arc<App>, cmd: BackupCmd) -> CliResult {
    match cmd {
        BackupCmd::Create { slug: Some(slug), json, .. } => {
            let t = app.tenant(&Slug::parse(&slug)?)?;
            let m = backup::create(&app, &t, Kind::Manual)?;
            let pruned = backup::prune(&app, &t, crate::util::now_millis())?;
            if json {
                print_json(&m)?;
            } else {
                println!(
                    "backup {} of {slug}: {} pages, {} ({} compressed){}{}",
                    m.id,
                    m.pages,
                    size(m.bytes),
                    size(m.compressed_bytes),
                    m.position.map(|p| format!(", at commit position {p}")).unwrap_or_default(),
                    if pruned > 0 { format!("; {pruned} past retention deleted") } else { String::new() }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Create { json, .. } => {
            let pass = backup::run_scheduled(&app, crate::util::now_millis(), true, app.config.backup.threads)?;
            if json {
                print_json(&pass)?;
            } else {
                for f in &pass.failed {
                    println!("FAIL {f}");
                }
                println!(
                    "{} tenants backed up in {:.1} s, {} snapshots past retention deleted, {} failed",
                    pass.snapshots,
                    pass.seconds,
                    pass.pruned,
                    pass.failed.len()
                );
            }
            Ok(if pass.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        BackupCmd::List { slug, json } => {
            let t = app.tenant(&Slug::parse(&slug)?)?;
            let all = backup::list(&app, &t.id)?;
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("{slug} has no backups (tenantd backup create {slug} takes one)");
            } else {
                println!(
                    "{:<26} {:<25} {:<11} {:>9} {:>8} {:>10}",
                    "id", "taken", "kind", "position", "size", "stored"
                );
                for m in &all {
                    let kind = serde_json::to_value(m.kind).ok().and_then(|v| v.as_str().map(str::to_string));
                    println!(
                        "{:<26} {:<25} {:<11} {:>9} {:>8} {:>10}",
                        m.id,
                        m.created_at(),
                        kind.unwrap_or_default(),
                        m.position.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        size(m.bytes),
                        size(m.compressed_bytes)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Verify { slug, id } => {
            let t = app.tenant(&Slug::parse(&slug)?)?;
            let list = match id {
                Some(id) => vec![backup::find(&app, &t.id, &id)?],
                None => backup::list(&app, &t.id)?,
            };
            if list.is_empty() {
                return Err(CliError::usage(format!("{slug} has no backups to verify")));
            }
            let mut bad = 0;
            for m in &list {
                let v = backup::verify(&app, &t.id, m);
                match &v.problem {
                    None => println!("ok   {} ({} pages, sha256 {})", m.id, m.pages, &m.sha256[..16]),
                    Some(p) => {
                        bad += 1;
                        println!("FAIL {}: {p}", m.id);
                    }
                }
            }
            println!("{} checked, {bad} failed", list.len());
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        BackupCmd::Restore { slug, at, id, fork_as, json } => {
            let t = app.tenant(&Slug::parse(&slug)?)?;
            let target = match (at, id) {
                (Some(at), _) => Target::At(backup::parse_instant(&at, crate::util::now_millis())?),
                (None, Some(id)) => Target::Backup(id),
                (None, None) => return Err(CliError::usage("say what to restore to: --at TIME or --id ID")),
            };
            let fork = fork_as.as_deref().map(Slug::parse).transpose()?;
            let started = std::time::Instant::now();
            let r = backup::restore(&app, &t, &target, fork.as_ref(), &Actor::cli())?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "restored {} into {} as of {} (backup {} + {} commits of the change log) in {:.2} s",
                    r.tenant,
                    r.into,
                    r.built.state_at,
                    r.built.backup.as_deref().unwrap_or("-"),
                    r.built.commits_applied,
                    started.elapsed().as_secs_f64()
                );
                if let Some(u) = &r.undo_backup {
                    println!(
                        "the state before is kept as backup {u}: tenantd backup restore {} --id {u} undoes this",
                        r.tenant
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
