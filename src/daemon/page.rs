//! The status page (`GET /`): one self-contained HTML page with the state of every database's
//! backups, rendered from the daemon's memory. Every name is escaped by the template; the only
//! script and style are inline and allowed by a per-response nonce in a Content-Security-Policy
//! that forbids every other load (`default-src 'none'`, `connect-src 'self'`). No secret reaches
//! the page: the API token is typed into it and sent only as the bearer header of "back up now".

use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart::{self, Chart, Point};
use crate::report::{human_bytes, human_duration};
use crate::status::{Database, HISTORY_DAYS, Row, Summary};

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// What the page needs besides the summary.
pub struct View<'a> {
    pub host: &'a str,
    pub tz: &'a TimeZone,
    /// Whether starting backups is possible at all (a token is configured).
    pub writable: bool,
}

/// A fresh nonce for the inline script and style of one response.
pub fn nonce() -> String {
    let mut buf = [0u8; 18];
    getrandom::fill(&mut buf).expect("the system random source");
    hex::encode(buf)
}

/// The page with its security headers.
pub fn response(summary: &Summary, view: &View) -> Response {
    let nonce = nonce();
    let body = render(summary, view, &nonce).into_string();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    r
}

/// The whole page.
pub fn render(summary: &Summary, view: &View, nonce: &str) -> Markup {
    let free = summary
        .free_bytes
        .map_or_else(|| "unknown".to_string(), human_bytes);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "pgkeep status: " (view.host) }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "pgkeep " span.host { (view.host) } }
                    p.meta {
                        "Backups in " code { (summary.backup_dir) } " · free space "
                        span #free { (free) } " · catalog read "
                        (ago(summary.generated_at, summary.catalog_read_at)) " · page at "
                        (at(summary.generated_at, view.tz))
                    }
                    (auth(view))
                }
                main #dbs {
                    @for db in &summary.databases {
                        (database(db, summary, view))
                    }
                }
                footer {
                    "JSON: " a href="/api/v1/status" { "/api/v1/status" } " · "
                    a href="/metrics" { "/metrics" }
                }
                script nonce=(nonce) { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

fn auth(view: &View) -> Markup {
    html! {
        div.auth {
            @if view.writable {
                label for="token" { "API token " }
                input #token type="password" autocomplete="off" spellcheck="false"
                    placeholder="needed for back up now";
                span.hint { "Read-only without it. Sent only with \"back up now\", never stored." }
            } @else {
                span.hint { "Read-only: no API token is configured (PGKEEP_API_TOKEN)." }
            }
        }
    }
}

fn database(db: &Database, summary: &Summary, view: &View) -> Markup {
    let running = db.running.is_some();
    html! {
        section.db data-db=(db.name) data-running=(if running { "1" } else { "0" }) {
            h2 { (db.name) }
            dl.facts {
                dt { "Newest good backup" }
                dd.newest {
                    @match &db.newest_good {
                        Some(r) => {
                            (at(r.time, view.tz)) " (" (age(db.newest_good_age_seconds)) " ago), "
                            (human_bytes(r.stored_bytes)) ", " code { (r.id) }
                        }
                        None => span.bad { "none" },
                    }
                }
                dt { "Next run" }
                dd.next { (db.next_run.map_or_else(|| "not scheduled".into(), |t| at(t, view.tz))) }
                dt { "Verification" }
                dd.verdicts { (verdicts(db, view)) }
            }
            (live(db, view))
            p.actions {
                button.backup type="button" data-db=(db.name) disabled[!view.writable] { "Back up now" }
                " " output.msg role="status" {}
            }
            (problems(db, view))
            div.charts { (charts(db, summary)) }
            (history(db, view))
        }
    }
}

fn verdicts(db: &Database, view: &View) -> Markup {
    let v = &db.verdicts;
    html! {
        span.good { (v.good) " good" } ", "
        span class=(if v.bad > 0 { "bad" } else { "" }) { (v.bad) " bad" } ", "
        @if v.inconclusive > 0 { span.inconclusive { (v.inconclusive) " inconclusive" } ", " }
        (v.unverified) " unverified"
        @if v.legacy > 0 { ", " (v.legacy) " legacy" }
        @if let Some((id, last)) = &db.last_verification {
            br;
            "last: " (last.label()) " (" (last.level) ") "
            (at(last.checked_at, view.tz)) ", " code { (id) } ": " (last.message)
        }
    }
}

/// The running backup and its progress (updated by the page's script while it runs).
fn live(db: &Database, view: &View) -> Markup {
    html! {
        div.running {
            @match &db.running {
                Some(r) => {
                    span.text {
                        "Running: " code { (r.id) } " (" (r.trigger) "), started "
                        (at(r.started_at, view.tz)) ", " (human_bytes(r.dumped_bytes)) " dumped"
                        @if let Some(e) = r.expected_bytes { " of about " (human_bytes(e)) }
                    }
                    " "
                    progress max=(r.expected_bytes.unwrap_or(0).max(1))
                        value=(r.dumped_bytes.min(r.expected_bytes.unwrap_or(0))) {}
                }
                None => span.text.idle { "No backup running." },
            }
        }
    }
}

fn problems(db: &Database, view: &View) -> Markup {
    html! {
        @if !db.problems.is_empty() {
            ul.problems {
                @for p in &db.problems { li { b { (p.code) } ": " (p.message) } }
            }
        }
        @if !db.failures.is_empty() {
            h3 { "Recent failures" }
            ul.failures {
                @for f in &db.failures {
                    li { (at(f.at, view.tz)) " (" (f.trigger) ") " code { (f.id) } br; pre { (f.error) } }
                }
            }
        }
    }
}

fn charts(db: &Database, summary: &Summary) -> Markup {
    let to = summary.generated_at;
    let from = to - SignedDuration::from_hours(24 * HISTORY_DAYS);
    let chart = |title, value: fn(&Row) -> Option<f64>, label| {
        chart::render(&Chart {
            title,
            points: db
                .history
                .iter()
                .filter_map(|r| {
                    value(r).map(|v| Point {
                        time: r.time,
                        value: v,
                        id: &r.id,
                        verdict: r.verdict,
                    })
                })
                .collect(),
            from,
            to,
            cutoff: db.retention.cutoff,
            policy: &db.retention.policy,
            label,
        })
    };
    html! {
        figure { figcaption { "Backup size, last " (HISTORY_DAYS) " days" }
            (chart("backup size", |r| Some(r.stored_bytes as f64), |v| human_bytes(v as u64))) }
        figure { figcaption { "Backup duration, last " (HISTORY_DAYS) " days" }
            (chart("backup duration", |r| r.duration_seconds, seconds)) }
    }
}

fn seconds(v: f64) -> String {
    if v < 60.0 {
        format!("{v:.1}s")
    } else {
        human_duration(Duration::from_secs_f64(v))
    }
}

fn history(db: &Database, view: &View) -> Markup {
    html! {
        table.history {
            caption { "History, last " (HISTORY_DAYS) " days"
                @if db.older_backups > 0 { " (" (db.older_backups) " older backups not shown)" } }
            thead { tr { th { "Time" } th { "Size" } th { "Duration" } th { "Format" } th { "Verdict" } th { "ID" } } }
            tbody {
                @for r in &db.history {
                    tr {
                        td { (at(r.time, view.tz)) }
                        td.num { (human_bytes(r.stored_bytes)) }
                        td.num { (r.duration_seconds.map_or("-".into(), seconds)) }
                        td { (r.format) }
                        td class=(format!("verdict {}", r.verdict.as_str())) title=[r.verified.as_ref().map(|v| &v.message)] {
                            (r.verdict.as_str())
                            @if let Some(f) = r.verified.as_ref().and_then(|v| v.failure.as_ref()) { " (" (f) ")" }
                        }
                        td { code { (r.id) } }
                    }
                }
                @if db.history.is_empty() { tr { td colspan="6" { "No backups yet." } } }
            }
        }
    }
}

fn at(t: Timestamp, tz: &TimeZone) -> String {
    t.round(jiff::Unit::Second)
        .unwrap_or(t)
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn age(secs: Option<u64>) -> String {
    secs.map_or("?".into(), |s| human_duration(Duration::from_secs(s)))
}

fn ago(now: Timestamp, then: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0) as u64;
    format!("{} ago", human_duration(Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Failure, Verdicts, Window};

    #[test]
    fn names_and_errors_are_text() {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let evil = "<script>alert(1)</script>\"'&<img src=x>";
        let db = Database {
            name: evil.into(),
            newest_good: None,
            newest_good_age_seconds: None,
            newest_good_raw_bytes: None,
            verdicts: Verdicts::default(),
            last_verification: None,
            problems: Vec::new(),
            retention: Window {
                policy: "keep_days=10".into(),
                cutoff: None,
            },
            history: Vec::new(),
            older_backups: 0,
            next_run: None,
            running: None,
            failures: vec![Failure {
                id: "x".into(),
                trigger: "api".into(),
                at: now,
                error: format!("backup of database \"{evil}\" failed"),
            }],
        };
        let summary = Summary {
            generated_at: now,
            catalog_read_at: now,
            backup_dir: "/b<i>".into(),
            free_bytes: None,
            databases: vec![db],
        };
        let view = View {
            host: "h<b>",
            tz: &TimeZone::UTC,
            writable: true,
        };
        let html = render(&summary, &view, "n0nce").into_string();
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert_eq!(html.matches("<script nonce=\"n0nce\">").count(), 1);
        assert!(!html.contains("<img") && !html.contains("<i>") && !html.contains("<b>"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;&lt;img src=x&gt;")
        );
        assert!(html.contains("data-db=\"&lt;script&gt;"), "{html}");
        assert!(html.contains(">unknown<"), "free space unknown: {html}");
    }
}
