//! Violations: soft alerts at 80% and 100% of a quota and on repeated throttling. Each alert is
//! a platform-audit entry, a counter, and (when `alert_webhook_url` is set) a JSON POST sent in
//! the background with retries. Requests only enqueue; they never wait on any of it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;

use crate::app::App;
use crate::catalog::audit;
use crate::ids::TenantId;

#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub kind: String,
    /// Empty for platform-wide alerts (e.g. credential stuffing across tenants).
    pub tenant_id: String,
    pub slug: String,
    pub message: String,
    pub at: String,
    pub source: Option<String>,
    pub principal: Option<String>,
    pub risk: i64,
}

/// Stands for "no tenant" in the dedupe key of platform-wide alerts.
static PLATFORM: std::sync::LazyLock<TenantId> =
    std::sync::LazyLock::new(|| TenantId::parse("0000000000000000").unwrap_or_else(|_| TenantId::mint()));

/// The queue between requests and the alert thread, and what has been said already.
pub struct Alerts {
    tx: SyncSender<Alert>,
    rx: Mutex<Option<Receiver<Alert>>>,
    /// (tenant, kind, period) already alerted, so a threshold is reported once per period.
    sent: Mutex<HashSet<(TenantId, String, i64)>>,
    pub raised: AtomicU64,
    pub dropped: AtomicU64,
    pub webhook_failures: AtomicU64,
}

impl Default for Alerts {
    fn default() -> Self {
        let (tx, rx) = sync_channel(1024);
        Alerts {
            tx,
            rx: Mutex::new(Some(rx)),
            sent: Mutex::default(),
            raised: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            webhook_failures: AtomicU64::new(0),
        }
    }
}

impl Alerts {
    /// Raises `kind` for a tenant once per `period` (e.g. the month start). Never blocks: a
    /// full queue drops the alert and counts it.
    pub fn raise(&self, tenant: &TenantId, slug: &str, kind: &str, period: i64, message: String) {
        self.raise_full(Some((tenant, slug)), kind, period, message, None, None, 30);
    }

    /// Raises an alert, once per (tenant, kind, period); `dedupe` extends the key (an address,
    /// a principal) for detections that concern one actor.
    #[allow(clippy::too_many_arguments, reason = "one call site per detector; a struct would only rename them")]
    pub fn raise_full(
        &self,
        tenant: Option<(&TenantId, &str)>,
        kind: &str,
        period: i64,
        message: String,
        source: Option<String>,
        principal: Option<String>,
        risk: i64,
    ) {
        {
            let mut sent = self.sent.lock();
            if sent.len() > 100_000 {
                sent.clear();
            }
            let who = format!("{kind}|{}|{}", source.as_deref().unwrap_or(""), principal.as_deref().unwrap_or(""));
            let key_tenant = tenant.map(|(t, _)| t.clone()).unwrap_or_else(|| PLATFORM.clone());
            if !sent.insert((key_tenant, who, period)) {
                return;
            }
        }
        self.raised.fetch_add(1, Ordering::Relaxed);
        let alert = Alert {
            kind: kind.into(),
            tenant_id: tenant.map(|(t, _)| t.to_string()).unwrap_or_default(),
            slug: tenant.map(|(_, s)| s.to_string()).unwrap_or_default(),
            message,
            at: crate::util::rfc3339(crate::util::now_unix()),
            source,
            principal,
            risk,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(alert) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the thread that records alerts and calls the webhook. Returns None if already started.
/// It holds the App weakly and ends when the App (and with it the sender) is dropped.
pub fn start(app: &Arc<App>) -> Option<std::thread::JoinHandle<()>> {
    let rx = app.limits.alerts.rx.lock().take()?;
    let weak = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("tenantd-alerts".into())
        .spawn(move || {
            let agent: ureq::Agent =
                ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
            while let Ok(alert) = rx.recv() {
                let Some(app) = weak.upgrade() else { return };
                deliver(&app, &agent, &alert);
            }
        })
        .ok()
}

fn tenant_record(app: &App, id: &str) -> Option<crate::catalog::tenants::TenantRecord> {
    let id = crate::ids::TenantId::parse(id).ok()?;
    crate::catalog::tenants::find_by_id(&*app.catalog.conn().ok()?, &id).ok().flatten()
}

fn deliver(app: &App, agent: &ureq::Agent, alert: &Alert) {
    let tenant = (!alert.tenant_id.is_empty()).then_some(alert.tenant_id.as_str());
    let event = audit::Event {
        actor: "system",
        action: "limits.alert",
        tenant_id: tenant,
        resource: Some(&alert.slug),
        outcome: &alert.kind,
        details: json!({"message": alert.message, "source": alert.source, "principal": alert.principal}),
    };
    let now = crate::util::now_unix();
    let res = app.catalog.background_write(|tx| {
        audit::append(tx, now, &event)?;
        tx.execute(
            "INSERT INTO alerts(at, tenant_id, kind, source, principal, risk, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![now, tenant, alert.kind, alert.source, alert.principal, alert.risk, alert.message],
        )?;
        Ok(())
    });
    if let Err(e) = res {
        crate::log::warn(&format!("could not record alert {}: {}", alert.kind, e.log_detail()));
    }
    if let Some(t) = tenant.and_then(|id| tenant_record(app, id)) {
        // The tenant's own chain too: its admins audit what was detected about their tenant.
        let entry = crate::audit::Entry {
            actor: "system",
            source: alert.source.as_deref(),
            user_agent: None,
            request_id: None,
            action: "security.alert",
            resource: Some(&alert.kind),
            outcome: "detected",
            risk: alert.risk,
            details: json!({"message": alert.message, "principal": alert.principal}),
        };
        if let Err(e) = crate::audit::record(app, &t, &entry) {
            crate::log::warn(&format!("could not audit alert {} in {}: {}", alert.kind, t.slug, e.log_detail()));
        }
    }
    crate::log::warn(&format!("alert {} for {}: {}", alert.kind, alert.slug, alert.message));
    let Some(url) = app.config.alert_webhook_url.as_deref() else { return };
    // Three attempts with backoff; a webhook outage must not pile up work.
    for attempt in 0..3u32 {
        match agent.post(url).send_json(alert) {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => crate::log::warn(&format!("alert webhook answered {}", r.status())),
            Err(e) => crate::log::warn(&format!("alert webhook failed: {e}")),
        }
        std::thread::sleep(Duration::from_millis(500 * 2u64.pow(attempt)));
    }
    app.limits.alerts.webhook_failures.fetch_add(1, Ordering::Relaxed);
}

/// Recorded alerts, newest first: one tenant's, or all (platform admins).
pub fn list(
    conn: &rusqlite::Connection,
    tenant: Option<&TenantId>,
    limit: i64,
) -> crate::error::Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.at, a.tenant_id, t.slug, a.kind, a.source, a.principal, a.risk, a.message
         FROM alerts a LEFT JOIN tenants t ON t.id = a.tenant_id
         WHERE (?1 IS NULL OR a.tenant_id = ?1) ORDER BY a.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![tenant.map(|t| t.as_str()), limit], |r| {
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "at": crate::util::rfc3339(r.get(1)?),
            "tenant_id": r.get::<_, Option<String>>(2)?,
            "slug": r.get::<_, Option<String>>(3)?,
            "kind": r.get::<_, String>(4)?,
            "source": r.get::<_, Option<String>>(5)?,
            "principal": r.get::<_, Option<String>>(6)?,
            "risk": r.get::<_, i64>(7)?,
            "message": r.get::<_, String>(8)?,
        }))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
