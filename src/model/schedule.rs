//! When backups run: a cron expression evaluated in a time zone (DST-aware, via croner on jiff),
//! or a fixed interval like the old pod's `sleep 1d`. Pure functions of the time they are given,
//! so the daemon's clock can be injected in tests; a restart never loses a run (catch-up).

use std::fmt;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// The default cron expression: daily at 01:00.
pub const DEFAULT_CRON: &str = "0 1 * * *";

/// A backup schedule.
#[derive(Clone)]
pub enum Schedule {
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
        tz: TimeZone,
        tz_name: String,
    },
    Every {
        period: SignedDuration,
        text: String,
    },
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why the first run happens at start instead of at the next scheduled time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// No backup of the database exists yet.
    NoBackupYet,
    /// The run scheduled at this time did not happen (the process was down or the run failed).
    Missed { scheduled: Timestamp },
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatchUp::NoBackupYet => write!(f, "no backup of the database exists yet"),
            CatchUp::Missed { scheduled } => write!(
                f,
                "the run scheduled for {} has no backup (missed while down, or failed)",
                scheduled
            ),
        }
    }
}

/// When the next run is, and whether it is a catch-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub at: Timestamp,
    pub catch_up: Option<CatchUp>,
}

/// A time zone by IANA name (`Europe/Berlin`), `UTC`, a POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`),
/// optionally with the leading `:` of the TZ variable.
pub fn parse_tz(name: &str) -> Result<TimeZone, String> {
    let n = name.trim().trim_start_matches(':');
    if n.is_empty() {
        return Err("the time zone is empty".into());
    }
    if let Ok(tz) = TimeZone::get(n) {
        return Ok(tz);
    }
    if n.starts_with('/') {
        let bytes = std::fs::read(n).map_err(|e| format!("cannot read time zone file {n}: {e}"))?;
        return TimeZone::tzif(n, &bytes).map_err(|e| format!("time zone file {n}: {e}"));
    }
    TimeZone::posix(n).map_err(|_| {
        format!(
            "`{name}` is not a known time zone (use an IANA name such as Europe/Berlin, or UTC)"
        )
    })
}

/// The fields of a 6-field cron expression (a 5-field one starts at the minute), with the values
/// each takes.
const CRON_FIELDS: [(&str, &str); 6] = [
    ("seconds", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("weekday", "0-7 or SUN-SAT"),
];

const CRON_SHAPE: &str =
    "a cron expression has 5 or 6 fields (minute hour day month weekday, seconds first when 6)";

fn cron_parser() -> croner::parser::CronParser {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parse a cron expression: 5 fields (minute hour day month weekday), 6 (seconds first), or a
/// nickname (`@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`). An error names the bad field
/// in pgkeep's words, not the library's.
pub fn check_cron(expr: &str) -> Result<croner::Cron, String> {
    let t = expr.trim();
    if t.starts_with('@') {
        return cron_parser().parse(t).map_err(|_| {
            format!("`{t}` is not one of @yearly, @monthly, @weekly, @daily, @hourly")
        });
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    let names = match fields.len() {
        5 => &CRON_FIELDS[1..],
        6 => &CRON_FIELDS[..],
        n => return Err(format!("`{t}` has {n} fields; {CRON_SHAPE}")),
    };
    cron_parser().parse(t).map_err(|_| {
        // Find the field that is wrong on its own: every other field replaced by `*`.
        let bad = (0..fields.len()).find(|&i| {
            let mut probe = vec!["*"; fields.len()];
            probe[i] = fields[i];
            cron_parser().parse(&probe.join(" ")).is_err()
        });
        match bad {
            Some(i) => format!(
                "`{t}`: the {} field `{}` is not valid ({})",
                names[i].0, fields[i], names[i].1
            ),
            None => format!("`{t}` is not a valid cron expression"),
        }
    })
}

impl Schedule {
    /// A cron schedule in `tz`. 5 fields (minute hour day month weekday) or 6 (with seconds first),
    /// and the nicknames `@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`.
    pub fn cron(expr: &str, tz: TimeZone, tz_name: &str) -> Result<Schedule, String> {
        let cron = check_cron(expr)?;
        let s = Schedule::Cron {
            expr: expr.trim().to_string(),
            cron: Box::new(cron),
            tz,
            tz_name: tz_name.to_string(),
        };
        // A pattern that never matches (February 30th) is refused now, not at 01:00.
        if s.next_after(Timestamp::UNIX_EPOCH).is_none() {
            return Err(format!("`{expr}` never matches a real date"));
        }
        Ok(s)
    }

    /// Every `period` after the previous run; `text` is how the period is shown.
    pub fn every(period: std::time::Duration, text: &str) -> Result<Schedule, String> {
        let period = SignedDuration::try_from(period)
            .map_err(|_| format!("`{text}`: the interval is too long"))?;
        if period <= SignedDuration::ZERO {
            return Err(format!("`{text}`: the interval must be positive"));
        }
        Ok(Schedule::Every {
            period,
            text: text.trim().to_string(),
        })
    }

    /// Human description for logs.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron {
                expr,
                cron,
                tz_name,
                ..
            } => format!("cron `{expr}` in {tz_name} ({})", cron.describe()),
            Schedule::Every { text, .. } => format!("every {text} after the previous run"),
        }
    }

    /// The first cron occurrence strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                .ok()
                .map(|z: Zoned| z.timestamp()),
            Schedule::Every { period, .. } => t.checked_add(*period).ok(),
        }
    }

    /// The latest cron occurrence at or before `t` (None for intervals).
    pub fn previous(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_previous_occurrence(&t.to_zoned(tz.clone()), true)
                .ok()
                .map(|z: Zoned| z.timestamp()),
            Schedule::Every { .. } => None,
        }
    }

    /// The first run after a start at `now`, given when the newest backup of the database was
    /// started (`None`: there is none). A run whose scheduled time passed without a backup
    /// happens at once.
    pub fn at_start(&self, now: Timestamp, last_backup: Option<Timestamp>) -> Next {
        let Some(last) = last_backup else {
            return Next {
                at: now,
                catch_up: Some(CatchUp::NoBackupYet),
            };
        };
        match self {
            Schedule::Cron { .. } => match self.previous(now) {
                Some(scheduled) if last < scheduled => Next {
                    at: now,
                    catch_up: Some(CatchUp::Missed { scheduled }),
                },
                _ => Next {
                    at: self.next_after(now).unwrap_or(now),
                    catch_up: None,
                },
            },
            Schedule::Every { period, .. } => {
                let due = last.checked_add(*period).unwrap_or(now);
                if due <= now {
                    Next {
                        at: now,
                        catch_up: Some(CatchUp::Missed { scheduled: due }),
                    }
                } else {
                    Next {
                        at: due,
                        catch_up: None,
                    }
                }
            }
        }
    }

    /// The run after one that started at `started` and ended at `now` (whatever its result).
    /// A cron occurrence that passed while the run was going is not run twice.
    pub fn after_run(&self, started: Timestamp, now: Timestamp) -> Timestamp {
        match self {
            Schedule::Cron { .. } => self.next_after(now.max(started)).unwrap_or(now),
            Schedule::Every { period, .. } => started.checked_add(*period).unwrap_or(now).max(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin(expr: &str) -> Schedule {
        Schedule::cron(expr, parse_tz("Europe/Berlin").unwrap(), "Europe/Berlin").unwrap()
    }

    /// Every occurrence in [from, to), walking the schedule like the daemon does.
    fn occurrences(s: &Schedule, from: &str, to: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = ts(from);
        let end = ts(to);
        while let Some(n) = s.next_after(t) {
            if n >= end {
                break;
            }
            out.push(n.to_string());
            t = n;
        }
        out
    }

    #[test]
    fn default_daily_at_one_in_the_zone() {
        let s = berlin(DEFAULT_CRON);
        // 2026-11-25 is winter time: 01:00 CET = 00:00 UTC.
        assert_eq!(
            s.next_after(ts("2026-11-24T23:59:59Z")),
            Some(ts("2026-11-25T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-25T00:00:00Z")),
            Some(ts("2026-11-26T00:00:00Z"))
        );
        // Summer time: 01:00 CEST = 23:00 UTC the day before.
        assert_eq!(
            s.next_after(ts("2026-07-01T12:00:00Z")),
            Some(ts("2026-07-01T23:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_gap_runs_once() {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let s = berlin("30 2 * * *");
        let runs = occurrences(&s, "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z");
        assert_eq!(runs.len(), 4, "{runs:?}");
        // One run on the 29th, at the first instant after the gap or in it (03:xx CEST).
        let on_29: Vec<&String> = runs
            .iter()
            .filter(|r| r.starts_with("2026-03-29"))
            .collect();
        assert_eq!(on_29.len(), 1, "{runs:?}");
        let t = ts(on_29[0]).to_zoned(parse_tz("Europe/Berlin").unwrap());
        assert_eq!(t.hour(), 3, "{t}");
        // The first instant after the gap: 03:00 CEST.
        assert_eq!(on_29[0].as_str(), "2026-03-29T01:00:00Z", "{t}");
        assert_eq!(runs[0], "2026-03-28T01:30:00Z");
        assert_eq!(runs[2], "2026-03-30T00:30:00Z");
    }

    #[test]
    fn fall_back_repeated_hour_runs_once() {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let s = berlin("30 2 * * *");
        let runs = occurrences(&s, "2026-10-23T12:00:00Z", "2026-10-27T12:00:00Z");
        let on_25: Vec<&String> = runs
            .iter()
            .filter(|r| r.starts_with("2026-10-25"))
            .collect();
        assert_eq!(on_25.len(), 1, "{runs:?}");
        assert_eq!(runs.len(), 4, "{runs:?}");
        // The first 02:30 (CEST, 00:30 UTC).
        assert_eq!(on_25[0], "2026-10-25T00:30:00Z");
    }

    #[test]
    fn hourly_schedule_over_fall_back_keeps_every_real_hour() {
        let s = berlin("0 * * * *");
        // 22:00Z .. 04:00Z on the fall-back night: 6 real hours, 6 runs, none doubled or lost.
        let runs = occurrences(&s, "2026-10-24T21:59:59Z", "2026-10-25T03:59:59Z");
        assert_eq!(runs.len(), 6, "{runs:?}");
    }

    #[test]
    fn missed_cron_run_is_caught_up_at_start() {
        let s = berlin(DEFAULT_CRON);
        // Down from 2026-11-24 20:00 to 2026-11-25 08:00 Berlin: the 01:00 run was missed.
        let last = ts("2026-11-24T00:00:05Z");
        let now = ts("2026-11-25T07:00:00Z");
        let next = s.at_start(now, Some(last));
        assert_eq!(next.at, now);
        assert_eq!(
            next.catch_up,
            Some(CatchUp::Missed {
                scheduled: ts("2026-11-25T00:00:00Z")
            })
        );
        // The same start with the 01:00 backup present waits for tomorrow.
        let next = s.at_start(now, Some(ts("2026-11-25T00:00:02Z")));
        assert_eq!(next.at, ts("2026-11-26T00:00:00Z"));
        assert_eq!(next.catch_up, None);
        // A backup made by hand after 01:00 also counts.
        let next = s.at_start(now, Some(ts("2026-11-25T06:00:00Z")));
        assert_eq!(next.catch_up, None);
        // No backup at all: run now.
        let next = s.at_start(now, None);
        assert_eq!(next.catch_up, Some(CatchUp::NoBackupYet));
        assert_eq!(next.at, now);
    }

    #[test]
    fn missed_interval_run_is_caught_up_at_start() {
        let s = Schedule::every(std::time::Duration::from_secs(86_400), "1d").unwrap();
        let now = ts("2026-11-25T12:00:00Z");
        let next = s.at_start(now, Some(ts("2026-11-24T11:00:00Z")));
        assert_eq!(next.at, now);
        assert!(matches!(next.catch_up, Some(CatchUp::Missed { .. })));
        let next = s.at_start(now, Some(ts("2026-11-24T13:00:00Z")));
        assert_eq!(next.at, ts("2026-11-25T13:00:00Z"));
        assert_eq!(next.catch_up, None);
    }

    #[test]
    fn after_a_run() {
        let s = Schedule::every(std::time::Duration::from_secs(12 * 3600), "12h").unwrap();
        let started = ts("2026-11-25T00:00:00Z");
        assert_eq!(
            s.after_run(started, ts("2026-11-25T00:10:00Z")),
            ts("2026-11-25T12:00:00Z")
        );
        // A run longer than the period: the next one starts at once, not in the past.
        assert_eq!(
            s.after_run(started, ts("2026-11-25T13:00:00Z")),
            ts("2026-11-25T13:00:00Z")
        );
        let c = berlin(DEFAULT_CRON);
        // A run that lasted past the next occurrence does not run it twice.
        assert_eq!(
            c.after_run(ts("2026-11-25T00:00:00Z"), ts("2026-11-26T00:30:00Z")),
            ts("2026-11-27T00:00:00Z")
        );
    }

    #[test]
    fn parsing() {
        assert!(Schedule::every(std::time::Duration::ZERO, "0").is_err());
        assert!(Schedule::cron("61 1 * * *", TimeZone::UTC, "UTC").is_err());
        assert!(Schedule::cron("0 0 30 2 *", TimeZone::UTC, "UTC").is_err());
        assert!(Schedule::cron("@daily", TimeZone::UTC, "UTC").is_ok());
        assert!(parse_tz("Mars/Olympus").is_err());
        assert!(parse_tz(":Europe/Berlin").is_ok());
        assert!(parse_tz("CET-1CEST,M3.5.0,M10.5.0/3").is_ok());
        let d = berlin("0 1 * * *").describe();
        assert!(d.contains("Europe/Berlin"), "{d}");
    }
}
