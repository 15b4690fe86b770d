//! Documents that are costly to compute and may be a little old: the platform's analytics over
//! every tenant (issue 21). Read with [`Snapshots::get`]:
//!
//! - a document that took under `inline` to compute is computed again on every read, so a small
//!   platform's dashboard shows the request made a second ago;
//! - a costlier one is kept for `max(min_fresh, 10 × what it cost)`. A read after that gets the
//!   kept document at once and starts one refresh in the background (stale-while-revalidate):
//!   a page over 10,000 tenants answers in milliseconds, and refreshes cost at most a tenth of
//!   a core however often the page is read.
//!
//! Each answer says when its document was computed. At most `MAX_SLOTS` documents are kept (the
//! least recently computed goes first); keys come from query strings.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::Result;

const MAX_SLOTS: usize = 32;

/// A document and when it was computed (Unix seconds).
pub struct Snapshot<T> {
    pub value: Arc<T>,
    pub computed_at: i64,
}

struct Slot {
    /// None while its first computation runs.
    value: Option<Arc<dyn Any + Send + Sync>>,
    at: Instant,
    computed_at: i64,
    took: Duration,
    refreshing: bool,
}

#[derive(Default)]
struct Shared {
    slots: Mutex<HashMap<String, Slot>>,
    /// Signalled when a background refresh ends (tests wait on it).
    refreshed: Condvar,
}

#[derive(Clone)]
pub struct Snapshots {
    shared: Arc<Shared>,
    inline: Duration,
    min_fresh: Duration,
    /// Kept for this many times what a document cost (at least `min_fresh`).
    cost_factor: u32,
}

impl Default for Snapshots {
    /// Computed inline under 50 ms; kept at least 60 s otherwise.
    fn default() -> Snapshots {
        Snapshots::new(Duration::from_millis(50), Duration::from_secs(60))
    }
}

impl Snapshots {
    pub fn new(inline: Duration, min_fresh: Duration) -> Snapshots {
        Snapshots { shared: Arc::default(), inline, min_fresh, cost_factor: 10 }
    }

    /// The document under `key`: kept, or computed by `compute` now (an error is the caller's),
    /// or kept while `compute` runs in the background (an error there keeps the old one). Two
    /// readers of a key nobody computed yet compute it once: the second waits for the first.
    pub fn get<T, F>(&self, key: &str, compute: F) -> Result<Snapshot<T>>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let mut slots = self.shared.slots.lock();
        loop {
            match slots.get_mut(key) {
                // Another reader is computing it for the first time.
                Some(s) if s.value.is_none() => self.shared.refreshed.wait(&mut slots),
                Some(s) if s.took >= self.inline => {
                    let Some(value) = s.value.clone().and_then(|v| v.downcast::<T>().ok()) else { break };
                    let kept = Snapshot { value, computed_at: s.computed_at };
                    let stale = s.at.elapsed() >= self.min_fresh.max(s.took * self.cost_factor);
                    if stale && !s.refreshing {
                        s.refreshing = true;
                        drop(slots);
                        self.refresh(key.to_string(), compute);
                    }
                    return Ok(kept);
                }
                _ => break,
            }
        }
        // Computed here. A key nobody computed yet gets a placeholder that makes other readers
        // wait for this computation; a cheap document keeps its slot and is computed again.
        slots.entry(key.to_string()).or_insert_with(|| Slot {
            value: None,
            at: Instant::now(),
            computed_at: 0,
            took: Duration::ZERO,
            refreshing: true,
        });
        drop(slots);
        let mut pending = Pending { snapshots: self, key, done: false };
        let started = Instant::now();
        let value = Arc::new(compute()?);
        let computed_at = self.put(key, value.clone(), started);
        pending.done = true;
        Ok(Snapshot { value, computed_at })
    }

    fn refresh<T, F>(&self, key: String, compute: F)
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        let thread_key = key.clone();
        let spawned = std::thread::Builder::new().name("snapshot-refresh".into()).spawn(move || {
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compute));
            match outcome {
                Ok(Ok(value)) => {
                    this.put(&thread_key, Arc::new(value), started);
                }
                Ok(Err(e)) => {
                    crate::log::warn(&format!("refreshing {thread_key} failed: {}", e.log_detail()));
                    this.refresh_ended(&thread_key);
                }
                Err(_) => {
                    crate::log::error(&format!("refreshing {thread_key} panicked; the kept document stays"));
                    this.refresh_ended(&thread_key);
                }
            }
        });
        if let Err(e) = spawned {
            crate::log::warn(&format!("cannot start a refresh of {key}: {e}"));
            self.refresh_ended(&key);
        }
    }

    fn put(&self, key: &str, value: Arc<dyn Any + Send + Sync>, started: Instant) -> i64 {
        let computed_at = crate::util::now_unix();
        let slot =
            Slot { value: Some(value), at: Instant::now(), computed_at, took: started.elapsed(), refreshing: false };
        let mut slots = self.shared.slots.lock();
        if slots.len() >= MAX_SLOTS && !slots.contains_key(key) {
            if let Some(oldest) = slots.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| k.clone()) {
                slots.remove(&oldest);
            }
        }
        slots.insert(key.to_string(), slot);
        drop(slots);
        self.shared.refreshed.notify_all();
        computed_at
    }

    fn refresh_ended(&self, key: &str) {
        if let Some(s) = self.shared.slots.lock().get_mut(key) {
            s.refreshing = false;
        }
        self.shared.refreshed.notify_all();
    }

    /// Waits until no refresh of `key` is running (tests).
    #[cfg(test)]
    fn settled(&self, key: &str) {
        let mut slots = self.shared.slots.lock();
        while slots.get(key).is_some_and(|s| s.refreshing) {
            self.shared.refreshed.wait(&mut slots);
        }
    }
}

/// A first computation under way: if it fails or panics, its placeholder goes and the readers
/// waiting on it compute it themselves.
struct Pending<'a> {
    snapshots: &'a Snapshots,
    key: &'a str,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.snapshots.shared.slots.lock();
        if slots.get(self.key).is_some_and(|s| s.value.is_none()) {
            slots.remove(self.key);
        }
        drop(slots);
        self.snapshots.shared.refreshed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(n: &Arc<AtomicUsize>) -> impl FnOnce() -> Result<usize> + Send + 'static {
        let n = n.clone();
        move || Ok(n.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[test]
    fn cheap_documents_are_computed_on_every_read() {
        let s = Snapshots::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let n = Arc::new(AtomicUsize::new(0));
        for want in 1..=3 {
            assert_eq!(*s.get("k", counting(&n)).unwrap().value, want);
        }
    }

    #[test]
    fn costly_documents_are_kept_while_fresh() {
        let s = Snapshots::new(Duration::ZERO, Duration::from_secs(3600));
        let n = Arc::new(AtomicUsize::new(0));
        assert_eq!(*s.get("k", counting(&n)).unwrap().value, 1);
        assert_eq!(*s.get("k", counting(&n)).unwrap().value, 1);
        assert_eq!(*s.get("other", counting(&n)).unwrap().value, 2, "keys are apart");
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_stale_document_is_served_while_one_refresh_runs_behind() {
        let s = Snapshots { cost_factor: 0, ..Snapshots::new(Duration::ZERO, Duration::ZERO) };
        let n = Arc::new(AtomicUsize::new(0));
        assert_eq!(*s.get("k", counting(&n)).unwrap().value, 1);
        // Stale at once: the kept one comes back, and a refresh starts.
        assert_eq!(*s.get("k", counting(&n)).unwrap().value, 1);
        s.settled("k");
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert_eq!(*s.get("k", counting(&n)).unwrap().value, 2, "the refreshed one");
        s.settled("k");
    }

    #[test]
    fn a_failed_refresh_keeps_the_old_document_and_retries_later() {
        let s = Snapshots { cost_factor: 0, ..Snapshots::new(Duration::ZERO, Duration::ZERO) };
        assert_eq!(*s.get("k", || Ok(7u32)).unwrap().value, 7);
        let failing = || -> Result<u32> { Err(crate::error::Error::Internal("disk gone".into())) };
        assert_eq!(*s.get("k", failing).unwrap().value, 7);
        s.settled("k");
        let panicking = || -> Result<u32> { panic!("a bug in the computation") };
        assert_eq!(*s.get("k", panicking).unwrap().value, 7);
        s.settled("k");
        assert_eq!(*s.get("k", || Ok(8u32)).unwrap().value, 7);
        s.settled("k");
        assert_eq!(*s.get("k", || Ok(9u32)).unwrap().value, 8);
        s.settled("k");
    }

    #[test]
    fn readers_of_a_document_being_computed_wait_for_it() {
        let s = Snapshots::new(Duration::ZERO, Duration::from_secs(3600));
        let n = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let (s, n) = (s.clone(), n.clone());
            std::thread::spawn(move || {
                let slow = move || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Ok(n.fetch_add(1, Ordering::SeqCst) + 1)
                };
                *s.get("k", slow).unwrap().value
            })
        };
        started_rx.recv().unwrap();
        let second = {
            let (s, n) = (s.clone(), n.clone());
            std::thread::spawn(move || *s.get("k", counting(&n)).unwrap().value)
        };
        go_tx.send(()).unwrap();
        assert_eq!((first.join().unwrap(), second.join().unwrap()), (1, 1));
        assert_eq!(n.load(Ordering::SeqCst), 1, "computed once");
    }

    #[test]
    fn a_failed_first_computation_lets_the_next_reader_compute() {
        let s = Snapshots::new(Duration::ZERO, Duration::from_secs(3600));
        assert!(s.get("k", || -> Result<u32> { Err(crate::error::Error::Internal("busy".into())) }).is_err());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = s.get("k", || -> Result<u32> { panic!("a bug") });
        }));
        assert!(panicked.is_err());
        assert_eq!(*s.get("k", || Ok(3u32)).unwrap().value, 3);
    }

    #[test]
    fn a_first_computation_error_is_the_callers() {
        let s = Snapshots::default();
        let err = s.get("k", || -> Result<u32> { Err(crate::error::Error::Internal("no catalog".into())) });
        assert!(err.is_err());
    }
}
