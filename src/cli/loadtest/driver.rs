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

use super::rows::TableGen;
use super::stats::{OpStats, Zipf, CONNECTION};
use crate::http::client::Client;

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

/// Relative weights of the operations (`read=80,list=10,write=10`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mix(pub [u32; 3]);

impl Mix {
    pub fn parse(s: &str) -> Result<Mix, String> {
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
        Ok(Mix(w))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|&x| u64::from(x)).sum()
    }

    pub fn weight(&self, op: Op) -> u32 {
        self.0[op as usize]
    }

    /// Maps `r` in 0..total() to an operation.
    fn pick(&self, mut r: u64) -> Op {
        for op in Op::ALL {
            let w = u64::from(self.weight(op));
            if r < w {
                return op;
            }
            r -= w;
        }
        Op::Write
    }

    pub fn describe(&self) -> String {
        Op::ALL.iter().map(|&op| format!("{}={}", op.name(), self.weight(op))).collect::<Vec<_>>().join(",")
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

/// A tenant's request prefix and `Authorization` value, built once.
pub struct Target {
    pub prefix: String,
    pub auth: String,
}

impl Target {
    /// `table` comes from introspection or the tenant's OpenAPI document, checked to be a plain
    /// name (`[A-Za-z0-9_]`), so it needs no escaping in a path.
    pub fn new(slug: &str, token: &str, table: &str) -> Target {
        Target { prefix: format!("/api/v1/t/{slug}/{table}"), auth: format!("Bearer {token}") }
    }
}

pub struct Load<'a> {
    pub addr: SocketAddr,
    pub targets: &'a [Target],
    pub concurrency: usize,
    pub duration: Duration,
    pub mix: Mix,
    pub distribution: Distribution,
    pub rows: u64,
    /// The table loaded, and how its rows are made.
    pub table: &'a TableGen,
    /// The first UNIQUE token of this run's writes (`rows::write_token_base`).
    pub token_base: u64,
    /// Open loop: requests per second over all connections; `None` = closed loop.
    pub rate: Option<f64>,
}

/// Per-operation results (indexed like `Op::ALL`) and the wall time they took.
pub struct Outcome {
    pub ops: [OpStats; 3],
    pub elapsed: Duration,
}

#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// Runs the load; prints a progress line to stderr every second when `progress`.
pub fn run(load: &Load<'_>, progress: bool) -> Outcome {
    let zipf = (load.distribution == Distribution::Zipf).then(|| Zipf::new(load.targets.len(), 1.0));
    let stop = AtomicBool::new(false);
    let live = Live::default();
    let started = Instant::now();
    let per_thread: Vec<[OpStats; 3]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.concurrency)
            .map(|thread| {
                let (zipf, stop, live) = (zipf.as_ref(), &stop, &live);
                s.spawn(move || client_loop(load, thread as u64, zipf, stop, live))
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
                    Default::default()
                })
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut ops: [OpStats; 3] = Default::default();
    for t in &per_thread {
        for (acc, s) in ops.iter_mut().zip(t) {
            acc.merge(s);
        }
    }
    Outcome { ops, elapsed }
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

fn client_loop(load: &Load<'_>, thread: u64, zipf: Option<&Zipf>, stop: &AtomicBool, live: &Live) -> [OpStats; 3] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let mut client = Client::new(load.addr);
    let mut stats: [OpStats; 3] = Default::default();
    let mut path = String::with_capacity(128);
    let pages = (load.rows / 20).max(1);
    let total = load.mix.total();
    // Row numbers thread, thread + C, thread + 2C, …: unique across threads, no shared counter.
    let mut next_row = 1 + thread;
    // Open loop: this thread's share of the rate, starting at a random phase so the threads'
    // schedules interleave instead of firing together.
    let interval = load.rate.map(|r| Duration::from_secs_f64(load.concurrency as f64 / r));
    let mut due = Instant::now() + interval.map(|i| i.mul_f64(rng.random::<f64>())).unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        let start = match interval {
            Some(i) => {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let start = due;
                due += i;
                start
            }
            None => Instant::now(),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let t = match zipf {
            Some(z) => &load.targets[z.sample(rng.random::<f64>())],
            None => &load.targets[rng.random_range(0..load.targets.len())],
        };
        let op = load.mix.pick(rng.random_range(0..total));
        path.clear();
        path.push_str(&t.prefix);
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
                body = load.table.body(next_row, load.token_base + next_row);
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
        let s = &mut stats[op as usize];
        match res {
            Ok(r) => {
                s.latency.record(took);
                if (200..300).contains(&r.status) {
                    s.ok += 1;
                } else {
                    *s.errors.entry(r.status.to_string()).or_default() += 1;
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                *s.errors.entry(CONNECTION.to_string()).or_default() += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                // The client reconnects on the next request; don't spin a core against a
                // server that refuses connections.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        live.requests.fetch_add(1, Ordering::Relaxed);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_rejects_bad_input() {
        assert_eq!(Mix::parse("read=80,list=10,write=10"), Ok(Mix([80, 10, 10])));
        assert_eq!(Mix::parse(" write = 1 "), Ok(Mix([0, 0, 1])));
        assert_eq!(Mix::parse("read=0,list=3"), Ok(Mix([0, 3, 0])));
        for bad in ["", "read=0", "read", "read=-1", "read=1.5", "delete=5", "read=1,read=2", "read=x"] {
            assert!(Mix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mix_picks_in_proportion() {
        let m = Mix([80, 10, 10]);
        let picks: Vec<Op> = (0..100).map(|r| m.pick(r)).collect();
        assert_eq!(picks.iter().filter(|&&o| o == Op::Read).count(), 80);
        assert_eq!(picks.iter().filter(|&&o| o == Op::List).count(), 10);
        assert_eq!(picks.iter().filter(|&&o| o == Op::Write).count(), 10);
        let only_writes = Mix([0, 0, 5]);
        assert!((0..5).all(|r| only_writes.pick(r) == Op::Write));
        assert_eq!(m.describe(), "read=80,list=10,write=10");
    }

    #[test]
    fn distribution_names() {
        assert_eq!(Distribution::parse("zipf"), Ok(Distribution::Zipf));
        assert_eq!(Distribution::parse("uniform").map(Distribution::name), Ok("uniform"));
        assert!(Distribution::parse("pareto").is_err());
    }
}
