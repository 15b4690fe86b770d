//! `serve`, `init` and `demo`.

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

pub fn serve(app: Arc<App>) -> CliResult {
    app.store.ensure_template()?;
    let listen = app.config.listen.clone();
    let running = server::start(app, &listen)?;
    crate::notify::ready(running.addr());
    finish(running.run_until_signal()?)
}

fn finish(reason: StopReason) -> CliResult {
    match reason {
        StopReason::AcceptFailed => Err(CliError::failed("stopped: the accept loop failed (see log)")),
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn demo(app: Arc<App>) -> CliResult {
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
