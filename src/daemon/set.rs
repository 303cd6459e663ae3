//! The databases `pgkeep run` backs up: one, or the `databases` set read again from the server at
//! every run (a database added is picked up, one gone is reported and its backups kept); the
//! schedules they run on (one for the set, a database's own from `database_schedules`); and one
//! run of a schedule: its databases a bounded number at a time (`parallel_databases`), each with
//! its own lock, culling and notifications, then the server's globals once; one database failing
//! never stops the others.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;

use super::scope::{Known, Scope, metric_label};
use super::state::{Daemon, StartError, Trigger};
use crate::catalog::{GLOBALS, GLOBALS_LABEL};
use crate::model::schedule::Schedule;
use crate::notify::{Event, Operation, Outcome};

/// A schedule and the databases on it.
#[derive(Debug, Clone)]
pub struct Group {
    pub schedule: Schedule,
    /// A database on a schedule of its own; `None`: every other database, and the globals.
    pub own: Option<String>,
}

/// How one run of a schedule ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Every backup succeeded (or was skipped for another run).
    Done,
    /// These failed ([`GLOBALS`] for the globals); a retry backs up only these.
    Failed(Vec<String>),
    /// The set could not be read from the server: nothing was backed up.
    Unread,
}

impl Daemon {
    /// Whether a run of the set records the server's globals too.
    pub fn has_globals(&self) -> bool {
        matches!(self.scope(), Scope::Set(_))
    }

    /// The schedules: the set's, and one for each database of `database_schedules`.
    pub fn groups(&self) -> Vec<Group> {
        let s = self.settings();
        let mut groups = vec![Group {
            schedule: s.schedule.clone(),
            own: None,
        }];
        groups.extend(s.database_schedules.iter().map(|(db, schedule)| Group {
            schedule: schedule.clone(),
            own: Some(db.clone()),
        }));
        groups
    }

    /// The schedule `db` is backed up on.
    pub fn schedule_of(&self, db: &str) -> &Schedule {
        let s = self.settings();
        s.database_schedules
            .iter()
            .find(|(n, _)| n == db)
            .map_or(&s.schedule, |(_, sch)| sch)
    }

    /// Whether `db` (a database, or [`GLOBALS`]) is backed up on `group`'s schedule.
    pub fn in_group(&self, group: &Group, db: &str) -> bool {
        match &group.own {
            Some(own) => own == db,
            None => !self
                .settings()
                .database_schedules
                .iter()
                .any(|(n, _)| n == db),
        }
    }

    /// The databases this daemon backs up, as last read.
    pub fn databases(&self) -> Vec<String> {
        self.known.lock().expect("known lock").databases.clone()
    }

    /// What the set meant at its last reading.
    pub fn known(&self) -> Known {
        self.known.lock().expect("known lock").clone()
    }

    /// The newest backup of `group`'s databases that is the most behind (`None` when one has
    /// no backup), for the catch-up at start. The globals do not count.
    pub fn group_last(
        &self,
        group: &Group,
        newest: &std::collections::BTreeMap<String, Timestamp>,
    ) -> Option<Timestamp> {
        let members: Vec<String> = self
            .databases()
            .into_iter()
            .filter(|db| self.in_group(group, db))
            .collect();
        if members.is_empty() {
            return None;
        }
        members
            .iter()
            .map(|db| newest.get(db).copied())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    /// Read the set again from the server (the one database needs no reading). A database gone
    /// from the server is reported; its backups are never culled for it.
    pub async fn resolve(&self) -> Result<Known, String> {
        let set = match self.scope() {
            Scope::One(_) => return Ok(self.known()),
            Scope::Set(set) => set.clone(),
        };
        let sel = crate::databases::resolve_stored(self.settings(), &set)
            .await
            .map_err(|e| e.to_string())?;
        for db in &sel.gone {
            tracing::warn!(database = %db, "{}", crate::databases::gone_note(db));
        }
        let known = Known {
            databases: sel.databases,
            gone: sel.gone,
            missing: sel.missing,
        };
        {
            let verify = self.settings().verify_schedule.is_some();
            let mut m = self.metrics.lock().expect("metrics lock");
            for db in &known.databases {
                let d = m.db(db);
                d.verify_scheduled = verify;
                d.gone = false;
            }
            for db in &known.gone {
                m.db(db).gone = true;
            }
            m.db(GLOBALS_LABEL);
        }
        *self.known.lock().expect("known lock") = known.clone();
        Ok(known)
    }

    /// One run of `group`'s schedule: the set read again, its databases backed up
    /// `parallel_databases` at a time, then (for the set's schedule) the globals. `only`: the
    /// databases a retry backs up. `None` at shutdown.
    pub async fn run_group(
        self: &Arc<Self>,
        group: &Group,
        trigger: Trigger,
        only: Option<&[String]>,
    ) -> Option<Ran> {
        let wanted = |db: &str| only.is_none_or(|o| o.iter().any(|x| x == db));
        let known = match self.resolve().await {
            Ok(k) => k,
            Err(e) => {
                let msg = format!("cannot read the databases of the set: {e}");
                tracing::error!(error = %msg, "scheduled backup could not start");
                self.tell(Event::new(
                    Operation::Backup,
                    Outcome::Failure,
                    None,
                    &self.settings().host,
                    msg,
                ));
                return Some(Ran::Unread);
            }
        };
        let mut failed = Vec::new();
        let mut absent: Vec<(String, &str)> = known
            .missing
            .iter()
            .filter(|db| self.in_group(group, db))
            .map(|db| {
                (
                    db.clone(),
                    "is named in `databases` but does not exist on the server",
                )
            })
            .collect();
        if let Some(own) = &group.own
            && !known.databases.contains(own)
            && !known.missing.contains(own)
        {
            absent.push((
                own.clone(),
                "has a schedule of its own (database_schedules) but is not in the set",
            ));
        }
        for (db, why) in absent.into_iter().filter(|(db, _)| wanted(db)) {
            self.record_absent(&db, trigger, why);
            failed.push(db);
        }
        let dbs: Vec<String> = known
            .databases
            .into_iter()
            .filter(|db| self.in_group(group, db) && wanted(db))
            .collect();
        let parallel = self.settings().parallel_databases.max(1);
        let results: Vec<(String, Option<bool>)> = futures::stream::iter(dbs)
            .map(|db| async move {
                let r = self.attempt(&db, trigger).await;
                (db, r)
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        for (db, r) in results {
            match r {
                None => return None,
                Some(true) => failed.push(db),
                Some(false) => {}
            }
        }
        if group.own.is_none() && self.has_globals() && wanted(GLOBALS) {
            match self.attempt(GLOBALS, trigger).await {
                None => return None,
                Some(true) => failed.push(GLOBALS.to_string()),
                Some(false) => {}
            }
        }
        Some(if failed.is_empty() {
            Ran::Done
        } else {
            Ran::Failed(failed)
        })
    }

    /// Run one backup of `db` to its end: `Some(true)` when it failed (worth a retry),
    /// `Some(false)` when it succeeded or was skipped for another run, `None` at shutdown.
    async fn attempt(self: &Arc<Self>, db: &str, trigger: Trigger) -> Option<bool> {
        match self.start_backup(db, trigger) {
            Ok((_, handle)) => Some(handle.await.map_or(true, |a| a.result == "failure")),
            Err(StartError::Busy { running, .. }) => {
                let mut m = self.metrics.lock().expect("metrics lock");
                *m.db(metric_label(db)).results.entry("skipped").or_default() += 1;
                tracing::warn!(database = %metric_label(db), running = %running, "scheduled backup skipped: a backup is already running");
                Some(false)
            }
            Err(StartError::ShuttingDown) => None,
            Err(StartError::Failed(e)) => {
                tracing::error!(database = %metric_label(db), error = %e, "scheduled backup could not start");
                Some(true)
            }
        }
    }

    /// A database of the run that is not on the server: logged, notified, counted as a failed
    /// attempt and shown among the failures.
    fn record_absent(&self, db: &str, trigger: Trigger, why: &str) {
        let s = self.settings();
        let msg = format!("backup of database \"{db}\" failed: database \"{db}\" {why}");
        tracing::error!(database = %db, error = %msg, "backup failed");
        self.tell(Event::new(
            Operation::Backup,
            Outcome::Failure,
            Some(db),
            &s.host,
            msg.clone(),
        ));
        let now = self.now();
        let mut m = self.metrics.lock().expect("metrics lock");
        let d = m.db(db);
        d.last_attempt = Some(now.as_millisecond() as f64 / 1000.0);
        d.last_attempt_ok = Some(false);
        *d.results.entry("failure").or_default() += 1;
        drop(m);
        self.record_failed(db, trigger, now, msg);
    }
}
