//! The state of every database's backups at a glance, from the catalog: the newest good backup and
//! its age, the verification verdicts, the health problems `pgkeep check` would report, the
//! history and the retention window. One pure function shared by the daemon's status page and
//! `pgkeep status`; the daemon adds what only it knows (the running backup, the next run, recent
//! failures).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::{Entry, Status};
use crate::check;
use crate::config::CheckSettings;
use crate::model::{Compression, Format, Policy};
use crate::retention;

/// How far back the history and the charts reach.
pub const HISTORY_DAYS: i64 = 28;

/// The verdict of one backup, as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Its last verification proved it.
    Good,
    /// Its last verification found it is not a restorable backup.
    Bad,
    /// Its last verification could not prove it either way: kept like an unverified backup.
    Inconclusive,
    /// Committed by pgkeep, never verified.
    Unverified,
    /// A file of the old backup pod, never verified.
    Legacy,
}

impl Verified {
    /// How a person reads the verdict: `good`, `BAD`, `inconclusive`.
    pub fn label(&self) -> &'static str {
        match self.verdict {
            Some(crate::model::Verdict::Good) => "good",
            Some(crate::model::Verdict::Inconclusive) => "inconclusive",
            Some(crate::model::Verdict::Bad) => "BAD",
            None if self.failure.is_some() => "BAD",
            None => "good",
        }
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unverified => "unverified",
            Verdict::Legacy => "legacy",
        }
    }
}

/// One backup in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub time: Timestamp,
    pub stored_bytes: u64,
    pub duration_seconds: Option<f64>,
    /// `plain+gzip`, `plain+zstd`, `plain`, `custom`.
    pub format: String,
    pub verdict: Verdict,
    /// What the last verification said (failure code and message, or what it proved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
}

/// The last verification of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub level: String,
    pub checked_at: Timestamp,
    /// `good`, `bad` or `inconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::model::Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub message: String,
}

/// Counts of the verdicts of a database's listed backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdicts {
    pub good: usize,
    pub bad: usize,
    #[serde(default)]
    pub inconclusive: usize,
    pub unverified: usize,
    pub legacy: usize,
}

/// The retention window: backups started before `cutoff` are culled unless a tier or the floor
/// keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<Timestamp>,
}

/// The backup a daemon is writing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Running {
    pub id: String,
    pub trigger: String,
    pub started_at: Timestamp,
    /// Dump bytes streamed so far.
    pub dumped_bytes: u64,
    /// The dump size of the newest good backup, to estimate how far this one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bytes: Option<u64>,
}

/// A backup attempt that failed, with its error line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub id: String,
    pub trigger: String,
    pub at: Timestamp,
    pub error: String,
}

/// A problem `pgkeep check` would report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `no-backup`, `stale`, `shrunk`, `verify-failed`, `verify-stale`, `low-space`.
    pub code: String,
    pub message: String,
}

/// Everything shown for one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub newest_good: Option<Row>,
    pub newest_good_age_seconds: Option<u64>,
    /// Dump size of the newest good backup (for the progress estimate of the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_good_raw_bytes: Option<u64>,
    pub verdicts: Verdicts,
    /// The most recent verification of any of the database's backups, and of which backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<(String, Verified)>,
    /// What `pgkeep check` would report.
    pub problems: Vec<Problem>,
    pub retention: Window,
    /// The backups of the last `HISTORY_DAYS` days, newest first (older ones only counted).
    pub history: Vec<Row>,
    pub older_backups: usize,
    /// Known to a running daemon only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// The state of every listed database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub generated_at: Timestamp,
    /// When the backup location was last read.
    pub catalog_read_at: Timestamp,
    pub backup_dir: String,
    /// Free bytes where backups are written; `None` when the store cannot tell.
    pub free_bytes: Option<u64>,
    pub databases: Vec<Database>,
}

/// What the summary is computed from.
pub struct Inputs<'a> {
    /// The listing of the backup location, newest first.
    pub entries: &'a [Entry],
    /// The databases to show, in this order (a database without backups is shown too).
    pub databases: &'a [String],
    pub free_bytes: Option<u64>,
    pub backup_dir: &'a str,
    pub policy: &'a Policy,
    pub timezone: &'a jiff::tz::TimeZone,
    pub check: &'a CheckSettings,
    pub catalog_read_at: Timestamp,
    pub now: Timestamp,
}

/// The summary of `inputs.databases` at `inputs.now`.
pub fn summarize(inputs: &Inputs) -> Summary {
    Summary {
        generated_at: inputs.now,
        catalog_read_at: inputs.catalog_read_at,
        backup_dir: inputs.backup_dir.to_string(),
        free_bytes: inputs.free_bytes,
        databases: inputs
            .databases
            .iter()
            .map(|db| database(inputs, db))
            .collect(),
    }
}

/// The format column: `plain+gzip`, `plain+zstd`, `plain`, `custom`.
pub fn format_name(format: Format, compression: Compression) -> String {
    match (format, compression) {
        (Format::Custom, _) => "custom".into(),
        (_, Compression::Gzip) => "plain+gzip".into(),
        (_, Compression::Zstd) => "plain+zstd".into(),
        (_, Compression::None) => "plain".into(),
    }
}

fn row(e: &Entry) -> Row {
    let verdict = match (&e.verification, e.status) {
        (Some(v), _) => match v.verdict() {
            crate::model::Verdict::Good => Verdict::Good,
            crate::model::Verdict::Bad => Verdict::Bad,
            crate::model::Verdict::Inconclusive => Verdict::Inconclusive,
        },
        (None, Status::Good) => Verdict::Unverified,
        (None, Status::Legacy) => Verdict::Legacy,
        // Not a backup (its manifest is missing); such files are left out of the page.
        (None, Status::Uncommitted) => Verdict::Bad,
    };
    Row {
        id: e.id.clone(),
        time: e.time,
        stored_bytes: e.stored_bytes,
        duration_seconds: e.duration_seconds,
        format: format_name(e.format, e.compression),
        verdict,
        verified: e.verification.as_ref().map(|v| Verified {
            level: v.level.clone(),
            checked_at: v.checked_at,
            verdict: Some(v.verdict()),
            failure: v.failure.clone(),
            message: v.message.clone(),
        }),
    }
}

fn database(inputs: &Inputs, name: &str) -> Database {
    let mine: Vec<&Entry> = inputs
        .entries
        .iter()
        .filter(|e| e.database.as_deref() == Some(name) && e.status != Status::Uncommitted)
        .collect();
    let rows: Vec<Row> = mine.iter().map(|e| row(e)).collect();
    let good = mine
        .iter()
        .find(|e| e.status == Status::Good && e.verification.as_ref().is_none_or(|v| !v.is_bad()));
    let mut verdicts = Verdicts::default();
    for r in &rows {
        match r.verdict {
            Verdict::Good => verdicts.good += 1,
            Verdict::Bad => verdicts.bad += 1,
            Verdict::Inconclusive => verdicts.inconclusive += 1,
            Verdict::Unverified => verdicts.unverified += 1,
            Verdict::Legacy => verdicts.legacy += 1,
        }
    }
    let last_verification = rows
        .iter()
        .filter_map(|r| r.verified.as_ref().map(|v| (r.id.clone(), v.clone())))
        .max_by_key(|(_, v)| v.checked_at);
    let health = check::evaluate(
        inputs.entries,
        name,
        inputs.free_bytes,
        inputs.backup_dir,
        inputs.now,
        inputs.check,
    );
    let since = inputs.now - SignedDuration::from_hours(24 * HISTORY_DAYS);
    let (history, older): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.time >= since);
    Database {
        name: name.to_string(),
        newest_good: good.map(|e| row(e)),
        newest_good_age_seconds: health.newest_good_age_seconds,
        newest_good_raw_bytes: good.and_then(|e| e.manifest.as_ref()).map(|m| m.raw_bytes),
        verdicts,
        last_verification,
        problems: health
            .problems
            .into_iter()
            .map(|p| Problem {
                code: p.code.to_string(),
                message: p.message,
            })
            .collect(),
        retention: window(&mine, inputs),
        history,
        older_backups: older.len(),
        next_run: None,
        running: None,
        failures: Vec::new(),
    }
}

/// The retention window of one database's backups: `keep_days` before the newest good backup
/// (the anchor retention measures from), else the oldest backup the policy keeps.
fn window(mine: &[&Entry], inputs: &Inputs) -> Window {
    let policy = inputs.policy.to_string();
    let now = inputs.now;
    if inputs.policy.keep_days > 0 {
        let past = || mine.iter().filter(|e| e.time <= now);
        let anchor = past()
            .find(|e| {
                e.status == Status::Good && e.verification.as_ref().is_none_or(|v| !v.is_bad())
            })
            .or_else(|| past().find(|e| e.status == Status::Legacy))
            .map(|e| e.time);
        let days = SignedDuration::from_hours(24 * i64::from(inputs.policy.keep_days));
        return Window {
            policy,
            cutoff: anchor.map(|a| a - days),
        };
    }
    let backups: Vec<retention::Backup> = mine
        .iter()
        .map(|e| retention::Backup {
            id: e.id.clone(),
            time: e.time,
            kind: match e.status {
                Status::Good => retention::Kind::Good,
                Status::Legacy | Status::Uncommitted => retention::Kind::Legacy,
            },
            verified: e.verification.as_ref().map(|v| v.verdict()),
        })
        .collect();
    let cutoff = retention::decide(&backups, now, inputs.policy, inputs.timezone)
        .ok()
        .and_then(|d| d.iter().filter(|d| d.verdict.keep()).map(|d| d.time).min());
    Window { policy, cutoff }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Verification;
    use crate::config::MinFree;

    fn entry(db: &str, time: Timestamp, verified: Option<bool>, status: Status) -> Entry {
        Entry {
            id: format!("h-{db}_{}", time.as_second()),
            time,
            database: Some(db.into()),
            database_unknown: None,
            format: Format::Plain,
            compression: Compression::Gzip,
            stored_bytes: 1000,
            duration_seconds: Some(1.5),
            status,
            file: format!("d/h-{db}_{}.sql.gz", time.as_second()),
            sha256: None,
            manifest: None,
            verification: verified.map(|ok| Verification {
                ok,
                verdict: None,
                level: "checksum".into(),
                checked_at: time + SignedDuration::from_hours(1),
                failure: (!ok).then(|| "truncated".into()),
                message: if ok { "proven" } else { "cut" }.into(),
            }),
        }
    }

    #[test]
    fn verdicts_newest_good_window_and_history_per_database() {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let days = |n: i64| now - SignedDuration::from_hours(24 * n);
        // Newest first, as the catalog lists them.
        let entries = vec![
            entry("a", days(1), Some(false), Status::Good),
            entry("b", days(1), None, Status::Good),
            entry("a", days(2), Some(true), Status::Good),
            entry("a", days(3), None, Status::Good),
            entry("a", days(40), None, Status::Legacy),
        ];
        let check = CheckSettings {
            max_age: std::time::Duration::from_secs(86_400 * 2),
            min_size_ratio: 0.0,
            verify_max_age: None,
            min_free: MinFree::Off,
        };
        let policy = Policy::default();
        let databases = vec!["a".to_string(), "none".to_string()];
        let s = summarize(&Inputs {
            entries: &entries,
            databases: &databases,
            free_bytes: None,
            backup_dir: "/b",
            policy: &policy,
            timezone: &jiff::tz::TimeZone::UTC,
            check: &check,
            catalog_read_at: now,
            now,
        });
        assert_eq!(s.databases.len(), 2);
        let a = &s.databases[0];
        // The newest is bad: the newest good one is the verified one of two days ago.
        assert_eq!(a.newest_good.as_ref().unwrap().time, days(2));
        assert_eq!(a.newest_good_age_seconds, Some(2 * 86_400));
        assert_eq!(
            a.verdicts,
            Verdicts {
                good: 1,
                bad: 1,
                inconclusive: 0,
                unverified: 1,
                legacy: 1
            }
        );
        assert_eq!(a.last_verification.as_ref().unwrap().0, entries[0].id);
        let verdicts: Vec<Verdict> = a.history.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts, [Verdict::Bad, Verdict::Good, Verdict::Unverified]);
        assert_eq!(a.older_backups, 1);
        // keep_days=10 from the newest good backup.
        assert_eq!(a.retention.cutoff, Some(days(12)));
        assert_eq!(a.retention.policy, "keep_days=10 keep_last=3");
        // A database without backups is shown with its problem.
        let none = &s.databases[1];
        assert!(none.newest_good.is_none() && none.history.is_empty());
        assert_eq!(none.problems[0].code, "no-backup");
    }
}
