//! What the status page and `GET /api/v1/status` show, from what the daemon already knows: the
//! listing of the backup location it keeps (read at start, after every backup and verification,
//! and again in the background when a request finds it older than `STALE`, so a request never
//! waits on the store), the running attempt with its progress, the next run and recent failures.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::state::{AttemptStatus, Daemon};
use crate::catalog;
use crate::status::{self, Failure, Running, Summary};
use crate::storage::LocalStore;

/// A listing older than this is read again (in the background) when the page is requested, so
/// backups and verifications made beside the daemon show up.
pub const STALE: SignedDuration = SignedDuration::from_secs(60);

/// How many failed attempts a database shows.
const FAILURES: usize = 5;

impl Daemon {
    /// Read the backup location again (on a blocking thread); a failure keeps the old listing.
    pub async fn refresh_catalog(self: &Arc<Self>) {
        let this = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let s = this.settings();
            let entries = LocalStore::open(&s.backup_dir)
                .map_err(|e| e.to_string())
                .and_then(|st| catalog::list(&st, Some(&s.host)).map_err(|e| e.to_string()))?;
            this.catalog.store(entries, this.now(), &s.backup_dir);
            Ok::<_, String>(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the backup catalog"),
            Err(e) => tracing::warn!(error = %e, "catalog task failed"),
        }
    }

    /// The status of every database of the daemon, from its memory. Starts a background read of
    /// the backup location when the listing is stale.
    pub fn status(self: &Arc<Self>) -> Summary {
        let now = self.now();
        let listing = self.catalog.get();
        let stale = listing
            .as_ref()
            .is_none_or(|l| now.duration_since(l.read_at) > STALE);
        if stale && self.catalog.begin_refresh() {
            let this = self.clone();
            tokio::spawn(async move {
                this.refresh_catalog().await;
                this.catalog.end_refresh();
            });
        }
        let s = self.settings();
        let (entries, free_bytes, read_at) = match listing {
            Some(l) => (l.entries, l.free_bytes, l.read_at),
            None => (Vec::new(), None, now),
        };
        let databases = self.databases();
        let dir = s.backup_dir.display().to_string();
        let mut summary = status::summarize(&status::Inputs {
            entries: &entries,
            databases: &databases,
            free_bytes,
            backup_dir: &dir,
            policy: &s.policy,
            timezone: &s.timezone,
            check: &s.check,
            catalog_read_at: read_at,
            now,
        });
        self.add_live(&mut summary);
        summary
    }

    /// Add what only the running daemon knows: the next run, the running backup, failures.
    fn add_live(&self, summary: &mut Summary) {
        let (running, history) = self.attempts();
        let metrics = self.metrics.lock().expect("metrics lock").clone();
        for db in &mut summary.databases {
            db.next_run = metrics
                .dbs
                .get(&db.name)
                .and_then(|m| m.next_run)
                .and_then(|t| Timestamp::from_millisecond((t * 1000.0) as i64).ok());
            db.running = running
                .iter()
                .find(|a| a.database == db.name)
                .map(|a| Running {
                    id: a.id.clone(),
                    trigger: a.trigger.name().to_string(),
                    started_at: a.started_at,
                    dumped_bytes: a.dumped_bytes.unwrap_or(0),
                    expected_bytes: db.newest_good_raw_bytes,
                });
            db.failures = history
                .iter()
                .filter(|a| a.database == db.name && a.status == AttemptStatus::Failed)
                .take(FAILURES)
                .map(|a| Failure {
                    id: a.id.clone(),
                    trigger: a.trigger.name().to_string(),
                    at: a.finished_at.unwrap_or(a.started_at),
                    error: a.error.clone().unwrap_or_default(),
                })
                .collect();
        }
    }
}
