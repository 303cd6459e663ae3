//! Words and numbers for people: human-readable sizes and durations, and the log line and
//! notification event of a completed backup. Every layer above the infrastructure may use it, so
//! nobody has to call up into the commands for them.

use std::path::Path;
use std::time::Duration;

use crate::catalog::Manifest;
use crate::notify::{Event, Operation, Outcome};

/// `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The name of a time zone as table headers show it: `UTC` for every name of UTC (`Etc/UTC`,
/// `UCT`, `Zulu`, ...), else the IANA name, else `name` (a POSIX TZ string as configured).
pub fn zone_label(tz: &jiff::tz::TimeZone, name: &str) -> String {
    let utc = jiff::tz::Offset::UTC;
    let always_utc = tz.to_fixed_offset().is_ok_and(|o| o == utc);
    match tz.iana_name() {
        _ if always_utc => "UTC".into(),
        Some(
            "Etc/UTC" | "Etc/UCT" | "Etc/Universal" | "Etc/Zulu" | "UCT" | "Universal" | "Zulu",
        ) => "UTC".into(),
        Some(name) => name.into(),
        None => name.into(),
    }
}

/// `3d 4h`, `5h 12m`, `42s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let secs = s % 60;
    let parts: Vec<String> = if days > 0 {
        vec![format!("{days}d"), format!("{hours}h")]
    } else if hours > 0 {
        vec![format!("{hours}h"), format!("{mins}m")]
    } else if mins > 0 {
        vec![format!("{mins}m"), format!("{secs}s")]
    } else {
        return format!("{s}s");
    };
    // `8d`, not `8d 0h`.
    let parts: Vec<String> = parts
        .into_iter()
        .enumerate()
        .filter(|(i, p)| *i == 0 || !p.starts_with('0'))
        .map(|(_, p)| p)
        .collect();
    parts.join(" ")
}

/// The one log line per completed backup; a warning, with pg_dump's warnings, when pg_dump
/// left objects out.
pub fn log_done(m: &Manifest, path: &Path) {
    macro_rules! done {
        ($level:ident, $($warnings:tt)*) => {
            tracing::$level!(
                database = %m.database,
                file = %path.display(),
                size = %human_bytes(m.stored_bytes),
                size_bytes = m.stored_bytes,
                raw_bytes = m.raw_bytes,
                duration = %format!("{:.1}s", m.duration_seconds),
                sha256 = %&m.sha256[..12],
                tables = m.tables.len(),
                rows = m.total_rows(),
                id = %m.id,
                $($warnings)*
                "backup complete"
            )
        };
    }
    if m.warnings.is_empty() {
        done!(info,);
    } else {
        done!(warn, warnings = %m.warnings.join(" | "),);
    }
}

/// The notification event of a committed backup.
pub fn backup_event(m: &Manifest, host: &str) -> Event {
    Event::new(
        Operation::Backup,
        Outcome::Success,
        Some(&m.database),
        host,
        format!(
            "backup {} complete: {}, {} rows in {} tables, {:.1}s",
            m.id,
            human_bytes(m.stored_bytes),
            m.total_rows(),
            m.tables.len(),
            m.duration_seconds
        ),
    )
    .detail("file", m.file.clone())
    .detail("size", human_bytes(m.stored_bytes))
    .detail("duration", format!("{:.1}s", m.duration_seconds))
    .detail("sha256", m.sha256.clone())
}
