//! `tenantd cdn status|purge`: the CDN edges' copies of tenant assets (`[cdn] edges`).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::ids::Slug;

#[derive(Subcommand, Debug)]
pub enum CdnCmd {
    /// Per edge: objects and bytes held (edges found on disk but no longer configured too).
    #[command(after_help = "Examples:\n  tenantd cdn status\n  tenantd cdn status --json")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Removes a tenant's copies from every edge (all of them, or one object with --hash; the
    /// origin keeps its assets: edges pull them again on their next request).
    #[command(
        after_help = "Examples:\n  tenantd cdn purge --tenant acme\n  tenantd cdn purge --tenant acme --hash 9f86d0…"
    )]
    Purge {
        #[arg(long, value_name = "SLUG")]
        tenant: String,
        #[arg(long, value_name = "SHA256")]
        hash: Option<String>,
    },
}

pub fn run(app: Arc<App>, cmd: CdnCmd) -> CliResult {
    match cmd {
        CdnCmd::Status { json } => {
            let status = crate::cdn::status(&app.paths.data_dir, &app.config.cdn);
            if json {
                print_json(&status)?;
            } else if status.is_empty() {
                println!("no CDN edges: set [cdn] edges = [\"eu-west\", \"us-east\"] in the config");
            } else {
                println!("{:<16} {:>10} {:>14}", "edge", "objects", "bytes");
                for s in &status {
                    let note =
                        if s.configured { "" } else { "  (not configured: tenantd cdn purge or remove the directory)" };
                    println!("{:<16} {:>10} {:>14}{note}", s.edge, s.objects, s.bytes);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CdnCmd::Purge { tenant, hash } => {
            let t = app.tenant(&Slug::parse(&tenant)?)?;
            if let Some(h) = &hash {
                if !crate::tenancy::archive::is_asset_name(h) {
                    return Err(CliError::usage(format!("--hash {h:?}: an asset name is 64 lowercase hex digits")));
                }
            }
            let n = crate::cdn::purge(&app.paths.data_dir, &t.id, hash.as_deref())?;
            println!("removed {n} copies of {tenant}'s assets from the edges");
            Ok(ExitCode::SUCCESS)
        }
    }
}
