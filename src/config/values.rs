//! Parsers of the value types several keys share: durations, sizes and lists of commands, and
//! the one way durations are displayed.

use std::time::Duration;

use jiff::fmt::friendly::{Designator, SpanParser, SpanPrinter};
use jiff::{SignedDuration, Span, SpanRelativeTo};

/// The one duration grammar of every duration key: jiff's friendly format (`90s`, `15m`, `26h`,
/// `1d12h`, `2 days`, `2w`), ISO 8601 (`P1D`), or a bare integer, which counts seconds. Days are
/// 24 hours and weeks 7 days; months and years have no fixed length and are refused.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a duration (e.g. 90s, 15m, 26h, 2 days, or seconds)");
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let span: Span = SpanParser::new()
        .parse_span(t)
        .or_else(|_| jiff::fmt::temporal::SpanParser::new().parse_span(t))
        .map_err(|_| bad())?;
    if span.get_months() != 0 || span.get_years() != 0 {
        return Err(format!(
            "`{v}`: months and years have no fixed length; use days or weeks"
        ));
    }
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())?;
    if d.is_negative() {
        return Err(format!("`{v}` is negative"));
    }
    Ok(d.unsigned_abs())
}

/// A duration as `config show` and `config keys` display it, in the grammar it is parsed with:
/// the largest of days (from 2 days on), hours, minutes and seconds that holds it exactly (`26h`,
/// `24h`, `8d`, `90s`),
/// or jiff's friendly form when it has a fraction of a second.
pub fn show_duration(d: Duration) -> String {
    let printer = SpanPrinter::new().designator(Designator::Compact);
    if d.subsec_nanos() != 0 {
        let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
        return printer.duration_to_string(&d);
    }
    let secs = d.as_secs();
    let span = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let shown = if secs == 0 {
        Span::new()
    } else if secs.is_multiple_of(86_400) && secs >= 2 * 86_400 && secs / 86_400 <= 7_304_484 {
        Span::new().days(span(secs / 86_400))
    } else if secs.is_multiple_of(3600) && secs / 3600 <= 175_307_616 {
        Span::new().hours(span(secs / 3600))
    } else if secs.is_multiple_of(60) && secs / 60 <= 10_518_456_960 {
        Span::new().minutes(span(secs / 60))
    } else if secs <= 631_107_417_600 {
        Span::new().seconds(span(secs))
    } else {
        return format!("{secs}s");
    };
    printer.span_to_string(&shown)
}

/// Parse `1073741824`, `500M`, `10G`, `1.5GiB` (powers of 1024).
pub fn parse_bytes(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a size (e.g. 500M, 10G)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    Ok((n * mult as f64) as u64)
}

/// Parse a list of commands from JSON: `[["oc", "scale", "deployment/x", "--replicas=0"], ...]`.
pub fn parse_commands(text: &str) -> Result<Vec<Vec<String>>, String> {
    const SHAPE: &str = "expected a list of commands, each a list of strings, e.g. [[\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"]]";
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e}); {SHAPE}"))?;
    let outer = v.as_array().ok_or_else(|| SHAPE.to_string())?;
    let mut out = Vec::new();
    for (i, cmd) in outer.iter().enumerate() {
        let argv = cmd
            .as_array()
            .ok_or_else(|| format!("command {} is not a list; {SHAPE}", i + 1))?;
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("command {} holds a non-string argument; {SHAPE}", i + 1))?;
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(format!("command {} has no program; {SHAPE}", i + 1));
        }
        out.push(argv);
    }
    Ok(out)
}
