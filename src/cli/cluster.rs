//! `tenantd cluster …`: the nodes, where tenants are, what adding a node would move, and the
//! router's configuration (docs/cluster.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::cluster::{self, nginx, placement, NodeConfig};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every node: up or not, tenants and bytes, load, how far its copy of the directory is.
    #[command(after_help = "Examples:\n  tenantd cluster status\n  tenantd cluster status --json")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The moves that would put every tenant where placement hashes it, with their sizes;
    /// with --add-node, the moves a new node would take (only to it: about its share).
    #[command(
        after_help = "Examples:\n  tenantd cluster plan\n  tenantd cluster plan --add-node d=http://10.0.0.4:8080,2 --json\n\nPinned tenants (created with --node, or moved by hand) are left where they are."
    )]
    Plan {
        /// NAME=URL[,WEIGHT] of a node to add (repeatable).
        #[arg(long, value_name = "NAME=URL[,WEIGHT]")]
        add_node: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Carries out `cluster plan`'s moves one by one (each a live move: `tenant move`), smallest
    /// first; stops at the first that fails.
    #[command(
        after_help = "Examples:\n  tenantd cluster rebalance --dry-run\n  tenantd cluster rebalance --max-moves 50\n\nAdd a new node to [[cluster.nodes]] on every node (and restart them) first; `cluster plan` shows what this will do."
    )]
    Rebalance {
        /// List the moves and stop.
        #[arg(long)]
        dry_run: bool,
        /// At most this many moves in this run.
        #[arg(long, value_name = "N")]
        max_moves: Option<usize>,
    },
    /// Pulls the directory from the directory node into this node's copy now.
    Sync,
    /// A node is gone: restore its tenants on a survivor from the replica store (Litestream's
    /// copies of its tenant files and catalog) and route them there. Writes the dead node
    /// acknowledged after its last Litestream sync (1 s by default) are lost.
    #[command(
        after_help = "Example:\n  tenantd cluster failover c --to b\n\nRefused while the node still answers (stop it first, or --force). With [cluster] router_config set, the router is written again and reloaded."
    )]
    Failover {
        /// The dead node.
        node: String,
        /// The survivor that takes its tenants.
        #[arg(long, value_name = "NODE")]
        to: String,
        /// Take over even though the node answers (it must not serve them any more).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Writes nginx's configuration for the cluster: a map from tenant (path, X-Tenant,
    /// ?tenant=, subdomain, custom domain) to the node that holds it.
    #[command(
        after_help = "Examples:\n  tenantd cluster nginx-config > /etc/nginx/conf.d/tenantd-cluster.conf\n  tenantd cluster nginx-config --out /etc/nginx/conf.d/tenantd-cluster.conf --reload\n\n--reload runs [cluster] router_reload (e.g. \"nginx -s reload\") after writing the file."
    )]
    NginxConfig {
        /// Write here (atomically) instead of standard output (default: [cluster] router_config).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// What nginx listens on.
        #[arg(long, default_value = "80")]
        listen: String,
        /// nginx's server_name (default: base_domain and its subdomains, else `_`).
        #[arg(long)]
        server_name: Option<String>,
        /// Reload nginx afterwards with [cluster] router_reload.
        #[arg(long)]
        reload: bool,
    },
}

pub fn run(app: Arc<App>, cmd: ClusterCmd) -> CliResult {
    let c = cluster::of(&app)?.clone();
    match cmd {
        ClusterCmd::Status { json } => {
            let s = cluster::status(&app, &c);
            if json {
                print_json(&s)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "this node {}, directory on {} (version {}), {} tenants",
                s["this_node"].as_str().unwrap_or(""),
                s["directory_node"].as_str().unwrap_or(""),
                s["directory_version"],
                s["tenants"]
            );
            println!(
                "{:<12} {:<5} {:>8} {:>12} {:>9} {:>12} {:>9} {:>12}  url",
                "node", "up", "tenants", "bytes", "open", "requests", "dir v", "store lag"
            );
            let mut down = 0;
            for n in s["nodes"].as_array().into_iter().flatten() {
                let up = n["up"].as_bool().unwrap_or(false);
                down += usize::from(!up);
                // Tenants behind in the store (their most transactions behind).
                let r = &n["replication"];
                let lag = match (r["tenants_behind"].as_u64(), r["lag_txids_max"].as_u64()) {
                    (Some(b), Some(m)) => format!("{b} ({m} tx)"),
                    _ => "-".into(),
                };
                let mut notes = Vec::new();
                for (key, what) in
                    [("not_in_store", "not in the store yet"), ("not_watched", "not watched by Litestream")]
                {
                    if let Some(k) = r[key].as_u64().filter(|k| *k > 0) {
                        notes.push(format!("{k} {what}"));
                    }
                }
                let notes = if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) };
                println!(
                    "{:<12} {:<5} {:>8} {:>12} {:>9} {:>12} {:>9} {:>12}  {}{}",
                    n["node"].as_str().unwrap_or(""),
                    if up { "yes" } else { "NO" },
                    n["tenants"].as_u64().map(|v| v.to_string()).unwrap_or("-".into()),
                    n["bytes"].as_u64().map(|v| v.to_string()).unwrap_or("-".into()),
                    n["open_tenants"].as_u64().map(|v| v.to_string()).unwrap_or("-".into()),
                    n["requests_total"].as_u64().map(|v| v.to_string()).unwrap_or("-".into()),
                    n["directory_version"].as_i64().map(|v| v.to_string()).unwrap_or("-".into()),
                    lag,
                    n["url"].as_str().unwrap_or(""),
                    n["error"].as_str().map(|e| format!("  ({e})")).unwrap_or(notes),
                );
            }
            Ok(if down == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ClusterCmd::Plan { add_node, json } => {
            if let Err(e) = cluster::sync(&app) {
                eprintln!("warning: the directory node did not answer ({e}): planning from this node's copy");
            }
            let mut nodes = c.config.nodes.clone();
            for spec in &add_node {
                let n = parse_node(spec)?;
                if nodes.iter().any(|m| m.name == n.name) {
                    return Err(CliError::usage(format!(
                        "--add-node {spec}: node {:?} is already in the cluster",
                        n.name
                    )));
                }
                nodes.push(n);
            }
            let check = cluster::ClusterConfig { nodes: nodes.clone(), ..c.config.clone() };
            check.validate().map_err(CliError::usage)?;
            let all = c.placements();
            let placed: Vec<placement::Placed<'_>> = all
                .iter()
                .map(|p| placement::Placed { slug: &p.slug, node: &p.node, pinned: p.pinned, bytes: p.bytes })
                .collect();
            let moves = placement::plan(&nodes, &placed);
            let bytes: u64 = moves.iter().map(|m| m.bytes).sum();
            let share = if all.is_empty() { 0.0 } else { moves.len() as f64 * 100.0 / all.len() as f64 };
            if json {
                print_json(&json!({"tenants": all.len(), "moves": moves, "bytes": bytes, "percent": share}))?;
            } else {
                for m in &moves {
                    println!("move {:<30} {:>8} -> {:<8} {:>12} bytes", m.slug, m.from, m.to, m.bytes);
                }
                println!("{} of {} tenants would move ({share:.1}%), {bytes} bytes", moves.len(), all.len());
                if !add_node.is_empty() && !moves.is_empty() {
                    println!("add the node to [[cluster.nodes]] on every node, then: tenantd cluster rebalance");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCmd::Failover { node, to, force, json } => {
            let dead =
                c.config.node(&node).ok_or_else(|| CliError::usage(format!("no node {node:?} in [cluster] nodes")))?;
            let survivor = c
                .config
                .node(&to)
                .ok_or_else(|| CliError::usage(format!("--to: no node {to:?} in [cluster] nodes")))?;
            if dead.name == survivor.name {
                return Err(CliError::usage("--to must be another node"));
            }
            if !force && c.client.call(dead, "GET", "/api/v1/cluster/node", None).is_ok() {
                return Err(CliError::usage(format!(
                    "node {node} answers at {}: it is not dead; stop it first (or --force)",
                    dead.url
                )));
            }
            let started = std::time::Instant::now();
            let out = c.client.call(survivor, "POST", "/api/v1/cluster/failover", Some(&json!({"from": node})))?;
            let _ = cluster::sync(&app);
            refresh_router(&app, out["restored"].get(0).and_then(|s| s.as_str()))?;
            let secs = started.elapsed().as_secs_f64();
            let failed = out["failed"].as_array().map(|a| a.len()).unwrap_or(0);
            if json {
                let mut out = out;
                out["seconds_with_router"] = json!((secs * 1000.0).round() / 1000.0);
                print_json(&out)?;
            } else {
                println!(
                    "node {to} took over {} tenants of node {node} in {secs:.2} s{}",
                    out["restored"].as_array().map(|a| a.len()).unwrap_or(0),
                    if failed > 0 { format!("; {failed} failed: {}", out["failed"]) } else { String::new() }
                );
            }
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ClusterCmd::Rebalance { dry_run, max_moves } => {
            let _ = cluster::sync(&app);
            let all = c.placements();
            let placed: Vec<placement::Placed<'_>> = all
                .iter()
                .map(|p| placement::Placed { slug: &p.slug, node: &p.node, pinned: p.pinned, bytes: p.bytes })
                .collect();
            let mut moves = placement::plan(&c.config.nodes, &placed);
            moves.truncate(max_moves.unwrap_or(usize::MAX));
            if moves.is_empty() {
                println!("every tenant is where placement puts it: nothing to move");
                return Ok(ExitCode::SUCCESS);
            }
            for (i, m) in moves.iter().enumerate() {
                if dry_run {
                    println!("would move {} from {} to {} ({} bytes)", m.slug, m.from, m.to, m.bytes);
                    continue;
                }
                let slug = crate::ids::Slug::parse(&m.slug)?;
                let switch = |app: &App| {
                    refresh_router(app, Some(m.slug.as_str())).map_err(|e| crate::error::Error::Retry(e.message))
                };
                let r = cluster::moves::run(&app, &slug, &m.to, false, &switch)
                    .map_err(|e| CliError::failed(format!("move {} of {}: {}: {e}", i + 1, moves.len(), m.slug)))?;
                println!(
                    "[{}/{}] moved {} {} -> {} ({} bytes), writes paused {} ms",
                    i + 1,
                    moves.len(),
                    r.slug,
                    r.from,
                    r.to,
                    r.bytes,
                    r.write_pause_ms
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCmd::Sync => {
            let n = cluster::sync(&app)?;
            println!(
                "directory at version {}: {n} entries changed",
                c.version.load(std::sync::atomic::Ordering::Relaxed)
            );
            Ok(ExitCode::SUCCESS)
        }
        ClusterCmd::NginxConfig { out, listen, server_name, reload } => {
            if let Err(e) = cluster::sync(&app) {
                eprintln!("warning: the directory node did not answer ({e}): writing this node's copy");
            }
            let out =
                out.or_else(|| (!c.config.router_config.is_empty()).then(|| PathBuf::from(&c.config.router_config)));
            let text = cluster::router::render(&app, &c, &listen, server_name.as_deref());
            match &out {
                Some(path) => {
                    cluster::router::write_atomic(path, &text)?;
                    eprintln!("wrote {} ({} tenants)", path.display(), c.placements().len());
                }
                None => print!("{text}"),
            }
            if reload {
                cluster::router::reload(&c.config.router_reload)?;
                eprintln!("router reloaded ({})", c.config.router_reload);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// After a directory change from this CLI: writes `[cluster] router_config` again and runs
/// `router_reload`, when they are set; with `check`, waits (up to 5 s) until the router sends
/// that tenant to the node the directory names (nginx reloads in the background).
pub fn refresh_router(app: &App, check: Option<&str>) -> Result<(), CliError> {
    let Some(listen) = cluster::router::apply(app)? else { return Ok(()) };
    let Some(c) = app.cluster.as_ref().filter(|c| !c.config.router_reload.is_empty()) else { return Ok(()) };
    eprintln!("router reloaded ({})", c.config.router_reload);
    let (Some(slug), Some(p)) = (check, check.and_then(|s| c.locate(s))) else { return Ok(()) };
    let addr = if listen.contains(':') { listen.clone() } else { format!("127.0.0.1:{listen}") };
    let want = nginx::upstream(&p.node);
    let started = std::time::Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(2)))
        .http_status_as_error(false)
        .max_idle_connections(0)
        .build()
        .into();
    // nginx starts the new workers, then waits 100 ms before it stops the old ones: until
    // several answers in a row come from the new ones.
    let mut in_a_row = 0;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        let res = agent.get(&format!("http://{addr}/api/v1/t/{slug}/")).call();
        let routed =
            res.ok().and_then(|r| r.headers().get("tenantd-upstream").map(|v| v.as_bytes() == want.as_bytes()));
        in_a_row = if routed == Some(true) { in_a_row + 1 } else { 0 };
        if in_a_row == 25 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(CliError::failed(format!("the router at {addr} still does not send {slug} to {want} 5 s after its reload")))
}

fn parse_node(spec: &str) -> Result<NodeConfig, CliError> {
    let bad =
        || CliError::usage(format!("--add-node {spec:?}: expected NAME=URL[,WEIGHT], e.g. d=http://10.0.0.4:8080,2"));
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (url, weight) = match rest.rsplit_once(',') {
        Some((u, w)) => (u, w.trim().parse::<f64>().map_err(|_| bad())?),
        None => (rest, 1.0),
    };
    Ok(NodeConfig { name: name.trim().to_string(), url: url.trim().to_string(), weight })
}
