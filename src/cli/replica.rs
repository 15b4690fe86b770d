//! `tenantd replica status|verify|rebuild|promote`: the read replicas, from beside a running
//! server or without one. Each command works on the files (positions, change logs, mirrors)
//! under the same locks the server's replicator takes, so both may run at once.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::ids::{Slug, TenantId};
use crate::replica::Replication;

#[derive(Subcommand, Debug)]
pub enum ReplicaCmd {
    /// Per replica: tenants mirrored, how many are behind now (commits, ms), the commit-to-apply
    /// lag of recent commits (p50/p99/max), bytes shipped and errors (the last three as the
    /// running server last reported them).
    #[command(after_help = "Examples:\n  tenantd replica status\n  tenantd replica status --json")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Checks that every mirror holds the same pages as its primary at the same position
    /// (exit 1 on a difference). Brings mirrors up to the change log first.
    #[command(after_help = "Examples:\n  tenantd replica verify\n  tenantd replica verify --tenant acme")]
    Verify {
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
    },
    /// Builds a replica's mirrors again from a fresh image of each primary (all tenants, or one).
    #[command(
        after_help = "Examples:\n  tenantd replica rebuild replica-1\n  tenantd replica rebuild replica-2 --tenant acme"
    )]
    Rebuild {
        name: String,
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
    },
    /// Replaces a damaged primary file with a replica's mirror, brought up to the change log
    /// first. The old file is kept aside in backups/<tenant_id>/.
    #[command(after_help = "Example:\n  tenantd replica promote --tenant acme --from replica-1")]
    Promote {
        #[arg(long, value_name = "SLUG")]
        tenant: String,
        #[arg(long, value_name = "NAME")]
        from: String,
    },
}

fn replication(app: &App) -> CliResult<Arc<Replication>> {
    app.replication
        .clone()
        .ok_or_else(|| CliError::usage("no replicas are configured: set [replicas] count = N in the config"))
}

fn replica_index(r: &Replication, name: &str) -> CliResult<usize> {
    r.names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| CliError::usage(format!("no replica named {name:?}: the replicas are {}", r.names.join(", "))))
}

/// The tenants a command covers: one by slug, or every live one.
fn tenants(app: &App, slug: &Option<String>) -> CliResult<Vec<(String, TenantId)>> {
    Ok(match slug {
        Some(s) => {
            let t = app.tenant(&Slug::parse(s)?)?;
            vec![(t.slug.to_string(), t.id)]
        }
        None => {
            let conn = app.catalog.conn()?;
            crate::catalog::tenants::list(&conn, false)?.into_iter().map(|t| (t.slug.to_string(), t.id)).collect()
        }
    })
}

pub fn run(app: Arc<App>, cmd: ReplicaCmd) -> CliResult {
    let r = replication(&app)?;
    match cmd {
        ReplicaCmd::Status { json } => {
            let ids: Vec<TenantId> = tenants(&app, &None)?.into_iter().map(|(_, id)| id).collect();
            let status = r.disk_status(&ids);
            if json {
                print_json(&status)?;
            } else {
                println!(
                    "{:<12} {:>8} {:>7} {:>11} {:>10} {:>9} {:>9} {:>9} {:>12} {:>7}",
                    "replica",
                    "tenants",
                    "behind",
                    "lag commits",
                    "behind ms",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "shipped",
                    "errors"
                );
                for s in &status {
                    println!(
                        "{:<12} {:>8} {:>7} {:>11} {:>10} {:>9} {:>9} {:>9} {:>12} {:>7}",
                        s.name,
                        s.tenants,
                        s.behind,
                        s.lag_commits_max,
                        s.behind_ms_max,
                        s.lag_ms_p50,
                        s.lag_ms_p99,
                        s.lag_ms_max,
                        s.shipped_bytes,
                        s.errors
                    );
                    if let Some(e) = &s.last_error {
                        println!("  last error: {e}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ReplicaCmd::Verify { tenant } => {
            let mut bad = 0;
            let list = tenants(&app, &tenant)?;
            for (slug, id) in &list {
                for (i, name) in r.names.iter().enumerate() {
                    match r.verify(i, id) {
                        Ok(v) => println!("ok   {slug} {name} at position {} ({} pages)", v.position, v.pages),
                        Err(e) => {
                            bad += 1;
                            println!("FAIL {slug} {name}: {}", e.log_detail());
                        }
                    }
                }
            }
            println!("{} checked, {bad} differ", list.len() * r.names.len());
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ReplicaCmd::Rebuild { name, tenant } => {
            let i = replica_index(&r, &name)?;
            for (slug, id) in tenants(&app, &tenant)? {
                let at = r.rebuild(i, &id).map_err(|e| CliError::failed(format!("{slug}: {}", e.log_detail())))?;
                println!("rebuilt {slug} on {name} at position {at}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ReplicaCmd::Promote { tenant, from } => {
            let i = replica_index(&r, &from)?;
            let t = app.tenant(&Slug::parse(&tenant)?)?;
            let kept = r.promote(i, &t.id, &app.paths.backups(&t.id))?;
            app.store.evict(&t.id);
            println!("promoted {from}'s copy of {tenant}; the old file is kept at {}", kept.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
