//! Stopping the server: the signal wait, the graceful drain after SIGTERM (grace, stop
//! accepting, settle, workers leave, final flush and checkpoints) bounded by
//! `shutdown_timeout_seconds`, and the guard that turns a dying server thread into a stop.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::server::{serve_one, RunningServer};
use crate::error::Result;

/// After the listener closes, the stop waits until no request has started for this long, none
/// is in flight, and no connection is still to send its first request (a client that has just
/// connected is about to: closing on it would lose a request it has sent or is sending).
const SETTLE: Duration = Duration::from_millis(100);
/// The most `settle` waits, however busy the open connections keep the server (or however long
/// a client that connected keeps silent).
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// Why the server stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    /// tiny_http's accept loop ended (its listening socket failed, or it panicked; running out
    /// of descriptors only makes it back off): exit non-zero so the service manager restarts us.
    AcceptFailed,
    /// A server thread (worker, watcher, scaler) ended by a panic outside any handler: exit
    /// non-zero rather than run on short of it.
    ThreadDied(String),
    Requested,
}

/// Held by each server thread: if the thread unwinds, the server is told to stop (non-zero
/// exit, so the service manager restarts it) instead of living on without that thread.
pub(super) struct ThreadGuard {
    pub(super) stop: mpsc::Sender<StopReason>,
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let name = std::thread::current().name().unwrap_or("unnamed").to_string();
            crate::log::error(&format!("thread {name} panicked; shutting down so the service manager restarts us"));
            let _ = self.stop.send(StopReason::ThreadDied(name));
        }
    }
}

impl RunningServer {
    /// Blocks until SIGTERM/SIGINT or a fatal accept error, then shuts down gracefully.
    pub fn run_until_signal(self) -> Result<StopReason> {
        let mut signals =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
        let tx = self.stop_tx.clone();
        std::thread::Builder::new().name("tenantd-signals".into()).spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(StopReason::Signal);
            }
        })?;
        let reason = self.stop_rx.recv().unwrap_or(StopReason::Requested);
        crate::log::info(&format!("stopping ({reason:?}): draining in-flight requests"));
        crate::notify::stopping();
        // A stop that overruns its bound ends the process anyway, non-zero: a service manager
        // would kill it soon after, and then without the checkpoints done so far.
        let bound = Duration::from_secs(self.state.app.config.shutdown_timeout_seconds);
        std::thread::Builder::new().name("tenantd-stop-bound".into()).spawn(move || {
            std::thread::sleep(bound);
            crate::log::error(&format!(
                "the stop took longer than shutdown_timeout_seconds ({} s): exiting now",
                bound.as_secs()
            ));
            std::process::exit(1);
        })?;
        let grace = match reason {
            StopReason::Signal => Duration::from_millis(self.state.app.config.shutdown_grace_ms),
            _ => Duration::ZERO,
        };
        self.shutdown_after(grace)?;
        Ok(reason)
    }

    /// `shutdown_after` with no grace (tests and embedders).
    pub fn shutdown(self) -> Result<()> {
        self.shutdown_after(Duration::ZERO)
    }

    /// Drains: readiness turns `fail` and answers carry `Connection: close`; for `grace` the
    /// listener still accepts and requests are served as usual (clients and proxies that have
    /// not yet seen readiness fail keep being answered); then the connections the kernel has
    /// queued are accepted and the listener closes; requests that arrive on open connections
    /// are served until none has come for `SETTLE`; then workers exit, and every open tenant and
    /// the catalog are checkpointed.
    pub fn shutdown_after(mut self, grace: Duration) -> Result<()> {
        self.state.draining.store(true, Ordering::SeqCst);
        if !grace.is_zero() {
            std::thread::sleep(grace);
        }
        if !self.http.stop_accepting(Duration::from_secs(1)) {
            crate::log::warn("the listener did not close within 1 s of the stop");
        }
        self.settle();
        let _ = self.scaler_stop.send(());
        if let Some(s) = self.scaler.take() {
            let _ = s.join();
        }
        // One unblock marker per live worker, behind the requests already accepted (the queue
        // is FIFO), so those are all served before every worker leaves. A worker that leaves
        // on its own meanwhile (idle poll while draining) leaves its marker in the queue.
        let markers = self.state.pool.size();
        for _ in 0..markers {
            self.http.unblock();
        }
        for w in self.state.pool.take_handles() {
            let _ = w.join();
        }
        // Requests a worker had queued but nobody took before leaving.
        for rq in self.state.fair.take_all() {
            serve_one(&self.state, rq);
        }
        if let Some(t) = &self.state.tarpit {
            t.flush();
        }
        // Requests that connection threads queued after the markers: serve them here. A
        // leftover marker reads like an empty queue, so only `markers + 1` empty reads (or
        // a run of accept errors) mean the queue is done.
        let (mut empty, mut errors) = (0, 0);
        while empty <= markers && errors < 1000 {
            match self.http.try_recv() {
                Ok(Some(rq)) => serve_one(&self.state, rq),
                Ok(None) => empty += 1,
                Err(_) => errors += 1,
            }
        }
        let _ = self.watcher_stop.send(());
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        if let Err(e) = crate::limits::flush_usage(&self.state.app) {
            crate::log::warn(&format!("final usage flush failed: {}", e.log_detail()));
        }
        if let Err(e) = crate::audit::anchor_dirty(&self.state.app) {
            crate::log::warn(&format!("final audit anchoring failed: {}", e.log_detail()));
        }
        // Every commit is in the change log already; mirrors catch up from it at the next start.
        if let Some((handle, stop)) = self.cluster_sync.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        if let Some((handle, stop)) = self.cdn_syncer.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        if let Some((handle, stop)) = self.replicator.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = handle.join();
        }
        for (id, e) in self.state.app.store.checkpoint_all() {
            crate::log::warn(&format!("checkpoint of tenant {id} failed: {}", e.log_detail()));
        }
        self.state.app.catalog.checkpoint()?;
        crate::log::info("stopped cleanly");
        Ok(())
    }

    fn settle(&self) {
        let started = Instant::now();
        let (mut seen, mut quiet_since) = (self.state.requests.load(Ordering::SeqCst), Instant::now());
        while started.elapsed() < SETTLE_MAX {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.state.requests.load(Ordering::SeqCst);
            let busy = self.state.inflight.load(Ordering::SeqCst) > 0 || self.state.accept.fresh() > 0;
            if now != seen || busy {
                (seen, quiet_since) = (now, Instant::now());
            } else if quiet_since.elapsed() >= SETTLE {
                return;
            }
        }
    }
}
