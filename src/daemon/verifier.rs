//! Scheduled verification in `pgkeep run` (`verify_schedule`): at every tick the newest backup of
//! each of the daemon's databases is verified at checksum level and the result recorded beside
//! it, as `pgkeep verify` does. When the newest backup is older than the backup schedule allows,
//! that is reported loudly (error log, metric, failure notification) instead of re-verifying an
//! old file: a verification that keeps passing on last month's backup would hide that backups
//! stopped.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::state::{Daemon, local};
use crate::config::Source;
use crate::model::schedule::Schedule;
use crate::notify::{Event, Operation, Outcome};
use crate::verify::{self, Record, VerifyError};

/// How old the newest backup may be at `now`: `max_age` when it is configured explicitly
/// (`check_max_age`), otherwise twice the backup interval: for a cron schedule the time between
/// the two scheduled runs before `now`, for a fixed period the period. So one missed or failed
/// run is tolerated, two are not.
pub fn allowed_age(
    backup_schedule: &Schedule,
    max_age: Option<Duration>,
    now: Timestamp,
) -> SignedDuration {
    if let Some(d) = max_age {
        return SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    }
    let interval = match backup_schedule {
        Schedule::Every { period, .. } => *period,
        Schedule::Cron { .. } => {
            let last = backup_schedule.previous(now);
            let before =
                last.and_then(|l| backup_schedule.previous(l - SignedDuration::from_secs(1)));
            match (last, before) {
                (Some(l), Some(b)) => l.duration_since(b),
                // No two runs before `now` (a schedule that starts later): the next gap instead.
                _ => {
                    let n1 = backup_schedule.next_after(now).unwrap_or(now);
                    let n2 = backup_schedule.next_after(n1).unwrap_or(n1);
                    n2.duration_since(n1)
                }
            }
        }
    };
    interval.checked_mul(2).unwrap_or(SignedDuration::MAX)
}

/// Why the newest backup is not worth verifying: there is none, or it started more than
/// `allowed` before `now`. `None`: it is recent enough.
pub fn too_old(
    database: &str,
    newest: Option<Timestamp>,
    now: Timestamp,
    allowed: SignedDuration,
) -> Option<String> {
    let Some(t) = newest else {
        return Some(format!(
            "there is no backup of database \"{database}\" to verify"
        ));
    };
    let age = now.duration_since(t);
    (age > allowed).then(|| {
        format!(
            "the newest backup of database \"{database}\" started {} ago ({t}), longer than the {} the backup schedule allows: backups are not being made",
            human(age),
            human(allowed)
        )
    })
}

fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, rest) = (rest / 3600, rest % 3600);
    let (m, s) = (rest / 60, rest % 60);
    match (days, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{days}d{h}h"),
    }
}

/// What one tick found.
enum Tick {
    TooOld {
        reason: String,
        newest: Option<String>,
    },
    Verified {
        rec: Box<Record>,
        unrecorded: Option<VerifyError>,
    },
}

impl Daemon {
    /// Verify on `schedule` until shutdown. A tick that comes while a backup is being written
    /// waits for it, so the file just committed is the one verified.
    pub async fn verify_loop(self: Arc<Self>, schedule: Schedule) {
        let mut at = schedule
            .next_after(self.now())
            .unwrap_or_else(|| self.now());
        tracing::info!(next_verify = %local(&at, self.settings()), "next verification scheduled");
        loop {
            {
                let mut m = self.metrics.lock().expect("metrics lock");
                for db in self.databases() {
                    m.db(&db).next_verify = Some(at.as_millisecond() as f64 / 1000.0);
                }
            }
            if !self.sleep_until(at).await {
                break;
            }
            self.idle().await;
            if self.shutdown.reason().is_some() {
                break;
            }
            let started = self.now();
            // Each database of the set in turn; one failing never stops the others.
            for db in self.databases() {
                if self.shutdown.reason().is_some() {
                    break;
                }
                self.verify_newest(&db).await;
            }
            self.refresh_catalog().await;
            if self.shutdown.reason().is_some() {
                break;
            }
            at = schedule.after_run(started, self.now());
        }
    }

    /// One scheduled verification of the newest backup of `db`.
    pub async fn verify_newest(self: &Arc<Self>, db: &str) {
        let s = self.opts.settings.clone();
        let db = db.to_string();
        let now = self.now();
        let explicit = !matches!(s.source("check_max_age"), Source::Default);
        let allowed = allowed_age(
            self.schedule_of(&db),
            explicit.then_some(s.check.max_age),
            now,
        );
        let search = crate::pg::tools::Search {
            bindir: s.pg_bindir.clone(),
            path_env: self.opts.path_env.clone(),
        };
        let child_env = self.opts.child_env.clone();
        let clock = self.opts.clock;
        let shutdown = self.shutdown.clone();
        let manifest_keys = s.manifest_keys.clone();
        let identities = s.age_identities.clone();
        let dbname = db.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<Tick, VerifyError> {
            let store = crate::storage::open(&s.backup_dir, &s.s3)?;
            let newest = verify::targets(&*store, Some(&s.host), now)?
                .into_iter()
                .find(|t| !t.settling && t.database.as_deref() == Some(dbname.as_str()));
            if let Some(reason) = too_old(&dbname, newest.as_ref().map(|t| t.time), now, allowed) {
                return Ok(Tick::TooOld {
                    reason,
                    newest: newest.map(|t| t.file),
                });
            }
            let target = newest.expect("too_old reports a missing backup");
            let req = verify::Request {
                store: &*store,
                level: verify::Level::Checksum,
                search,
                child_env,
                now: clock,
                shutdown,
                progress: crate::model::Progress::none(),
                manifest_keys,
                identities,
            };
            let rec = verify::verify(&req, &target)?;
            let unrecorded = verify::record(&*store, &rec).err();
            Ok(Tick::Verified {
                rec: Box::new(rec),
                unrecorded,
            })
        })
        .await;
        let Some((result, too_old_now)) = self.outcome(res, &db, allowed) else {
            return;
        };
        let mut m = self.metrics.lock().expect("metrics lock");
        let d = m.db(&db);
        *d.verify_results.entry(result).or_default() += 1;
        if too_old_now.is_some() {
            d.verify_newest_too_old = too_old_now;
        }
    }

    /// Log and notify what one tick found; the result label and whether the newest backup was
    /// too old (`None` when the tick was interrupted and counts for nothing).
    fn outcome(
        &self,
        res: Result<Result<Tick, VerifyError>, tokio::task::JoinError>,
        db: &str,
        allowed: SignedDuration,
    ) -> Option<(&'static str, Option<bool>)> {
        let host = self.settings().host.clone();
        Some(match res {
            Ok(Ok(Tick::TooOld { reason, newest })) => {
                tracing::error!(
                    database = %db,
                    newest = newest.as_deref().unwrap_or("(none)"),
                    allowed = %format!("{}s", allowed.as_secs()),
                    error = %reason,
                    "scheduled verification: the newest backup is too old"
                );
                let mut e =
                    Event::new(Operation::Verify, Outcome::Failure, Some(db), &host, reason);
                if let Some(f) = newest {
                    e = e.detail("file", f);
                }
                self.tell(e.detail("failure", "too-old"));
                ("too_old", Some(true))
            }
            Ok(Ok(Tick::Verified { rec, unrecorded })) => {
                if let Some(e) = unrecorded {
                    tracing::warn!(id = %rec.id, error = %e, "cannot record the result beside the backup");
                }
                self.tell_verified(&rec, db)
            }
            Ok(Err(VerifyError::Interrupted(r))) => {
                tracing::info!(reason = r.name(), "scheduled verification interrupted");
                return None;
            }
            Ok(Err(e)) => {
                let msg = format!("scheduled verification of database \"{db}\" could not run: {e}");
                tracing::error!(database = %db, error = %msg, "scheduled verification could not run");
                self.tell(Event::new(
                    Operation::Verify,
                    Outcome::Failure,
                    Some(db),
                    &host,
                    msg,
                ));
                ("error", None)
            }
            Err(e) => {
                tracing::error!(database = %db, error = %e, "scheduled verification task failed");
                ("error", None)
            }
        })
    }

    /// Log and notify a scheduled verification that ran.
    fn tell_verified(&self, rec: &Record, db: &str) -> (&'static str, Option<bool>) {
        let host = &self.settings().host;
        if rec.ok {
            tracing::info!(
                database = %db,
                id = %rec.id,
                file = %rec.file,
                duration = %format!("{:.1}s", rec.duration_seconds),
                result = %rec.message,
                "scheduled verification passed"
            );
            self.tell(
                Event::new(
                    Operation::Verify,
                    Outcome::Success,
                    Some(db),
                    host,
                    format!("backup {} verified: {}", rec.id, rec.message),
                )
                .detail("file", rec.file.clone()),
            );
            ("ok", Some(false))
        } else if rec.verdict() == crate::model::Verdict::Inconclusive {
            tracing::warn!(
                database = %db,
                id = %rec.id,
                file = %rec.file,
                failure = rec.failure.as_deref().unwrap_or(""),
                reason = %rec.message,
                "scheduled verification inconclusive: the backup is kept like an unverified one"
            );
            self.tell(
                Event::new(
                    Operation::Verify,
                    Outcome::Failure,
                    Some(db),
                    host,
                    format!(
                        "backup {} could not be verified (inconclusive; it is kept): {}",
                        rec.id, rec.message
                    ),
                )
                .detail("file", rec.file.clone())
                .detail("verdict", "inconclusive")
                .detail("failure", rec.failure.clone().unwrap_or_default()),
            );
            ("inconclusive", Some(false))
        } else {
            tracing::error!(
                database = %db,
                id = %rec.id,
                file = %rec.file,
                failure = rec.failure.as_deref().unwrap_or(""),
                error = %rec.message,
                "scheduled verification failed"
            );
            self.tell(
                Event::new(
                    Operation::Verify,
                    Outcome::Failure,
                    Some(db),
                    host,
                    format!("backup {} is bad: {}", rec.id, rec.message),
                )
                .detail("file", rec.file.clone())
                .detail("verdict", "bad")
                .detail("failure", rec.failure.clone().unwrap_or_default()),
            );
            ("failed", Some(false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schedule::parse_tz;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn allowed_age_is_two_backup_intervals_or_the_configured_max_age() {
        let tz = parse_tz("Europe/Berlin").unwrap();
        let daily = Schedule::cron("0 1 * * *", tz.clone(), "Europe/Berlin").unwrap();
        let now = ts("2026-11-25T12:00:00Z");
        assert_eq!(
            allowed_age(&daily, None, now),
            SignedDuration::from_hours(48)
        );
        // Across the fall-back night the real gap is 25 hours.
        let over_dst = ts("2026-10-26T12:00:00Z");
        assert_eq!(
            allowed_age(&daily, None, over_dst),
            SignedDuration::from_hours(50)
        );
        let six_hourly = Schedule::cron("0 */6 * * *", tz, "Europe/Berlin").unwrap();
        assert_eq!(
            allowed_age(&six_hourly, None, now),
            SignedDuration::from_hours(12)
        );
        let every = Schedule::every(std::time::Duration::from_secs(12 * 3600), "12h").unwrap();
        assert_eq!(
            allowed_age(&every, None, now),
            SignedDuration::from_hours(24)
        );
        assert_eq!(
            allowed_age(&daily, Some(Duration::from_secs(3600)), now),
            SignedDuration::from_hours(1)
        );
    }

    #[test]
    fn the_newest_backup_is_too_old_after_two_missed_runs() {
        let daily = Schedule::cron("0 1 * * *", parse_tz("UTC").unwrap(), "UTC").unwrap();
        let backup = ts("2026-11-23T01:00:05Z");
        // An injected clock walks past the next two scheduled runs.
        let at = |now: &str| {
            let now = ts(now);
            too_old("sbi", Some(backup), now, allowed_age(&daily, None, now))
        };
        assert_eq!(at("2026-11-23T12:00:00Z"), None);
        // One missed run (the 24th) is tolerated.
        assert_eq!(at("2026-11-24T12:00:00Z"), None);
        assert_eq!(at("2026-11-25T01:00:04Z"), None);
        // The second missed run makes it too old.
        let why = at("2026-11-25T01:00:06Z").expect("too old");
        assert!(why.contains("\"sbi\""), "{why}");
        assert!(why.contains("2d0h ago"), "{why}");
        assert!(why.contains("longer than the 2d0h"), "{why}");
        let why = too_old("sbi", None, ts("2026-11-25T01:00:00Z"), SignedDuration::MAX)
            .expect("no backup");
        assert!(why.contains("no backup"), "{why}");
    }
}
