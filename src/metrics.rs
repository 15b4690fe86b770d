//! Process-wide counters for `/metrics` (Prometheus text format 0.0.4) and `/health/detailed`.
//!
//! The hot path only does relaxed atomic adds into fixed arrays indexed by route and status
//! class, so the series set is fixed by the route table: a flood of random URLs lands in the
//! one `unmatched` route label and cannot grow it. Labels never carry tenant ids, raw paths or
//! anything a client sent. Everything else (open tenants, caches, workers, process CPU and
//! memory) is read when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Route labels besides the route table's templates.
pub const UNMATCHED: &str = "unmatched";
pub const PREFLIGHT: &str = "preflight";

/// Error codes counted as limit rejections (`tenantd_rate_limited_total`,
/// `tenantd_quota_rejected_total{reason}`).
const RATE_CODES: [&str; 1] = ["rate_limited"];
pub const QUOTA_CODES: [&str; 5] =
    ["quota_exceeded", "storage_quota_exceeded", "too_many_concurrent_requests", "seat_limit", "query_timeout"];

#[derive(Default)]
struct RouteSeries {
    /// By status class: 1xx .. 5xx.
    classes: [AtomicU64; 5],
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Request counters, one series set per route label.
pub struct Metrics {
    /// (method, route template) of each series.
    labels: Vec<(&'static str, String)>,
    /// Route-table index → series index (routes sharing method and template share a series).
    by_route: Vec<usize>,
    series: Vec<RouteSeries>,
    /// By error code. Codes are `&'static str`s in the source, so the set is bounded.
    errors: RwLock<Vec<(&'static str, AtomicU64)>>,
    pub rate_limited: AtomicU64,
    quota: [AtomicU64; QUOTA_CODES.len()],
}

impl Metrics {
    /// `routes` are the route table's (method, template) in table order; `unmatched` (any
    /// method) and `preflight` (OPTIONS) are appended.
    pub fn new(routes: Vec<(&'static str, String)>) -> Metrics {
        let mut labels: Vec<(&'static str, String)> = Vec::new();
        let mut by_route = Vec::new();
        let synthetic = [("any", UNMATCHED.to_string()), ("OPTIONS", PREFLIGHT.to_string())];
        for r in routes.into_iter().chain(synthetic) {
            let i = labels.iter().position(|l| *l == r).unwrap_or_else(|| {
                labels.push(r);
                labels.len() - 1
            });
            by_route.push(i);
        }
        let series = labels.iter().map(|_| RouteSeries::default()).collect();
        Metrics {
            labels,
            by_route,
            series,
            errors: RwLock::new(Vec::new()),
            rate_limited: AtomicU64::new(0),
            quota: Default::default(),
        }
    }

    /// Route index of a synthetic label (`UNMATCHED` or `PREFLIGHT`): they follow the table.
    pub fn label_index(&self, label: &str) -> usize {
        self.by_route.len() - if label == PREFLIGHT { 1 } else { 2 }
    }

    /// The route template for route index `i` (or `unmatched` / `preflight`).
    pub fn label(&self, i: usize) -> &str {
        self.by_route.get(i).and_then(|s| self.labels.get(*s)).map(|l| l.1.as_str()).unwrap_or(UNMATCHED)
    }

    /// One finished request: `route` is its route-table index (or a synthetic label's, see
    /// `label_index`), `error` its error code if any.
    pub fn observe(&self, route: usize, status: u16, micros: u64, error: Option<&'static str>) {
        let Some(s) = self.by_route.get(route).and_then(|i| self.series.get(*i)) else { return };
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        s.classes[class].fetch_add(1, Ordering::Relaxed);
        let secs = micros as f64 / 1e6;
        if let Some(b) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            s.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum_us.fetch_add(micros, Ordering::Relaxed);
        if let Some(code) = error {
            let counted =
                self.errors.read().iter().find(|(c, _)| *c == code).map(|(_, n)| n.fetch_add(1, Ordering::Relaxed));
            if counted.is_none() {
                let mut errors = self.errors.write();
                match errors.iter().find(|(c, _)| *c == code) {
                    Some((_, n)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    None => errors.push((code, AtomicU64::new(1))),
                }
            }
            if RATE_CODES.contains(&code) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            } else if let Some(i) = QUOTA_CODES.iter().position(|c| *c == code) {
                self.quota[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Requests answered so far with a latency histogram, summed over routes:
    /// `(count, sum_seconds)`.
    pub fn totals(&self) -> (u64, f64) {
        self.series.iter().fold((0, 0.0), |(n, s), r| {
            (n + r.count.load(Ordering::Relaxed), s + r.sum_us.load(Ordering::Relaxed) as f64 / 1e6)
        })
    }

    pub fn quota_rejected(&self) -> u64 {
        self.quota.iter().map(|q| q.load(Ordering::Relaxed)).sum()
    }

    /// Writes the request families. Routes never called are left out (their series would all
    /// be zero); the set is still bounded by the route table.
    pub fn render_requests(&self, out: &mut Exposition) {
        out.family(
            "tenantd_http_requests_total",
            "counter",
            "HTTP requests answered, by route template and status class.",
        );
        for ((method, label), s) in self.labels.iter().zip(&self.series) {
            for (i, c) in s.classes.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let labels = [("method", *method), ("route", label), ("status", CLASSES[i])];
                    out.sample("tenantd_http_requests_total", &labels, n as f64);
                }
            }
        }
        out.family(
            "tenantd_http_request_duration_seconds",
            "histogram",
            "Time from reading the request to handing the response to the socket, by route template.",
        );
        for ((method, label), s) in self.labels.iter().zip(&self.series) {
            let count = s.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (le, b) in LATENCY_BUCKETS.iter().zip(&s.buckets) {
                cumulative += b.load(Ordering::Relaxed);
                out.sample(
                    "tenantd_http_request_duration_seconds_bucket",
                    &[("method", method), ("route", label), ("le", &le.to_string())],
                    cumulative as f64,
                );
            }
            // Read once: a request finishing mid-scrape must not make +Inf smaller than a bucket.
            let count = count.max(cumulative);
            let labels = [("method", *method), ("route", label)];
            let inf = [("method", *method), ("route", label), ("le", "+Inf")];
            out.sample("tenantd_http_request_duration_seconds_bucket", &inf, count as f64);
            out.sample(
                "tenantd_http_request_duration_seconds_sum",
                &labels,
                s.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            );
            out.sample("tenantd_http_request_duration_seconds_count", &labels, count as f64);
        }
        out.family("tenantd_errors_total", "counter", "Error responses by error code (the code in the JSON body).");
        for (code, n) in self.errors.read().iter() {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                out.sample("tenantd_errors_total", &[("code", code)], n as f64);
            }
        }
        out.counter(
            "tenantd_rate_limited_total",
            "Requests refused by a rate limit (tenant, caller, address or global).",
            self.rate_limited.load(Ordering::Relaxed) as f64,
        );
        out.family("tenantd_quota_rejected_total", "counter", "Requests refused by a quota, by reason.");
        for (code, n) in QUOTA_CODES.iter().zip(&self.quota) {
            out.sample("tenantd_quota_rejected_total", &[("reason", code)], n.load(Ordering::Relaxed) as f64);
        }
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A Prometheus text-format (0.0.4) document being written.
#[derive(Default)]
pub struct Exposition {
    pub text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` lines; every family is declared once, before its samples.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// This process's CPU seconds, resident bytes, open fds and start time, from /proc (Linux);
/// `None` elsewhere.
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
}

pub fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 of the whole line, index 0 here: utime 14 → 11, stime 15 → 12,
    // num_threads 20 → 17, vsize 23 → 20, rss 24 → 21.
    let ticks = 100.0; // USER_HZ is 100 on every Linux ABI that matters.
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    let cpu_seconds = (num(11)? + num(12)?) as f64 / ticks;
    let page = 4096;
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    Some(ProcessStats {
        cpu_seconds,
        resident_bytes: num(21)? * page,
        virtual_bytes: num(20)?,
        open_fds,
        threads: num(17)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_route_indexes_are_ignored_and_classes_bucket() {
        let m = Metrics::new(vec![("GET", "/a".into()), ("POST", "/b".into()), ("GET", "/a".into())]);
        m.observe(0, 200, 300, None);
        m.observe(0, 503, 2_000_000, Some("query_timeout"));
        m.observe(99, 200, 1, None);
        m.observe(2, 200, 300, None);
        m.observe(m.label_index(UNMATCHED), 404, 10, Some("not_found"));
        m.observe(0, 429, 10, Some("rate_limited"));
        let mut out = Exposition::default();
        m.render_requests(&mut out);
        let t = out.text;
        assert!(t.contains("tenantd_http_requests_total{method=\"GET\",route=\"/a\",status=\"2xx\"} 2\n"), "{t}");
        assert!(t.contains("tenantd_http_requests_total{method=\"GET\",route=\"/a\",status=\"5xx\"} 1\n"), "{t}");
        assert!(
            t.contains("tenantd_http_requests_total{method=\"any\",route=\"unmatched\",status=\"4xx\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("tenantd_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"0.0005\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("tenantd_http_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"+Inf\"} 4\n"),
            "{t}"
        );
        assert!(t.contains("tenantd_quota_rejected_total{reason=\"query_timeout\"} 1\n"), "{t}");
        assert!(t.contains("tenantd_rate_limited_total 1\n"), "{t}");
        assert!(!t.contains("preflight"), "never-called routes have no series: {t}");
        assert!(!t.contains("/b"), "{t}");
        assert_eq!(m.totals().0, 5);
    }

    #[test]
    fn label_values_are_escaped_and_values_formatted() {
        let mut out = Exposition::default();
        out.sample("x", &[("a", "q\"b\\n\n")], 0.25);
        out.sample("y", &[], 3.0);
        out.sample("z", &[], f64::INFINITY);
        assert_eq!(out.text, "x{a=\"q\\\"b\\\\n\\n\"} 0.25\ny 3\nz +Inf\n");
    }

    #[test]
    fn reads_this_process() {
        let p = process_stats().unwrap();
        assert!(p.resident_bytes > 0 && p.threads >= 1 && p.open_fds > 0);
    }
}
