//! `tenantd litestream config`: writes the Litestream configuration and systemd unit for
//! off-box copies of every tenant file and the catalog (docs/operations.md, "Litestream").

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{CliError, CliResult};
use crate::app::App;
use crate::backup::litestream;

#[derive(Subcommand, Debug)]
pub enum LitestreamCmd {
    /// Writes litestream.yml (directory mode: new tenants are picked up within seconds) and
    /// tenantd-litestream.service into --out; with --processes N, litestream-1.yml … N.yml (the
    /// fleet split by tenant id, static: run this again after creating tenants) and the template
    /// unit tenantd-litestream@.service.
    #[command(
        after_help = "Examples:\n  tenantd litestream config --replica-url s3://my-bucket/tenantd --out /etc/tenantd\n  tenantd litestream config --replica-url file:///srv/tenantd-replica --out . --processes 4\n\nThen: litestream replicate -config /etc/tenantd/litestream.yml (or enable the unit)."
    )]
    Config {
        /// Where the copies go: file://, s3://, gs://, abs://, sftp://, webdav://, nats:// or oss://.
        /// In a cluster the default is this node's place in the store: <[cluster] store>/nodes/<name>.
        #[arg(long, value_name = "URL")]
        replica_url: Option<String>,
        /// Directory to write the files into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Litestream processes to split the fleet over (1..=64).
        #[arg(long, value_name = "N", default_value_t = 1)]
        processes: usize,
        /// How often Litestream checks each database and ships new frames (e.g. 200ms; default
        /// Litestream's 1s). Shorter: less to lose in a crash and shorter cluster move pauses,
        /// more polling per database.
        #[arg(long, value_name = "DURATION")]
        sync_interval: Option<String>,
    },
}

pub fn run(app: Arc<App>, cmd: LitestreamCmd) -> CliResult {
    let LitestreamCmd::Config { replica_url, out, processes, sync_interval } = cmd;
    if !(1..=64).contains(&processes) {
        return Err(CliError::usage("--processes: a whole number in 1..=64"));
    }
    let replica_url = match (replica_url, app.cluster.as_ref()) {
        (Some(u), _) => u,
        (None, Some(c)) if !c.config.store.is_empty() => {
            litestream::join(&c.config.store, &format!("nodes/{}", c.this()))
        }
        _ => return Err(CliError::usage("--replica-url URL is needed (or [cluster] store, in a cluster)")),
    };
    let url = litestream::replica_url(&replica_url)?;
    std::fs::create_dir_all(&out).map_err(|e| CliError::failed(format!("{}: {e}", out.display())))?;
    let out = std::fs::canonicalize(&out).map_err(|e| CliError::failed(format!("{}: {e}", out.display())))?;
    let data_dir = std::fs::canonicalize(&app.paths.data_dir)
        .map_err(|e| CliError::failed(format!("{}: {e}", app.paths.data_dir.display())))?;
    // Litestream's directory mode refuses to start on a missing directory (a fresh data dir
    // has no tenant yet).
    std::fs::create_dir_all(data_dir.join("tenants"))
        .map_err(|e| CliError::failed(format!("{}: {e}", data_dir.join("tenants").display())))?;
    let tenants: Vec<_> =
        crate::catalog::tenants::list(&*app.catalog.conn()?, false)?.into_iter().map(|t| t.id).collect();
    let mut files = litestream::render(&data_dir, &out, &tenants, &url, processes);
    if let Some(interval) = &sync_interval {
        files = litestream::with_interval(files, interval)?;
    }
    for (name, text) in files {
        let path = out.join(&name);
        std::fs::write(&path, text).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    if processes == 1 {
        println!("run: litestream replicate -config {}", out.join("litestream.yml").display());
    } else {
        println!(
            "run: litestream replicate -config {}/litestream-<k>.yml for k in 1..={processes} ({} tenants)",
            out.display(),
            tenants.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
