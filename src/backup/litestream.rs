//! `tenantd litestream config`: Litestream 0.5 configuration for off-box copies of every tenant
//! file and the catalog, and the systemd units that run it.
//!
//! One process watches `tenants/` in directory mode (`watch: true`: a new tenant is picked up
//! within seconds). Litestream's directory patterns match file names only, and every tenant file
//! is `data.db`, so a fleet split over several processes lists its files instead (each process
//! takes the tenants whose id hashes to it): that split is static, and is written again after
//! tenants are created (`tenantd litestream config` again, then a restart of the units).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ids::TenantId;

/// Replica URL schemes Litestream 0.5 knows.
const SCHEMES: &[&str] = &["file", "s3", "gs", "abs", "sftp", "webdav", "nats", "oss"];

/// The replica URL without a trailing `/`, refused unless Litestream knows its scheme and it
/// holds nothing that would break out of a YAML scalar.
pub fn replica_url(url: &str) -> Result<String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    if !SCHEMES.contains(&scheme) {
        return Err(Error::invalid(
            "invalid_replica_url",
            format!(
                "{:?}: a replica URL starts with one of {} (e.g. file:///srv/tenantd-replica, s3://bucket/tenantd)",
                crate::ids::truncate_for_message(url),
                SCHEMES.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '#' | '\\')) {
        return Err(Error::invalid("invalid_replica_url", "the replica URL holds spaces, quotes, '#' or '\\'"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `url` with `path` appended to its path, before any query (`s3://b/t?endpoint=…` +
/// `tenants` = `s3://b/t/tenants?endpoint=…`: Litestream reads an S3-compatible server's
/// address and path style from the query).
pub fn join(url: &str, path: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let mut out = format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// (file name, content) of each file to write: `litestream.yml` and `tenantd-litestream.service`
/// for one process; `litestream-<k>.yml` and the template unit `tenantd-litestream@.service`
/// for several. `data_dir` must be absolute (Litestream runs from elsewhere).
pub fn render(
    data_dir: &Path,
    config_dir: &Path,
    tenants: &[TenantId],
    url: &str,
    processes: usize,
) -> Vec<(String, String)> {
    let data = data_dir.display();
    let head = |what: &str| {
        format!(
            "# Litestream 0.5 configuration written by `tenantd litestream config` ({}).\n\
             # {what}\n\
             # Restore one tenant: litestream restore -o data.db {}\n\
             # (add -timestamp 2026-12-07T14:20:00Z for a point in time), then\n\
             # tenantd tenant import data.db --slug <new-slug>. docs/operations.md, \"Litestream\".\n",
            crate::util::rfc3339(crate::util::now_unix()),
            join(url, "tenants/<tenant_id>/data.db")
        )
    };
    let catalog = format!(
        "  - path: {data}/catalog.db\n    busy-timeout: 5s\n    replica:\n      url: {}\n",
        join(url, "catalog.db")
    );
    if processes <= 1 {
        let yml = format!(
            "{}dbs:\n  - dir: {data}/tenants\n    pattern: \"data.db\"\n    recursive: true\n    watch: true\n    \
             meta-dir: {data}/litestream\n    busy-timeout: 5s\n    replica:\n      url: {}\n{catalog}",
            head("Every tenant file (tenants/<id>/data.db, new ones within seconds) and the catalog."),
            join(url, "tenants")
        );
        let unit = unit("", &config_dir.join("litestream.yml"));
        return vec![("litestream.yml".into(), yml), ("tenantd-litestream.service".into(), unit)];
    }
    let mut files = Vec::new();
    for k in 0..processes {
        let mut yml = head(&format!(
            "Process {} of {processes}: the tenants whose id hashes to it{}. Static: write it again after creating tenants.",
            k + 1,
            if k == 0 { ", and the catalog" } else { "" }
        ));
        yml.push_str("dbs:\n");
        if k == 0 {
            yml.push_str(&catalog);
        }
        for id in tenants.iter().filter(|id| shard(id, processes) == k) {
            let _ = write!(
                yml,
                "  - path: {data}/tenants/{id}/data.db\n    busy-timeout: 5s\n    replica:\n      url: {}\n",
                join(url, &format!("tenants/{id}/data.db"))
            );
        }
        files.push((format!("litestream-{}.yml", k + 1), yml));
    }
    files.push(("tenantd-litestream@.service".into(), unit("@", &config_dir.join("litestream-%i.yml"))));
    files
}

/// Sets how often Litestream looks for new WAL frames (`monitor-interval`) and ships them
/// (`sync-interval`) on every database of rendered files, instead of Litestream's 1 s: what a
/// crash can lose and how long a cluster move freezes writes follow it, at the cost of more
/// polling per database.
pub fn with_interval(files: Vec<(String, String)>, interval: &str) -> Result<Vec<(String, String)>> {
    let ms = match interval.strip_suffix("ms") {
        Some(n) => n.parse::<u64>().ok(),
        None => interval.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()).map(|s| s * 1000),
    };
    if !ms.is_some_and(|ms| (50..=60_000).contains(&ms)) {
        return Err(Error::invalid(
            "invalid_interval",
            format!("{interval:?}: an interval like 200ms or 1s, from 50ms to 60s"),
        ));
    }
    Ok(files
        .into_iter()
        .map(|(name, text)| {
            if !name.ends_with(".yml") {
                return (name, text);
            }
            let text = text
                .replace("    busy-timeout: 5s\n", &format!("    busy-timeout: 5s\n    monitor-interval: {interval}\n"))
                .replace("    replica:\n", &format!("    replica:\n      sync-interval: {interval}\n"));
            (name, text)
        })
        .collect())
}

/// Which of `n` processes replicates a tenant: its id's first 8 hex digits, modulo `n`.
fn shard(id: &TenantId, n: usize) -> usize {
    let head = id.as_str().get(..8).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0);
    (head % n as u64) as usize
}

fn unit(template: &str, config: &Path) -> String {
    let which = if template.is_empty() { String::new() } else { " (process %i)".to_string() };
    format!(
        "[Unit]\n\
         Description=Litestream: off-box copies of tenantd's tenant files{which}\n\
         After=tenantd.service\n\
         \n\
         [Service]\n\
         User=tenantd\n\
         Group=tenantd\n\
         ExecStart=/usr/bin/litestream replicate -config {}\n\
         Restart=always\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        config.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_before_the_query() {
        assert_eq!(join("file:///srv/r", "tenants"), "file:///srv/r/tenants");
        assert_eq!(
            join("s3://b/t/?endpoint=http://127.0.0.1:5000&forcePathStyle=true", "nodes/a/catalog.db"),
            "s3://b/t/nodes/a/catalog.db?endpoint=http://127.0.0.1:5000&forcePathStyle=true"
        );
    }

    #[test]
    fn urls_litestream_knows_and_nothing_that_breaks_the_yaml() {
        assert_eq!(replica_url("file:///srv/r/").unwrap(), "file:///srv/r");
        assert_eq!(replica_url("s3://bucket/x").unwrap(), "s3://bucket/x");
        for bad in ["/srv/r", "ftp://x", "file:///a b", "s3://b\"\n  - path: /etc/shadow", "s3://b#x"] {
            assert!(replica_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_process_watches_the_directory_and_several_split_the_fleet() {
        let ids: Vec<TenantId> =
            (0..40u32).map(|i| TenantId::parse(&format!("{:08x}00000000", i * 7919)).unwrap()).collect();
        let files = render(Path::new("/var/lib/tenantd"), Path::new("/etc/tenantd"), &ids, "s3://b/t", 1);
        assert_eq!(files.len(), 2);
        assert!(files[0]
            .1
            .contains("dir: /var/lib/tenantd/tenants\n    pattern: \"data.db\"\n    recursive: true\n    watch: true"));
        assert!(files[0].1.contains("url: s3://b/t/catalog.db"));
        assert!(files[1].1.contains("-config /etc/tenantd/litestream.yml"));
        let files = render(Path::new("/var/lib/tenantd"), Path::new("/etc/tenantd"), &ids, "s3://b/t", 3);
        assert_eq!(files.len(), 4);
        let listed: usize =
            files[..3].iter().map(|(_, y)| y.matches("  - path: /var/lib/tenantd/tenants/").count()).sum();
        assert_eq!(listed, ids.len(), "every tenant in exactly one process");
        let catalogs: usize =
            files.iter().map(|(_, y)| y.matches("  - path: /var/lib/tenantd/catalog.db\n").count()).sum();
        assert_eq!(catalogs, 1, "the catalog in exactly one process");
        assert!(files[0].1.contains("catalog.db") && !files[1].1.contains("catalog.db"));
        assert!(files[3].1.contains("-config /etc/tenantd/litestream-%i.yml"));
        let files = with_interval(files, "200ms").unwrap();
        assert_eq!(files[0].1.matches("monitor-interval: 200ms").count(), files[0].1.matches("busy-timeout").count());
        assert_eq!(files[0].1.matches("      sync-interval: 200ms").count(), files[0].1.matches("replica:").count());
        for bad in ["0ms", "2m", "fast", "10ms", "61s"] {
            assert!(with_interval(Vec::new(), bad).is_err(), "{bad}");
        }
    }
}
