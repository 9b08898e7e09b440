//! Per-minute charts as inline SVG, drawn on the server from
//! `/admin/stats`' figures: no chart library, nothing to load.

use std::fmt::Write;

use super::esc;
use crate::queue::MinuteCounters;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// One line of a chart; None where there is no value (a gap).
pub struct Series<'a> {
    pub name: &'a str,
    /// CSS class giving its colour.
    pub class: &'a str,
    pub values: Vec<Option<f64>>,
    pub legend: Legend,
}

/// The figure a series' legend shows next to its name.
#[derive(Clone, Copy)]
pub enum Legend {
    /// The sum over the whole chart: a count is read as "how many in the
    /// last hour", and the minute just begun would show nearly nothing.
    Total,
    /// The latest minute with a value: a latency is not summed.
    Latest,
}

impl Legend {
    fn figure(self, values: &[Option<f64>]) -> Option<f64> {
        match self {
            Legend::Total => Some(values.iter().flatten().sum()),
            Legend::Latest => values.iter().rev().flatten().next().copied(),
        }
    }

    fn hint(self, minutes: usize) -> String {
        match self {
            Legend::Total => format!("total over the last {minutes} min"),
            Legend::Latest => "latest minute with deliveries".to_owned(),
        }
    }
}

fn clock(ms: u64) -> String {
    let minutes = (ms / 60_000) % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A compact number for an axis label.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A line chart of `series` over the minutes starting at `at_ms`.
pub fn line_chart(id: &str, title: &str, unit: &str, at_ms: &[u64], series: &[Series]) -> String {
    let points = at_ms.len().max(2);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b))
        .max(1.0);
    let x = |i: usize| LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / (points - 1) as f64;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for fraction in [0.0, 0.5, 1.0] {
        let value = max * fraction;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(value) + 4.0,
            esc(&short(value)),
            y = y(value),
        );
    }
    if let (Some(first), Some(last)) = (at_ms.first(), at_ms.last()) {
        let middle = at_ms[at_ms.len() / 2];
        for (i, ms, anchor) in [
            (0, *first, "start"),
            (at_ms.len() / 2, middle, "middle"),
            (at_ms.len() - 1, *last, "end"),
        ] {
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                HEIGHT - 6.0,
                clock(ms)
            );
        }
    }
    for s in series {
        // A gap splits the line.
        let mut segment = Vec::new();
        let mut segments = Vec::new();
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => segment.push((x(i), y(*v))),
                None if !segment.is_empty() => segments.push(std::mem::take(&mut segment)),
                None => {}
            }
        }
        if !segment.is_empty() {
            segments.push(segment);
        }
        for points in segments {
            if let [(cx, cy)] = points.as_slice() {
                // A lone minute between gaps: a dot, or it would not show.
                let _ = write!(
                    svg,
                    "<circle class=\"dot {}\" data-series=\"{}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"2.5\"/>",
                    s.class,
                    esc(s.name),
                );
                continue;
            }
            let _ = write!(
                svg,
                "<polyline class=\"line {}\" data-series=\"{}\" points=\"{}\"/>",
                s.class,
                esc(s.name),
                points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    svg.push_str("</svg><div class=\"legend\">");
    for s in series {
        let figure = s.legend.figure(&s.values);
        let _ = write!(
            svg,
            "<span class=\"key {}\" title=\"{}\">{} <b>{}</b>{}</span>",
            s.class,
            esc(&s.legend.hint(at_ms.len())),
            esc(s.name),
            figure.map_or_else(|| "—".to_owned(), short),
            if figure.is_some() { unit } else { "" }
        );
    }
    svg.push_str("</div></figure>");
    svg
}

/// The two charts of a source: events per minute (accepted, delivered,
/// failed attempts, dead-lettered) and delivery time (p50, p99).
pub fn source_charts(id: &str, points: &[MinuteCounters]) -> String {
    let at: Vec<u64> = points.iter().map(|p| p.at_ms).collect();
    let count = |f: fn(&MinuteCounters) -> u64| -> Vec<Option<f64>> {
        points.iter().map(|p| Some(f(p) as f64)).collect()
    };
    let latency = |f: fn(&MinuteCounters) -> Option<u64>| -> Vec<Option<f64>> {
        points.iter().map(|p| f(p).map(|v| v as f64)).collect()
    };
    let throughput = line_chart(
        &format!("{id}-throughput"),
        "Events per minute",
        "",
        &at,
        &[
            Series {
                name: "accepted",
                class: "accepted",
                values: count(|p| p.accepted),
                legend: Legend::Total,
            },
            Series {
                name: "delivered",
                class: "delivered",
                values: count(|p| p.delivered),
                legend: Legend::Total,
            },
            Series {
                name: "failed",
                class: "failed",
                values: count(|p| p.failed),
                legend: Legend::Total,
            },
            Series {
                name: "dead",
                class: "dead",
                values: count(|p| p.dead),
                legend: Legend::Total,
            },
        ],
    );
    let times = line_chart(
        &format!("{id}-latency"),
        "Accepted → delivered (ms, upper bucket bound)",
        " ms",
        &at,
        &[
            Series {
                name: "p50",
                class: "p50",
                values: latency(|p| p.p50_ms),
                legend: Legend::Latest,
            },
            Series {
                name: "p99",
                class: "p99",
                values: latency(|p| p.p99_ms),
                legend: Legend::Latest,
            },
        ],
    );
    format!("<div class=\"charts\">{throughput}{times}</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_each_series_and_escapes_names() {
        let svg = line_chart(
            "c",
            "T<i>",
            "",
            &[0, 60_000, 120_000, 180_000],
            &[Series {
                name: "a\"b",
                class: "x",
                values: vec![Some(1.0), Some(2.0), None, Some(3.0)],
                legend: Legend::Latest,
            }],
        );
        assert!(svg.contains("T&lt;i&gt;"));
        assert!(svg.contains("data-series=\"a&quot;b\""));
        // The gap splits the line: a line, then a lone minute as a dot.
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("00:03"));
    }

    #[test]
    fn counts_show_their_total_and_latencies_their_latest_minute() {
        let svg = line_chart(
            "c",
            "T",
            " ms",
            &[0, 60_000, 120_000],
            &[
                Series {
                    name: "accepted",
                    class: "a",
                    // The minute just begun has nothing yet.
                    values: vec![Some(20.0), Some(11.0), Some(0.0)],
                    legend: Legend::Total,
                },
                Series {
                    name: "p99",
                    class: "b",
                    values: vec![Some(40.0), Some(7.0), None],
                    legend: Legend::Latest,
                },
            ],
        );
        assert!(svg.contains("accepted <b>31</b> ms"), "{svg}");
        assert!(svg.contains("p99 <b>7</b> ms"), "{svg}");
        assert!(svg.contains("total over the last 3 min"));
    }
}
