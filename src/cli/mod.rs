//! Command-line interface: argument parsing and output. No business logic lives here; every
//! command opens the same `App` (config + catalog + store) the server uses.
//!
//! Exit codes: 0 success; 1 the command ran and failed (e.g. a tenant failed to migrate, a
//! check did not pass); 2 bad usage or bad input (clap's convention, kept for ours).

mod analytics;
mod backup;
mod bench;
mod billing;
mod cdn;
mod check;
mod cluster;
mod healthcheck;
mod litestream;
mod loadtest;
#[cfg(feature = "testkit")]
pub(crate) use loadtest::in_process as loadtest_in_process;
mod migration;
mod new;
mod replica;
mod schema;
mod serve;
mod tenant;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{App, OpenMode};
use crate::config::{Config, Overrides};
use crate::error::Error;

#[derive(Parser, Debug)]
#[command(
    name = "tenantd",
    version,
    about = "One binary, one data directory: a multi-tenant SaaS platform with a SQLite file per tenant",
    after_help = "Examples:\n  tenantd demo                         # demo tenants on http://127.0.0.1:8080\n  tenantd init --data-dir /var/lib/tenantd\n  tenantd tenant create acme --name \"Acme Corp\" --plan pro\n  tenantd schema migrate --canary 5 --parallel 2\n  tenantd serve --listen 0.0.0.0:8080\n\nConfig: --config FILE, else ./tenantd.toml, else /etc/tenantd/tenantd.toml; TENANTD_<KEY> overrides a key."
)]
pub struct Cli {
    /// Config file (TOML). Default: ./tenantd.toml if present, else /etc/tenantd/tenantd.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides data_dir from config and TENANTD_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API until SIGTERM/SIGINT (then drain, checkpoint and exit 0).
    Serve {
        /// Address to bind, e.g. 127.0.0.1:8080 (overrides `listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create the data directory and catalog (idempotent).
    Init,
    /// Start a project: a directory with tenantd.toml (every key), a tenant schema, sample
    /// rows, plans, checks, and systemd and nginx examples.
    #[command(after_help = new::AFTER_HELP)]
    New(new::NewArgs),
    /// Create demo tenants with sample data (once) and serve them.
    #[command(after_help = "Example:\n  cargo run --release -- demo --listen 127.0.0.1:9090")]
    Demo {
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create, list, suspend, delete, export and import tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCmd),
    /// Users, passwords and tenant memberships.
    #[command(subcommand)]
    User(user::UserCmd),
    /// A tenant's metered usage by hour or day.
    #[command(
        after_help = "Examples:\n  tenantd usage acme\n  tenantd usage acme --from 2026-11-01 --to 2026-12-01 --granularity day --json"
    )]
    Usage {
        slug: String,
        /// Start: a date or RFC 3339 UTC time (default: 24 hours ago).
        #[arg(long)]
        from: Option<String>,
        /// End (default: now).
        #[arg(long)]
        to: Option<String>,
        /// hour or day.
        #[arg(long, default_value = "hour")]
        granularity: String,
        #[arg(long)]
        json: bool,
    },
    /// A tenant's security policy: IP lists, MFA, session limits, API keys.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Audit trails: `audit verify` checks every hash chain against its catalog anchor.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Tenant schema migrations across the fleet.
    #[command(subcommand)]
    Schema(schema::SchemaCmd),
    /// Analytics in the terminal: overview, trends (a tenant's, or the platform's), revenue.
    #[command(subcommand)]
    Analytics(analytics::AnalyticsCmd),
    /// Read replicas: status, verify, rebuild, promote (`[replicas] count = N`).
    #[command(subcommand)]
    Replica(replica::ReplicaCmd),
    /// Per-tenant snapshots and restores (to a snapshot, or to any second the change log
    /// covers; in place or into a new tenant): create, list, verify, restore.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Off-box copies with Litestream: `litestream config` writes its configuration and unit.
    #[command(subcommand)]
    Litestream(litestream::LitestreamCmd),
    /// CDN edges for tenant assets (`[cdn] edges`): status, purge.
    #[command(subcommand)]
    Cdn(cdn::CdnCmd),
    /// Several nodes behind nginx (`[cluster]`): status, plan, rebalance, sync, nginx-config, failover.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Subscriptions, local invoices and dunning: status, run, invoices, mark-paid, cancel.
    #[command(subcommand)]
    Billing(billing::BillingCmd),
    /// Turn existing single-tenant databases into tenants: analyze-schema, convert-to-multitenant,
    /// migrate-from-config, validate, rollback.
    #[command(subcommand)]
    Migration(migration::MigrationCmd),
    /// Ask a running server whether it is ready: exit 0 ready, 1 not ready (reason on stderr), 2 bad usage.
    #[command(
        after_help = "Probes BASE/health/readiness. Without --url, BASE comes from the config's `listen` (0.0.0.0 and [::] are probed over loopback).\n\nExamples:\n  tenantd healthcheck\n  tenantd --config /etc/tenantd/tenantd.toml healthcheck\n  tenantd healthcheck --url http://127.0.0.1:8080 --timeout 2"
    )]
    Healthcheck {
        /// Base URL of the server, e.g. http://127.0.0.1:8080 (plain HTTP: tenantd's own address).
        #[arg(long, value_name = "BASE")]
        url: Option<String>,
        /// Seconds to wait for the connection and for the answer (1..=300).
        #[arg(long, value_name = "SECONDS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=300))]
        timeout: u64,
    },
    /// Built-in benchmarks (numbers for the issue notes; never run by `cargo test`).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Prove a deployment still isolates tenants, enforces roles, audits writes and sends its
    /// headers: a conformance suite with test-runner output (and JUnit XML), on a copy of a
    /// data dir or against a running server.
    #[command(after_help = check::AFTER_HELP)]
    Check(check::CheckArgs),
    /// Load a running server with reads, lists and writes over many tenants; report
    /// throughput, p50/p95/p99 per operation and errors by status.
    #[command(after_help = loadtest::after_help())]
    Loadtest(loadtest::LoadtestArgs),
}

/// Runs the CLI and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    ignore_file_size_signal();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tenantd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Under a file-size limit (`LimitFSIZE=` in a unit, `ulimit -f`), a write past it sends
/// SIGXFSZ, whose default action kills the process. With a handler installed instead the write
/// fails with EFBIG, which SQLite reports as an I/O error and tenantd answers like a full disk
/// (507 `insufficient_storage`); PostgreSQL's postmaster ignores the signal for the same reason.
fn ignore_file_size_signal() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, seen) {
        crate::log::warn(&format!("cannot catch SIGXFSZ (a file-size limit would kill the process): {e}"));
    }
}

/// `tenantd tenant list | head` should end quietly like any Unix tool when the reader goes
/// away: Rust ignores SIGPIPE, so `println!` panics on EPIPE; turn that one panic into the
/// conventional exit status 141 (128 + SIGPIPE) without a backtrace.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A CLI failure: the one-line message and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub(super) message: String,
    code: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { message: message.into(), code: 2 }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        CliError { message: message.into(), code: 1 }
    }
    fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid { .. } | Error::Conflict { .. } | Error::NotFound(_) => CliError::usage(e.to_string()),
            _ => CliError::failed(e.log_detail()),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::usage(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::failed(format!("i/o error: {e}"))
    }
}

pub type CliResult<T = ExitCode> = Result<T, CliError>;

fn run(cli: Cli) -> CliResult {
    // With --url the probe needs no config (a broken config file must not hide a live server).
    if let Command::Healthcheck { url: Some(url), timeout } = &cli.command {
        return healthcheck::run(&healthcheck::parse_base(url)?, std::time::Duration::from_secs(*timeout));
    }
    // A new project needs no configuration (it writes one).
    if let Command::New(args) = cli.command {
        return new::run(args);
    }
    let listen = match &cli.command {
        Command::Serve { listen } | Command::Demo { listen } => listen.clone(),
        _ => None,
    };
    let data_dir_given = cli.data_dir.is_some();
    let overrides = Overrides { config_file: cli.config.clone(), data_dir: cli.data_dir.clone(), listen };
    let loaded = Config::load(&overrides)?;
    for w in &loaded.warnings {
        crate::log::warn(w);
    }
    let config = loaded.config;
    match cli.command {
        Command::Serve { .. } => serve::serve(config),
        Command::Init => serve::init(open(config, OpenMode::CreateIfMissing)?),
        Command::New(args) => new::run(args),
        Command::Demo { .. } => {
            // The demo shows read replicas at work: one, unless the config asks for more.
            let mut config = config;
            config.replicas.count = config.replicas.count.max(1);
            serve::demo(open(config, OpenMode::CreateIfMissing)?)
        }
        Command::Tenant(cmd) => tenant::run(open(config, OpenMode::MustExist)?, cmd),
        Command::User(cmd) => user::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Usage { slug, from, to, granularity, json } => {
            usage(open(config, OpenMode::MustExist)?, &slug, from.as_deref(), to.as_deref(), &granularity, json)
        }
        Command::Policy(cmd) => policy(open(config, OpenMode::MustExist)?, cmd),
        Command::Audit(AuditCmd::Verify { tenant, json }) => {
            audit_verify(open(config, OpenMode::MustExist)?, tenant.as_deref(), json)
        }
        Command::Audit(AuditCmd::Archive) => {
            let app = open(config, OpenMode::MustExist)?;
            let done = crate::audit::archive_all(&app)?;
            for (slug, n) in &done {
                println!("{slug}: archived {n} entries (kept in its backups directory)");
            }
            println!("{} tenants had entries past their plan's audit_retention_days", done.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(cmd) => schema::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Migration(cmd) => migration::run(config, cmd),
        Command::Billing(cmd) => billing::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Analytics(cmd) => analytics::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Replica(cmd) => replica::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Backup(cmd) => backup::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Litestream(cmd) => litestream::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Cdn(cmd) => cdn::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Cluster(cmd) => cluster::run(open(config, OpenMode::MustExist)?, cmd),
        Command::Bench(cmd) => bench::run(config, cmd),
        Command::Healthcheck { timeout, .. } => {
            healthcheck::run(&healthcheck::from_listen(&config.listen)?, std::time::Duration::from_secs(timeout))
        }
        Command::Loadtest(args) => loadtest::run(config, data_dir_given, args),
        Command::Check(args) => check::run(config, data_dir_given, args),
    }
}

fn open(config: Config, mode: OpenMode) -> CliResult<Arc<App>> {
    Ok(App::open(config, mode)?)
}

/// Whether stderr is a terminal (progress lines only then).
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

fn print_json(value: &impl serde::Serialize) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn usage(app: Arc<App>, slug: &str, from: Option<&str>, to: Option<&str>, granularity: &str, json: bool) -> CliResult {
    let t = app.tenant(&crate::ids::Slug::parse(slug)?)?;
    let (from, to, day) = crate::api::usage::window(from, to, Some(granularity))?;
    let items = crate::limits::meter::report(&*app.catalog.conn()?, &t.id, from, to, day)?;
    if json {
        print_json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<21} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>8} {:>7} {:>7} {:>5}",
        "START",
        "REQUESTS",
        "ERRORS",
        "BYTES_IN",
        "BYTES_OUT",
        "ROWS_R",
        "ROWS_W",
        "CPU_MS",
        "P50_MS",
        "P99_MS",
        "USERS"
    );
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for b in &items {
        println!(
            "{:<21} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>8.1} {:>7} {:>7} {:>5}",
            b.start,
            b.requests,
            b.errors,
            b.bytes_in,
            b.bytes_out,
            b.rows_read,
            b.rows_written,
            b.cpu_ms,
            ms(b.p50_ms),
            ms(b.p99_ms),
            b.active_users
        );
    }
    println!("{} buckets for {} ({})", items.len(), t.slug, if day { "by day" } else { "by hour" });
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Verify the platform chain and every tenant's chain (or one). Exit 0 when all check out,
    /// 1 when any does not, naming the tenant and the first bad entry.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Archive entries older than each tenant's plan retention (`audit_retention_days`) into a
    /// checkpoint; the archived entries are written to backups/<tenant>/audit-archive-*.jsonl.
    Archive,
}

fn audit_verify(app: Arc<App>, tenant: Option<&str>, json: bool) -> CliResult {
    let started = std::time::Instant::now();
    let mut verdicts = Vec::new();
    if tenant.is_none() {
        verdicts.push(crate::audit::verify_platform(&app)?);
    }
    let list = match tenant {
        Some(s) => vec![app.tenant(&crate::ids::Slug::parse(s)?)?],
        None => crate::catalog::tenants::list(&*app.catalog.conn()?, false)?,
    };
    for t in &list {
        verdicts.push(crate::audit::verify_tenant(&app, t)?);
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    if json {
        print_json(&verdicts)?;
    } else {
        for v in &verdicts {
            match &v.problem {
                None => println!("ok      {:<24} {} entries", v.tenant, v.entries),
                Some(p) => println!("BROKEN  {:<24} {p}", v.tenant),
            }
        }
        let entries: u64 = verdicts.iter().map(|v| v.entries).sum();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{} chains, {failed} broken, {entries} entries in {secs:.2} s ({:.0} entries/s)",
            verdicts.len(),
            entries as f64 / secs.max(1e-9)
        );
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Print the policy.
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Change parts of the policy; options not given keep their value. An empty list clears it.
    #[command(
        after_help = "Examples:\n  tenantd policy set acme --ip-deny 203.0.113.0/24,2001:db8::/32\n  tenantd policy set acme --ip-allow 10.0.0.0/8 --require-mfa true --session-ttl-minutes 480\n  tenantd policy set acme --ip-allow ''"
    )]
    Set {
        slug: String,
        /// Comma-separated CIDRs; when set, only these may connect.
        #[arg(long, value_name = "CIDR,...")]
        ip_allow: Option<String>,
        /// Comma-separated CIDRs that may never connect (wins over the allow list).
        #[arg(long, value_name = "CIDR,...")]
        ip_deny: Option<String>,
        #[arg(long)]
        require_mfa: Option<bool>,
        #[arg(long)]
        session_ttl_minutes: Option<i64>,
        #[arg(long)]
        idle_timeout_minutes: Option<i64>,
        #[arg(long)]
        api_keys_allowed: Option<bool>,
        /// Comma-separated browser origins allowed to call the API (CORS), e.g. https://app.acme.com.
        #[arg(long, value_name = "ORIGIN,...")]
        cors_origins: Option<String>,
    },
}

fn cidr_list(s: &str) -> Vec<String> {
    s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

fn policy(app: Arc<App>, cmd: PolicyCmd) -> CliResult {
    match cmd {
        PolicyCmd::Show { slug, json } => {
            let t = app.tenant(&crate::ids::Slug::parse(&slug)?)?;
            let p = crate::auth::policy(&app, &t.id)?.policy.clone();
            if json {
                print_json(&p)?;
            } else {
                let list = |l: &[String]| if l.is_empty() { "(any)".to_string() } else { l.join(", ") };
                let mins = |m: Option<i64>| m.map(|m| format!("{m} min")).unwrap_or_else(|| "server default".into());
                println!("ip_allow:             {}", list(&p.ip_allow));
                println!(
                    "ip_deny:              {}",
                    if p.ip_deny.is_empty() { "(none)".into() } else { p.ip_deny.join(", ") }
                );
                println!("require_mfa:          {}", p.require_mfa);
                println!("session_ttl_minutes:  {}", mins(p.session_ttl_minutes));
                println!("idle_timeout_minutes: {}", mins(p.idle_timeout_minutes));
                println!("api_keys_allowed:     {}", p.api_keys_allowed);
            }
        }
        PolicyCmd::Set {
            slug,
            ip_allow,
            ip_deny,
            require_mfa,
            session_ttl_minutes,
            idle_timeout_minutes,
            api_keys_allowed,
            cors_origins,
        } => {
            let t = app.tenant(&crate::ids::Slug::parse(&slug)?)?;
            let mut p = crate::auth::policy(&app, &t.id)?.policy.clone();
            if let Some(v) = ip_allow {
                p.ip_allow = cidr_list(&v);
            }
            if let Some(v) = ip_deny {
                p.ip_deny = cidr_list(&v);
            }
            if let Some(v) = require_mfa {
                p.require_mfa = v;
            }
            if session_ttl_minutes.is_some() {
                p.session_ttl_minutes = session_ttl_minutes;
            }
            if idle_timeout_minutes.is_some() {
                p.idle_timeout_minutes = idle_timeout_minutes;
            }
            if let Some(v) = api_keys_allowed {
                p.api_keys_allowed = v;
            }
            if let Some(v) = cors_origins {
                p.cors_origins = cidr_list(&v);
            }
            let saved = crate::api::security::save(&app, &t, p, "cli", None)?;
            println!("security policy of {slug} saved");
            print_json(&saved)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
