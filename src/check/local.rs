//! `tenantd check --data-dir DIR`: the checks run on a throwaway copy of the data dir, never
//! on it. The catalog and the files of the tenants the checks use (the two probed, the first N
//! for the migration dry run) are copied with SQLite's online backup (a server may be running
//! on DIR), assets as files, so the copy stays small however large the fleet; the copy gets
//! check users in two of its tenants (every built-in role, and a platform admin) and a server of
//! its own on 127.0.0.1:0. Beyond the HTTP checks, a copy allows the ones that need the files:
//! the copied tenants' audit chains and the platform's against their anchors, pending migrations
//! dry-run on N tenants, a backup restored into a new tenant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::creds::{File, Login, Secret};
use super::{expect, Outcome, Result, Run};
use crate::app::{App, OpenMode};
use crate::catalog::tenants::TenantRecord;
use crate::config::Config;
use crate::http::server::{self, RunningServer};
use crate::ids::Slug;
use crate::tenancy::{self, Actor};

/// The copy and its server; both go away on drop.
pub struct Copy {
    pub app: Arc<App>,
    pub addr: std::net::SocketAddr,
    /// Credentials of the check users, as a credentials file would give them.
    pub creds: File,
    /// The two tenants probed against each other.
    pub tenants: Vec<TenantRecord>,
    /// Every tenant whose files were copied: the two above and the first `migrate_tenants`
    /// (the copy's catalog still lists the others, whose files stay behind).
    pub copied: Vec<TenantRecord>,
    root: PathBuf,
    server: Option<RunningServer>,
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Copies `config.data_dir` (its catalog, and the files of the tenants the checks use: the
/// first two active ones by slug, and the first `migrate_tenants`) and starts a server on the
/// copy with users to sign in as.
pub fn prepare(mut config: Config, migrate_tenants: usize) -> Result<Copy> {
    let src = config.data_dir.clone();
    if !src.join("catalog.db").is_file() {
        return Err(format!(
            "{} is not a tenantd data dir (no catalog.db); run `tenantd init` or give --url",
            src.display()
        ));
    }
    let root = std::env::temp_dir().join(format!("tenantd-check-{}", crate::util::random_hex(6)));
    let dest = root.join("data");
    // From here on the directory is removed again on any error (the Copy owns it once built).
    let cleanup = Cleanup(root.clone());
    let copying = |e: std::io::Error| format!("copying {} to {}: {e}", src.display(), dest.display());
    std::fs::create_dir_all(dest.join("tenants")).map_err(copying)?;
    backup_db(&src.join("catalog.db"), &dest.join("catalog.db")).map_err(copying)?;
    config.data_dir = dest.clone();
    config.listen = "127.0.0.1:0".into();
    // The copy is on its own: no peers, no mirrors, no edges to write to.
    config.cluster = Default::default();
    config.replicas = Default::default();
    config.cdn = Default::default();
    // The walk sends a few thousand requests in seconds; the copy's limits must not answer them
    // (the limits check still sees the headers).
    for p in config.plans.values_mut() {
        p.requests_per_second = p.requests_per_second.max(100_000.0);
        p.burst = p.burst.max(100_000);
        p.max_concurrent_requests = p.max_concurrent_requests.max(1000);
    }
    config.limits.auth_requests_per_second = config.limits.auth_requests_per_second.max(100_000.0);
    config.limits.auth_burst = config.limits.auth_burst.max(100_000);
    let app = App::open(config, OpenMode::MustExist).map_err(|e| format!("opening the copy: {}", e.log_detail()))?;
    let active = active_tenants(&app)?;
    let mut copied: Vec<TenantRecord> = active.iter().take(migrate_tenants.max(2)).cloned().collect();
    for t in &copied {
        copy_tenant(&src, &dest, &t.id).map_err(copying)?;
    }
    let tenants = pick_tenants(&app, &active)?;
    for t in &tenants {
        if !copied.iter().any(|c| c.id == t.id) {
            copied.push(t.clone());
        }
    }
    let password = format!("Check-{}", crate::util::random_hex(12));
    let mut creds = File::default();
    for t in &tenants {
        for role in crate::auth::perms::BUILTIN_ROLES {
            let email = format!("tenantd-check-{role}@{}.check.example", t.slug);
            let id = crate::auth::create_user(&app, &email, &password, false)
                .map_err(|e| format!("creating {email}: {e}"))?;
            app.change(|tx| crate::catalog::identity::add_membership(tx, &t.id, id, role, crate::util::now_unix()))
                .map_err(|e| format!("adding {email} to {}: {e}", t.slug))?;
            let (email, password) = (Some(email), Some(password.clone()));
            creds.login.push(Login { tenant: t.slug.to_string(), role: role.into(), email, password, token: None });
        }
    }
    let admin = "tenantd-check-platform@check.example".to_string();
    crate::auth::create_user(&app, &admin, &password, true).map_err(|e| format!("creating {admin}: {e}"))?;
    creds.platform_admin = Some(Secret { email: Some(admin), password: Some(password), token: None });
    let server =
        server::start(app.clone(), "127.0.0.1:0").map_err(|e| format!("starting a server on the copy: {e}"))?;
    let addr = server.addr();
    std::mem::forget(cleanup);
    Ok(Copy { app, addr, creds, tenants, copied, root, server: Some(server) })
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The active tenants that keep the tenant schema, by slug.
fn active_tenants(app: &App) -> Result<Vec<TenantRecord>> {
    let conn = app.catalog.conn().map_err(|e| e.to_string())?;
    let mut active: Vec<TenantRecord> = crate::catalog::tenants::list(&conn, false)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|t| t.status == crate::catalog::tenants::TenantStatus::Active && !t.custom_schema)
        .collect();
    active.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
    Ok(active)
}

/// The first two of `active`; tenants `check-a`/`check-b` are created in the copy when there
/// are fewer.
fn pick_tenants(app: &App, active: &[TenantRecord]) -> Result<Vec<TenantRecord>> {
    let mut picked: Vec<TenantRecord> = active.iter().take(2).cloned().collect();
    for slug in ["check-a", "check-b"] {
        if picked.len() >= 2 {
            break;
        }
        let s = Slug::parse(slug).map_err(|e| e.to_string())?;
        let t = tenancy::create(app, &s, &format!("Check tenant {slug}"), None, &Actor::cli())
            .map_err(|e| e.to_string())?;
        picked.push(t);
    }
    Ok(picked)
}

/// One tenant's file through SQLite's backup API (consistent while a server writes) and its
/// assets as plain files. Snapshots, change logs, mirrors and edges are left out.
fn copy_tenant(src: &Path, dest: &Path, id: &crate::ids::TenantId) -> std::io::Result<()> {
    let (from, to) = (src.join("tenants").join(id.as_str()), dest.join("tenants").join(id.as_str()));
    if !from.join("data.db").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&to)?;
    backup_db(&from.join("data.db"), &to.join("data.db"))?;
    if let Ok(assets) = std::fs::read_dir(from.join("assets")) {
        std::fs::create_dir_all(to.join("assets"))?;
        for a in assets.flatten() {
            if a.file_type()?.is_file() {
                std::fs::copy(a.path(), to.join("assets").join(a.file_name()))?;
            }
        }
    }
    Ok(())
}

fn backup_db(from: &Path, to: &Path) -> std::io::Result<()> {
    let io = |e: rusqlite::Error| std::io::Error::other(format!("{}: {e}", from.display()));
    let src = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(io)?;
    src.backup(rusqlite::MAIN_DB, to, None).map_err(io)
}

/// The checks that need the files: audit chains against their anchors, migrations dry-run on
/// `n` tenants, a backup restored into a new tenant.
pub fn checks(run: &mut Run, copy: &Copy, migrate_tenants: usize) {
    let app = &copy.app;
    let name =
        format!("the platform's chain and the {} copied tenants' verify against their anchors", copy.copied.len());
    run.check("audit", &name, || {
        let mut verdicts = vec![crate::audit::verify_platform(app).map_err(|e| e.to_string())?];
        for t in &copy.copied {
            verdicts.push(crate::audit::verify_tenant(app, t).map_err(|e| e.to_string())?);
        }
        let broken: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.ok)
            .map(|v| format!("{}: {}", v.tenant, v.problem.clone().unwrap_or_default()))
            .collect();
        Ok(expect(broken.is_empty(), || broken.join("; ")))
    });
    let migrating: Vec<&TenantRecord> = copy.copied.iter().take(migrate_tenants).collect();
    let name = format!("pending tenant-schema migrations apply to copies of {} tenants (dry run)", migrating.len());
    run.check("migrations", &name, || {
        let mut failed = Vec::new();
        for t in &migrating {
            let r = crate::fleet::migrate_tenant(app, &t.slug, None, true).map_err(|e| format!("{}: {e}", t.slug))?;
            for o in r.outcomes.iter().filter(|o| o.status == "would_fail" || o.status == "failed") {
                failed.push(format!("{}: {}", t.slug, o.error.clone().unwrap_or_default()));
            }
        }
        Ok(expect(failed.is_empty(), || failed.join("; ")))
    });
    let Some(t) = copy.tenants.get(1) else { return };
    run.check("backup", &format!("a snapshot of {} restores into a new tenant with the same rows", t.slug), || {
        restores(app, t)
    });
}

fn restores(app: &App, t: &TenantRecord) -> Result<Outcome> {
    let m = crate::backup::create(app, t, crate::backup::Kind::Manual).map_err(|e| e.to_string())?;
    let fork = Slug::parse(&format!("check-restore-{}", crate::util::random_hex(4))).map_err(|e| e.to_string())?;
    let target = crate::backup::Target::Backup(m.id.clone());
    crate::backup::fork(app, t, &target, &fork, &Actor::cli(), None).map_err(|e| e.to_string())?;
    let restored = app.tenant(&fork).map_err(|e| e.to_string())?;
    let (a, b) = (rows(app, t)?, rows(app, &restored)?);
    Ok(expect(a == b, || format!("row counts differ: {} has {a:?}, its restore {b:?}", t.slug)))
}

/// Every app table's row count, and the schema version.
fn rows(app: &App, t: &TenantRecord) -> Result<(i64, Vec<(String, i64)>)> {
    let conn = crate::db::open_read_only(&app.paths.tenant_db(&t.id)).map_err(|e| e.to_string())?;
    let q = |e: rusqlite::Error| e.to_string();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(q)?;
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_tenantd%' ESCAPE '\\' ORDER BY name")
        .map_err(q)?;
    let names: Vec<String> =
        stmt.query_map([], |r| r.get(0)).map_err(q)?.collect::<rusqlite::Result<_>>().map_err(q)?;
    let mut out = Vec::new();
    for n in names {
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{}\"", n.replace('"', "\"\"")), [], |r| r.get(0))
            .map_err(q)?;
        out.push((n, count));
    }
    Ok((version, out))
}
