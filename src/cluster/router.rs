//! The router's configuration file (`[cluster] router_config`): rendered from this node's copy
//! of the directory and reloaded with `router_reload` after every directory change, by the CLI
//! that made it (moves, failover, rebalance) and by the directory node's server (new tenants).

use std::path::Path;
use std::sync::atomic::Ordering;

use super::{nginx, Cluster};
use crate::app::App;
use crate::error::{Error, Result};

/// The configuration from this node's copy of the directory.
pub fn render(app: &App, c: &Cluster, listen: &str, server_name: Option<&str>) -> String {
    let base = app.config.base_domain.as_deref();
    let default_name = base.map(|b| format!("{b} *.{b}")).unwrap_or_else(|| "_".into());
    let site = nginx::Site {
        listen,
        server_name: server_name.unwrap_or(&default_name),
        base_domain: base,
        max_body_bytes: app.config.max_body_bytes,
    };
    let version = c.version.load(Ordering::Relaxed);
    nginx::render(&c.config.nodes, c.config.directory_node(), &c.placements(), version, &site)
}

/// Writes `text` to `path` through a temporary file and a rename (nginx never reads half).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::invalid("router_config", format!("cannot write {}: {e}", path.display())))
}

/// Runs `[cluster] router_reload` (split on spaces, no shell).
pub fn reload(command: &str) -> Result<()> {
    let mut words = command.split_whitespace();
    let Some(prog) = words.next() else {
        return Err(Error::invalid("router_reload", "set [cluster] router_reload, e.g. \"nginx -s reload\""));
    };
    let out = std::process::Command::new(prog)
        .args(words)
        .output()
        .map_err(|e| Error::Retry(format!("router reload {command:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Retry(format!(
            "router reload {command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes `router_config` again (keeping the `listen` it has) and reloads the router. Returns
/// the listen address, or `None` when no router file is configured or none was written yet
/// (`tenantd cluster nginx-config --out FILE --listen ADDR` writes the first, choosing `listen`).
pub fn apply(app: &App) -> Result<Option<String>> {
    let Some(c) = app.cluster.as_ref() else { return Ok(None) };
    if c.config.router_config.is_empty() {
        return Ok(None);
    }
    let path = Path::new(&c.config.router_config);
    let Ok(old) = std::fs::read_to_string(path) else { return Ok(None) };
    let listen = old
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen ").map(|v| v.trim_end_matches(';').trim().to_string()))
        .unwrap_or_else(|| "80".into());
    write_atomic(path, &render(app, c, &listen, None))?;
    if !c.config.router_reload.is_empty() {
        reload(&c.config.router_reload)?;
    }
    Ok(Some(listen))
}
