//! CDN edges for tenant assets, as local mirrors: `[cdn] edges = ["eu-west", "us-east"]`, each
//! a directory `cdn/<edge>/<tenant_id>/<sha256>` beside the origin (`tenants/<id>/assets/`).
//! Uploads are pushed to every edge by the syncer thread (`run`, lag measured); an edge missing
//! an object pulls it from the origin on its first request. Objects are content-addressed, so
//! an edge copy never goes stale: it is there or not, and a purge removes it everywhere.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::security::Cidr;

/// `[cdn]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdnConfig {
    /// Edge names (`a-z`, `0-9`, `-`); none = no CDN (assets are still stored and listed).
    pub edges: Vec<String>,
    /// Address ranges served by a given edge (`"10.0.0.0/8" = "eu-west"`); other clients get
    /// an edge by rendezvous hash of their address.
    pub edge_map: BTreeMap<String, String>,
}

impl CdnConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        for e in &self.edges {
            let ok = !e.is_empty()
                && e.len() <= 32
                && e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(format!("cdn.edges: {e:?}: edge names use a-z, 0-9 and '-' (at most 32)"));
            }
        }
        for (range, edge) in &self.edge_map {
            Cidr::parse(range).map_err(|e| format!("cdn.edge_map: {e}"))?;
            if !self.edges.contains(edge) {
                return Err(format!("cdn.edge_map: {range:?} names edge {edge:?}, which is not in cdn.edges"));
            }
        }
        Ok(())
    }
}

/// Upload-to-edge lag samples kept (for p50/p99/max).
const SAMPLES: usize = 4096;

/// The CDN's state in a server: the push queue and its counters.
pub struct Cdn {
    pub config: CdnConfig,
    ranges: Vec<(Cidr, String)>,
    data_dir: PathBuf,
    tx: SyncSender<(TenantId, String, std::time::Instant)>,
    rx: Mutex<Option<Receiver<(TenantId, String, std::time::Instant)>>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub pushed: AtomicU64,
    lag_ms: Mutex<VecDeque<u32>>,
}

pub fn edge_dir(data_dir: &Path, edge: &str) -> PathBuf {
    data_dir.join("cdn").join(edge)
}

pub fn origin_path(data_dir: &Path, tenant: &TenantId, sha: &str) -> PathBuf {
    data_dir.join("tenants").join(tenant.as_str()).join("assets").join(sha)
}

fn edge_path(data_dir: &Path, edge: &str, tenant: &TenantId, sha: &str) -> PathBuf {
    edge_dir(data_dir, edge).join(tenant.as_str()).join(sha)
}

/// The object's second name, `<sha256>.<ext>` (a hard link to the same file): a web server in
/// front types what it serves by extension (packaging/nginx/tenantd.conf), and the asset URLs
/// tenantd gives out carry it.
fn typed_name(sha: &str, file: &Path) -> String {
    let sniffed = crate::tenancy::assets::sniff_file(file).ok().flatten();
    format!("{sha}.{}", crate::tenancy::assets::extension(sniffed.unwrap_or("")))
}

/// Copies `from` to `to` through a temporary name (a reader never sees half a file), and gives
/// the copy its typed name too.
fn copy_in(from: &Path, to: &Path) -> Result<u64> {
    let dir = to.parent().ok_or_else(|| Error::Internal(format!("no parent for {}", to.display())))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".in-{}", crate::util::random_hex(6)));
    let n = std::fs::copy(from, &tmp)?;
    let sha = to.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let typed = dir.join(typed_name(sha, &tmp));
    match std::fs::hard_link(&tmp, &typed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    }
    std::fs::rename(&tmp, to)?;
    Ok(n)
}

/// What an edge answered for one object.
pub struct Served {
    pub bytes: Vec<u8>,
    pub hit: bool,
}

impl Cdn {
    pub fn new(config: &CdnConfig, data_dir: &Path) -> Cdn {
        let (tx, rx) = sync_channel(4096);
        let ranges = config.edge_map.iter().filter_map(|(r, e)| Some((Cidr::parse(r).ok()?, e.clone()))).collect();
        Cdn {
            config: config.clone(),
            ranges,
            data_dir: data_dir.to_path_buf(),
            tx,
            rx: Mutex::new(Some(rx)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            lag_ms: Mutex::default(),
        }
    }

    /// The edge for a client: its address range's, else the edge with the highest hash of
    /// (edge, address) (rendezvous hashing: adding an edge moves only the clients it wins).
    pub fn edge_for(&self, client: Option<IpAddr>) -> Option<&str> {
        if let Some(ip) = client {
            if let Some((_, e)) = self.ranges.iter().find(|(c, _)| c.contains(ip)) {
                return Some(e);
            }
        }
        let who = client.map(|c| c.to_string()).unwrap_or_default();
        self.config
            .edges
            .iter()
            .max_by_key(|e| {
                let h = Sha256::digest(format!("{e}|{who}").as_bytes());
                u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
            })
            .map(String::as_str)
    }

    /// Queues a new object for every edge (never blocks: a full queue leaves it to the pull).
    pub fn uploaded(&self, tenant: &TenantId, sha: &str) {
        if !self.config.edges.is_empty() {
            let _ = self.tx.try_send((tenant.clone(), sha.to_string(), std::time::Instant::now()));
        }
    }

    /// The syncer: pushes queued objects to every edge until `stop`.
    pub fn run(&self, stop: &std::sync::atomic::AtomicBool) {
        let Some(rx) = self.rx.lock().take() else { return };
        while !stop.load(Ordering::Relaxed) {
            let Ok((tenant, sha, at)) = rx.recv_timeout(Duration::from_millis(250)) else { continue };
            let origin = origin_path(&self.data_dir, &tenant, &sha);
            for edge in &self.config.edges {
                let to = edge_path(&self.data_dir, edge, &tenant, &sha);
                if to.is_file() || !origin.is_file() {
                    continue;
                }
                match copy_in(&origin, &to) {
                    Ok(_) => {
                        self.pushed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => crate::log::warn(&format!("cdn: pushing {sha} to {edge}: {}", e.log_detail())),
                }
            }
            let mut lag = self.lag_ms.lock();
            if lag.len() == SAMPLES {
                lag.pop_front();
            }
            lag.push_back(at.elapsed().as_millis().min(u128::from(u32::MAX)) as u32);
        }
    }

    /// Upload-to-every-edge lag of recent uploads: (p50, p99, max) in ms.
    pub fn lag(&self) -> (u32, u32, u32) {
        let mut v: Vec<u32> = self.lag_ms.lock().iter().copied().collect();
        v.sort_unstable();
        let pct = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
        (pct(0.5), pct(0.99), v.last().copied().unwrap_or(0))
    }

    /// Whether the edge holds the object, pulling it from the origin if not (a revalidation
    /// needs no bytes: the ETag is the name). Not found as `fetch`.
    pub fn holds(&self, edge: &str, tenant: &str, sha: &str, live: impl Fn(&TenantId) -> bool) -> Result<()> {
        if let Ok(id) = TenantId::parse(tenant) {
            let known = self.config.edges.iter().any(|e| e == edge) && crate::tenancy::archive::is_asset_name(sha);
            if known && edge_path(&self.data_dir, edge, &id, sha).is_file() {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.fetch(edge, tenant, sha, live).map(|_| ())
    }

    /// One object from an edge: its copy (a hit), or pulled from the origin first (a miss).
    /// Not found: an unknown edge, a malformed name, an object the origin does not hold, or a
    /// tenant `live` says is gone (asked on a miss only: a deleted tenant's copies are purged).
    pub fn fetch(&self, edge: &str, tenant: &str, sha: &str, live: impl Fn(&TenantId) -> bool) -> Result<Served> {
        let nf = || Error::NotFound("asset".into());
        if !self.config.edges.iter().any(|e| e == edge) || !crate::tenancy::archive::is_asset_name(sha) {
            return Err(nf());
        }
        let tenant = TenantId::parse(tenant).map_err(|_| nf())?;
        let path = edge_path(&self.data_dir, edge, &tenant, sha);
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Served { bytes, hit: true });
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            Err(_) => {}
        }
        if !live(&tenant) {
            return Err(nf());
        }
        let origin = origin_path(&self.data_dir, &tenant, sha);
        crate::db::refuse_link(&origin, crate::db::Expect::File, false)?;
        match copy_in(&origin, &path) {
            Ok(_) => {}
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Err(nf()),
            Err(e) => return Err(e),
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Ok(Served { bytes: std::fs::read(&path)?, hit: false })
    }
}

/// Removes a tenant's objects (one, or all) from every edge directory there is (configured or
/// not: an edge dropped from the config may still hold copies). Returns the files removed.
pub fn purge(data_dir: &Path, tenant: &TenantId, sha: Option<&str>) -> Result<usize> {
    let root = data_dir.join("cdn");
    let edges = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut removed = 0;
    for edge in edges.flatten() {
        let dir = edge.path().join(tenant.as_str());
        match sha {
            Some(sha) => {
                // The object and its typed name (`<sha>.<ext>`).
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let typed = name.strip_prefix(sha).is_some_and(|r| r.starts_with('.'));
                    if name != sha && !typed {
                        continue;
                    }
                    // Counted once, by its SHA-256 name.
                    if std::fs::remove_file(e.path()).is_ok() && !typed {
                        removed += 1;
                    }
                }
            }
            None => {
                removed += objects_in(&dir).0 as usize;
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
    }
    Ok(removed)
}

/// Objects (and their bytes) in one tenant's edge directory: each counted once, by its
/// SHA-256 name, not again for its typed name (a hard link to the same file).
fn objects_in(dir: &Path) -> (u64, u64) {
    let (mut objects, mut bytes) = (0, 0);
    for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let named = f.file_name().to_str().is_some_and(crate::tenancy::archive::is_asset_name);
        if let (true, Ok(m)) = (named, f.metadata()) {
            objects += 1;
            bytes += m.len();
        }
    }
    (objects, bytes)
}

/// Per edge: objects and bytes held, for `tenantd cdn status`.
#[derive(Debug, Serialize)]
pub struct EdgeStatus {
    pub edge: String,
    pub configured: bool,
    pub objects: u64,
    pub bytes: u64,
}

pub fn status(data_dir: &Path, config: &CdnConfig) -> Vec<EdgeStatus> {
    let mut names: Vec<String> = config.edges.clone();
    if let Ok(d) = std::fs::read_dir(data_dir.join("cdn")) {
        for e in d.flatten() {
            if let Some(n) = e.file_name().to_str() {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
    }
    names
        .into_iter()
        .map(|edge| {
            let (mut objects, mut bytes) = (0, 0);
            for t in std::fs::read_dir(edge_dir(data_dir, &edge)).into_iter().flatten().flatten() {
                let (o, b) = objects_in(&t.path());
                objects += o;
                bytes += b;
            }
            EdgeStatus { configured: config.edges.contains(&edge), edge, objects, bytes }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges_first_then_a_stable_rendezvous_choice() {
        let mut c = CdnConfig { edges: vec!["eu-west".into(), "us-east".into()], ..CdnConfig::default() };
        c.edge_map.insert("10.0.0.0/8".into(), "us-east".into());
        assert!(c.validate().is_ok());
        let cdn = Cdn::new(&c, Path::new("/nonexistent"));
        assert_eq!(cdn.edge_for(Some("10.1.2.3".parse().unwrap())), Some("us-east"));
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let first = cdn.edge_for(Some(a)).unwrap().to_string();
        assert_eq!(cdn.edge_for(Some(a)), Some(first.as_str()), "the same client, the same edge");
        let spread: std::collections::HashSet<&str> =
            (0..64).map(|i| cdn.edge_for(Some(IpAddr::from([192, 0, 2, i]))).unwrap()).collect();
        assert_eq!(spread.len(), 2, "clients spread over both edges");
        c.edge_map.insert("10.0.0.0/8".into(), "ap-south".into());
        assert!(c.validate().unwrap_err().contains("not in cdn.edges"));
        let bad = CdnConfig { edges: vec!["EU West".into()], ..CdnConfig::default() };
        assert!(bad.validate().is_err());
    }
}
