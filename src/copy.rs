//! The second location (`copy_to`): every committed backup is copied there after its commit,
//! the copy checked against the manifest's size and sha256 and committed by its own manifest
//! (put last, as in the primary store), each copy retried with backoff; backups a failed run
//! left uncopied are copied by the next one. A failed copy never undoes or blocks a backup: the
//! caller alerts and goes on.

use std::time::Duration;

use thiserror::Error;

use crate::catalog::{self, Entry, Status};
use crate::config::Settings;
use crate::pipeline::HashCount;
use crate::storage::{StorageError, Store};

/// Attempts of one copy before it counts as failed.
pub const ATTEMPTS: u32 = 3;

#[derive(Debug, Error)]
pub enum CopyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error("culling the copies failed: {0}")]
    Cull(String),
    /// Some backups could not be copied (after every attempt).
    #[error("{} backup(s) not copied to {to}: {}", .failed.len(), .failed.iter().map(|(f, e)| format!("{f}: {e}")).collect::<Vec<_>>().join("; "))]
    Failed {
        to: String,
        failed: Vec<(String, String)>,
    },
    #[error(
        "the copy of {file} has {bytes} bytes with sha256 {sha256}, the manifest records {expected_bytes} bytes with sha256 {expected_sha256}"
    )]
    Mismatch {
        file: String,
        bytes: u64,
        sha256: String,
        expected_bytes: u64,
        expected_sha256: String,
    },
}

/// Sync the `copy_to` location of `s` for `database` (see [`sync`]), then cull it by its own
/// retention (`copy_keep_days`, `copy_keep_last`). `Ok(None)` without a `copy_to`.
pub fn run(
    s: &Settings,
    database: &str,
    now: jiff::Timestamp,
) -> Result<Option<(Synced, Vec<String>)>, CopyError> {
    let Some(to) = &s.copy_to else {
        return Ok(None);
    };
    let primary = crate::storage::open(&s.backup_dir, &s.s3)?;
    let copy = crate::storage::open(to, &s.s3)?;
    copy.check_writable()?;
    let synced = sync(&*primary, &*copy, &s.host, database, Duration::from_secs(1))?;
    let lock_dir = crate::storage::lock_dir(&s.lock_dir)?;
    let (plan, _) = crate::prune::run(
        crate::storage::Site::new(&*copy, &lock_dir),
        &s.host,
        database,
        now,
        &s.copy_policy,
        &s.timezone,
        s.partial_max_age,
        &crate::verify::verified_state,
    )
    .map_err(|e| CopyError::Cull(e.to_string()))?;
    let culled = plan.to_delete().map(|i| i.file.clone()).collect();
    Ok(Some((synced, culled)))
}

/// What one sync of the copy location did.
#[derive(Debug, Default)]
pub struct Synced {
    /// The data files copied (and committed there).
    pub copied: Vec<String>,
    /// The ones that failed after every attempt, with the last error.
    pub failed: Vec<(String, String)>,
}

/// Copy to `copy` the good backups of `database` in `primary` that it lacks and that are newer
/// than its newest copy (so that what the copy's retention culled is not copied again), the
/// newest first. `pause` is the wait before the second attempt, doubled for each further one.
pub fn sync(
    primary: &dyn Store,
    copy: &dyn Store,
    host: &str,
    database: &str,
    pause: Duration,
) -> Result<Synced, CopyError> {
    let own = |e: &Entry| e.status == Status::Good && e.database.as_deref() == Some(database);
    let there: Vec<Entry> = catalog::list(copy, Some(host))?
        .into_iter()
        .filter(own)
        .collect();
    let newest_copy = there.iter().map(|e| e.time).max();
    let mut out = Synced::default();
    for e in catalog::list(primary, Some(host))?.into_iter().filter(own) {
        if there.iter().any(|c| c.file == e.file) || newest_copy.is_some_and(|t| e.time <= t) {
            continue;
        }
        let mut wait = pause;
        let mut last = None;
        for attempt in 1..=ATTEMPTS {
            match copy_one(primary, copy, &e.file) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(err) => {
                    tracing::warn!(file = %e.file, attempt, error = %err, "the copy failed");
                    last = Some(err.to_string());
                    if attempt < ATTEMPTS {
                        std::thread::sleep(wait);
                        wait *= 2;
                    }
                }
            }
        }
        match last {
            None => out.copied.push(e.file.clone()),
            Some(err) => out.failed.push((e.file.clone(), err)),
        }
    }
    Ok(out)
}

/// Copy one backup: its data (streamed, hashed, compared with the manifest before it is
/// committed), then its manifest's own bytes (a signed manifest stays signed): the commit point.
pub fn copy_one(primary: &dyn Store, copy: &dyn Store, file: &str) -> Result<(), CopyError> {
    let manifest_name = format!("{file}{}", catalog::MANIFEST_SUFFIX);
    let mut manifest_bytes = Vec::new();
    std::io::Read::read_to_end(&mut primary.open(&manifest_name)?, &mut manifest_bytes)
        .map_err(|e| StorageError::io("cannot read", &manifest_name, e))?;
    let m = catalog::read_manifest(primary, &manifest_name)?;
    // A data object left by an earlier attempt whose manifest never came is replaced.
    copy.delete(file)?;
    let mut upload = copy.create(file)?;
    let mut sink = HashCount::new(&mut upload);
    let copied = std::io::copy(&mut primary.open(file)?, &mut sink);
    let (_, bytes, sha256) = sink.finish();
    if let Err(e) = copied {
        let err = StorageError::from_write(file, e);
        let _ = upload.abort();
        return Err(err.into());
    }
    if bytes != m.stored_bytes || sha256 != m.sha256 {
        let _ = upload.abort();
        return Err(CopyError::Mismatch {
            file: file.to_string(),
            bytes,
            sha256,
            expected_bytes: m.stored_bytes,
            expected_sha256: m.sha256,
        });
    }
    upload.commit()?;
    if let Err(e) = copy.put(&manifest_name, &manifest_bytes) {
        let _ = copy.delete(file);
        return Err(e.into());
    }
    Ok(())
}

impl crate::exit::ExitCode for CopyError {
    /// A backup was committed, its copy was not: always exit 11.
    fn exit_code(&self) -> u8 {
        crate::exit::COPY_FAILED
    }
}

/// The data files of `database`'s good backups in the copy location (for `list`).
pub fn copied_files(
    copy: &dyn Store,
    host: &str,
) -> Result<std::collections::BTreeSet<String>, CopyError> {
    Ok(catalog::list(copy, Some(host))?
        .into_iter()
        .filter(|e| e.status == Status::Good)
        .map(|e| e.file)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStore;

    #[test]
    fn a_copy_that_does_not_match_its_manifest_is_never_committed() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let primary = LocalStore::open(a.path()).unwrap();
        let copy = LocalStore::open(b.path()).unwrap();
        let file = "2026-11-25/h-db_2026-11-25_01-00-00.sql";
        primary.put(file, b"data").unwrap();
        // No readable manifest: the copy fails before anything is written there.
        assert!(copy_one(&primary, &copy, file).is_err());
        assert!(copy.list().unwrap().is_empty());
    }
}
