//! `serve`, `init` and `demo`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{CliError, CliResult};
use crate::app::App;
use crate::http::server::{self, StopReason};

pub fn init(app: Arc<App>) -> CliResult {
    app.store.ensure_template()?;
    println!(
        "data dir {} is ready (catalog {}, tenant schema v{})",
        app.config.data_dir.display(),
        app.catalog.path().display(),
        app.store.schema().target()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn serve(config: crate::config::Config) -> CliResult {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        CliError::usage(format!(
            "cannot create data dir {}: {e}: create it and chown it to the tenantd user, or set data_dir",
            config.data_dir.display()
        ))
    })?;
    let _lock = lock_data_dir(&config.data_dir)?;
    replicas_off(&config)?;
    let app = App::open(config, crate::app::OpenMode::CreateIfMissing)?;
    app.store.ensure_template()?;
    let listen = app.config.listen.clone();
    let running = server::start(app, &listen)?;
    crate::notify::ready(running.addr());
    finish(running.run_until_signal()?)
}

/// One server per data dir: `serve` and `demo` hold an exclusive lock on `serve.lock` (with
/// their pid in it) until they exit. A second server on the same files would serve from caches
/// blind to the first one's writes (lists, plans, tenant records) and run a second set of
/// checkpoints, flushes and audit anchoring; it is refused with the first one's pid. The CLI's
/// other commands take no lock: they are meant to run beside the server. The kernel drops the
/// lock when the process dies, so a crash leaves nothing to clean up.
fn lock_data_dir(dir: &Path) -> Result<Option<File>, CliError> {
    let path = dir.join("serve.lock");
    let mut file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
        Ok(f) => f,
        // A data dir that cannot be written to still starts: readiness reports it (`datadir:writable`)
        // and turns `pass` once it is fixed.
        Err(e) => {
            crate::log::warn(&format!("cannot open {} ({e}); serving without the data dir lock", path.display()));
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = if pid.trim().is_empty() { "unknown".to_string() } else { pid.trim().to_string() };
            return Err(CliError::failed(format!(
                "data dir {} is already served by another tenantd (pid {pid}); stop it first or use another --data-dir",
                dir.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(CliError::failed(format!("cannot lock {}: {e}", path.display()))),
    }
    let pid = std::process::id();
    let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{pid}"));
    if let Err(e) = written {
        crate::log::warn(&format!("cannot write the pid to {}: {e}", path.display()));
    }
    Ok(Some(file))
}

fn finish(reason: StopReason) -> CliResult {
    match reason {
        StopReason::AcceptFailed => Err(CliError::failed("stopped: the accept loop failed (see log)")),
        StopReason::ThreadDied(name) => Err(CliError::failed(format!("stopped: thread {name} died (see log)"))),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// A server without replicas on a data dir that had them removes the change log and mirrors
/// (holding the data dir lock, before the data dir is opened, which would otherwise pick the
/// replicas up from disk).
fn replicas_off(config: &crate::config::Config) -> CliResult<()> {
    if config.replicas.count == 0 && crate::replica::turn_off(&config.data_dir)? {
        crate::log::info("replicas are off ([replicas] count = 0): removed the change log and the mirrors");
    }
    Ok(())
}

pub fn demo(app: Arc<App>) -> CliResult {
    let _lock = lock_data_dir(&app.config.data_dir)?;
    let created = crate::demo::ensure(&app)?;
    let listen = app.config.listen.clone();
    let running = server::start(app.clone(), &listen)?;
    crate::notify::ready(running.addr());
    let base = format!("http://{}", running.addr());
    let data_dir = app.config.data_dir.display();
    if created.is_empty() {
        println!("\nReusing the demo data in {data_dir}.");
    } else {
        println!("\nCreated demo tenants {} in {data_dir}.", created.join(", "));
    }
    println!("\ntenantd demo is serving on {base}\n");
    println!("Admin UI: {base}/admin  (sign in with a user below)\n");
    println!("Tenants:");
    for d in crate::demo::TENANTS {
        println!("  {:<8} {:<18} plan {:<10} {base}/api/v1/t/{}", d.slug, d.name, d.plan, d.slug);
    }
    let pw = crate::demo::DEMO_PASSWORD;
    println!("\nUsers (password for all: {pw}):");
    for (name, role) in crate::demo::ROLE_USERS {
        println!("  {role:<7} {name}@<tenant>.example   e.g. {name}@acme.example");
    }
    println!("  platform admin  {}", crate::demo::PLATFORM_ADMIN);
    println!("\nTry:");
    println!("  curl {base}/health/readiness");
    println!("  TOKEN=$(curl -s {base}/api/v1/auth/login -H 'Content-Type: application/json' \\");
    println!("          -d '{{\"email\":\"olivia@acme.example\",\"password\":\"{pw}\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')");
    println!("  curl -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/t/acme/customers?per_page=5&order_by=-id'");
    println!("  curl -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/t/acme/tasks?done=0&priority__ge=3'");
    println!("  curl -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/t/acme/openapi.json");
    println!("\nManage it from another terminal (same data dir; the server sees changes within a second):");
    println!("  cargo run --release -- tenant list");
    println!("  cargo run --release -- tenant suspend globex");
    println!("  cargo run --release -- schema status");
    println!("\nStop with Ctrl-C.");
    finish(running.run_until_signal()?)
}
