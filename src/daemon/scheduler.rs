//! The schedule loop of `pgkeep run`: back up at every run of the schedule (catching up a run
//! missed while down), sleeping on the wall clock so a clock jump or a suspended host does not
//! shift it, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::state::{Daemon, StartError, Trigger, local};
use crate::model::schedule::{Next, Schedule};

impl Daemon {
    fn set_next_run(&self, at: Timestamp) {
        self.metrics
            .lock()
            .expect("metrics lock")
            .db(self.database())
            .next_run = Some(at.as_millisecond() as f64 / 1000.0);
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

    /// The schedule loop: runs until shutdown.
    pub async fn schedule_loop(self: Arc<Self>, last_backup: Option<Timestamp>) {
        let schedule: Schedule = self.settings().schedule.clone();
        let mut next: Next = schedule.at_start(self.now(), last_backup);
        match &next.catch_up {
            Some(why) => tracing::info!(reason = %why, "catching up: backing up now"),
            None => {
                tracing::info!(next_run = %local(&next.at, self.settings()), "next backup scheduled")
            }
        }
        loop {
            self.set_next_run(next.at);
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
            match self.start_backup(trigger) {
                Ok((_, handle)) => {
                    let _ = handle.await;
                }
                Err(StartError::Busy { running, .. }) => {
                    let mut m = self.metrics.lock().expect("metrics lock");
                    *m.db(self.database()).results.entry("skipped").or_default() += 1;
                    tracing::warn!(running = %running, "scheduled backup skipped: a backup is already running");
                }
                Err(StartError::ShuttingDown) => break,
                Err(StartError::Failed(e)) => {
                    tracing::error!(error = %e, "scheduled backup could not start");
                }
            }
            if self.shutdown.reason().is_some() {
                break;
            }
            next = Next {
                at: schedule.after_run(started, self.now()),
                catch_up: None,
            };
            tracing::info!(next_run = %local(&next.at, self.settings()), "next backup scheduled");
        }
    }
}
