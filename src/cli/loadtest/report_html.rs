//! `tenantd loadtest --html FILE`: one self-contained page (no scripts, no external files) with
//! latency percentiles and throughput over time as SVG charts, the stages marked where they
//! begin, and a table per stage with its figures per operation.

use maud::{html, Markup, DOCTYPE};

use super::driver::Outcome;
use super::report::Header;
use super::stats::OpStats;
use crate::ui::charts::{self, Lines};

const STYLE: &str =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0}\
th,td{padding:.25rem .6rem;border-bottom:1px solid #e5e5e5;text-align:left}td.num,th.num{text-align:right}\
svg.chart{display:block;max-width:100%;height:220px;background:#fafafa;border:1px solid #e5e5e5}.muted{color:#666}";

/// The whole page for `name` and its stages' headers and outcomes.
pub fn render(name: &str, headers: &[Header<'_>], outcomes: &[Outcome]) -> String {
    let mut labels = Vec::new();
    let (mut p50, mut p95, mut p99, mut rps, mut errors) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut marks = Vec::new();
    let mut offset = 0.0;
    for (h, o) in headers.iter().zip(outcomes) {
        let w = h.load.window.as_secs_f64();
        if headers.len() > 1 {
            marks.push((labels.len(), h.stage.unwrap_or("").to_string()));
        }
        for (i, win) in o.series.iter().enumerate() {
            labels.push(format!("{:.1} s", offset + i as f64 * w));
            let answered = win.latency.count() > 0;
            let q = |p: f64| answered.then(|| win.latency.quantile_ms(p));
            p50.push(q(0.50));
            p95.push(q(0.95));
            p99.push(q(0.99));
            rps.push(Some(win.requests as f64 / w));
            errors.push(Some(win.errors as f64 / w));
        }
        offset += h.load.duration.as_secs_f64();
    }
    let latency = Lines {
        title: "Latency percentiles over time",
        labels: &labels,
        lines: &[("p50", &p50), ("p95", &p95), ("p99", &p99)],
        unit: "ms",
        marks: &marks,
    };
    let throughput = Lines {
        title: "Requests and errors per second over time",
        labels: &labels,
        lines: &[("requests/s", &rps), ("errors/s", &errors)],
        unit: "/s",
        marks: &marks,
    };
    let url = headers.first().map(|h| h.url).unwrap_or("");
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "tenantd loadtest: " (name) }
                style { (STYLE) }
            }
            body {
                h1 { "tenantd loadtest: " (name) }
                p.muted { "Against " (url) "; " (headers.len()) " stage(s). Each point is a window of requests by the time they were sent (open loop: due)." }
                (charts::lines(&latency))
                (charts::lines(&throughput))
                @for (h, o) in headers.iter().zip(outcomes) {
                    (stage(h, o))
                }
            }
        }
    };
    page.into_string()
}

fn stage(h: &Header<'_>, o: &Outcome) -> Markup {
    let l = h.load;
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let threads = match l.ramp_from {
        Some(from) => format!("{from} → {} connections", l.concurrency),
        None => format!("{} connections", l.concurrency),
    };
    let pace = match l.rate {
        Some((a, b)) if a == b => format!("open loop at {a} req/s"),
        Some((a, b)) => format!("open loop {a} → {b} req/s"),
        None => "closed loop".into(),
    };
    let mut total = OpStats::default();
    for s in &o.ops {
        total.merge(s);
    }
    let row = |name: String, s: &OpStats| {
        html! {
            tr {
                td { (name) }
                td.num { (s.requests()) }
                td.num { (format!("{:.0}", s.requests() as f64 / secs)) }
                td.num { (format!("{:.3}", s.latency.quantile_ms(0.50))) }
                td.num { (format!("{:.3}", s.latency.quantile_ms(0.95))) }
                td.num { (format!("{:.3}", s.latency.quantile_ms(0.99))) }
                td.num { (format!("{:.3}", s.latency.quantile_ms(1.0))) }
                td.num { (s.error_count()) }
            }
        }
    };
    html! {
        h2 { "Stage " (h.stage.unwrap_or("1")) }
        p.muted {
            (l.targets.len()) " tenants (" (h.distribution) "), " (threads) ", " (pace) ", "
            (format!("{:.1}", secs)) " s, mix " (l.mix.describe(l.tables))
        }
        table {
            thead { tr { th { "Operation" } th.num { "Requests" } th.num { "Req/s" } th.num { "p50 ms" } th.num { "p95 ms" } th.num { "p99 ms" } th.num { "max ms" } th.num { "Errors" } } }
            tbody {
                @for (i, s) in o.ops.iter().enumerate() {
                    (row(l.mix.name(i, l.tables), s))
                }
                (row("all".into(), &total))
            }
        }
        @if !total.errors.is_empty() {
            p { "Errors by status: "
                @for (status, n) in &total.errors { (status) " × " (n) "; " }
            }
        }
    }
}
