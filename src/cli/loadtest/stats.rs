//! Measurement for `tenantd loadtest`: a log-bucketed latency histogram (mergeable across
//! client threads, bounded memory however long the run), per-operation counters, and the
//! Zipf sampler that spreads requests over tenants.

use std::collections::BTreeMap;
use std::time::Duration;

/// Sub-buckets per power of two: 2^5 = 32, so a bucket is at most 1/32 (3.1%) of its value
/// wide. Values below 64 ns get exact buckets.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const LINEAR: u64 = 2 * SUB;
/// 64 linear buckets, then 32 per octave for exponents 6..=63.
const BUCKETS: usize = LINEAR as usize + (64 - 6) * SUB as usize;

/// Latency histogram in nanoseconds with ~3% relative precision (HdrHistogram's idea, reduced
/// to what a load report needs). Percentiles are nearest-rank: the smallest recorded bucket
/// holding at least `ceil(p * n)` samples, reported as its midpoint, never above the exact max.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], n: 0, max_ns: 0, sum_ns: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros());
    let sub = (v >> (e - u64::from(SUB_BITS))) & (SUB - 1);
    (LINEAR + (e - 6) * SUB + sub) as usize
}

/// (lower bound, width) of a bucket.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, 1);
    }
    let e = (i - LINEAR) / SUB + 6;
    let sub = (i - LINEAR) % SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    ((SUB + sub) * width, width)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.n += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += u128::from(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The p-quantile (0 < p <= 1) in milliseconds; 0 when empty; p = 1 is the exact max.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        if p >= 1.0 {
            return self.max_ns as f64 / 1e6;
        }
        let rank = ((p * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bounds(i);
                let mid = lo.saturating_add(width / 2);
                return mid.min(self.max_ns) as f64 / 1e6;
            }
        }
        self.max_ns as f64 / 1e6
    }

    pub fn mean_ms(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.n as f64 / 1e6
        }
    }
}

/// What one client thread saw for one operation.
#[derive(Clone, Default)]
pub struct OpStats {
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Latency of every response received (any status), like wrk: errors are reported next to it.
    pub latency: Histogram,
    /// Non-2xx responses by status code, and `connection` for requests that got no response.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.latency.merge(&other.latency);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    /// Requests sent: answered (any status) plus those that failed on the connection.
    pub fn requests(&self) -> u64 {
        self.latency.count() + self.errors.get(CONNECTION).copied().unwrap_or(0)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The error key for requests that got no HTTP response (refused, reset, timed out).
pub const CONNECTION: &str = "connection";

/// Picks an index in proportion to weights: Zipf over ranks 1..=n with exponent s (P(k) ∝
/// 1/k^s), or a scenario's tenant weights. Sampling inverts the cumulative distribution by binary
/// search (n is at most a few hundred thousand tenants).
pub struct Sampler {
    cdf: Vec<f64>,
}

impl Sampler {
    pub fn zipf(n: usize, s: f64) -> Sampler {
        Self::weighted(&(1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect::<Vec<_>>())
    }

    /// Index i with probability w[i] / sum(w); weights are finite and >= 0, not all 0.
    pub fn weighted(w: &[f64]) -> Sampler {
        let mut cdf = Vec::with_capacity(w.len());
        let mut acc = 0.0;
        for x in w {
            acc += x;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Sampler { cdf }
    }

    /// Maps a uniform `u` in [0, 1) to a 0-based rank.
    pub fn sample(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut prev = 0;
        for i in 0..BUCKETS {
            let (lo, width) = bounds(i);
            assert!(i == 0 || lo == prev, "bucket {i} starts at {lo}, previous ended at {prev}");
            assert_eq!(index(lo), i);
            assert_eq!(index(lo + (width - 1)), i);
            assert!(width <= (lo / SUB).max(1), "bucket {i} wider than 1/32 of its value");
            prev = lo.wrapping_add(width);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_match_sorted_samples_within_bucket_precision() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut samples: Vec<u64> = (0..100_000).map(|_| rng.random_range(50_000..20_000_000)).collect();
        samples.extend([90_000_000, 120_000_000]);
        let mut h = Histogram::default();
        for &s in &samples {
            h.record(Duration::from_nanos(s));
        }
        samples.sort_unstable();
        for p in [0.5, 0.95, 0.99, 0.999] {
            let exact = samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1] as f64 / 1e6;
            let got = h.quantile_ms(p);
            assert!((got - exact).abs() / exact < 0.032, "p{p}: {got} vs exact {exact}");
        }
        assert_eq!(h.quantile_ms(1.0), 120.0);
        assert_eq!(h.count(), 100_002);
    }

    #[test]
    fn small_and_empty_histograms() {
        let h = Histogram::default();
        assert_eq!(h.quantile_ms(0.99), 0.0);
        let mut h = Histogram::default();
        for ms in [1, 2, 3, 4, 100] {
            h.record(Duration::from_millis(ms));
        }
        // Nearest rank: p50 of 5 samples is the 3rd, p99 the 5th (the outlier, not hidden).
        assert!((h.quantile_ms(0.5) - 3.0).abs() < 0.1);
        assert!((h.quantile_ms(0.99) - 100.0).abs() < 3.2);
        assert!(h.quantile_ms(0.99) <= 100.0);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
        for i in 0..1000u64 {
            let d = Duration::from_micros(i * 37 % 5000);
            if i % 3 == 0 { &mut a } else { &mut b }.record(d);
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for p in [0.5, 0.9, 0.99, 1.0] {
            assert_eq!(a.quantile_ms(p), all.quantile_ms(p));
        }
    }

    #[test]
    fn zipf_gives_rank_one_its_share() {
        // s = 1, n = 10,000: P(rank 1) = 1 / H(10,000) ≈ 1 / 9.7876 ≈ 0.1022; P(rank 2) half that.
        let z = Sampler::zipf(10_000, 1.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = 200_000;
        let mut counts = vec![0u32; 10_000];
        for _ in 0..n {
            counts[z.sample(rng.random::<f64>())] += 1;
        }
        let p1 = f64::from(counts[0]) / f64::from(n);
        let p2 = f64::from(counts[1]) / f64::from(n);
        assert!((p1 - 0.1022).abs() < 0.005, "P(rank 1) = {p1}");
        assert!((p2 - 0.0511).abs() < 0.004, "P(rank 2) = {p2}");
        assert!(counts[9_999] < 20, "the tail is rare");
        assert_eq!(z.sample(0.0), 0);
        assert_eq!(z.sample(0.999_999_999), 9_999);
    }

    #[test]
    fn weights_give_their_shares() {
        let w = Sampler::weighted(&[3.0, 0.0, 1.0]);
        let mut counts = [0u32; 3];
        for i in 0..4000 {
            counts[w.sample(f64::from(i) / 4000.0)] += 1;
        }
        assert_eq!(counts, [3000, 0, 1000]);
    }
}
