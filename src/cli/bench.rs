//! `tenantd bench …`: the foundation's measured numbers, each in a fresh scratch data dir.
//! Reported with percentiles; run on a quiet machine and compare side by side.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::{CliError, CliResult};
use crate::app::{App, OpenMode};
use crate::catalog::tenants;
use crate::config::Config;
use crate::error::Error;
use crate::fleet::{self, MigrateOptions};
use crate::ids::Slug;
use crate::store::OpenRequest;
use crate::tenancy::{self, Actor};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Tenant create p50/p99, cold open of evicted tenants, no-op and real fleet migrations.
    Tenants {
        /// Tenants to create for the no-op migration (the figure is 10,000).
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        /// Tenants migrated for real with one statement.
        #[arg(long, default_value_t = 1_000)]
        migrate: usize,
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Scratch directory (default: a new directory under the system temp dir, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The local invoice run (issue 20): N tenants on a priced plan with usage beyond what it
    /// includes, one run closing every period at once, then a run with nothing due.
    Billing {
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stripe webhook verify + apply (issue 20): N signed subscription events over 100 tenants,
    /// each verified, recorded and applied in its catalog transaction; p50/p99.
    Webhook {
        #[arg(long, default_value_t = 5_000)]
        events: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Cost of one rate-limiter decision (check + update): one key, 100,000 keys, 2 threads.
    Limiter {
        #[arg(long, default_value_t = 2_000_000)]
        decisions: u64,
    },
    /// `cluster plan` when a node joins (issue 23): N tenants placed by rendezvous hashing over
    /// K equal nodes, then the moves a (K+1)th node asks for, and the time to plan them.
    ClusterPlan {
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// `audit verify` speed over a chain of N entries (built in a scratch file).
    Audit {
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
    },
    /// The ceiling for HTTP benchmarks: a plain tiny_http server (the published crate, not
    /// tenantd's fork) answering "hello" with one worker thread and nothing else, on ADDR until
    /// interrupted (scripts/bench-http.sh).
    Hello {
        #[arg(long, default_value = "127.0.0.1:18999", value_name = "ADDR")]
        listen: String,
        /// Serve through tenantd's fork of tiny_http instead (vendor/tiny_http), to see what the
        /// fork's own changes are worth.
        #[arg(long)]
        fork: bool,
    },
    /// Writes D days of realistic hourly usage history for N tenants (t000000…, created when
    /// missing) into the data dir, for the analytics benchmarks (scripts/bench-analytics.sh)
    /// and tests. Unlike the other benches it uses the real data dir (--data-dir).
    #[command(name = "analytics-history")]
    AnalyticsHistory {
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// The same seed writes the same history.
        #[arg(long, default_value_t = 21)]
        seed: u64,
    },
    /// Open file descriptors of a live server while requests touch every tenant.
    Fds {
        #[arg(long, default_value_t = 10_000)]
        tenants: usize,
        #[arg(long, default_value_t = 256)]
        max_open: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn new(dir: Option<PathBuf>) -> CliResult<Scratch> {
        let keep = dir.is_some();
        let path =
            dir.unwrap_or_else(|| std::env::temp_dir().join(format!("tenantd-bench-{}", crate::util::random_hex(4))));
        if path.join("catalog.db").exists() {
            return Err(CliError::usage(format!("{} already holds a data dir; give an empty one", path.display())));
        }
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label:<34} n={:<6} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        pct(&samples, 1.0)
    );
}

fn bench_config(base: &Config, dir: &std::path::Path) -> Config {
    let mut c = base.clone();
    c.data_dir = dir.join("data");
    c
}

fn create_tenants(app: &App, n: usize, label: bool) -> CliResult<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let slug = Slug::parse(&format!("t{i:06}"))?;
        let t0 = Instant::now();
        tenancy::create(app, &slug, &format!("Tenant {i}"), None, &Actor("bench".into()))?;
        samples.push(t0.elapsed());
        if label && (i + 1) % 1000 == 0 {
            eprint!("\rcreated {}/{n} ({:.0}/s)   ", i + 1, (i + 1) as f64 / started.elapsed().as_secs_f64());
        }
    }
    if label {
        eprintln!();
    }
    Ok(samples)
}

pub fn run(base: Config, cmd: BenchCmd) -> CliResult {
    println!(
        "machine: {} cpus, sqlite {}, tenantd {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        rusqlite::version(),
        env!("CARGO_PKG_VERSION")
    );
    match cmd {
        BenchCmd::Tenants { tenants: n, migrate, parallel, dir } => bench_tenants(&base, n, migrate, parallel, dir),
        BenchCmd::Fds { tenants: n, max_open, dir } => bench_fds(&base, n, max_open, dir),
        BenchCmd::Limiter { decisions } => bench_limiter(decisions),
        BenchCmd::Billing { tenants: n, dir } => bench_billing(&base, n, dir),
        BenchCmd::Webhook { events, dir } => bench_webhook(&base, events, dir),
        BenchCmd::Audit { entries } => bench_audit(entries),
        BenchCmd::ClusterPlan { tenants, nodes } => bench_cluster_plan(tenants, nodes),
        BenchCmd::AnalyticsHistory { tenants: n, days, seed } => analytics_history(base, n, days, seed),
        BenchCmd::Hello { listen, fork: false } => hello_published(&listen),
        BenchCmd::Hello { listen, fork: true } => hello_fork(&listen),
    }
}

/// What tenantd's request path is compared with: tiny_http's own accept and parse threads,
/// one worker, a constant 5-byte answer; once on the published crate, once on the fork.
macro_rules! hello_server {
    ($name:ident, $http:ident) => {
        fn $name(listen: &str) -> CliResult {
            let server = $http::Server::http(listen)
                .map_err(|e| Error::invalid("listen", format!("cannot listen on {listen}: {e}")))?;
            println!("hello server on http://{listen} (one worker); Ctrl-C stops it");
            loop {
                let rq = server.recv()?;
                let _ = rq.respond($http::Response::from_string("hello"));
            }
        }
    };
}
hello_server!(hello_published, tiny_http_upstream);
hello_server!(hello_fork, tiny_http);

fn analytics_history(base: Config, n: usize, days: i64, seed: u64) -> CliResult {
    if !(1..=3660).contains(&days) {
        return Err(CliError::usage("--days: a whole number of days in 1..=3660"));
    }
    let app = App::open(base, OpenMode::CreateIfMissing)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut created = 0;
    for i in 0..n {
        let slug = Slug::parse(&format!("t{i:06}"))?;
        let t = match app.tenant(&slug) {
            Ok(t) => t,
            Err(Error::NotFound { .. }) => {
                created += 1;
                tenancy::create(&app, &slug, &format!("Tenant {i}"), None, &Actor("bench".into()))?
            }
            Err(e) => return Err(e.into()),
        };
        ids.push(t.id.as_str().to_string());
        if (i + 1) % 1000 == 0 {
            eprint!("\rtenants {}/{n}   ", i + 1);
        }
    }
    eprintln!();
    println!("tenants: {n} ({created} created) in {:.1} s", started.elapsed().as_secs_f64());
    let w = crate::analytics::history::write(&app.catalog, &ids, days, crate::util::now_unix(), seed)?;
    println!(
        "history: {} days, {} hourly rows ({} requests), {} user rows, {} billing ledger lines in {:.1} s",
        days, w.hourly_rows, w.requests, w.user_rows, w.ledger_lines, w.seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_billing(base: &Config, n: usize, dir: Option<PathBuf>) -> CliResult {
    let scratch = Scratch::new(dir)?;
    let mut config = bench_config(base, &scratch.path);
    config.billing.provider = "local".into();
    config.billing.tax_rate_percent = 20.0;
    config.default_plan = "pro".into();
    if let Some(pro) = config.plans.get_mut("pro") {
        pro.trial_days = 0;
        pro.included_monthly_requests = 1000;
        pro.overage_cents_per_1000_requests = 5;
    }
    let app = App::open(config, OpenMode::CreateIfMissing)?;
    create_tenants(&app, n, true)?;
    // Usage beyond what the plan includes for every tenant, in the first period.
    let subs = crate::catalog::billing::all_current(&*app.catalog.conn()?)?;
    let end = subs.iter().map(|s| s.current_period_end).max().unwrap_or(0);
    app.catalog.write(|tx| {
        for s in &subs {
            tx.execute(
                "INSERT INTO usage_hourly (tenant_id, hour, requests) VALUES (?1, ?2, 25000)",
                rusqlite::params![s.tenant_id, s.current_period_start - s.current_period_start % 3600 + 3600],
            )?;
        }
        Ok(())
    })?;
    let t0 = Instant::now();
    let r = crate::billing::invoice::run(&app, end + 60, &Actor("bench".into()))?;
    let first = t0.elapsed();
    let t1 = Instant::now();
    let again = crate::billing::invoice::run(&app, end + 120, &Actor("bench".into()))?;
    let second = t1.elapsed();
    println!(
        "billing run: {} subscriptions, {} invoices in {:.2} s ({:.0} invoices/s); a second run with nothing due: {} invoices in {:.2} s",
        subs.len(),
        r.invoices.len(),
        first.as_secs_f64(),
        r.invoices.len() as f64 / first.as_secs_f64().max(1e-9),
        again.invoices.len(),
        second.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_webhook(base: &Config, n: usize, dir: Option<PathBuf>) -> CliResult {
    const SECRET: &str = "whsec_bench";
    let scratch = Scratch::new(dir)?;
    let mut config = bench_config(base, &scratch.path);
    config.billing.provider = "stripe".into();
    config.billing.stripe_webhook_secrets = vec![SECRET.into()];
    config.default_plan = "pro".into();
    for (name, p) in config.plans.iter_mut() {
        p.stripe_price_id = Some(format!("price_{name}_month"));
        p.stripe_price_id_yearly = Some(format!("price_{name}_year"));
    }
    let app = App::open(config, OpenMode::CreateIfMissing)?;
    create_tenants(&app, 100, false)?;
    let subs = crate::catalog::billing::all_current(&*app.catalog.conn()?)?;
    app.catalog.write(|tx| {
        for (i, s) in subs.iter().enumerate() {
            tx.execute(
                "UPDATE billing_subscriptions SET provider_subscription_id = ?2 WHERE id = ?1",
                rusqlite::params![s.id, format!("sub_{i}")],
            )?;
        }
        Ok(())
    })?;
    let now = crate::util::now_unix();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let status = if i % 2 == 0 { "active" } else { "past_due" };
        let body =
            serde_json::json!({"id": format!("evt_{i}"), "object": "event", "type": "customer.subscription.updated",
            "created": now - 100_000 + i as i64, "data": {"object": {"id": format!("sub_{}", i % subs.len().max(1)),
            "object": "subscription", "status": status, "cancel_at_period_end": false}}})
            .to_string();
        let header = crate::billing::stripe::signature::sign(body.as_bytes(), SECRET, now);
        let t0 = Instant::now();
        let r = crate::billing::webhook::receive(&app, Some(&header), body.as_bytes(), None, now)?;
        samples.push(t0.elapsed());
        if r.outcome != "applied" {
            return Err(crate::error::Error::Internal(format!("event {i}: {}", r.outcome)).into());
        }
    }
    report("webhook verify + apply", samples);
    Ok(ExitCode::SUCCESS)
}

fn bench_tenants(base: &Config, n: usize, migrate_n: usize, parallel: usize, dir: Option<PathBuf>) -> CliResult {
    let scratch = Scratch::new(dir)?;
    // Our own copy of the schema, so the real-migration step can add a file.
    let schema_dir = scratch.path.join("schema");
    std::fs::create_dir_all(&schema_dir)?;
    let embedded = crate::store::schema::TenantSchema::embedded()?;
    for m in &embedded.migrations {
        std::fs::write(schema_dir.join(&m.name), &m.sql)?;
    }
    let mut config = bench_config(base, &scratch.path);
    config.tenant_schema_dir = Some(schema_dir.clone());
    config.max_open_tenants = 64;
    let app = App::open(config.clone(), OpenMode::CreateIfMissing)?;

    let samples = create_tenants(&app, n, true)?;
    report("tenant create", samples);

    // Cold open: cycle through more tenants than the store keeps open, so every open is a miss.
    let list = tenants::list(&*app.catalog.conn()?, false)?;
    let mut cold = Vec::new();
    for t in list.iter().take(2000) {
        let t0 = Instant::now();
        let opened = app.store.get(&OpenRequest { id: &t.id, schema_hold: None, custom_schema: false })?;
        let conn = opened.handle.conn()?;
        conn.query_row("SELECT count(*) FROM customers", [], |r| r.get::<_, i64>(0))
            .map_err(crate::error::Error::from)?;
        drop(conn);
        cold.push(t0.elapsed());
    }
    report("cold open + first query (evicted)", cold);
    drop(app);

    let app = App::open(config.clone(), OpenMode::MustExist)?;
    let t0 = Instant::now();
    let r = fleet::migrate(&app, &MigrateOptions { parallel, ..Default::default() }, &|_, _, _| {})?;
    println!(
        "no-op schema migrate over {:<6} {:>10.0} ms  ({} already current, {} migrated)",
        r.tenants,
        t0.elapsed().as_secs_f64() * 1000.0,
        r.already_current,
        r.migrated()
    );
    drop(app);

    // A real one-statement migration over `migrate_n` tenants: remove the rest from the
    // catalog's view by deleting them (soft), then add the file.
    let app = App::open(config.clone(), OpenMode::MustExist)?;
    for t in list.iter().skip(migrate_n) {
        app.catalog.write(|tx| tenants::set_status(tx, &t.id, tenants::TenantStatus::Deleted, 0, None))?;
    }
    drop(app);
    std::fs::write(schema_dir.join("0003_bench.sql"), "ALTER TABLE tasks ADD COLUMN estimate_hours REAL;\n")?;
    let app = App::open(config, OpenMode::MustExist)?;
    let t0 = Instant::now();
    let r = fleet::migrate(&app, &MigrateOptions { parallel, ..Default::default() }, &|_, _, _| {})?;
    let per: Vec<Duration> = r.outcomes.iter().map(|o| Duration::from_secs_f64(o.duration_ms / 1000.0)).collect();
    println!(
        "real migration (1 statement)       {} tenants, --parallel {parallel}: {:.0} ms total, {} failed",
        r.migrated(),
        t0.elapsed().as_secs_f64() * 1000.0,
        r.failed()
    );
    report("  per tenant (snapshot + migrate)", per);
    Ok(ExitCode::SUCCESS)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn bench_fds(base: &Config, n: usize, max_open: usize, dir: Option<PathBuf>) -> CliResult {
    let scratch = Scratch::new(dir)?;
    let mut config = bench_config(base, &scratch.path);
    config.max_open_tenants = max_open;
    config.listen = "127.0.0.1:0".into();
    let app = App::open(config, OpenMode::CreateIfMissing)?;
    create_tenants(&app, n, true)?;
    let before = open_fds();
    let running = crate::http::server::start(app.clone(), "127.0.0.1:0")?;
    let addr = running.addr();
    let slugs: Vec<String> = (0..n).map(|i| format!("t{i:06}")).collect();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients = 4;
    let t0 = Instant::now();
    let errors: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (slugs, peak) = (&slugs, peak.clone());
                s.spawn(move || {
                    let mut client = crate::http::client::Client::new(addr);
                    let mut errors = 0;
                    for (i, slug) in slugs.iter().enumerate().filter(|(i, _)| i % clients == c) {
                        match client.get(&format!("/api/v1/t/{slug}")) {
                            Ok(r) if r.status == 200 => {}
                            _ => errors += 1,
                        }
                        if i % 100 == 0 {
                            peak.fetch_max(open_fds(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    errors
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(usize::MAX)).sum()
    });
    let elapsed = t0.elapsed();
    let after = open_fds();
    println!(
        "{n} tenants touched over HTTP by {clients} clients in {:.1} s ({:.0} req/s), {errors} errors",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "open fds: {before} before serving, peak {} while touching all tenants, {after} after; open tenants {} (max_open_tenants {max_open})",
        peak.load(std::sync::atomic::Ordering::Relaxed),
        app.store.open_count()
    );
    running.shutdown()?;
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn bench_cluster_plan(tenants: usize, k: usize) -> CliResult {
    use crate::cluster::{placement, NodeConfig};
    if !(1..=64).contains(&k) || tenants == 0 {
        return Err(CliError::usage("--nodes in 1..=64 and --tenants at least 1"));
    }
    let node = |i: usize| NodeConfig { name: format!("n{i}"), url: format!("http://10.0.0.{i}:8080"), weight: 1.0 };
    let before: Vec<NodeConfig> = (1..=k).map(node).collect();
    let mut after = before.clone();
    after.push(node(k + 1));
    let slugs: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:05}")).collect();
    let t0 = Instant::now();
    let homes: Vec<String> =
        slugs.iter().filter_map(|s| placement::choose(&before, s).map(|n| n.name.clone())).collect();
    let place_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let placed: Vec<placement::Placed<'_>> = slugs
        .iter()
        .zip(&homes)
        .enumerate()
        .map(|(i, (s, n))| placement::Placed { slug: s, node: n, pinned: false, bytes: 1_000_000 + i as u64 })
        .collect();
    let t0 = Instant::now();
    let moves = placement::plan(&after, &placed);
    let plan_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let to_new = moves.iter().filter(|m| m.to == format!("n{}", k + 1)).count();
    println!(
        "{tenants} tenants on {k} nodes, a node joins: {} move ({:.1}%; the ideal is {:.1}%), {to_new} of them to the new node; \
         placing took {place_ms:.1} ms, planning {plan_ms:.1} ms",
        moves.len(),
        moves.len() as f64 * 100.0 / tenants as f64,
        100.0 / (k + 1) as f64
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_limiter(n: u64) -> CliResult {
    use crate::limits::gcra::{Limiter, MonotonicClock, Quota};
    let clock: Arc<dyn crate::limits::gcra::Clock> = Arc::new(MonotonicClock::default());
    let q = Quota { per_second: 1e9, burst: 1_000_000 };
    let per = |d: Duration, ops: u64| d.as_nanos() as f64 / ops as f64;

    let l: Limiter<u64> = Limiter::new(clock.clone(), 1_000_000);
    let t0 = Instant::now();
    let mut allowed = 0u64;
    for _ in 0..n {
        allowed += u64::from(l.check(&7, q).allowed);
    }
    println!("one key, 1 thread:          {:>6.1} ns/decision ({allowed} allowed)", per(t0.elapsed(), n));

    // The per-thread CPU clock the meter reads twice per request (a syscall, no vDSO).
    let t0 = Instant::now();
    let mut sink = Duration::ZERO;
    for _ in 0..n / 10 {
        if let Ok(t) = cpu_time::ThreadTime::try_now() {
            sink += t.as_duration();
        }
    }
    println!("thread CPU clock read:      {:>6.1} ns/read ({:?})", per(t0.elapsed(), n / 10), sink > Duration::ZERO);

    let keys = 100_000u64;
    let l: Limiter<u64> = Limiter::new(clock.clone(), 1_000_000);
    let t0 = Instant::now();
    for i in 0..n {
        l.check(&(i % keys), q);
    }
    println!("100,000 keys, 1 thread:     {:>6.1} ns/decision", per(t0.elapsed(), n));

    let l: Limiter<u64> = Limiter::new(clock, 1_000_000);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let l = &l;
            s.spawn(move || {
                for i in 0..n / 2 {
                    l.check(&((i * 2 + t) % keys), q);
                }
            });
        }
    });
    let wall = t0.elapsed();
    println!(
        "100,000 keys, 2 threads:    {:>6.1} ns/decision per thread ({:.1} M decisions/s total, {} keys kept)",
        per(wall, n / 2),
        n as f64 / wall.as_secs_f64() / 1e6,
        l.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_audit(n: u64) -> CliResult {
    let scratch = Scratch::new(None)?;
    let path = scratch.path.join("audit.db");
    let mut conn = rusqlite::Connection::open(&path).map_err(crate::error::Error::from)?;
    conn.execute_batch(crate::store::audit_tables::TENANT_AUDIT_DDL).map_err(crate::error::Error::from)?;
    let t0 = Instant::now();
    let tx = conn.transaction().map_err(crate::error::Error::from)?;
    for i in 0..n {
        let resource = format!("customers/{i}");
        let e = crate::audit::Entry {
            actor: "user:1",
            source: Some("127.0.0.1"),
            user_agent: Some("bench"),
            request_id: Some("0123456789abcdef"),
            action: "record.create",
            resource: Some(&resource),
            outcome: "ok",
            risk: 0,
            details: serde_json::json!({"columns": ["name", "email"]}),
        };
        crate::audit::append(&tx, 1_800_000_000 + i as i64, &e)?;
    }
    tx.commit().map_err(crate::error::Error::from)?;
    let build = t0.elapsed();
    println!(
        "built {n} entries in {:.1} s ({:.0} appends/s in one transaction)",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );
    let t0 = Instant::now();
    let checked = match crate::audit::verify(&conn, None)? {
        Ok(c) => c,
        Err(b) => return Err(CliError::failed(format!("freshly built chain does not verify: {b:?}"))),
    };
    let secs = t0.elapsed().as_secs_f64();
    println!("verified {checked} entries in {secs:.2} s: {:.0} entries/s", checked as f64 / secs);
    Ok(ExitCode::SUCCESS)
}
