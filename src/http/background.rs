//! The server's background threads: the catalog watcher (cache invalidation, usage flush, audit
//! anchoring, retention) and the worker-pool scaler.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{add_worker, ServerState, StopReason};
use super::workers::Decision;

/// Samples the pool every 50 ms and grows or shrinks it (see `workers`).
pub(super) fn scale_workers(
    http: &Arc<tiny_http::Server>,
    state: &Arc<ServerState>,
    stop: &mpsc::Sender<StopReason>,
    quit: &mpsc::Receiver<()>,
) {
    let pool = &state.pool;
    if pool.max == pool.min {
        let _ = quit.recv();
        return;
    }
    let mut scaler = pool.scaler();
    while let Err(mpsc::RecvTimeoutError::Timeout) = quit.recv_timeout(super::workers::TICK) {
        if state.draining.load(Ordering::SeqCst) {
            break;
        }
        let cpu = cpu_time::ProcessTime::try_now().ok().map(|t| t.as_duration());
        match pool.sample(&mut scaler, Instant::now(), cpu) {
            Decision::Grow => match add_worker(http, state, stop) {
                Ok(()) => {
                    pool.grown.fetch_add(1, Ordering::Relaxed);
                    crate::log::info(&format!(
                        "workers: {} -> {} (every worker busy while the CPU has room)",
                        pool.size() - 1,
                        pool.size()
                    ));
                }
                Err(e) => crate::log::warn(&format!("workers: could not start one more: {}", e.log_detail())),
            },
            Decision::Shrink => {
                pool.shrunk.fetch_add(1, Ordering::Relaxed);
                crate::log::info(&format!(
                    "workers: retiring one of {} (idle for {} s)",
                    pool.size(),
                    state.app.config.workers_idle_seconds
                ));
            }
            Decision::Hold => {}
        }
    }
}

/// Polls the catalog generation (cache invalidation); every second flushes usage and anchors
/// the audit chains that grew; every 10 s closes tenants' idle read connections.
pub(super) fn watch_catalog(state: &ServerState, stop: &mpsc::Receiver<()>) {
    let conn = match crate::db::open_read_only(state.app.catalog.path()) {
        Ok(c) => c,
        Err(e) => {
            crate::log::error(&format!("catalog watcher cannot open the catalog: {}", e.log_detail()));
            return;
        }
    };
    // The generation moves only with changes that cached lookups depend on (not with usage
    // flushes or session touches), so a busy server keeps its caches warm.
    let read = || {
        conn.query_row("SELECT value FROM catalog_meta WHERE key = 'generation'", [], |r| r.get::<_, String>(0)).ok()
    };
    let mut last = read();
    let mut last_flush = Instant::now();
    let mut last_archive = Instant::now();
    let mut last_outbox = Instant::now();
    let mut last_reap = Instant::now();
    // The first backup pass two minutes after start (the server settles first), then every ten.
    let mut last_backup = Instant::now().checked_sub(Duration::from_secs(480)).unwrap_or_else(Instant::now);
    let mut rolled_day: Option<i64> = None;
    let mut replica_errors = ReplicaErrors::default();
    let started = Instant::now();
    let mut accept = AcceptWatch::default();
    // 200 ms keeps CLI changes visible to the server well within one second.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_millis(200)) {
        accept.check(state, Instant::now());
        let now = read();
        if now != last {
            state.app.invalidate_caches();
            last = now;
        }
        // Usage is flushed every second: a hard kill loses at most the last second of counts.
        if last_flush.elapsed() >= Duration::from_secs(1) {
            last_flush = Instant::now();
            replica_errors.check(&state.app);
            let now = crate::util::now_unix().max(0) as u64;
            match crate::limits::flush_usage(&state.app) {
                Ok(_) => state.last_flush.store(now, Ordering::Relaxed),
                Err(e) => crate::log::warn(&format!("usage flush failed (kept for the next one): {}", e.log_detail())),
            }
            match crate::audit::anchor_dirty(&state.app) {
                Ok(_) => state.last_anchor.store(now, Ordering::Relaxed),
                Err(e) => crate::log::warn(&format!("audit anchoring failed: {}", e.log_detail())),
            }
        }
        // Usage downsampling.
        let today = crate::util::now_unix().div_euclid(86_400);
        // A minute after start (the server settles first), then once each UTC day has ended.
        if rolled_day != Some(today) && started.elapsed() >= Duration::from_secs(60) {
            // Records per table are counted at midnight only: at every start, counting each
            // tenant that wrote yesterday would open thousands of files at once.
            usage_downsample(&state.app, rolled_day.is_some());
            rolled_day = Some(today);
        }
        // Tenants' read connections unused for a minute are closed (looked for every 10 s).
        if last_reap.elapsed() >= Duration::from_secs(10) {
            last_reap = Instant::now();
            state.app.store.close_idle_readers(crate::db::POOL_IDLE_TIMEOUT);
        }
        // Calls queued for Stripe, every 5 s (on a thread of their own: Stripe may be slow).
        if last_outbox.elapsed() >= Duration::from_secs(5) {
            last_outbox = Instant::now();
            stripe_drain(&state.app);
        }
        // Snapshots that are due, and backup retention.
        if last_backup.elapsed() >= Duration::from_secs(600) {
            last_backup = Instant::now();
            backups(&state.app);
        }
        // Audit retention and the billing run once an hour.
        if last_archive.elapsed() >= Duration::from_secs(3600) {
            last_archive = Instant::now();
            billing_run(&state.app);
            match crate::audit::archive_all(&state.app) {
                Ok(done) if !done.is_empty() => crate::log::info(&format!("audit retention archived {done:?}")),
                Ok(_) => {}
                Err(e) => crate::log::warn(&format!("audit retention failed: {}", e.log_detail())),
            }
        }
    }
}

/// Runs `f` on a thread named `name` unless the previous run still goes on: billing work never
/// delays the usage flush or cache invalidation, and never piles up.
fn spawn_once(flag: &'static std::sync::atomic::AtomicBool, name: &str, f: impl FnOnce() + Send + 'static) {
    use std::sync::atomic::Ordering;
    if flag.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        f();
        flag.store(false, Ordering::Release);
    });
    if let Err(e) = spawned {
        flag.store(false, Ordering::Release);
        crate::log::warn(&format!("{name} not started: {e}"));
    }
}

fn stripe_drain(app: &std::sync::Arc<crate::app::App>) {
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if crate::billing::Provider::of(app) != crate::billing::Provider::Stripe {
        return;
    }
    let app = app.clone();
    spawn_once(&RUNNING, "stripe-outbox", move || {
        if let Err(e) = crate::billing::provider::drain(&app, crate::util::now_unix()) {
            crate::log::warn(&format!("stripe outbox: {}", e.log_detail()));
        }
    });
}

/// Snapshots every tenant whose newest is older than `[backup] interval_hours`, and deletes
/// those past their plan's retention.
fn backups(app: &std::sync::Arc<crate::app::App>) {
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if app.config.backup.interval_hours == 0 {
        return;
    }
    let app = app.clone();
    spawn_once(&RUNNING, "backups", move || {
        match crate::backup::run_scheduled(&app, crate::util::now_millis(), false, app.config.backup.threads) {
            Ok(p) => {
                if p.snapshots > 0 || p.pruned > 0 {
                    crate::log::info(&format!(
                        "backups: {} tenants snapshotted, {} snapshots past retention deleted in {:.1} s",
                        p.snapshots, p.pruned, p.seconds
                    ));
                }
                for f in &p.failed {
                    crate::log::warn(&format!("backup failed: {f}"));
                }
            }
            Err(e) => crate::log::warn(&format!("backup pass failed: {}", e.log_detail())),
        }
    });
}

/// Daily: usage rollups downsampled past their retention, and records per table counted.
fn usage_downsample(app: &std::sync::Arc<crate::app::App>, count_records: bool) {
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let app = app.clone();
    spawn_once(&RUNNING, "downsample", move || {
        let keep = crate::analytics::rollup::Retention::of(&app.config);
        match crate::analytics::rollup::downsample(&app.catalog, crate::util::now_unix(), keep) {
            Ok(d) if d.hourly_rows_deleted > 0 || d.days_written > 0 => crate::log::info(&format!(
                "usage downsampled: {} days and {} months written, {} hourly and {} daily rows past retention deleted in {:.1} s",
                d.days_written, d.months_written, d.hourly_rows_deleted, d.daily_rows_deleted, d.seconds
            )),
            Ok(_) => {}
            Err(e) => crate::log::warn(&format!("usage downsampling failed (tried again tomorrow): {}", e.log_detail())),
        }
        // Records per table of every tenant that wrote since yesterday began.
        let now = crate::util::now_unix();
        if !count_records {
            return;
        }
        if let Err(e) = crate::analytics::records::snapshot_writers(&app, now - now.rem_euclid(86_400) - 86_400, now) {
            crate::log::warn(&format!("records per table not counted: {}", e.log_detail()));
        }
    });
}

/// The hourly billing run (periods that ended, dunning, meter events for Stripe).
fn billing_run(app: &std::sync::Arc<crate::app::App>) {
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if crate::billing::Provider::of(app) == crate::billing::Provider::None {
        return;
    }
    let app = app.clone();
    spawn_once(&RUNNING, "billing", move || {
        if let Err(e) = crate::billing::queue_meter_events(&app, crate::util::now_unix()) {
            crate::log::warn(&format!("billing: meter events not queued: {}", e.log_detail()));
        }
        let actor = crate::tenancy::Actor("system".into());
        match crate::billing::invoice::run(&app, crate::util::now_unix(), &actor) {
            Ok(r) if !r.invoices.is_empty() || !r.dunning.held.is_empty() || !r.dunning.suspended.is_empty() => {
                crate::log::info(&format!(
                    "billing: {} invoices, {} past due, {} read-only, {} suspended",
                    r.invoices.len(),
                    r.dunning.past_due.len(),
                    r.dunning.held.len(),
                    r.dunning.suspended.len()
                ))
            }
            Ok(_) => {}
            Err(e) => crate::log::warn(&format!("billing run failed: {}", e.log_detail())),
        }
    });
}

/// Raises a `replica_errors` alert (once an hour per replica) when a replica's apply errors grow:
/// a full or unusable replica directory leaves the primary and its writes alone, so lag and
/// this alert are how the operator hears of it.
#[derive(Default)]
struct ReplicaErrors {
    seen: std::collections::HashMap<String, u64>,
}

impl ReplicaErrors {
    fn check(&mut self, app: &crate::app::App) {
        let Some(r) = &app.replication else { return };
        for (name, stats) in r.names.iter().zip(&r.stats) {
            let errors = stats.errors.load(Ordering::Relaxed);
            let before = self.seen.insert(name.clone(), errors).unwrap_or(0);
            if errors > before {
                let last = stats.last_error.lock().clone().unwrap_or_default();
                let hour = crate::util::now_unix().div_euclid(3600) * 3600;
                app.limits.alerts.raise_full(
                    None,
                    "replica_errors",
                    hour,
                    format!("{name}: {} failed applies or images (the last: {last}); its mirrors fall behind, the primaries are unaffected", errors - before),
                    Some(name.clone()),
                    None,
                    50,
                );
            }
        }
    }
}

/// Tells the operator when the accept loop runs out of descriptors: one line when a burst of
/// back-offs starts, one when it has been quiet for a second (the loop itself only counts).
#[derive(Default)]
struct AcceptWatch {
    seen: u64,
    burst: Option<(u64, Instant)>,
}

impl AcceptWatch {
    fn check(&mut self, state: &ServerState, now: Instant) {
        let n = state.accept.exhausted();
        if n > self.seen {
            if self.burst.is_none() {
                crate::log::warn(
                    "out of file descriptors: new connections are closed and accepting backs off \
                     (raise LimitNOFILE, or lower keep_alive_idle_seconds or max_open_tenants)",
                );
            }
            let first = self.burst.map_or(self.seen, |(first, _)| first);
            self.burst = Some((first, now));
            self.seen = n;
        } else if let Some((first, last)) = self.burst {
            if now.duration_since(last) >= Duration::from_secs(1) {
                crate::log::info(&format!("accepting connections again ({} back-offs in that burst)", n - first));
                self.burst = None;
            }
        }
    }
}
