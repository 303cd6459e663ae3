//! Server-rendered SVG charts for the status page: one value per backup over the last weeks, with
//! the retention window shaded. Every text is escaped by the template; no script, no external
//! reference.

use jiff::Timestamp;
use maud::{Markup, html};

use crate::status::Verdict;

const W: f64 = 520.0;
const H: f64 = 170.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 22.0;

/// One point: when, the value, the backup's id and verdict.
pub struct Point<'a> {
    pub time: Timestamp,
    pub value: f64,
    pub id: &'a str,
    pub verdict: Verdict,
}

/// What a chart shows.
pub struct Chart<'a> {
    pub title: &'a str,
    pub points: Vec<Point<'a>>,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Backups before this are culled unless a tier keeps them.
    pub cutoff: Option<Timestamp>,
    pub policy: &'a str,
    /// How a value reads (`1.5 MiB`, `42s`).
    pub label: fn(f64) -> String,
}

fn x_of(c: &Chart, t: Timestamp) -> f64 {
    let span = c.to.duration_since(c.from).as_secs_f64().max(1.0);
    let at = t.duration_since(c.from).as_secs_f64().clamp(0.0, span);
    LEFT + at / span * (W - LEFT - RIGHT)
}

fn y_of(max: f64, v: f64) -> f64 {
    TOP + (1.0 - v / max) * (H - TOP - BOTTOM)
}

/// The chart as an inline `<svg>`.
pub fn render(c: &Chart) -> Markup {
    let max = c.points.iter().map(|p| p.value).fold(0.0_f64, f64::max);
    let max = if max > 0.0 { max * 1.1 } else { 1.0 };
    let mut pts: Vec<&Point> = c.points.iter().filter(|p| p.time >= c.from).collect();
    pts.sort_by_key(|p| p.time);
    let line: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x_of(c, p.time), y_of(max, p.value)))
        .collect();
    let band = c
        .cutoff
        .filter(|t| *t < c.to)
        .map(|t| (x_of(c, t.max(c.from)), t >= c.from));
    let bottom = H - BOTTOM;
    let ticks = week_ticks(c);
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {H}")) width=(W) height=(H)
            role="img" xmlns="http://www.w3.org/2000/svg" {
            title { (c.title) }
            @if let Some((x, inside)) = band {
                rect class="keep" x=(fmt(x)) y=(TOP) width=(fmt(W - RIGHT - x)) height=(bottom - TOP) {}
                @if inside {
                    line class="cutoff" x1=(fmt(x)) y1=(TOP) x2=(fmt(x)) y2=(bottom) {}
                }
                text class="note" x=(fmt(W - RIGHT - 4.0)) y=(TOP + 10.0) text-anchor="end" {
                    "retention window (" (c.policy) ")"
                }
            }
            line class="axis" x1=(LEFT) y1=(bottom) x2=(W - RIGHT) y2=(bottom) {}
            line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) {}
            text class="tick" x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { ((c.label)(max)) }
            text class="tick" x=(LEFT - 4.0) y=(bottom) text-anchor="end" { "0" }
            @for (x, day) in &ticks {
                line class="grid" x1=(fmt(*x)) y1=(TOP) x2=(fmt(*x)) y2=(bottom) {}
                text class="tick" x=(fmt(*x)) y=(H - 6.0) text-anchor="middle" { (day) }
            }
            @if pts.is_empty() {
                text class="note" x=(W / 2.0) y=(H / 2.0) text-anchor="middle" { "no backups in this period" }
            } @else {
                polyline class="series" points=(line.join(" ")) {}
                @for p in &pts {
                    circle class=(format!("pt {}", p.verdict.as_str())) cx=(fmt(x_of(c, p.time)))
                        cy=(fmt(y_of(max, p.value))) r="3" {
                        title { (p.id) ": " ((c.label)(p.value)) " (" (p.verdict.as_str()) ")" }
                    }
                }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// A tick at each Monday 00:00 UTC of the period, labelled with its date.
fn week_ticks(c: &Chart) -> Vec<(f64, String)> {
    let utc = jiff::tz::TimeZone::UTC;
    let start = c.from.to_zoned(utc.clone()).date();
    let mut out = Vec::new();
    let mut day = start;
    for _ in 0..400 {
        let Ok(t) = day.to_zoned(utc.clone()).map(|z| z.timestamp()) else {
            break;
        };
        if t > c.to {
            break;
        }
        if t >= c.from && day.weekday() == jiff::civil::Weekday::Monday {
            out.push((x_of(c, t), day.strftime("%m-%d").to_string()));
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_band_and_escaped_titles() {
        let to: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let from = to - jiff::SignedDuration::from_hours(24 * 28);
        let c = Chart {
            title: "size of <b>",
            points: vec![
                Point {
                    time: to - jiff::SignedDuration::from_hours(48),
                    value: 10.0,
                    id: "a<script>",
                    verdict: Verdict::Good,
                },
                Point {
                    time: to - jiff::SignedDuration::from_hours(24),
                    value: 20.0,
                    id: "b",
                    verdict: Verdict::Bad,
                },
            ],
            from,
            to,
            cutoff: Some(to - jiff::SignedDuration::from_hours(24 * 10)),
            policy: "keep_days=10",
            label: |v| format!("{v}"),
        };
        let svg = render(&c).into_string();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("class=\"pt bad\""), "{svg}");
        assert!(
            svg.contains("<polyline class=\"series\" points=\""),
            "{svg}"
        );
        assert!(svg.contains("<rect class=\"keep\""), "{svg}");
        assert!(svg.contains("a&lt;script&gt;"), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("size of &lt;b&gt;"), "{svg}");
        // Four Mondays in four weeks.
        assert_eq!(svg.matches("class=\"grid\"").count(), 4, "{svg}");
    }
}
