//! Culling applied to a backup directory: turns the catalog into retention input, asks the pure
//! retention function, and (only when told to) deletes what it culls, manifest first then data,
//! plus the leftovers of the same database: unfinished writes of its backups once its lock says
//! no backup of it runs, and data files without manifest superseded and old enough. Other
//! databases' files are never touched (their runs may be alive).

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use thiserror::Error;

use crate::catalog::{self, CatalogError, Entry, MANIFEST_SUFFIX, Status};
use crate::lock::{Lock, LockError};
use crate::model::{Policy, PolicyError};
use crate::retention::{self, Backup, Decision, Kind, Verdict};
use crate::storage::{Site, StorageError, Unfinished};

#[derive(Debug, Error)]
pub enum PruneError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl crate::exit::ExitCode for PruneError {
    fn exit_code(&self) -> u8 {
        match self {
            PruneError::Policy(e) => e.exit_code(),
            PruneError::Catalog(_) => crate::exit::STORAGE,
            PruneError::Storage(e) => e.exit_code(),
            PruneError::Lock(e) => e.exit_code(),
        }
    }
}

/// One backup of the plan with its decision.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: String,
    pub time: Timestamp,
    pub database: Option<String>,
    pub status: Status,
    pub file: String,
    /// The manifest object, for good backups.
    pub manifest: Option<String>,
    pub stored_bytes: u64,
    /// The verdict of its last verification, if it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::model::Verdict>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// A leftover: an unfinished write or data without manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    pub file: String,
    pub bytes: u64,
    pub age_seconds: u64,
    pub kind: &'static str,
    /// The unfinished write to discard; `None` for a committed object to delete.
    #[serde(skip)]
    pub unfinished: Option<Unfinished>,
}

/// What culling would do (or did) in one backup directory for one database.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub database: String,
    pub policy: Policy,
    pub items: Vec<Item>,
    /// Legacy files whose database cannot be told from their name: never touched.
    pub unattributed: Vec<String>,
    pub orphans: Vec<Orphan>,
}

impl Plan {
    pub fn to_delete(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| !i.verdict.keep())
    }
}

/// The verification state of a backup, when something knows it (wired in by the verifier).
pub type VerifiedFn<'a> = &'a dyn Fn(&Entry) -> Option<crate::model::Verdict>;

/// Decide for every backup of `database` in the store. Changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn plan<'a>(
    site: impl Into<Site<'a>>,
    host: &str,
    database: &str,
    now: Timestamp,
    policy: &Policy,
    tz: &TimeZone,
    partial_max_age: Duration,
    verified: VerifiedFn<'_>,
) -> Result<Plan, PruneError> {
    policy.validate()?;
    let site = site.into();
    let store = site.store;
    let entries = catalog::list(store, Some(host))?;
    let mut unattributed = Vec::new();
    let mut series: Vec<Entry> = Vec::new();
    for e in entries {
        if e.status == Status::Unreadable {
            // Its manifest cannot be read: never culled, and no slot of the policy.
            continue;
        }
        match e.database.as_deref() {
            Some(d) if d == database => series.push(e),
            None => unattributed.push(e.file.clone()),
            Some(_) => {}
        }
    }
    let input: Vec<Backup> = series
        .iter()
        .map(|e| Backup {
            id: e.id.clone(),
            time: e.time,
            kind: match e.status {
                Status::Good => Kind::Good,
                // (Unreadable ones are left out above.)
                Status::Legacy | Status::Uncommitted | Status::Unreadable => Kind::Legacy,
            },
            verified: verified(e),
        })
        .collect();
    let decisions = retention::decide(&input, now, policy, tz)?;
    let items = series
        .into_iter()
        .zip(decisions)
        .map(|(e, Decision { verdict, .. })| Item {
            verified: verified(&e),
            manifest: e
                .manifest
                .as_ref()
                .map(|_| format!("{}{MANIFEST_SUFFIX}", e.file)),
            id: e.id,
            time: e.time,
            database: e.database,
            status: e.status,
            file: e.file,
            stored_bytes: e.stored_bytes,
            verdict,
        })
        .collect();
    Ok(Plan {
        database: database.to_string(),
        policy: *policy,
        items,
        unattributed,
        orphans: orphans(site, host, database, now, partial_max_age)?,
    })
}

/// The leftovers of `database`: the unfinished writes of its backups while no run holds its lock
/// (only a run holding it writes them, so they are a killed run's), unfinished verification
/// records older than `max_age` (verification does not take the lock), and uncommitted data
/// files (pgkeep-made, manifest missing: see [`catalog::made_by_pgkeep`]) older than `max_age` for
/// which a newer committed backup exists: an accidental manifest deletion must not become data
/// loss.
pub fn orphans(
    site: Site<'_>,
    host: &str,
    database: &str,
    now: Timestamp,
    max_age: Duration,
) -> Result<Vec<Orphan>, PruneError> {
    let store = site.store;
    let own = catalog::series(host, database);
    let objects = store.list()?;
    let entries = catalog::list(store, Some(host))?;
    let newest_good = entries
        .iter()
        .filter(|e| e.status == Status::Good && e.database.as_deref() == Some(database))
        .map(|e| e.time)
        .max();
    let uncommitted: std::collections::BTreeMap<&str, &Entry> = entries
        .iter()
        .filter(|e| e.status == Status::Uncommitted && e.database.as_deref() == Some(database))
        .map(|e| (e.file.as_str(), e))
        .collect();
    let running = Lock::holder(&crate::backup::lock_path(site.lock_dir, host, database))?;
    let mut out = Vec::new();
    for u in store.unfinished()? {
        let age = age(u.modified, now);
        let kind = if catalog::series_of(&u.name) == Some(own.as_str()) {
            if running.is_some() {
                continue;
            }
            "partial file of a killed backup"
        } else if u
            .name
            .strip_suffix(crate::catalog::VERIFY_SUFFIX)
            .and_then(catalog::series_of)
            == Some(own.as_str())
            && age >= max_age
        {
            "partial verification record"
        } else {
            continue;
        };
        out.push(Orphan {
            file: u.handle.clone(),
            bytes: u.size,
            age_seconds: age.as_secs(),
            kind,
            unfinished: Some(u),
        });
    }
    for o in &objects {
        let Some(e) = uncommitted.get(o.name.as_str()) else {
            continue;
        };
        if newest_good.is_none_or(|t| t <= e.time) {
            continue;
        }
        let kind = "uncommitted data file (no manifest), superseded by a newer backup";
        let age = age(o.modified, now);
        if age >= max_age {
            out.push(Orphan {
                file: o.name.clone(),
                bytes: o.size,
                age_seconds: age.as_secs(),
                kind,
                unfinished: None,
            });
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

fn age(modified: std::time::SystemTime, now: Timestamp) -> Duration {
    let modified = Timestamp::try_from(modified).unwrap_or(now);
    let d = now.duration_since(modified);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// What `apply` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Applied {
    pub deleted: Vec<String>,
    pub deleted_bytes: u64,
    pub orphans_removed: Vec<String>,
}

/// Delete what the plan culls: manifest first (the backup stops existing), then the data;
/// then the orphans. Holds the database's backup lock (in the site's local lock directory), so
/// no backup of it commits meanwhile.
pub fn apply<'a>(
    site: impl Into<Site<'a>>,
    host: &str,
    plan: &Plan,
    holder: &str,
) -> Result<Applied, PruneError> {
    let Site { store, lock_dir } = site.into();
    let _lock = Lock::acquire(
        &crate::backup::lock_path(lock_dir, host, &plan.database),
        holder,
    )?;
    let mut done = Applied::default();
    for item in plan.to_delete() {
        if let Some(m) = &item.manifest {
            store.delete(m)?;
        }
        // The verification record goes with its backup.
        let record = crate::verify::record_name(&item.file);
        if store.exists(&record)? {
            store.delete(&record)?;
        }
        store.delete(&item.file)?;
        done.deleted.push(item.id.clone());
        done.deleted_bytes += item.stored_bytes;
    }
    for o in &plan.orphans {
        match &o.unfinished {
            Some(u) => store.discard(u)?,
            None => store.delete(&o.file)?,
        }
        done.orphans_removed.push(o.file.clone());
    }
    Ok(done)
}

/// Plan and apply in one step (used by the daemon after each successful backup).
#[allow(clippy::too_many_arguments)]
pub fn run(
    site: Site<'_>,
    host: &str,
    database: &str,
    now: Timestamp,
    policy: &Policy,
    tz: &TimeZone,
    partial_max_age: Duration,
    verified: VerifiedFn<'_>,
) -> Result<(Plan, Applied), PruneError> {
    let plan = plan(
        site,
        host,
        database,
        now,
        policy,
        tz,
        partial_max_age,
        verified,
    )?;
    let applied = apply(
        site,
        host,
        &plan,
        &format!("pgkeep culling (pid {})", std::process::id()),
    )?;
    Ok((plan, applied))
}

/// The verification state when nothing is known: every backup unverified.
pub fn unverified(_: &Entry) -> Option<crate::model::Verdict> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStore;
    use std::path::Path;

    fn put(dir: &Path, name: &str, age_secs: u64) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
        let t = std::time::SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// A committed manifest of database `db` (file and time set by the test).
    const MANIFEST: &str = r#"{"manifest_version":1,"id":"x","file":"","database":"db","host":"h",
        "port":5432,"server_version":"15","pg_dump_version":"15","pgkeep_version":"0",
        "started_at":"2026-01-01T00:00:00Z","finished_at":"2026-01-01T00:00:00Z",
        "duration_seconds":1.0,"format":"custom","compression":"none","level":0,"stored_bytes":0,
        "raw_bytes":0,"sha256":"","tables":{},"large_objects":0,"database_info":{"name":"db",
        "owner":"o","encoding":"UTF8","collate":"C","ctype":"C","acl":null,"grants":[],
        "settings":[],"extensions":[],"roles":[],"size_bytes":0}}"#;

    fn orphan_files(store: &LocalStore, db: &str) -> Vec<String> {
        orphans(
            Site::from(store),
            "h",
            db,
            Timestamp::now(),
            Duration::from_secs(86400),
        )
        .unwrap()
        .into_iter()
        .map(|o| o.file)
        .collect()
    }

    #[test]
    fn orphans_are_the_databases_own_and_legacy_is_not_an_orphan() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(
            d,
            "2026-11-20/h-db_2026-11-20_01-00-00.sql.gz.partial",
            3 * 86400,
        );
        put(d, "2026-11-25/h-db_2026-11-25_01-00-00.sql.gz.partial", 10);
        put(d, "2026-11-20/h-db_2026-11-20_02-00-00.dump", 3 * 86400);
        put(d, "2026-11-20/h-db_2026-11-20_03-00-00.sql.gz", 3 * 86400);
        // Another database's leftovers, a file of another tool, a fresh verification record.
        put(
            d,
            "2026-11-20/h-other_2026-11-20_01-00-00.sql.gz.partial",
            3 * 86400,
        );
        put(d, "2026-11-20/notes.txt.partial", 3 * 86400);
        put(
            d,
            "2026-11-20/h-db_2026-11-20_03-00-00.sql.gz.verify.json.partial",
            10,
        );
        let store = LocalStore::open(d).unwrap();
        // The uncommitted `.dump` is the newest data of its database: it stays. No backup of
        // the database holds its lock, so both of its partial files are a killed run's.
        assert_eq!(
            orphan_files(&store, "db"),
            vec![
                "2026-11-20/h-db_2026-11-20_01-00-00.sql.gz.partial",
                "2026-11-25/h-db_2026-11-25_01-00-00.sql.gz.partial"
            ]
        );
        // While a backup of the database runs, its partial files are not touched.
        let held = Lock::acquire(&crate::backup::lock_path(d, "h", "db"), "backup").unwrap();
        assert!(orphan_files(&store, "db").is_empty());
        drop(held);
        // Once a newer committed backup exists, the uncommitted data goes (when old enough).
        put(d, "2026-11-21/h-db_2026-11-21_01-00-00.dump", 2 * 86400);
        let mut m: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        m["file"] = "2026-11-21/h-db_2026-11-21_01-00-00.dump".into();
        m["started_at"] = "2026-11-21T01:00:00Z".into();
        std::fs::write(
            d.join("2026-11-21/h-db_2026-11-21_01-00-00.dump.manifest.json"),
            m.to_string(),
        )
        .unwrap();
        assert_eq!(
            orphan_files(&store, "db"),
            vec![
                "2026-11-20/h-db_2026-11-20_01-00-00.sql.gz.partial",
                "2026-11-20/h-db_2026-11-20_02-00-00.dump",
                "2026-11-25/h-db_2026-11-25_01-00-00.sql.gz.partial"
            ]
        );
        // The other database's partial is its own culling's business.
        assert_eq!(
            orphan_files(&store, "other"),
            vec!["2026-11-20/h-other_2026-11-20_01-00-00.sql.gz.partial"]
        );
    }

    #[test]
    fn a_running_globals_backup_keeps_its_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        put(
            d,
            "2026-11-20/h-@globals_2026-11-20_01-00-00.sql.gz.partial",
            3 * 86400,
        );
        let store = LocalStore::open(d).unwrap();
        let globals = crate::catalog::GLOBALS;
        // No run holds the globals' lock: the partial file is a killed run's.
        assert_eq!(
            orphan_files(&store, globals),
            vec!["2026-11-20/h-@globals_2026-11-20_01-00-00.sql.gz.partial"]
        );
        // The lock a globals backup takes is the one culling looks at.
        let held = Lock::acquire(&crate::globals::lock_path(d, "h"), "globals").unwrap();
        assert!(orphan_files(&store, globals).is_empty());
        drop(held);
    }

    #[test]
    fn apply_deletes_legacy_and_orphans_but_keeps_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Old pod files for host `postgresql`, database `sbi`, 15 daily.
        for i in 0..15 {
            let t = Timestamp::from_second(1_790_000_000 - i * 86400).unwrap();
            let (day, stem) = catalog::backup_stem("postgresql", "sbi", t);
            put(d, &format!("{day}/{stem}.sql.gz"), 0);
        }
        put(d, "stray.sql.gz", 0);
        put(
            d,
            "2020-01-01/postgresql-sbi_2020-01-01_00-00-00.sql.gz.partial",
            86400 * 400,
        );
        put(d, "2020-01-02/x.sql.gz.partial", 86400 * 400);
        let store = LocalStore::open(d).unwrap();
        let now = Timestamp::from_second(1_790_000_000 + 3600).unwrap();
        let p = plan(
            &store,
            "postgresql",
            "sbi",
            now,
            &Policy::default(),
            &TimeZone::UTC,
            Duration::from_secs(86400),
            &unverified,
        )
        .unwrap();
        assert_eq!(p.items.len(), 15);
        assert_eq!(p.to_delete().count(), 4);
        assert_eq!(p.unattributed, vec!["stray.sql.gz".to_string()]);
        let done = apply(&store, "postgresql", &p, "test").unwrap();
        assert_eq!(done.deleted.len(), 4);
        assert_eq!(done.orphans_removed.len(), 1);
        let left = catalog::list(&store, Some("postgresql")).unwrap();
        assert_eq!(left.len(), 12, "11 kept + the stray file");
        assert!(!d.join("2020-01-01").exists());
        assert!(
            d.join("2020-01-02/x.sql.gz.partial").exists(),
            "not pgkeep's name: left alone"
        );
    }
}
