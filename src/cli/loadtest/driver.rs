//! The load itself: `concurrency` client threads, each on its own keep-alive connection,
//! send requests back to back (closed loop, like wrk) until the deadline, or with `rate` on a
//! fixed schedule (open loop): each thread sends at its own even intervals, and latency counts
//! from when a request was due, so a server that stalls is charged for the requests that
//! queued up behind the stall (no coordinated omission). Each thread keeps its
//! own histograms; they are merged once at the end, so measuring costs no shared writes beyond
//! two relaxed counters for the live progress line. Writes post rows made by the table's
//! `TableGen`, each thread numbering its own so that no two writes share a UNIQUE value.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use parking_lot::Mutex;

use super::rows::TableGen;
use super::stats::{Histogram, OpStats, Sampler, CONNECTION};
use crate::http::client::Client as HttpClient;

/// The operations of the mix, against the loaded table (`--table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET …/{table}/{id}`, id uniform in 1..=rows.
    Read,
    /// `GET …/{table}?per_page=20&page=P`: a page of 20 with the total count.
    List,
    /// `POST …/{table}` with a generated row.
    Write,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Read, Op::List, Op::Write];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::List => "list",
            Op::Write => "write",
        }
    }
}

/// Relative weights of the operations on one table (`read=80,list=10,write=10`).
#[derive(Clone, Debug, PartialEq)]
pub struct OpMix(pub [u32; 3]);

impl OpMix {
    pub fn parse(s: &str) -> Result<OpMix, String> {
        let mut w = [0u32; 3];
        let mut seen = [false; 3];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| format!("{part:?} is not op=weight"))?;
            let i = Op::ALL
                .iter()
                .position(|op| op.name() == name.trim())
                .ok_or_else(|| format!("unknown operation {:?} (use read, list, write)", name.trim()))?;
            if seen[i] {
                return Err(format!("{} is given twice", Op::ALL[i].name()));
            }
            seen[i] = true;
            w[i] = value.trim().parse().map_err(|_| {
                format!("weight of {} must be a whole number >= 0, not {:?}", name.trim(), value.trim())
            })?;
        }
        if w.iter().map(|&x| u64::from(x)).sum::<u64>() == 0 {
            return Err("the weights must add up to more than 0".into());
        }
        Ok(OpMix(w))
    }

    pub fn weight(&self, op: Op) -> u32 {
        self.0[op as usize]
    }
}

/// The requests of a stage: operations on the loaded tables (`tables[table]`) with relative
/// weights. One table with `--mix`; a scenario's stage may mix several.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    pub parts: Vec<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    pub table: usize,
    pub op: Op,
    pub weight: u32,
}

impl Mix {
    /// The operations of `ops` on table `table`, those with weight 0 left out.
    #[cfg(test)]
    pub fn of(table: usize, ops: &OpMix) -> Mix {
        let mut m = Mix { parts: Vec::new() };
        m.add(table, ops);
        m
    }

    pub fn add(&mut self, table: usize, ops: &OpMix) {
        for op in Op::ALL {
            if ops.weight(op) > 0 {
                self.parts.push(Part { table, op, weight: ops.weight(op) });
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.parts.iter().map(|p| u64::from(p.weight)).sum()
    }

    /// Maps `r` in 0..total() to a part's index.
    fn pick(&self, mut r: u64) -> usize {
        for (i, p) in self.parts.iter().enumerate() {
            let w = u64::from(p.weight);
            if r < w {
                return i;
            }
            r -= w;
        }
        self.parts.len().saturating_sub(1)
    }

    /// A part's name in reports: the operation (one table), or `table.operation`.
    pub fn name(&self, i: usize, tables: &[&TableGen]) -> String {
        let p = &self.parts[i];
        if tables.len() == 1 {
            p.op.name().to_string()
        } else {
            format!("{}.{}", tables[p.table].name, p.op.name())
        }
    }

    /// `read=80,list=10,write=10`, or `customers.read=80,…` over several tables.
    pub fn describe(&self, tables: &[&TableGen]) -> String {
        (0..self.parts.len())
            .map(|i| format!("{}={}", self.name(i, tables), self.parts[i].weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    /// Zipf with s = 1.0: the first tenant gets the most traffic, the long tail a little each.
    Zipf,
}

impl Distribution {
    pub fn parse(s: &str) -> Result<Distribution, String> {
        match s {
            "uniform" => Ok(Distribution::Uniform),
            "zipf" => Ok(Distribution::Zipf),
            _ => Err(format!("unknown --distribution {s:?}: use uniform or zipf")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipf => "zipf",
        }
    }
}

/// A tenant's request prefixes (one per loaded table) and `Authorization` value, built once.
pub struct Target {
    pub prefixes: Vec<String>,
    pub auth: String,
}

impl Target {
    /// `tables` come from introspection or the tenant's OpenAPI document, checked to be plain
    /// names (`[A-Za-z0-9_]`), so they need no escaping in a path.
    pub fn new(slug: &str, token: &str, tables: &[&str]) -> Target {
        Target {
            prefixes: tables.iter().map(|t| format!("/api/v1/t/{slug}/{t}")).collect(),
            auth: format!("Bearer {token}"),
        }
    }
}

/// How requests pick a tenant.
pub enum Tenants {
    Uniform(usize),
    /// Zipf or a scenario's weights.
    Sampled(Sampler),
}

impl Tenants {
    fn pick(&self, rng: &mut impl Rng) -> usize {
        match self {
            Tenants::Uniform(n) => rng.random_range(0..*n),
            Tenants::Sampled(s) => s.sample(rng.random::<f64>()),
        }
    }
}

/// One stage of load: who is loaded (targets, tables, tenant choice) and how (threads, time,
/// mix, rate).
pub struct Load<'a> {
    pub addr: SocketAddr,
    pub targets: &'a [Target],
    pub tables: &'a [&'a TableGen],
    pub tenants: &'a Tenants,
    /// Client threads at the end of the stage.
    pub concurrency: usize,
    /// A concurrency ramp: threads at the start; the others start one by one, evenly over the
    /// stage. `None`: every thread from the start.
    pub ramp_from: Option<usize>,
    pub duration: Duration,
    pub mix: Mix,
    /// Rows 1..=rows of every loaded table (reads pick among them).
    pub rows: u64,
    /// The first UNIQUE token of this run's writes (`rows::write_token_base`).
    pub token_base: u64,
    /// Open loop: requests per second over all running threads at the start and at the end of
    /// the stage (linear between); `None` = closed loop.
    pub rate: Option<(f64, f64)>,
    /// Width of the time series' windows.
    pub window: Duration,
}

impl Load<'_> {
    /// The open-loop rate `at` into the stage.
    fn rate_at(&self, at: Duration) -> Option<f64> {
        let (from, to) = self.rate?;
        let f = (at.as_secs_f64() / self.duration.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
        Some(from + (to - from) * f)
    }

    /// Threads running `at` into the stage (the inverse of `start_of`).
    fn active_at(&self, at: Duration) -> usize {
        match self.ramp_from {
            Some(from) if self.concurrency > from => {
                let f = at.as_secs_f64() / self.duration.as_secs_f64().max(1e-9);
                (from + (f * (self.concurrency - from + 1) as f64).floor() as usize).min(self.concurrency)
            }
            _ => self.concurrency,
        }
    }

    /// When thread `k` starts, into the stage.
    fn start_of(&self, k: usize) -> Duration {
        match self.ramp_from {
            Some(from) if k >= from && self.concurrency > from => {
                self.duration.mul_f64((k - from + 1) as f64 / (self.concurrency - from + 1) as f64)
            }
            _ => Duration::ZERO,
        }
    }
}

/// One window of the time series: requests that started in it.
#[derive(Clone, Default)]
pub struct Window {
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram,
}

impl Window {
    fn merge(&mut self, o: &Window) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.latency.merge(&o.latency);
    }
}

pub struct Outcome {
    /// One per part of the mix.
    pub ops: Vec<OpStats>,
    pub elapsed: Duration,
    /// Consecutive windows of `Load::window` from the stage's start.
    pub series: Vec<Window>,
}

#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Runs the load; prints a progress line to stderr every second when `progress`.
pub fn run(load: &Load<'_>, progress: bool) -> Outcome {
    let stop = AtomicBool::new(false);
    let live = Live::default();
    let series = Mutex::new(Vec::new());
    let started = Instant::now();
    let per_thread: Vec<Vec<OpStats>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.concurrency)
            .map(|thread| {
                let (stop, live, series) = (&stop, &live, &series);
                let c = Client { load, thread, started, stop, live, series };
                s.spawn(move || c.run())
            })
            .collect();
        watch(load.duration, started, &live, progress);
        stop.store(true, Ordering::Relaxed);
        // A client thread that panicked loses its numbers; the report's counts would then not
        // add up, so say so rather than hide it.
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    crate::log::warn("a loadtest client thread panicked; its requests are missing from the report");
                    Vec::new()
                })
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut ops: Vec<OpStats> = vec![OpStats::default(); load.mix.parts.len()];
    for t in &per_thread {
        for (acc, s) in ops.iter_mut().zip(t) {
            acc.merge(s);
        }
    }
    Outcome { ops, elapsed, series: series.into_inner() }
}

/// Waits out the run on the calling thread, drawing the progress line once a second.
fn watch(duration: Duration, started: Instant, live: &Live, progress: bool) {
    let deadline = started + duration;
    let mut last = (0u64, started);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_secs(1)));
        if progress {
            let (n, now) = (live.requests.load(Ordering::Relaxed), Instant::now());
            let rate = (n - last.0) as f64 / (now - last.1).as_secs_f64().max(1e-9);
            eprint!(
                "\r{:>5.1} s  {:>9.0} req/s  {:>10} requests  {:>7} errors   ",
                (now - started).as_secs_f64(),
                rate,
                n,
                live.errors.load(Ordering::Relaxed)
            );
            last = (n, now);
        }
    }
    if progress {
        eprintln!();
    }
}

/// One client thread: its connection, its statistics, and the current window of the series
/// (merged into the shared series when a request falls into the next one).
struct Client<'a, 'l> {
    load: &'a Load<'l>,
    thread: usize,
    started: Instant,
    stop: &'a AtomicBool,
    live: &'a Live,
    series: &'a Mutex<Vec<Window>>,
}

impl Client<'_, '_> {
    fn run(self) -> Vec<OpStats> {
        let load = self.load;
        let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
        let mut client = HttpClient::new(load.addr);
        let mut stats: Vec<OpStats> = vec![OpStats::default(); load.mix.parts.len()];
        let mut window = (0usize, Window::default());
        let mut path = String::with_capacity(128);
        let pages = (load.rows / 20).max(1);
        let total = load.mix.total();
        // Row numbers thread, thread + C, thread + 2C, …: unique across threads, no shared counter.
        let mut next_row = 1 + self.thread as u64;
        // A ramp starts this thread later; open loop starts it at a random phase so the
        // threads' schedules interleave instead of firing together.
        let begin = self.started + load.start_of(self.thread);
        if !self.sleep_until(begin) {
            return stats;
        }
        // Each running thread sends its share of the rate, so the threads together send the
        // stage's rate even while a concurrency ramp is still starting them.
        let interval = |at: Instant| {
            let into = at.saturating_duration_since(self.started);
            load.rate_at(into).map(|r| Duration::from_secs_f64(load.active_at(into).max(1) as f64 / r.max(1e-3)))
        };
        let mut due = begin + interval(begin).map(|i| i.mul_f64(rng.random::<f64>())).unwrap_or_default();
        while !self.stop.load(Ordering::Relaxed) {
            let start = match interval(due) {
                Some(i) => {
                    if !self.sleep_until(due) {
                        break;
                    }
                    let start = due;
                    due += i;
                    start
                }
                None => Instant::now(),
            };
            let t = &load.targets[load.tenants.pick(&mut rng)];
            let part = load.mix.pick(rng.random_range(0..total));
            let Part { table, op, .. } = load.mix.parts[part];
            path.clear();
            path.push_str(&t.prefixes[table]);
            let body;
            let (method, sent): (&str, &[u8]) = match op {
                Op::Read => {
                    let _ = write!(path, "/{}", rng.random_range(1..=load.rows.max(1)));
                    ("GET", b"")
                }
                Op::List => {
                    let _ = write!(path, "?per_page=20&page={}", rng.random_range(1..=pages));
                    ("GET", b"")
                }
                Op::Write => {
                    body = load.tables[table].body(next_row, load.token_base + next_row);
                    next_row += load.concurrency as u64;
                    ("POST", &body)
                }
            };
            let headers: &[(&str, &str)] = match op {
                Op::Write => &[("Authorization", &t.auth), ("Content-Type", "application/json")],
                _ => &[("Authorization", &t.auth)],
            };
            let res = client.request(method, &path, headers, sent);
            let took = start.elapsed();
            let s = &mut stats[part];
            let failed = match res {
                Ok(r) => {
                    s.latency.record(took);
                    if (200..300).contains(&r.status) {
                        s.ok += 1;
                        false
                    } else {
                        *s.errors.entry(r.status.to_string()).or_default() += 1;
                        true
                    }
                }
                Err(_) => {
                    *s.errors.entry(CONNECTION.to_string()).or_default() += 1;
                    // The client reconnects on the next request; don't spin a core against a
                    // server that refuses connections.
                    std::thread::sleep(Duration::from_millis(10));
                    true
                }
            };
            let w = (start.saturating_duration_since(self.started).as_nanos() / load.window.as_nanos().max(1)) as usize;
            if w != window.0 {
                self.flush(&window);
                window = (w, Window::default());
            }
            window.1.requests += 1;
            if failed {
                window.1.errors += 1;
                self.live.errors.fetch_add(1, Ordering::Relaxed);
            } else {
                window.1.latency.record(took);
            }
            self.live.requests.fetch_add(1, Ordering::Relaxed);
        }
        self.flush(&window);
        stats
    }

    /// Sleeps until `at`; false when the stage ended first.
    fn sleep_until(&self, at: Instant) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(100)));
        }
    }

    fn flush(&self, (i, w): &(usize, Window)) {
        if w.requests == 0 {
            return;
        }
        let mut series = self.series.lock();
        if series.len() <= *i {
            series.resize(i + 1, Window::default());
        }
        series[*i].merge(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_rejects_bad_input() {
        assert_eq!(OpMix::parse("read=80,list=10,write=10"), Ok(OpMix([80, 10, 10])));
        assert_eq!(OpMix::parse(" write = 1 "), Ok(OpMix([0, 0, 1])));
        assert_eq!(OpMix::parse("read=0,list=3"), Ok(OpMix([0, 3, 0])));
        for bad in ["", "read=0", "read", "read=-1", "read=1.5", "delete=5", "read=1,read=2", "read=x"] {
            assert!(OpMix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mix_picks_in_proportion() {
        let m = Mix::of(0, &OpMix([80, 10, 10]));
        let picks: Vec<Op> = (0..100).map(|r| m.parts[m.pick(r)].op).collect();
        assert_eq!(picks.iter().filter(|&&o| o == Op::Read).count(), 80);
        assert_eq!(picks.iter().filter(|&&o| o == Op::List).count(), 10);
        assert_eq!(picks.iter().filter(|&&o| o == Op::Write).count(), 10);
        let only_writes = Mix::of(0, &OpMix([0, 0, 5]));
        assert!((0..5).all(|r| only_writes.parts[only_writes.pick(r)].op == Op::Write));
        let mut two = Mix::of(0, &OpMix([1, 0, 0]));
        two.add(1, &OpMix([0, 3, 0]));
        assert_eq!((two.total(), two.parts[two.pick(3)].table), (4, 1));
    }

    #[test]
    fn distribution_names() {
        assert_eq!(Distribution::parse("zipf"), Ok(Distribution::Zipf));
        assert_eq!(Distribution::parse("uniform").map(Distribution::name), Ok("uniform"));
        assert!(Distribution::parse("pareto").is_err());
    }
}
