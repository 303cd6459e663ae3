//! `pgkeep check`: the health of a database's backups as monitoring sees it. A pure function of
//! the listing, the free space and the clock, so every condition is testable: no good backup
//! newer than `max_age`, a newest backup much smaller than the one before, a failed or too old
//! verification, too little free space where backups are written.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use thiserror::Error;

use crate::catalog::{Entry, Status};
use crate::config::{CheckSettings, MinFree};
use crate::model::Format;
use crate::report;

/// `pgkeep check` found problems (exit code `exit::UNHEALTHY`).
#[derive(Debug, Error)]
#[error("{count} problem(s) with the backups of database \"{database}\"")]
pub struct Unhealthy {
    pub count: usize,
    pub database: String,
}

impl crate::exit::ExitCode for Unhealthy {
    fn exit_code(&self) -> u8 {
        crate::exit::UNHEALTHY
    }
}

/// One reason the backups are not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable code: `no-backup`, `stale`, `shrunk`, `incomplete`, `newer-pg-dump`,
    /// `verify-failed`, `verify-inconclusive`, `verify-stale`, `low-space`.
    pub code: &'static str,
    pub message: String,
}

/// What `check` looked at and found.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub ok: bool,
    pub database: String,
    pub checked_at: Timestamp,
    pub problems: Vec<Problem>,
    /// What a person should look at that does not make the backups unhealthy: code
    /// `unreadable-manifest` (a backup of this database whose manifest cannot be read).
    pub warnings: Vec<Problem>,
    /// The newest backup that is committed and did not fail verification.
    pub newest_good: Option<String>,
    pub newest_good_age_seconds: Option<u64>,
    pub last_verified_ok_at: Option<Timestamp>,
    pub free_bytes: Option<u64>,
}

fn age(now: Timestamp, t: Timestamp) -> Duration {
    let secs = now.as_second().saturating_sub(t.as_second()).max(0);
    Duration::from_secs(secs as u64)
}

/// Verified `bad` (an inconclusive verification leaves a backup good, like an unverified one).
fn failed_verification(e: &Entry) -> bool {
    e.verification.as_ref().is_some_and(|v| v.is_bad())
}

/// Evaluate the health of `database`'s backups. `entries` is the listing (newest first).
pub fn evaluate(
    entries: &[Entry],
    database: &str,
    free_bytes: Option<u64>,
    backup_dir: &str,
    now: Timestamp,
    cfg: &CheckSettings,
) -> Health {
    let mine: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.database.as_deref() == Some(database))
        .collect();
    let committed: Vec<&Entry> = mine
        .iter()
        .copied()
        .filter(|e| e.status == Status::Good)
        .collect();
    let good: Vec<&Entry> = committed
        .iter()
        .copied()
        .filter(|e| !failed_verification(e))
        .collect();
    let mut problems = Vec::new();
    freshness(
        &mut problems,
        &committed,
        &good,
        database,
        backup_dir,
        now,
        cfg,
    );
    shrinking(&mut problems, &committed, cfg);
    left_out(&mut problems, &committed);
    newer_pg_dump(&mut problems, &committed);
    let last_ok = verification(&mut problems, &mine, &committed, database, now, cfg);
    free_space(&mut problems, &committed, free_bytes, backup_dir, cfg);
    let warnings = mine
        .iter()
        .filter_map(|e| {
            let why = e.unreadable.as_ref()?;
            Some(Problem {
                code: "unreadable-manifest",
                message: format!(
                    "the manifest of backup {} in {backup_dir} cannot be used ({why}): it is not counted, culled or restored",
                    e.id
                ),
            })
        })
        .collect();
    Health {
        ok: problems.is_empty(),
        database: database.to_string(),
        checked_at: now,
        newest_good: good.first().map(|e| e.id.clone()),
        newest_good_age_seconds: good.first().map(|e| age(now, e.time).as_secs()),
        last_verified_ok_at: last_ok,
        free_bytes,
        problems,
        warnings,
    }
}

/// No good backup, or the newest good one older than `max_age`.
fn freshness(
    problems: &mut Vec<Problem>,
    committed: &[&Entry],
    good: &[&Entry],
    database: &str,
    backup_dir: &str,
    now: Timestamp,
    cfg: &CheckSettings,
) {
    // Freshness.
    match good.first() {
        None => problems.push(Problem {
            code: "no-backup",
            message: format!(
                "no good backup of database \"{database}\" in {backup_dir}{}",
                if committed.is_empty() {
                    String::new()
                } else {
                    format!(" ({} backup(s) verified bad)", committed.len() - good.len())
                }
            ),
        }),
        Some(g) if age(now, g.time) > cfg.max_age => problems.push(Problem {
            code: "stale",
            message: format!(
                "the newest good backup of \"{database}\" is {} old, more than the allowed {}: {}",
                report::human_duration(age(now, g.time)),
                report::human_duration(cfg.max_age),
                g.id
            ),
        }),
        Some(_) => {}
    }
}

/// The newest committed backup lacks objects of the database: pg_dump warned that it left
/// them out (subscriptions skipped for a non-superuser, and the like).
fn left_out(problems: &mut Vec<Problem>, committed: &[&Entry]) {
    if let Some(n) = committed.first().and_then(|e| e.manifest.as_ref())
        && !n.warnings.is_empty()
    {
        problems.push(Problem {
            code: "incomplete",
            message: format!(
                "the newest backup {} is missing objects of the database: pg_dump {}",
                n.id,
                n.warnings.join("; ")
            ),
        });
    }
}

/// The newest committed backup was written by a pg_dump newer than its server (none of the
/// server's major was installed): pg_dump does not promise that such a file loads into the
/// older server, so pgkeep's restore has to leave out what it knows that server refuses.
fn newer_pg_dump(problems: &mut Vec<Problem>, committed: &[&Entry]) {
    if let Some(n) = committed.first().and_then(|e| e.manifest.as_ref())
        && n.newer_pg_dump
    {
        problems.push(Problem {
            code: "newer-pg-dump",
            message: format!(
                "the newest backup {} was written by pg_dump {} for a PostgreSQL {} server: restores into a server of that major leave out what pg_dump writes for newer ones (SET transaction_timeout); install the pg_dump of PostgreSQL {}",
                n.id,
                n.pg_dump_version,
                n.server_version,
                n.server_major()
            ),
        });
    }
}

fn shrinking(problems: &mut Vec<Problem>, committed: &[&Entry], cfg: &CheckSettings) {
    // Shrinking: the newest committed backup against the one before, when comparable.
    if cfg.min_size_ratio > 0.0
        && let [newest, previous, ..] = committed
        && let (Some(n), Some(p)) = (&newest.manifest, &previous.manifest)
        && n.format == p.format
        && p.raw_bytes > 0
    {
        let ratio = n.raw_bytes as f64 / p.raw_bytes as f64;
        if ratio < cfg.min_size_ratio {
            let what = if n.format == Format::Plain {
                "of dump text"
            } else {
                "of archive"
            };
            problems.push(Problem {
                code: "shrunk",
                message: format!(
                    "the newest backup {} is {:.0}% of the size of the one before ({} vs {} {what}; the minimum ratio is {})",
                    n.id,
                    ratio * 100.0,
                    report::human_bytes(n.raw_bytes),
                    report::human_bytes(p.raw_bytes),
                    cfg.min_size_ratio
                ),
            });
        }
    }
}

/// The last verification failed, or none succeeded recently enough. Returns when one last
/// succeeded.
fn verification(
    problems: &mut Vec<Problem>,
    mine: &[&Entry],
    committed: &[&Entry],
    database: &str,
    now: Timestamp,
    cfg: &CheckSettings,
) -> Option<Timestamp> {
    // Verification: the most recent one must have passed, and one must be recent enough.
    let verified: Vec<(&Entry, &crate::catalog::Verification)> = mine
        .iter()
        .filter_map(|e| e.verification.as_ref().map(|v| (*e, v)))
        .collect();
    let last = verified.iter().max_by_key(|(_, v)| v.checked_at);
    if let Some((e, v)) = last
        && v.verdict() == crate::model::Verdict::Inconclusive
    {
        problems.push(Problem {
            code: "verify-inconclusive",
            message: format!(
                "the last verification (at {}) could not prove {} [{}]: {} (the backup is kept like an unverified one)",
                v.checked_at
                    .round(jiff::Unit::Second)
                    .unwrap_or(v.checked_at),
                e.id,
                v.failure.as_deref().unwrap_or("?"),
                v.message
            ),
        });
    }
    if let Some((e, v)) = last
        && v.is_bad()
    {
        problems.push(Problem {
            code: "verify-failed",
            message: format!(
                "the last verification (at {}) failed for {}: {}",
                v.checked_at
                    .round(jiff::Unit::Second)
                    .unwrap_or(v.checked_at),
                e.id,
                v.message
            ),
        });
    }
    let last_ok = verified
        .iter()
        .filter(|(_, v)| v.ok)
        .map(|(_, v)| v.checked_at)
        .max();
    if let Some(max) = cfg.verify_max_age {
        match last_ok {
            None if !committed.is_empty() => problems.push(Problem {
                code: "verify-stale",
                message: if verified.is_empty() {
                    format!(
                        "no backup of \"{database}\" has ever been verified (run `pgkeep verify`; a good verification is required every {})",
                        report::human_duration(max)
                    )
                } else {
                    format!(
                        "no backup of \"{database}\" has verified good yet (a good verification is required every {})",
                        report::human_duration(max)
                    )
                },
            }),
            Some(t) if age(now, t) > max => problems.push(Problem {
                code: "verify-stale",
                message: format!(
                    "the last successful verification of a \"{database}\" backup was {} ago, more than the allowed {}",
                    report::human_duration(age(now, t)),
                    report::human_duration(max)
                ),
            }),
            _ => {}
        }
    }
    last_ok
}

fn free_space(
    problems: &mut Vec<Problem>,
    committed: &[&Entry],
    free_bytes: Option<u64>,
    backup_dir: &str,
    cfg: &CheckSettings,
) {
    // Free space.
    let threshold = match cfg.min_free {
        MinFree::Off => None,
        MinFree::Bytes(n) => Some(n),
        MinFree::Auto => committed.first().map(|e| e.stored_bytes.saturating_mul(2)),
    };
    if let (Some(min), Some(free)) = (threshold, free_bytes)
        && free < min
    {
        problems.push(Problem {
            code: "low-space",
            message: format!(
                "only {} free in {backup_dir}, below the threshold of {}{}",
                report::human_bytes(free),
                report::human_bytes(min),
                if cfg.min_free == MinFree::Auto {
                    " (twice the newest backup)"
                } else {
                    ""
                }
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(
            report::human_duration(Duration::from_secs(8 * 86_400)),
            "8d"
        );
        assert_eq!(
            report::human_duration(Duration::from_secs(26 * 3600)),
            "1d 2h"
        );
        assert_eq!(
            report::human_duration(Duration::from_secs(3600 + 300)),
            "1h 5m"
        );
        assert_eq!(report::human_duration(Duration::from_secs(120)), "2m");
        assert_eq!(report::human_duration(Duration::from_secs(42)), "42s");
    }

    /// A store that cannot tell its free space (an object store) never makes a `low-space`
    /// problem; one that can is held to the threshold.
    #[test]
    fn unknown_free_space_is_not_low_space() {
        let cfg = CheckSettings {
            max_age: Duration::from_secs(3600),
            min_size_ratio: 0.0,
            verify_max_age: None,
            min_free: MinFree::Bytes(1000),
        };
        let mut problems = Vec::new();
        free_space(&mut problems, &[], None, "s3://b/p", &cfg);
        assert!(problems.is_empty());
        free_space(&mut problems, &[], Some(5000), "/backups", &cfg);
        assert!(problems.is_empty());
        free_space(&mut problems, &[], Some(10), "/backups", &cfg);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "low-space");
        assert!(
            problems[0].message.contains("/backups"),
            "{}",
            problems[0].message
        );
    }
}
