//! Server-rendered SVG charts (issue 21): line, bar and sparkline, readable without JavaScript.
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

/// A line chart with its axis maximum labelled; gaps where a value is missing.
pub fn line(s: &Series<'_>) -> Markup {
    let (lo, hi) = bounds(s.values);
    let n = s.values.len().max(2);
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64;
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo);
    // Runs of consecutive values become polylines.
    let mut runs: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, v) in s.values.iter().enumerate() {
        match v {
            Some(v) => current.push_str(&format!("{:.1},{:.1} ", x(i), y(*v))),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
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
}
