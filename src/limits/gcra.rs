//! GCRA (generic cell rate algorithm), the algorithm of the `governor` crate, written here
//! because we need a keyed limiter whose per-key parameters come from the tenant's plan at
//! each call (plans change without restart), injectable time, and pruning we control.
//!
//! Each key stores one number, its theoretical arrival time (TAT). With emission interval
//! `T = 1/rate` and tolerance `τ = burst·T`, a request at `t` is allowed when
//! `max(TAT, t) − t ≤ τ`, and then `TAT = max(TAT, t) + T`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Nanoseconds on a monotonic clock. Wall-clock jumps cannot unlock a burst: time only moves
/// forward here.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

pub struct MonotonicClock {
    start: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock { start: Instant::now() }
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A clock tests move by hand.
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms * 1_000_000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A rate and a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub per_second: f64,
    pub burst: u64,
}

impl Quota {
    fn interval_ns(&self) -> u64 {
        (1e9 / self.per_second.max(1e-9)).max(1.0) as u64
    }
    /// The limit advertised in `RateLimit-Limit`: the burst (at least one request).
    pub fn limit(&self) -> u64 {
        self.burst.max(1)
    }
}

/// Outcome of one decision, with what the `RateLimit-*` headers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again (allowed) or until a retry can pass (refused).
    pub reset_s: u64,
    pub retry_after_s: u64,
}

const SHARDS: usize = 16;

/// A keyed GCRA limiter, sharded to keep lock contention low. Memory is bounded: a shard over
/// `max_keys_per_shard` drops every key whose TAT has passed (those are indistinguishable from
/// fresh keys), and if that is not enough, the ones closest to passing.
/// Keys with their (theoretical arrival time, emission interval), in ns.
type Shard<K, S> = Mutex<HashMap<K, (u64, u64), S>>;

/// `S` hashes keys: SipHash (the default) for keys a request can choose (addresses), the fast
/// `util::IdHasher` for keys tenantd minted (tenant ids, hashed caller keys).
pub struct Limiter<K, S = std::collections::hash_map::RandomState> {
    shards: Vec<Shard<K, S>>,
    clock: Arc<dyn Clock>,
    max_keys_per_shard: usize,
    hasher: S,
}

impl<K: Hash + Eq + Clone, S: BuildHasher + Default> Limiter<K, S> {
    pub fn new(clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
            clock,
            max_keys_per_shard: (max_keys / SHARDS).max(16),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &Shard<K, S> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Checks and, when allowed, records one request for `key`.
    pub fn check(&self, key: &K, quota: Quota) -> Decision {
        let now = self.clock.now_ns();
        let t = quota.interval_ns();
        let tau = t.saturating_mul(quota.burst.max(1).saturating_sub(1));
        let mut shard = self.shard(key).lock();
        let stored = shard.get(key).copied();
        let tat = match stored {
            Some((tat, old_t)) if old_t != t && tat > now => {
                now + ((tat - now) as f64 * t as f64 / old_t.max(1) as f64) as u64
            }
            Some((tat, _)) => tat.max(now),
            None => now,
        };
        let limit = quota.limit();
        if tat - now > tau {
            let wait = tat - now - tau;
            return Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_s: ceil_s(tat - now),
                retry_after_s: ceil_s(wait).max(1),
            };
        }
        let new_tat = tat + t;
        match shard.get_mut(key) {
            // Update in place: no key clone (and no allocation) on the hot path.
            Some(v) => *v = (new_tat, t),
            None => {
                if shard.len() >= self.max_keys_per_shard {
                    prune(&mut shard, now, self.max_keys_per_shard);
                }
                shard.insert(key.clone(), (new_tat, t));
            }
        }
        let used = (new_tat - now).div_ceil(t);
        let remaining = limit.saturating_sub(used);
        Decision { allowed: true, limit, remaining, reset_s: ceil_s(new_tat - now), retry_after_s: 0 }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ceil_s(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

fn prune<K: Hash + Eq + Clone, S: BuildHasher>(shard: &mut HashMap<K, (u64, u64), S>, now: u64, max: usize) {
    shard.retain(|_, (tat, _)| *tat > now);
    if shard.len() >= max {
        // Still full of live keys: drop the half closest to expiring (they lose at most the
        // little burst credit they had used).
        let mut tats: Vec<u64> = shard.values().map(|(t, _)| *t).collect();
        tats.sort_unstable();
        let cut = tats[tats.len() / 2];
        shard.retain(|_, (tat, _)| *tat > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> (Arc<ManualClock>, Limiter<&'static str>) {
        let clock = Arc::new(ManualClock::default());
        (clock.clone(), Limiter::new(clock, 1000))
    }

    #[test]
    fn burst_then_steady_rate() {
        let (clock, l) = limiter();
        let q = Quota { per_second: 10.0, burst: 5 };
        for i in 0..5 {
            let d = l.check(&"t", q);
            assert!(d.allowed, "burst request {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let refused = l.check(&"t", q);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_s, 1);
        clock.advance_ms(100);
        assert!(l.check(&"t", q).allowed, "one interval later, one more");
        assert!(!l.check(&"t", q).allowed);
        clock.advance_ms(10_000);
        assert_eq!(l.check(&"t", q).remaining, 4, "a long pause refills the burst, no more");
    }

    #[test]
    fn a_quota_change_rescales_the_debt() {
        let (_clock, l) = limiter();
        let slow = Quota { per_second: 0.01, burst: 2 };
        assert!(l.check(&"t", slow).allowed);
        assert!(l.check(&"t", slow).allowed);
        assert!(!l.check(&"t", slow).allowed, "200 s of debt on the slow plan");
        let fast = Quota { per_second: 100.0, burst: 3 };
        assert!(l.check(&"t", fast).allowed, "two used of a burst of three on the fast plan");
    }

    #[test]
    fn keys_are_independent() {
        let (_clock, l) = limiter();
        let q = Quota { per_second: 1.0, burst: 1 };
        assert!(l.check(&"a", q).allowed);
        assert!(!l.check(&"a", q).allowed);
        assert!(l.check(&"b", q).allowed);
    }

    #[test]
    fn memory_stays_bounded_under_random_keys() {
        let clock = Arc::new(ManualClock::default());
        let l: Limiter<u64> = Limiter::new(clock.clone(), 1000);
        let q = Quota { per_second: 1.0, burst: 10 };
        for k in 0..100_000u64 {
            l.check(&k, q);
            if k % 1000 == 0 {
                clock.advance_ms(1);
            }
        }
        assert!(l.len() <= 1000 + 16 * 2, "{} keys kept", l.len());
    }
}
