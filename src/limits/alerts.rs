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
    pub tenant_id: String,
    pub slug: String,
    pub message: String,
    pub at: String,
}

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
        {
            let mut sent = self.sent.lock();
            if sent.len() > 100_000 {
                sent.clear();
            }
            if !sent.insert((tenant.clone(), kind.to_string(), period)) {
                return;
            }
        }
        self.raised.fetch_add(1, Ordering::Relaxed);
        let alert = Alert {
            kind: kind.into(),
            tenant_id: tenant.to_string(),
            slug: slug.into(),
            message,
            at: crate::util::rfc3339(crate::util::now_unix()),
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

fn deliver(app: &App, agent: &ureq::Agent, alert: &Alert) {
    let event = audit::Event {
        actor: "system",
        action: "limits.alert",
        tenant_id: Some(&alert.tenant_id),
        resource: Some(&alert.slug),
        outcome: &alert.kind,
        details: json!({"message": alert.message}),
    };
    if let Err(e) = app.catalog.background_write(|tx| audit::append(tx, crate::util::now_unix(), &event).map(|_| ())) {
        crate::log::warn(&format!("could not record alert {}: {}", alert.kind, e.log_detail()));
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
