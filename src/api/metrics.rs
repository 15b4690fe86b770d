//! `GET /metrics`: Prometheus text format 0.0.4, for scrapers on the addresses in
//! `metrics_allow` (loopback by default; behind the nginx front the client address is the one
//! nginx forwarded, so the public cannot read it). Labels are route templates, status classes,
//! error codes and fixed reasons: never tenant ids, raw paths or anything a client sent.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::metrics::Exposition;

pub fn metrics(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let allowed = &ctx.app.metrics_allow;
    if !allowed.is_empty() && !req.client.is_some_and(|ip| allowed.iter().any(|c| c.contains(ip))) {
        return Err(Error::Forbidden {
            code: "ip_denied",
            message: "metrics are not served to your address (see metrics_allow)".into(),
        });
    }
    let mut out = Exposition::default();
    render(ctx, &mut out);
    let mut resp = Resp::empty(200);
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = out.text.into_bytes();
    Ok(resp)
}

fn render(ctx: &Ctx<'_>, out: &mut Exposition) {
    let (app, st) = (ctx.app, ctx.state);
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    out.family("tenantd_build_info", "gauge", "Version of this binary and of its bundled SQLite; always 1.");
    out.sample("tenantd_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("sqlite", rusqlite::version())], 1.0);
    st.metrics.render_requests(out);
    out.gauge(
        "tenantd_http_requests_in_flight",
        "Requests being served now.",
        st.inflight.load(Ordering::Relaxed) as f64,
    );
    out.counter("tenantd_handler_panics_total", "Handlers that panicked (answered 500).", n(&st.panics));
    out.counter("tenantd_connections_accepted_total", "Connections accepted.", st.accept.accepted() as f64);
    out.counter(
        "tenantd_accept_backoffs_total",
        "Times accepting backed off for want of file descriptors or threads (the new connection, if any, was closed).",
        st.accept.exhausted() as f64,
    );

    let store = &app.store.stats;
    out.gauge("tenantd_tenants_open", "Tenant databases open.", app.store.open_count() as f64);
    out.gauge("tenantd_tenants_open_max", "max_open_tenants.", app.config.max_open_tenants as f64);
    out.counter("tenantd_tenant_lru_hits_total", "Requests whose tenant was already open.", n(&store.hits));
    out.counter("tenantd_tenant_lru_misses_total", "Requests that had to open their tenant.", n(&store.misses));
    out.counter("tenantd_tenant_lru_evictions_total", "Tenants closed to make room.", n(&store.evictions));
    out.counter(
        "tenantd_tenant_close_checkpoints_total",
        "Evicted tenants whose WAL was checkpointed and truncated as they closed.",
        n(&store.close_checkpoints),
    );
    out.counter("tenantd_tenant_lazy_migrations_total", "Tenants migrated when opened.", n(&store.lazy_migrations));
    out.gauge("tenantd_tenants_unavailable", "Tenants whose last open failed.", app.store.unavailable().len() as f64);
    out.counter(
        "tenantd_pool_waits_total",
        "Tenant connection checkouts that waited more than 1 ms.",
        n(&crate::db::POOL_WAITS),
    );
    out.counter(
        "tenantd_pool_wait_seconds_total",
        "Time spent in those checkouts.",
        n(&crate::db::POOL_WAIT_MICROS) / 1e6,
    );
    out.counter(
        "tenantd_group_commits_total",
        "Commits that carried more than one data API write (group commit).",
        n(&crate::store::group::GROUPS),
    );
    out.counter(
        "tenantd_group_commit_joins_total",
        "Data API writes that joined a transaction another write had left open for them.",
        n(&crate::store::group::JOINED),
    );
    out.counter(
        "tenantd_sqlite_busy_retries_total",
        "Times a statement found the database locked and retried.",
        n(&crate::db::BUSY_RETRIES),
    );

    if let Some(r) = &app.replication {
        let status = r.status(&[]);
        out.family("tenantd_replica_shipped_bytes_total", "counter", "Page bytes applied to each read replica.");
        for s in &status {
            out.sample("tenantd_replica_shipped_bytes_total", &[("replica", &s.name)], s.shipped_bytes as f64);
        }
        out.family("tenantd_replica_applied_total", "counter", "Commits applied to each read replica.");
        for s in &status {
            out.sample("tenantd_replica_applied_total", &[("replica", &s.name)], s.applied as f64);
        }
        out.family("tenantd_replica_errors_total", "counter", "Failed applies and images, by replica.");
        for s in &status {
            out.sample("tenantd_replica_errors_total", &[("replica", &s.name)], s.errors as f64);
        }
        out.family(
            "tenantd_replica_lag_seconds",
            "gauge",
            "Commit-to-apply lag over the last 65,536 commits, by replica and statistic (p50, p99, max).",
        );
        for s in &status {
            for (stat, v) in [("p50", s.lag_ms_p50), ("p99", s.lag_ms_p99), ("max", s.lag_ms_max)] {
                let seconds = f64::from(v) / 1000.0;
                out.sample("tenantd_replica_lag_seconds", &[("replica", &s.name), ("stat", stat)], seconds);
            }
        }
    }
    if let Some(c) = &app.cdn {
        out.counter("tenantd_cdn_hits_total", "CDN edge requests answered from the edge's copy.", n(&c.hits));
        out.counter(
            "tenantd_cdn_misses_total",
            "CDN edge requests that pulled the object from the origin.",
            n(&c.misses),
        );
        out.counter("tenantd_cdn_pushed_total", "Objects the syncer copied to an edge.", n(&c.pushed));
        let (p50, p99, max) = c.lag();
        out.family(
            "tenantd_cdn_push_lag_seconds",
            "gauge",
            "Upload-to-every-edge lag of recent uploads, by statistic.",
        );
        for (stat, v) in [("p50", p50), ("p99", p99), ("max", max)] {
            out.sample("tenantd_cdn_push_lag_seconds", &[("stat", stat)], f64::from(v) / 1000.0);
        }
    }
    if let Some(c) = &app.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        out.counter(
            "tenantd_cluster_redirects_total",
            "Requests for a tenant another node holds, answered 307/421 towards it (or 503 just after it moved away).",
            n(&c.redirects),
        );
        out.gauge(
            "tenantd_cluster_directory_version",
            "The directory version this node's copy is at.",
            c.version.load(Relaxed) as f64,
        );
        let synced = c.last_sync.load(Relaxed);
        let age = if synced == 0 { -1.0 } else { (crate::util::now_unix() - synced) as f64 };
        out.gauge(
            "tenantd_cluster_directory_sync_age_seconds",
            "Seconds since this node last heard from the directory node (-1: never).",
            age,
        );
    }
    let caches = app.cache_stats();
    let own = [("query", &caches.query), ("tenant_config", &caches.tenant_config)];
    out.family("tenantd_cache_hits_total", "counter", "Lookups answered from an in-memory cache, by cache.");
    out.sample("tenantd_cache_hits_total", &[("cache", "directory")], n(&app.directory.hits));
    out.sample("tenantd_cache_hits_total", &[("cache", "auth")], n(&app.auth.hits));
    for (name, c) in own {
        out.sample("tenantd_cache_hits_total", &[("cache", name)], c.hits as f64);
    }
    out.family("tenantd_cache_misses_total", "counter", "Lookups that went to SQLite, by cache.");
    out.sample("tenantd_cache_misses_total", &[("cache", "directory")], n(&app.directory.misses));
    out.sample("tenantd_cache_misses_total", &[("cache", "auth")], n(&app.auth.misses));
    for (name, c) in own {
        out.sample("tenantd_cache_misses_total", &[("cache", name)], c.misses as f64);
    }
    out.family("tenantd_cache_evictions_total", "counter", "Entries dropped to stay within bounds, by cache.");
    for (name, c) in own {
        out.sample("tenantd_cache_evictions_total", &[("cache", name)], c.evictions as f64);
    }
    out.family("tenantd_cache_bytes", "gauge", "Bytes held, by cache.");
    for (name, c) in own {
        out.sample("tenantd_cache_bytes", &[("cache", name)], c.bytes as f64);
    }
    out.family("tenantd_cache_entries", "gauge", "Entries held, by cache.");
    for (name, c) in own {
        out.sample("tenantd_cache_entries", &[("cache", name)], c.entries as f64);
    }

    out.gauge("tenantd_workers", "Worker threads now.", st.pool.size() as f64);
    out.gauge("tenantd_workers_busy", "Workers running a request now.", st.pool.busy() as f64);
    out.gauge("tenantd_workers_min", "workers_min.", st.pool.min as f64);
    out.gauge("tenantd_workers_max", "workers_max.", st.pool.max as f64);
    out.family("tenantd_worker_scaling_total", "counter", "Worker pool resizes, by direction.");
    out.sample("tenantd_worker_scaling_total", &[("direction", "up")], n(&st.pool.grown));
    out.sample("tenantd_worker_scaling_total", &[("direction", "down")], n(&st.pool.shrunk));

    out.gauge(
        "tenantd_metering_backlog",
        "Tenant-hours of usage counted in memory and not yet flushed.",
        app.limits.meter.backlog() as f64,
    );
    out.gauge(
        "tenantd_metering_flush_lag_seconds",
        "Seconds since usage was last flushed to the catalog (every second normally).",
        crate::api::health::lag_seconds(&st.last_flush) as f64,
    );
    out.gauge(
        "tenantd_audit_anchor_lag_seconds",
        "Seconds since audit chain heads were last anchored (every second normally).",
        crate::api::health::lag_seconds(&st.last_anchor) as f64,
    );
    out.counter("tenantd_alerts_total", "Quota and throttling alerts raised.", n(&app.limits.alerts.raised));
    out.counter(
        "tenantd_alert_webhook_failures_total",
        "Alert webhook deliveries that failed after retries.",
        n(&app.limits.alerts.webhook_failures),
    );

    if let Some(p) = crate::metrics::process_stats() {
        out.counter("process_cpu_seconds_total", "User and system CPU time of this process.", p.cpu_seconds);
        out.gauge("process_resident_memory_bytes", "Resident memory.", p.resident_bytes as f64);
        out.gauge("process_virtual_memory_bytes", "Virtual memory.", p.virtual_bytes as f64);
        out.gauge("process_open_fds", "Open file descriptors.", p.open_fds as f64);
        out.gauge("process_threads", "Threads.", p.threads as f64);
    }
    let start = crate::util::now_unix() as f64 - st.started.elapsed().as_secs_f64();
    out.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.", start);
}
