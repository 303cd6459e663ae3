//! The shared state of a running daemon: its options, the running backup attempt and the
//! recent ones, the metrics, and the backup lifecycle (start, run, record, cull after a
//! committed backup). The schedule loop, the HTTP server and the scheduled verification drive it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::watch;

use super::catalog::CatalogCache;
use super::metrics::Metrics;
pub use super::scope::{Known, Scope, label, metric_label};
use crate::backup::{self, BackupError};
use crate::catalog::{self, GLOBALS, Status};
use crate::config::Settings;
use crate::lock::{Lock, LockError};
use crate::prune;
use crate::shutdown::{self, Shutdown};

/// How many finished attempts the API remembers.
const HISTORY: usize = 50;

/// What started a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    CatchUp,
    Api,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Api => "api",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

/// One backup attempt of this process, as shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub id: String,
    pub database: String,
    pub trigger: Trigger,
    pub status: AttemptStatus,
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While running: dump bytes streamed so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dumped_bytes: Option<u64>,
    /// How it ended, as counted in the metrics (`success`, `failure`, `aborted`, `skipped`);
    /// empty while it runs.
    #[serde(skip)]
    pub result: &'static str,
}

/// Why a backup could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// A backup of the database is running (in this process, or another holding the lock).
    Busy { running: String, id: Option<String> },
    /// The process is shutting down.
    ShuttingDown,
    /// The lock could not be checked.
    Failed(String),
}

/// Everything the daemon is started with.
pub struct Options {
    pub settings: Arc<Settings>,
    /// The databases it backs up.
    pub scope: Scope,
    /// The environment children may inherit (already filtered).
    pub child_env: Vec<(String, String)>,
    pub path_env: Option<OsString>,
    pub clock: fn() -> Timestamp,
}

/// The running attempts (by database) and the finished ones, newest first.
struct Attempts {
    running: std::collections::BTreeMap<String, Attempt>,
    history: VecDeque<Attempt>,
    /// Dump bytes streamed so far, by running attempt id.
    progress: std::collections::BTreeMap<String, Arc<AtomicU64>>,
}

/// The shared state of a running daemon.
pub struct Daemon {
    pub(super) opts: Options,
    pub(super) shutdown: Shutdown,
    state: Mutex<Attempts>,
    pub(super) metrics: Mutex<Metrics>,
    /// The listing of the backup location, kept for the status page.
    pub(super) catalog: CatalogCache,
    /// What the set meant at its last reading.
    pub(super) known: Mutex<Known>,
    /// How many backups are running.
    busy: watch::Sender<usize>,
    notifier: Arc<crate::notify::Notifier>,
}

impl Daemon {
    pub fn new(opts: Options, shutdown: Shutdown) -> Arc<Daemon> {
        let (busy, _) = watch::channel(0);
        let mut m = Metrics::default();
        let known = Known::start(&opts.scope);
        for db in &known.databases {
            m.db(db).verify_scheduled = opts.settings.verify_schedule.is_some();
        }
        let notifier = Arc::new(crate::notify::Notifier::from_settings(&opts.settings));
        Arc::new(Daemon {
            notifier,
            opts,
            shutdown,
            known: Mutex::new(known),
            state: Mutex::new(Attempts {
                running: Default::default(),
                history: VecDeque::new(),
                progress: Default::default(),
            }),
            metrics: Mutex::new(m),
            catalog: CatalogCache::default(),
            busy,
        })
    }

    /// Send a notification in the background: a slow or failing webhook never holds up the
    /// daemon (failures are logged by the notifier).
    pub(super) fn tell(&self, event: crate::notify::Event) {
        if self.notifier.is_configured() {
            tokio::spawn(self.notifier.clone().notify_async(event));
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.opts.settings
    }

    pub fn scope(&self) -> &Scope {
        &self.opts.scope
    }

    pub(super) fn now(&self) -> Timestamp {
        (self.opts.clock)()
    }

    /// The running attempts and the finished ones, newest first.
    pub fn attempts(&self) -> (Vec<Attempt>, Vec<Attempt>) {
        let s = self.state.lock().expect("state lock");
        let running = s
            .running
            .values()
            .cloned()
            .map(|mut a| {
                a.dumped_bytes = s.progress.get(&a.id).map(|p| p.load(Ordering::Relaxed));
                a
            })
            .collect();
        (running, s.history.iter().cloned().collect())
    }

    pub fn metrics_text(&self) -> String {
        let mut text = self.metrics.lock().expect("metrics lock").render();
        // Verification results come from the records beside the backups.
        let s = self.settings();
        match crate::storage::open(&s.backup_dir, &s.s3)
            .map_err(crate::verify::VerifyError::from)
            .and_then(|store| Ok((crate::verify::states(&*store)?, store.free_bytes())))
        {
            Ok((states, free)) => {
                text.push_str(&crate::verify::metrics_text(&states));
                text.push_str(&super::metrics::free_bytes_text(free));
            }
            Err(e) => tracing::debug!(error = %e, "no verification metrics"),
        }
        text
    }

    /// Fill the metrics from the catalog, so a restart does not reset "last success".
    /// Returns the start time of the newest backup (good or legacy) of each known database.
    pub fn load_catalog(&self) -> std::collections::BTreeMap<String, Timestamp> {
        let s = self.settings();
        let mut newest = std::collections::BTreeMap::new();
        let entries = crate::storage::open(&s.backup_dir, &s.s3)
            .map_err(|e| e.to_string())
            .and_then(|store| catalog::list(&*store, Some(&s.host)).map_err(|e| e.to_string()));
        let entries = match entries {
            Ok(e) => {
                self.catalog.store(e.clone(), self.now(), &s.backup_dir);
                e
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the backup catalog");
                return newest;
            }
        };
        let mut metrics = self.metrics.lock().expect("metrics lock");
        for db in self
            .databases()
            .iter()
            .chain(self.has_globals().then_some(&GLOBALS.to_string()))
        {
            let mine: Vec<_> = entries
                .iter()
                .filter(|e| e.database.as_deref() == Some(db.as_str()))
                .collect();
            if let Some(m) = mine
                .iter()
                .find(|e| e.status == Status::Good)
                .and_then(|e| e.manifest.as_ref())
            {
                let d = metrics.db(metric_label(db));
                d.last_success = Some(m.finished_at.as_millisecond() as f64 / 1000.0);
                d.last_duration = Some(m.duration_seconds);
                d.last_stored_bytes = Some(m.stored_bytes);
                d.last_raw_bytes = Some(m.raw_bytes);
            }
            if let Some(e) = mine.first() {
                newest.insert(db.clone(), e.time);
            }
        }
        newest
    }

    /// Start a backup now. Answers at once with its id; the returned handle resolves when the
    /// attempt has ended (committed, failed, or aborted at shutdown) and culling after it is done.
    /// `db` is a database of the daemon, or [`GLOBALS`] for the server's globals.
    pub fn start_backup(
        self: &Arc<Self>,
        db: &str,
        trigger: Trigger,
    ) -> Result<(String, tokio::task::JoinHandle<Attempt>), StartError> {
        if self.shutdown.reason().is_some() {
            return Err(StartError::ShuttingDown);
        }
        let s = self.settings();
        let db = db.to_string();
        let attempt = {
            let mut state = self.state.lock().expect("state lock");
            if let Some(r) = state.running.get(&db) {
                return Err(StartError::Busy {
                    running: format!(
                        "backup {} of {} ({} backup started {})",
                        r.id,
                        label(&r.database),
                        match r.trigger {
                            Trigger::Api => "API",
                            Trigger::Schedule => "scheduled",
                            Trigger::CatchUp => "catch-up",
                        },
                        catalog::second_of(r.started_at)
                    ),
                    id: Some(r.id.clone()),
                });
            }
            // Another process (`pgkeep backup` beside the daemon) may hold the lock.
            // (Checked without creating the lock file: the backup makes it once the database
            // proved to exist.)
            let lock_dir = crate::storage::lock_dir(&s.lock_dir)
                .map_err(|e| StartError::Failed(e.to_string()))?;
            let lock = match db == GLOBALS {
                true => crate::globals::lock_path(&lock_dir, &s.host),
                false => backup::lock_path(&lock_dir, &s.host, &db),
            };
            match Lock::holder(&lock) {
                Ok(None) => {}
                Ok(Some(holder)) => {
                    return Err(StartError::Busy {
                        running: holder,
                        id: None,
                    });
                }
                Err(e) => return Err(StartError::Failed(e.to_string())),
            }
            // Backup ids have a resolution of one second: a backup right after another in the
            // same second takes the next second instead of colliding with its name.
            // The store is asked too: a `pgkeep backup` beside the daemon may have taken the id.
            let store = crate::storage::open(&s.backup_dir, &s.s3).ok();
            let taken = |day: &str, id: &str| {
                store
                    .as_ref()
                    .is_some_and(|st| catalog::stem_taken(&**st, day, id).unwrap_or(false))
            };
            let stem = |at| match db == GLOBALS {
                true => crate::globals::stem(&s.host, at),
                false => catalog::backup_stem(&s.host, &db, at),
            };
            let mut started_at = self.now();
            let (mut day, mut id) = stem(started_at);
            while state.history.iter().any(|last| last.id == id) || taken(&day, &id) {
                started_at += jiff::SignedDuration::from_secs(1);
                (day, id) = stem(started_at);
            }
            let attempt = Attempt {
                id,
                database: db.clone(),
                trigger,
                status: AttemptStatus::Running,
                started_at,
                finished_at: None,
                file: None,
                stored_bytes: None,
                error: None,
                dumped_bytes: None,
                result: "",
            };
            state.running.insert(db.clone(), attempt.clone());
            attempt
        };
        self.busy.send_modify(|n| *n += 1);
        self.metrics
            .lock()
            .expect("metrics lock")
            .db(metric_label(&db))
            .running = true;
        let id = attempt.id.clone();
        let this = self.clone();
        let handle = tokio::spawn(async move { this.execute(attempt).await });
        Ok((id, handle))
    }

    async fn execute(self: Arc<Self>, mut attempt: Attempt) -> Attempt {
        // Whatever happens (even a panic in the task), the daemon does not stay "busy" forever.
        let _release = Release(self.clone(), attempt.database.clone(), attempt.id.clone());
        let s = self.opts.settings.clone();
        tracing::info!(
            database = %attempt.database,
            id = %attempt.id,
            trigger = attempt.trigger.name(),
            "backup started"
        );
        // The backup sees its own stop signal: fired only when the grace period after the
        // process's shutdown has passed.
        let (stop, stop_rx) = shutdown::channel();
        let grace = s.shutdown_grace;
        let mut process_shutdown = self.shutdown.clone();
        let id = attempt.id.clone();
        let progress_id = id.clone();
        let dumped = Arc::new(AtomicU64::new(0));
        self.state
            .lock()
            .expect("state lock")
            .progress
            .insert(id.clone(), dumped.clone());
        let watcher = tokio::spawn(async move {
            let reason = process_shutdown.wait().await;
            tracing::info!(
                id = %id,
                grace = %format!("{}s", grace.as_secs()),
                "{} received: letting the running backup finish within the grace period",
                reason.name()
            );
            tokio::time::sleep(grace).await;
            tracing::warn!(id = %id, "grace period over: aborting the running backup");
            stop.fire(reason);
        });
        let res = if attempt.database == GLOBALS {
            let req = crate::globals::Request {
                settings: &s,
                child_env: self.opts.child_env.clone(),
                path_env: self.opts.path_env.clone(),
                shutdown: stop_rx,
                now: self.opts.clock,
            };
            crate::globals::run(req).await
        } else {
            let req = backup::Request {
                settings: &s,
                database: attempt.database.clone(),
                child_env: self.opts.child_env.clone(),
                path_env: self.opts.path_env.clone(),
                shutdown: stop_rx,
                progress: crate::model::Progress::new(move |t| {
                    if t.phase == "dumping" {
                        dumped.store(t.bytes, Ordering::Relaxed)
                    }
                }),
                now: self.opts.clock,
            };
            backup::run_at(req, attempt.started_at).await
        };
        watcher.abort();
        let now = self.now();
        attempt.finished_at = Some(now);
        let secs = |t: Timestamp| t.as_millisecond() as f64 / 1000.0;
        let result = self.record_result(&res, &mut attempt, now);
        attempt.result = result;
        {
            let mut m = self.metrics.lock().expect("metrics lock");
            let d = m.db(metric_label(&attempt.database));
            d.last_attempt = Some(secs(now));
            if result == "success" || result == "failure" {
                d.last_attempt_ok = Some(result == "success");
            }
            *d.results.entry(result).or_default() += 1;
        }
        // Culling only after a committed backup, never after a failure.
        if res.is_ok() && self.shutdown.reason().is_none() {
            self.cull(&attempt.database).await;
            if attempt.database != GLOBALS {
                self.copy(&attempt.database).await;
            }
        }
        // The status page shows the new backup as soon as the attempt is no longer running.
        self.refresh_catalog().await;
        {
            let mut state = self.state.lock().expect("state lock");
            state.progress.remove(&progress_id);
            state.running.remove(&attempt.database);
            state.history.push_front(attempt.clone());
            state.history.truncate(HISTORY);
        }
        attempt
    }

    /// Log, notify and record in the attempt and the metrics how a backup attempt ended; the
    /// result label.
    fn record_result(
        &self,
        res: &Result<backup::Done, BackupError>,
        attempt: &mut Attempt,
        now: Timestamp,
    ) -> &'static str {
        let s = self.settings();
        let secs = |t: Timestamp| t.as_millisecond() as f64 / 1000.0;
        match res {
            Ok(done) => {
                crate::report::log_done(&done.manifest, &done.path);
                if let Some(note) = done.manifest.globals.as_ref().and_then(|g| g.note.as_ref()) {
                    tracing::warn!(id = %done.manifest.id, "{note}");
                }
                self.tell(crate::report::backup_event(&done.manifest, &s.host));
                // A globals backup picks its second itself.
                attempt.id = done.manifest.id.clone();
                attempt.status = AttemptStatus::Succeeded;
                attempt.file = Some(done.manifest.file.clone());
                attempt.stored_bytes = Some(done.manifest.stored_bytes);
                let mut m = self.metrics.lock().expect("metrics lock");
                let d = m.db(metric_label(&attempt.database));
                d.last_success = Some(secs(now));
                d.last_duration = Some(done.manifest.duration_seconds);
                d.last_stored_bytes = Some(done.manifest.stored_bytes);
                d.last_raw_bytes = Some(done.manifest.raw_bytes);
                "success"
            }
            Err(e @ BackupError::Interrupted(_)) => {
                attempt.status = AttemptStatus::Aborted;
                attempt.error = Some(e.to_string());
                tracing::warn!(
                    database = %attempt.database,
                    id = %attempt.id,
                    "backup aborted at shutdown; nothing was kept"
                );
                "aborted"
            }
            Err(e @ BackupError::Lock(LockError::Busy { .. })) => {
                // Another process took the lock between our check and the backup's start.
                let msg = format!("backup of {} skipped: {e}", label(&attempt.database));
                tracing::warn!(database = %attempt.database, id = %attempt.id, error = %msg, "backup skipped");
                attempt.status = AttemptStatus::Failed;
                attempt.error = Some(msg);
                "skipped"
            }
            Err(e) => {
                let msg = format!("backup of {} failed: {e}", label(&attempt.database));
                tracing::error!(database = %attempt.database, id = %attempt.id, error = %msg, "backup failed");
                self.tell(
                    crate::notify::Event::new(
                        crate::notify::Operation::Backup,
                        crate::notify::Outcome::Failure,
                        (attempt.database != GLOBALS).then_some(attempt.database.as_str()),
                        &s.host,
                        msg.clone(),
                    )
                    .detail("id", attempt.id.clone()),
                );
                attempt.status = AttemptStatus::Failed;
                attempt.error = Some(msg);
                "failure"
            }
        }
    }

    /// Copy new backups to `copy_to` and cull the copies; a failure is logged and notified, and
    /// never stops the daemon: the next run copies what this one could not.
    pub async fn copy(&self, db: &str) {
        let s = self.opts.settings.clone();
        if s.copy_to.is_none() {
            return;
        }
        let db = db.to_string();
        let now = self.now();
        let (s2, db2) = (s.clone(), db.clone());
        let res = tokio::task::spawn_blocking(move || crate::copy::run(&s2, &db2, now)).await;
        let failure = match res {
            Ok(Ok(Some((synced, culled)))) => {
                for f in &synced.copied {
                    tracing::info!(database = %db, file = %f, "backup copied");
                }
                for f in &culled {
                    tracing::info!(database = %db, file = %f, "culled copy");
                }
                if synced.failed.is_empty() {
                    return;
                }
                crate::copy::CopyError::Failed {
                    to: s
                        .copy_to
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    failed: synced.failed,
                }
                .to_string()
            }
            Ok(Ok(None)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(database = %db, error = %failure, "copy to copy_to failed; the next run retries");
        let notifier = crate::notify::Notifier::from_settings(&s);
        if notifier.is_configured() {
            let event = crate::notify::Event::new(
                crate::notify::Operation::Backup,
                crate::notify::Outcome::Failure,
                Some(&db),
                &s.host,
                format!("copy to copy_to failed: {failure}"),
            );
            let _ = tokio::task::spawn_blocking(move || notifier.notify(&event)).await;
        }
    }

    /// Cull the backups of `db` (a database, or [`GLOBALS`]) with the configured policy;
    /// failures are logged, not fatal.
    pub async fn cull(&self, db: &str) {
        let s = self.opts.settings.clone();
        let db = db.to_string();
        let db2 = db.clone();
        let now = self.now();
        let res = tokio::task::spawn_blocking(move || {
            let store =
                crate::storage::open(&s.backup_dir, &s.s3).map_err(prune::PruneError::from)?;
            let lock_dir =
                crate::storage::lock_dir(&s.lock_dir).map_err(prune::PruneError::from)?;
            prune::run(
                crate::storage::Site::new(&*store, &lock_dir),
                &s.host,
                &db2,
                now,
                &s.policy,
                &s.timezone,
                s.partial_max_age,
                &crate::verify::verified_state,
            )
        })
        .await;
        match res {
            Ok(Ok((plan, applied))) => {
                for item in plan.to_delete() {
                    tracing::info!(database = %metric_label(&plan.database), id = %item.id, file = %item.file, reason = %item.verdict, "culled backup");
                }
                for o in &plan.orphans {
                    tracing::info!(file = %o.file, kind = o.kind, age = %format!("{}s", o.age_seconds), "removed leftover file");
                }
                let kept = plan.items.len() - applied.deleted.len();
                tracing::info!(
                    database = %metric_label(&plan.database),
                    kept,
                    culled = applied.deleted.len(),
                    orphans = applied.orphans_removed.len(),
                    policy = %plan.policy,
                    "culling done"
                );
                self.tell(crate::notify::Event::new(
                    crate::notify::Operation::Cull,
                    crate::notify::Outcome::Success,
                    (plan.database != GLOBALS).then_some(plan.database.as_str()),
                    &self.opts.settings.host,
                    format!(
                        "kept {kept}, culled {}, removed {} leftover file(s) ({})",
                        applied.deleted.len(),
                        applied.orphans_removed.len(),
                        plan.policy
                    ),
                ));
                let mut m = self.metrics.lock().expect("metrics lock");
                let d = m.db(metric_label(&plan.database));
                d.culled += applied.deleted.len() as u64;
                d.orphans_removed += applied.orphans_removed.len() as u64;
            }
            Ok(Err(e)) => {
                tracing::warn!(database = %metric_label(&db), error = %e, "culling skipped");
                self.tell(crate::notify::Event::new(
                    crate::notify::Operation::Cull,
                    crate::notify::Outcome::Failure,
                    (db != GLOBALS).then_some(db.as_str()),
                    &self.opts.settings.host,
                    format!("culling failed: {e}"),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "culling task failed"),
        }
    }

    /// Keep a failed attempt that never started (its database is not on the server).
    pub(super) fn record_failed(&self, db: &str, trigger: Trigger, at: Timestamp, error: String) {
        let (_, id) = catalog::backup_stem(&self.settings().host, db, at);
        let mut state = self.state.lock().expect("state lock");
        state.history.push_front(Attempt {
            id,
            database: db.to_string(),
            trigger,
            status: AttemptStatus::Failed,
            started_at: at,
            finished_at: Some(at),
            file: None,
            stored_bytes: None,
            error: Some(error),
            dumped_bytes: None,
            result: "failure",
        });
        state.history.truncate(HISTORY);
    }

    /// Resolve once no backup is running.
    pub async fn idle(&self) {
        let mut rx = self.busy.subscribe();
        let _ = rx.wait_for(|busy| *busy == 0).await;
    }
}

/// Marks a database's backup (database, attempt id) over when its task ends, however it ends.
struct Release(Arc<Daemon>, String, String);

impl Drop for Release {
    fn drop(&mut self) {
        let d = &self.0;
        if let Ok(mut state) = d.state.lock()
            && state.running.get(&self.1).is_some_and(|a| a.id == self.2)
            && let Some(mut a) = state.running.remove(&self.1)
        {
            state.progress.remove(&a.id);
            // Only reached when the task ended without recording its result.
            a.status = AttemptStatus::Failed;
            a.error = Some("the backup task ended unexpectedly".into());
            state.history.push_front(a);
            state.history.truncate(HISTORY);
        }
        if let Ok(mut m) = d.metrics.lock() {
            m.db(metric_label(&self.1)).running = false;
        }
        d.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A time for logs, in the configured zone.
pub fn local(t: &Timestamp, s: &Settings) -> String {
    t.round(jiff::Unit::Second)
        .unwrap_or(*t)
        .to_zoned(s.timezone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}
