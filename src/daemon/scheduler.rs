//! The schedule loops of `pgkeep run`: back up at every run of a schedule (the set's, or a
//! database's own; catching up a run missed while down), sleeping on the wall clock so a clock
//! jump or a suspended host does not shift it, until shutdown. A failed scheduled or catch-up
//! backup is retried with backoff (`retry_delay`, doubled after each failure), never at or past
//! the next scheduled run; a retry backs up only the databases that failed.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::scope::{label, metric_label};
use super::set::{Group, Ran};
use super::state::{Daemon, Trigger, local};
use crate::catalog::GLOBALS;
use crate::model::schedule::{Next, Schedule};

impl Daemon {
    /// Show `at` as the next run of every database (and the globals) on `group`'s schedule.
    fn set_next_run(&self, group: &Group, at: Timestamp) {
        let mut names = self.databases();
        if group.own.is_none() && self.has_globals() {
            names.push(GLOBALS.to_string());
        }
        let mut m = self.metrics.lock().expect("metrics lock");
        for db in names.iter().filter(|db| self.in_group(group, db)) {
            m.db(metric_label(db)).next_run = Some(at.as_millisecond() as f64 / 1000.0);
        }
    }

    /// Sleep until the wall-clock time `at` (re-checked every minute, so a clock jump or a
    /// suspended host does not shift the schedule). False if shutdown came first.
    pub(super) async fn sleep_until(&self, at: Timestamp) -> bool {
        let mut shutdown = self.shutdown.clone();
        loop {
            let now = self.now();
            if now >= at {
                return true;
            }
            let left = at.duration_since(now).unsigned_abs();
            let step = left.min(Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.wait() => return false,
            }
        }
    }

    /// The schedule loop of `group`: runs until shutdown. `last_backup`: the newest backup of
    /// its databases that is the most behind, for the catch-up at start.
    pub async fn schedule_loop(self: Arc<Self>, group: Group, last_backup: Option<Timestamp>) {
        let schedule: Schedule = group.schedule.clone();
        let who = group.own.as_deref().map(label);
        let who = who.as_deref().unwrap_or("the set");
        let mut next: Next = schedule.at_start(self.now(), last_backup);
        match &next.catch_up {
            Some(why) => {
                tracing::info!(databases = who, reason = %why, "catching up: backing up now")
            }
            None => {
                tracing::info!(databases = who, next_run = %local(&next.at, self.settings()), "next backup scheduled")
            }
        }
        // Failures in a row, the scheduled run that ends their retries, and what they retry.
        let mut failures = 0u32;
        let mut retrying_until: Option<Timestamp> = None;
        let mut only: Option<Vec<String>> = None;
        loop {
            self.set_next_run(&group, next.at);
            if !self.sleep_until(next.at).await {
                tracing::info!("stopping: no new backups will start");
                break;
            }
            let trigger = if next.catch_up.is_some() {
                Trigger::CatchUp
            } else {
                Trigger::Schedule
            };
            let started = self.now();
            let Some(ran) = self.run_group(&group, trigger, only.as_deref()).await else {
                break;
            };
            if self.shutdown.reason().is_some() {
                break;
            }
            let now = self.now();
            let scheduled = match retrying_until {
                Some(at) if at > now => at,
                _ => schedule.after_run(started, now),
            };
            let failed = ran != Ran::Done;
            failures = if failed { failures + 1 } else { 0 };
            if failed
                && let Some(at) = retry_at(now, scheduled, self.settings().retry_delay, failures)
            {
                only = match ran {
                    Ran::Failed(dbs) => Some(dbs),
                    _ => only,
                };
                self.count_retries(only.as_deref());
                tracing::warn!(
                    databases = who,
                    retry_at = %local(&at, self.settings()),
                    delay = %format!("{}s", at.duration_since(now).as_secs()),
                    failures,
                    next_run = %local(&scheduled, self.settings()),
                    "backup failed: retrying"
                );
                retrying_until = Some(scheduled);
                next = Next {
                    at,
                    catch_up: next.catch_up,
                };
                continue;
            }
            retrying_until = None;
            only = None;
            next = Next {
                at: scheduled,
                catch_up: None,
            };
            tracing::info!(databases = who, next_run = %local(&next.at, self.settings()), "next backup scheduled");
        }
    }

    /// Count a retry for each database it backs up again (`None`: the whole set).
    fn count_retries(&self, only: Option<&[String]>) {
        let names = only.map_or_else(|| self.databases(), <[String]>::to_vec);
        let mut m = self.metrics.lock().expect("metrics lock");
        for db in &names {
            m.db(metric_label(db)).retries += 1;
        }
    }
}

/// When the `failures`-th failure in a row is retried: `delay` doubled for each failure before
/// it, after `now`; `None` when retries are off (`delay` zero) or the retry would not come
/// before the `scheduled` run, which takes over.
fn retry_at(
    now: Timestamp,
    scheduled: Timestamp,
    delay: Duration,
    failures: u32,
) -> Option<Timestamp> {
    if delay.is_zero() || failures == 0 {
        return None;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    let wait = delay.checked_mul(factor)?;
    let at = now
        .checked_add(jiff::SignedDuration::try_from(wait).ok()?)
        .ok()?;
    (at < scheduled).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_and_stop_before_the_next_run() {
        let now: Timestamp = "2026-11-25T01:00:00Z".parse().unwrap();
        let next: Timestamp = "2026-11-25T02:00:00Z".parse().unwrap();
        let five = Duration::from_secs(300);
        let at = |n| retry_at(now, next, five, n).map(|t| t.duration_since(now).as_secs());
        assert_eq!(at(1), Some(300));
        assert_eq!(at(2), Some(600));
        assert_eq!(at(3), Some(1200));
        assert_eq!(at(4), Some(2400));
        // 80 minutes would pass the next scheduled run: that run takes over.
        assert_eq!(at(5), None);
        assert_eq!(at(40), None, "no overflow");
        assert_eq!(retry_at(now, next, Duration::ZERO, 1), None, "off");
        assert_eq!(
            retry_at(now, now + jiff::SignedDuration::from_secs(300), five, 1),
            None
        );
    }
}
