//! Server-rendered SVG charts (issue 21): line, bar, stacked bar, sparkline and percentile band,
//! readable without JavaScript.
//! Each chart is `role="img"` with a `<title>` and `<desc>`, and comes with its numbers in a
//! table (`data_table`). No business logic: callers pass labels and values.

use maud::{html, Markup};

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 36.0;

/// A series: one label per point (shown in the table and as tooltips), values (none = gap).
pub struct Series<'a> {
    pub title: &'a str,
    pub labels: &'a [String],
    pub values: &'a [Option<f64>],
    pub unit: &'a str,
}

fn bounds(values: &[Option<f64>]) -> (f64, f64) {
    let max = values.iter().flatten().copied().fold(0.0_f64, f64::max);
    (0.0, if max <= 0.0 { 1.0 } else { max })
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Runs of consecutive values as polyline point lists (a gap where a value is missing).
fn polylines(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: impl Fn(f64) -> f64) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push_str(&format!("{:.1},{:.1} ", x(i), y(*v))),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// A line chart with its axis maximum labelled; gaps where a value is missing.
pub fn line(s: &Series<'_>) -> Markup {
    let (lo, hi) = bounds(s.values);
    let n = s.values.len().max(2);
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo);
    let runs = polylines(s.values, x, y);
    let desc = summary(s);
    html! {
        svg.chart role="img" viewBox={ "0 0 " (W) " " (H) } width="100%" preserveAspectRatio="none" aria-label=(s.title) {
            title { (s.title) }
            desc { (desc) }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#999" {}
            line x1=(PAD) y1=(PAD) x2=(PAD) y2=(H - PAD) stroke="#999" {}
            text x="2" y=(PAD + 4.0) font-size="11" { (fmt(hi)) }
            text x="2" y=(H - PAD) font-size="11" { "0" }
            @for r in &runs {
                polyline points=(r.trim_end()) fill="none" stroke="var(--brand, #2563eb)" stroke-width="2" {}
            }
            @for (i, v) in s.values.iter().enumerate() {
                @if let Some(v) = v {
                    circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill="var(--brand, #2563eb)" {
                        title { (s.labels.get(i).map(String::as_str).unwrap_or("")) ": " (fmt(*v)) " " (s.unit) }
                    }
                }
            }
        }
    }
}

/// Several lines on one scale (percentiles over time), with a legend and labelled vertical
/// marks (where a load test's stages begin).
pub struct Lines<'a> {
    pub title: &'a str,
    pub labels: &'a [String],
    pub lines: &'a [(&'a str, &'a [Option<f64>])],
    pub unit: &'a str,
    /// (index into `labels`, name).
    pub marks: &'a [(usize, String)],
}

pub fn lines(c: &Lines<'_>) -> Markup {
    let all: Vec<Option<f64>> = c.lines.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let (lo, hi) = bounds(&all);
    let n = c.labels.len().max(2);
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo);
    let names: Vec<&str> = c.lines.iter().map(|(name, _)| *name).collect();
    let desc =
        format!("{}: {} over {} points, up to {} {}", c.title, names.join(", "), c.labels.len(), fmt(hi), c.unit);
    html! {
        svg.chart role="img" viewBox={ "0 0 " (W) " " (H) } width="100%" preserveAspectRatio="none" aria-label=(c.title) {
            title { (c.title) }
            desc { (desc) }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#999" {}
            line x1=(PAD) y1=(PAD) x2=(PAD) y2=(H - PAD) stroke="#999" {}
            text x="2" y=(PAD + 4.0) font-size="11" { (fmt(hi)) " " (c.unit) }
            text x="2" y=(H - PAD) font-size="11" { "0" }
            @for (i, name) in c.marks.iter() {
                line x1=(format!("{:.1}", x(*i))) y1=(PAD) x2=(format!("{:.1}", x(*i))) y2=(H - PAD) stroke="#bbb" stroke-dasharray="3,3" {}
                text x=(format!("{:.1}", x(*i) + 3.0)) y=(PAD - 4.0) font-size="10" fill="#555" { (name) }
            }
            @for (k, (name, values)) in c.lines.iter().enumerate() {
                @let color = PALETTE[k % PALETTE.len()];
                @for r in polylines(values, x, y) {
                    polyline points=(r.trim_end()) fill="none" stroke=(color) stroke-width="1.5" {
                        title { (name) }
                    }
                }
                text x=(PAD + 70.0 * k as f64) y=(H - 8.0) font-size="11" fill=(color) { "■ " (name) }
            }
        }
    }
}

/// Bars, one per point.
pub fn bars(s: &Series<'_>) -> Markup {
    let (lo, hi) = bounds(s.values);
    let n = s.values.len().max(1);
    let slot = (W - 2.0 * PAD) / n as f64;
    let desc = summary(s);
    html! {
        svg.chart role="img" viewBox={ "0 0 " (W) " " (H) } width="100%" preserveAspectRatio="none" aria-label=(s.title) {
            title { (s.title) }
            desc { (desc) }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#999" {}
            text x="2" y=(PAD + 4.0) font-size="11" { (fmt(hi)) }
            @for (i, v) in s.values.iter().enumerate() {
                @let v = v.unwrap_or(0.0);
                @let h = (H - 2.0 * PAD) * (v - lo) / (hi - lo);
                rect x=(format!("{:.1}", PAD + slot * i as f64 + slot * 0.1)) y=(format!("{:.1}", H - PAD - h))
                     width=(format!("{:.1}", slot * 0.8)) height=(format!("{:.1}", h)) fill="var(--brand, #2563eb)" {
                    title { (s.labels.get(i).map(String::as_str).unwrap_or("")) ": " (fmt(v)) " " (s.unit) }
                }
            }
        }
    }
}

/// Colours of stacked series, in order; distinct enough in greyscale too (light to dark).
const PALETTE: &[&str] = &["#16a34a", "#2563eb", "#7c3aed", "#f59e0b", "#dc2626", "#0891b2", "#4b5563"];

/// One named series of a stacked chart: a signed value per period. Positive values stack up from
/// the axis, negative ones down, so MRR gained and lost read at a glance.
pub struct Stack<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
}

/// Several series stacked per period.
pub struct Stacked<'a> {
    pub title: &'a str,
    pub labels: &'a [String],
    pub stacks: &'a [Stack<'a>],
    pub unit: &'a str,
}

impl Stacked<'_> {
    fn value(&self, stack: usize, period: usize) -> f64 {
        self.stacks.get(stack).and_then(|s| s.values.get(period)).copied().unwrap_or(0.0)
    }

    /// (sum of the positive values, sum of the negative values) of a period.
    fn totals(&self, period: usize) -> (f64, f64) {
        (0..self.stacks.len()).map(|k| self.value(k, period)).fold((0.0, 0.0), |(up, down), v| {
            if v >= 0.0 {
                (up + v, down)
            } else {
                (up, down + v)
            }
        })
    }
}

/// A stacked bar chart, with a zero line and a legend; positive stacks above it, negative below.
pub fn stacked_bars(s: &Stacked<'_>) -> Markup {
    let n = s.labels.len().max(1);
    let (mut hi, mut lo) = (0.0_f64, 0.0_f64);
    for i in 0..s.labels.len() {
        let (up, down) = s.totals(i);
        hi = hi.max(up);
        lo = lo.min(down);
    }
    if hi - lo <= 0.0 {
        hi = 1.0;
    }
    let legend_h = 18.0;
    let plot = H - 2.0 * PAD - legend_h;
    let y = |v: f64| PAD + legend_h + plot * (hi - v) / (hi - lo);
    let slot = (W - 2.0 * PAD) / n as f64;
    let mut rects = Vec::new();
    for i in 0..s.labels.len() {
        let (mut up, mut down) = (0.0, 0.0);
        for (k, st) in s.stacks.iter().enumerate() {
            let v = s.value(k, i);
            if v == 0.0 {
                continue;
            }
            let (top, bottom) = if v > 0.0 {
                up += v;
                (up, up - v)
            } else {
                down += v;
                (down - v, down)
            };
            rects.push((i, k, y(top), y(bottom) - y(top), st.name, v));
        }
    }
    let desc = stacked_summary(s);
    html! {
        svg.chart role="img" viewBox={ "0 0 " (W) " " (H) } width="100%" preserveAspectRatio="none" aria-label=(s.title) {
            title { (s.title) }
            desc { (desc) }
            @for (k, st) in s.stacks.iter().enumerate() {
                rect x=(PAD + 110.0 * k as f64) y="4" width="10" height="10" fill=(PALETTE[k % PALETTE.len()]) {}
                text x=(PAD + 110.0 * k as f64 + 14.0) y="13" font-size="11" { (st.name) }
            }
            text x="2" y=(y(hi) + 4.0) font-size="11" { (fmt(hi)) }
            @if lo < 0.0 { text x="2" y=(y(lo)) font-size="11" { (fmt(lo)) } }
            line x1=(PAD) y1=(format!("{:.1}", y(0.0))) x2=(W - PAD) y2=(format!("{:.1}", y(0.0))) stroke="#999" {}
            @for (i, k, top, h, name, v) in &rects {
                rect x=(format!("{:.1}", PAD + slot * *i as f64 + slot * 0.15)) y=(format!("{:.1}", top))
                     width=(format!("{:.1}", slot * 0.7)) height=(format!("{:.1}", h)) fill=(PALETTE[k % PALETTE.len()]) {
                    title { (s.labels.get(*i).map(String::as_str).unwrap_or("")) " " (name) ": " (fmt(*v)) " " (s.unit) }
                }
            }
        }
    }
}

/// The numbers behind a stacked chart: a column per series and the net.
pub fn stacked_table(s: &Stacked<'_>) -> Markup {
    html! {
        div.scroll {
            table.data {
                caption { (s.title) " (" (s.unit) ")" }
                thead { tr { th { "Period" } @for st in s.stacks { th.num { (st.name) } } th.num { "Net" } } }
                tbody {
                    @for (i, l) in s.labels.iter().enumerate() {
                        @let (up, down) = s.totals(i);
                        tr {
                            td { (l) }
                            @for k in 0..s.stacks.len() { td.num { (fmt(s.value(k, i))) } }
                            td.num { (fmt(up + down)) }
                        }
                    }
                }
            }
        }
    }
}

fn stacked_summary(s: &Stacked<'_>) -> String {
    let names: Vec<&str> = s.stacks.iter().map(|st| st.name).collect();
    let any = (0..s.labels.len()).any(|i| s.totals(i) != (0.0, 0.0));
    if !any {
        return format!("{}: no data in this range", s.title);
    }
    let net: f64 = (0..s.labels.len()).map(|i| s.totals(i)).map(|(u, d)| u + d).sum();
    let up: f64 = (0..s.labels.len()).map(|i| s.totals(i).0).sum();
    let down: f64 = (0..s.labels.len()).map(|i| s.totals(i).1).sum();
    format!(
        "{}: {} periods of {}; {} up, {} down, net {} {}",
        s.title,
        s.labels.len(),
        names.join(", "),
        fmt(up),
        fmt(down),
        fmt(net),
        s.unit
    )
}

/// One metric of a percentile band chart: the peers' quartiles and the tenant's own value.
pub struct Band<'a> {
    pub metric: &'a str,
    pub value: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
}

impl Band<'_> {
    /// Where the value stands against the middle half of the peers.
    fn standing(&self) -> &'static str {
        match (self.value, self.p25, self.p75) {
            (Some(v), Some(lo), _) if v < lo => "below the middle half",
            (Some(v), _, Some(hi)) if v > hi => "above the middle half",
            (Some(_), Some(_), Some(_)) => "within the middle half",
            _ => "not comparable",
        }
    }
}

const ROW: f64 = 34.0;
const LABEL_W: f64 = 150.0;

/// A row per metric, each on its own scale (0 to the largest number shown): the peers' p25–p75
/// as a band, p50 as a tick, the tenant's value as a diamond.
pub fn percentile_bands(title: &str, rows: &[Band<'_>]) -> Markup {
    let h = ROW * rows.len().max(1) as f64 + 20.0;
    let x0 = LABEL_W;
    let span = W - PAD - x0;
    let desc = bands_summary(title, rows);
    html! {
        svg.chart.bands role="img" viewBox={ "0 0 " (W) " " (h) } width="100%" preserveAspectRatio="none" aria-label=(title) {
            title { (title) }
            desc { (desc) }
            @for (i, b) in rows.iter().enumerate() {
                @let mid = 10.0 + ROW * i as f64 + ROW / 2.0;
                @let max = [b.value, b.p25, b.p50, b.p75].iter().flatten().copied().fold(0.0_f64, f64::max);
                @let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
                @let x = |v: f64| format!("{:.1}", x0 + span * v / max);
                text x="2" y=(mid + 4.0) font-size="12" { (b.metric) }
                line x1=(x0) y1=(mid) x2=(W - PAD) y2=(mid) stroke="#ccc" {}
                @if let (Some(lo), Some(hi)) = (b.p25, b.p75) {
                    rect.band x=(x(lo)) y=(mid - 8.0) width=(format!("{:.1}", span * (hi - lo).max(0.0) / max)) height="16"
                         fill="var(--brand, #2563eb)" fill-opacity="0.25" {
                        title { (b.metric) ": peers p25 " (fmt(lo)) " to p75 " (fmt(hi)) }
                    }
                }
                @if let Some(p50) = b.p50 {
                    line.p50 x1=(x(p50)) y1=(mid - 10.0) x2=(x(p50)) y2=(mid + 10.0) stroke="#333" stroke-width="2" {
                        title { (b.metric) ": peers p50 " (fmt(p50)) }
                    }
                }
                @if let Some(v) = b.value {
                    @let cx = x0 + span * v / max;
                    polygon.you points=(format!("{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", cx, mid - 7.0, cx + 7.0, mid, cx, mid + 7.0, cx - 7.0, mid))
                            fill="#dc2626" {
                        title { (b.metric) ": you " (fmt(v)) ", " (b.standing()) }
                    }
                }
            }
        }
    }
}

/// The numbers behind a band chart.
pub fn bands_table(title: &str, rows: &[Band<'_>]) -> Markup {
    let cell = |v: Option<f64>| v.map(fmt).unwrap_or_else(|| "–".into());
    html! {
        div.scroll {
            table.data {
                caption { (title) }
                thead { tr { th { "Metric" } th.num { "You" } th.num { "p25" } th.num { "p50" } th.num { "p75" } th { "Standing" } } }
                tbody {
                    @for b in rows {
                        tr { td { (b.metric) } td.num { (cell(b.value)) } td.num { (cell(b.p25)) } td.num { (cell(b.p50)) } td.num { (cell(b.p75)) } td { (b.standing()) } }
                    }
                }
            }
        }
    }
}

fn bands_summary(title: &str, rows: &[Band<'_>]) -> String {
    if rows.is_empty() {
        return format!("{title}: no data in this range");
    }
    let parts: Vec<String> = rows.iter().map(|b| format!("{} {}", b.metric, b.standing())).collect();
    format!("{title}: your value against your peers' p25 to p75 band and p50; {}", parts.join("; "))
}

/// A small line without axes, for KPI cards.
pub fn sparkline(title: &str, values: &[Option<f64>]) -> Markup {
    let (w, h) = (120.0, 28.0);
    let (lo, hi) = bounds(values);
    let n = values.len().max(2);
    let points: String = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| {
                format!("{:.1},{:.1} ", w * i as f64 / (n - 1) as f64, h - 2.0 - (h - 4.0) * (v - lo) / (hi - lo))
            })
        })
        .collect();
    html! {
        svg.spark role="img" viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) aria-label=(title) {
            title { (title) }
            polyline points=(points.trim_end()) fill="none" stroke="var(--brand, #2563eb)" stroke-width="1.5" {}
        }
    }
}

/// The numbers behind a chart.
pub fn data_table(s: &Series<'_>) -> Markup {
    html! {
        div.scroll {
            table.data {
                caption { (s.title) }
                thead { tr { th { "Period" } th.num { (s.unit) } } }
                tbody {
                    @for (i, l) in s.labels.iter().enumerate() {
                        tr { td { (l) } td.num { (s.values.get(i).copied().flatten().map(fmt).unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

fn summary(s: &Series<'_>) -> String {
    let known: Vec<f64> = s.values.iter().flatten().copied().collect();
    if known.is_empty() {
        return format!("{}: no data in this range", s.title);
    }
    let max = known.iter().copied().fold(f64::MIN, f64::max);
    let min = known.iter().copied().fold(f64::MAX, f64::min);
    format!("{}: {} points from {} to {} {}", s.title, known.len(), fmt(min), fmt(max), s.unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_share_a_scale_and_carry_marks() {
        let labels: Vec<String> = (0..3).map(|i| format!("{i}s")).collect();
        let (p50, p99) = ([Some(1.0), Some(2.0), None], [Some(4.0), Some(8.0), Some(6.0)]);
        let marks = [(1, "peak".to_string())];
        let c = Lines {
            title: "Latency",
            labels: &labels,
            lines: &[("p50", &p50), ("p99", &p99)],
            unit: "ms",
            marks: &marks,
        };
        let html = lines(&c).into_string();
        assert_eq!(html.matches("<polyline").count(), 2, "{html}");
        assert!(html.contains(">8 ms<") && html.contains("peak") && html.contains("p50, p99"), "{html}");
    }

    #[test]
    fn a_line_has_a_point_per_value_and_breaks_at_gaps() {
        let labels: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
        let values = [Some(1.0), None, Some(3.0), Some(2.0)];
        let html = line(&Series { title: "Requests", labels: &labels, values: &values, unit: "req" }).into_string();
        assert_eq!(html.matches("<polyline").count(), 2, "{html}");
        assert_eq!(html.matches("<circle").count(), 3);
        assert!(html.contains("role=\"img\"") && html.contains("<title>Requests</title>") && html.contains("<desc>"));
        let empty = line(&Series { title: "X", labels: &[], values: &[], unit: "" }).into_string();
        assert!(empty.contains("no data"));
    }

    #[test]
    fn stacked_bars_go_up_and_down_from_zero_and_sum_to_the_net() {
        let labels: Vec<String> = vec!["2026-01".into(), "2026-02".into()];
        let (new, churn, empty) = ([100.0, 50.0], [-30.0, 0.0], [0.0, 0.0]);
        let stacks = [
            Stack { name: "new", values: &new },
            Stack { name: "churn", values: &churn },
            Stack { name: "none", values: &empty },
        ];
        let s = Stacked { title: "MRR movements", labels: &labels, stacks: &stacks, unit: "USD" };
        let html = stacked_bars(&s).into_string();
        // Legend squares (3) and one rect per non-zero value (3).
        assert_eq!(html.matches("<rect").count(), 6, "{html}");
        assert!(html.contains("role=\"img\"") && html.contains("<title>MRR movements</title>"));
        assert!(
            html.contains("<desc>MRR movements: 2 periods of new, churn, none; 150 up, -30 down, net 120 USD</desc>")
        );
        assert!(html.contains("2026-01 churn: -30 USD"), "{html}");
        // The zero line sits between the top (150 up) and the bottom (30 down).
        let table = stacked_table(&s).into_string();
        assert!(table.contains("<td class=\"num\">70</td>") && table.contains("<td class=\"num\">50</td>"), "{table}");
        let none = Stacked { title: "X", labels: &labels, stacks: &[], unit: "" };
        assert!(stacked_bars(&none).into_string().contains("no data"));
    }

    #[test]
    fn bands_draw_the_middle_half_the_median_and_the_tenant() {
        let rows = [
            Band { metric: "requests", value: Some(500.0), p25: Some(10.0), p50: Some(20.0), p75: Some(40.0) },
            Band { metric: "p95_ms", value: Some(30.0), p25: Some(20.0), p50: Some(25.0), p75: Some(40.0) },
            Band { metric: "error_rate", value: None, p25: None, p50: None, p75: None },
        ];
        let html = percentile_bands("Among peers", &rows).into_string();
        assert_eq!(html.matches("<rect").count(), 2, "{html}");
        assert_eq!(html.matches("class=\"p50\"").count(), 2);
        assert_eq!(html.matches("<polygon").count(), 2);
        assert!(html.contains("role=\"img\"") && html.contains("<title>Among peers</title>"));
        assert!(
            html.contains("requests above the middle half; p95_ms within the middle half; error_rate not comparable")
        );
        let table = bands_table("Among peers", &rows).into_string();
        assert!(table.contains("<td>within the middle half</td>") && table.contains("–"), "{table}");
        assert!(percentile_bands("E", &[]).into_string().contains("no data"));
    }
}
