//! The worker pool's size, between `workers_min` and `workers_max`.
//!
//! Workers are threads that each take one request at a time off tiny_http's queue. The
//! scaler thread samples the pool every 50 ms. It grows the pool by one when every worker has
//! been busy for `GROW_AFTER` consecutive samples *and* the process is not already using the
//! CPUs it may run on: workers blocked on I/O or locks leave requests waiting while the CPU
//! idles, and one more worker helps; workers busy computing would only be slowed down by more
//! (measured: 8 workers on one pinned core let point-read p99 drift past 10 ms where 4 kept it
//! near 1.4 ms). It shrinks by one after `workers_idle_seconds` in which the pool was never
//! full, then waits that long again before the next step down (hysteresis both ways). Every
//! decision is logged and counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub const TICK: Duration = Duration::from_millis(50);
/// Consecutive full samples before growing (200 ms).
const GROW_AFTER: u32 = 4;
/// Process CPU use (fraction of the CPUs it may run on) above which growing would not help.
const CPU_BUSY: f64 = 0.85;

pub struct WorkerPool {
    pub min: usize,
    pub max: usize,
    idle: Duration,
    /// Live worker threads.
    size: AtomicUsize,
    /// Workers running a request right now.
    busy: AtomicUsize,
    /// Workers asked to exit; the next one to find itself free takes one and leaves.
    retire: AtomicUsize,
    pub grown: AtomicU64,
    pub shrunk: AtomicU64,
    next_id: AtomicUsize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// What the scaler decided on one sample.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Grow,
    Shrink,
    Hold,
}

/// The scaler's memory between samples.
pub struct Scaler {
    full_ticks: u32,
    slack_since: Instant,
    cpus: f64,
    last_cpu: Option<(Instant, Duration)>,
}

impl WorkerPool {
    pub fn new(min: usize, max: usize, idle: Duration) -> WorkerPool {
        WorkerPool {
            min,
            max: max.max(min),
            idle,
            size: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            retire: AtomicUsize::new(0),
            grown: AtomicU64::new(0),
            shrunk: AtomicU64::new(0),
            next_id: AtomicUsize::new(0),
            handles: Mutex::new(Vec::new()),
        }
    }

    pub fn size(&self) -> usize {
        self.size.load(Ordering::SeqCst)
    }

    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// Starts one worker with `spawn(id)`; it counts towards the size until it returns.
    pub fn add(&self, spawn: impl FnOnce(usize) -> std::io::Result<JoinHandle<()>>) -> std::io::Result<()> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.size.fetch_add(1, Ordering::SeqCst);
        match spawn(id) {
            Ok(h) => {
                let mut handles = self.handles.lock();
                handles.retain(|h| !h.is_finished());
                handles.push(h);
                Ok(())
            }
            Err(e) => {
                self.size.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    pub fn start_request(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    pub fn end_request(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called by a free worker: true when it should exit now (the pool is shrinking).
    pub fn should_retire(&self) -> bool {
        if self.retire.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let took = self.retire.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1)).is_ok();
        if took {
            self.size.fetch_sub(1, Ordering::SeqCst);
        }
        took
    }

    /// Every worker handle started so far (for the final join at shutdown).
    pub fn take_handles(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.handles.lock())
    }

    pub fn scaler(&self) -> Scaler {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        Scaler { full_ticks: 0, slack_since: Instant::now(), cpus, last_cpu: None }
    }

    /// One sample: decides, and for `Shrink` queues the retirement. `cpu` is the process's CPU
    /// time so far (None where unknown: then CPU never vetoes growth).
    pub fn sample(&self, s: &mut Scaler, now: Instant, cpu: Option<Duration>) -> Decision {
        let live = self.size();
        let pending = self.retire.load(Ordering::SeqCst).min(live);
        let full = self.busy() >= live - pending;
        let cpu_share = match (s.last_cpu, cpu) {
            (Some((t0, c0)), Some(c1)) if now > t0 => {
                Some(c1.saturating_sub(c0).as_secs_f64() / (now - t0).as_secs_f64() / s.cpus)
            }
            _ => None,
        };
        if let Some(c) = cpu {
            s.last_cpu = Some((now, c));
        }
        if full {
            s.full_ticks += 1;
            s.slack_since = now;
        } else {
            s.full_ticks = 0;
        }
        if full && s.full_ticks >= GROW_AFTER && cpu_share.is_none_or(|c| c < CPU_BUSY) {
            s.full_ticks = 0;
            // Busy again before a retirement was taken: keep that worker instead.
            if pending > 0 && self.retire.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1)).is_ok()
            {
                return Decision::Hold;
            }
            if live < self.max {
                return Decision::Grow;
            }
        }
        if !full && live - pending > self.min && now.duration_since(s.slack_since) >= self.idle {
            s.slack_since = now;
            self.retire.fetch_add(1, Ordering::SeqCst);
            return Decision::Shrink;
        }
        Decision::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_of(n: usize, min: usize, max: usize) -> WorkerPool {
        let p = WorkerPool::new(min, max, Duration::from_secs(10));
        p.size.store(n, Ordering::SeqCst);
        p
    }

    #[test]
    fn grows_only_when_full_for_a_while_and_the_cpu_has_room() {
        let p = pool_of(2, 2, 4);
        let mut s = p.scaler();
        s.cpus = 1.0;
        let t0 = Instant::now();
        p.busy.store(2, Ordering::SeqCst);
        let idle_cpu = |ms: u64| Some(Duration::from_millis(ms / 10));
        for i in 0..(GROW_AFTER - 1) {
            assert_eq!(p.sample(&mut s, t0 + TICK * i, idle_cpu(50 * i as u64)), Decision::Hold);
        }
        assert_eq!(p.sample(&mut s, t0 + TICK * GROW_AFTER, idle_cpu(200)), Decision::Grow);
        // Busy computing: every worker busy, but the CPU is saturated too.
        let mut s = p.scaler();
        s.cpus = 1.0;
        for i in 0..(GROW_AFTER * 3) {
            let t = TICK * i;
            assert_eq!(p.sample(&mut s, t0 + t, Some(t)), Decision::Hold, "tick {i}");
        }
        // At the maximum nothing grows.
        let p = pool_of(4, 2, 4);
        p.busy.store(4, Ordering::SeqCst);
        let mut s = p.scaler();
        for i in 0..(GROW_AFTER * 3) {
            assert_eq!(p.sample(&mut s, t0 + TICK * i, None), Decision::Hold);
        }
    }

    #[test]
    fn shrinks_one_step_per_idle_period_down_to_min() {
        let p = pool_of(4, 2, 8);
        let mut s = p.scaler();
        let t0 = s.slack_since;
        p.busy.store(1, Ordering::SeqCst);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(5), None), Decision::Hold);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(10), None), Decision::Shrink);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(15), None), Decision::Hold, "hysteresis");
        assert!(p.should_retire());
        assert!(!p.should_retire(), "one retirement per decision");
        assert_eq!(p.size(), 3);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(20), None), Decision::Shrink);
        assert!(p.should_retire());
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(40), None), Decision::Hold, "at the minimum");
        assert_eq!(p.size(), 2);
    }

    #[test]
    fn a_full_pool_resets_the_idle_clock() {
        let p = pool_of(3, 2, 8);
        let mut s = p.scaler();
        let t0 = s.slack_since;
        p.busy.store(3, Ordering::SeqCst);
        p.sample(&mut s, t0 + Duration::from_secs(9), Some(Duration::from_secs(100)));
        p.busy.store(0, Ordering::SeqCst);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(12), None), Decision::Hold);
        assert_eq!(p.sample(&mut s, t0 + Duration::from_secs(19), None), Decision::Shrink);
    }
}
