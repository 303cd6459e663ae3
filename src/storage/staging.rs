//! The local, seekable files that some operations need whatever the store is: pg_dump writes a
//! custom-format archive by seeking back to its data offsets, and pg_restore reads one by name
//! (each `-j` worker opens it again). For the local store these are the store's own files; any
//! other store stages through a private temporary file in a staging directory.

use std::any::Any;
use std::path::{Path, PathBuf};

use super::local::{LocalStore, LocalUpload};
use super::store::{StorageError, Store, Upload, check_name};

/// A local file that becomes object `name` when committed; removed when aborted or dropped.
pub struct Staged {
    name: String,
    inner: Inner,
}

enum Inner {
    /// The local store's own partial file.
    InPlace(Box<LocalUpload>, PathBuf),
    /// A temporary file, put into the store on commit.
    Temp(tempfile::NamedTempFile),
}

fn local(store: &dyn Store) -> Option<&LocalStore> {
    let any: &dyn Any = store;
    any.downcast_ref::<LocalStore>()
}

/// Start a staged write of `name` (refused, like [`Store::create`], when it exists).
pub fn stage(store: &dyn Store, name: &str, staging_dir: &Path) -> Result<Staged, StorageError> {
    check_name(name)?;
    let inner = match local(store) {
        Some(l) => {
            let (up, path) = l.create_file(name)?;
            Inner::InPlace(Box::new(up), path)
        }
        None => {
            if store.exists(name)? {
                return Err(StorageError::Exists {
                    name: name.to_string(),
                });
            }
            Inner::Temp(temp_in(staging_dir)?)
        }
    };
    Ok(Staged {
        name: name.to_string(),
        inner,
    })
}

/// Start a staged write of `name` that always goes through a private temporary file in
/// `staging_dir`, whatever the store (for content that must be transformed, e.g. encrypted,
/// before it reaches the store).
pub fn stage_apart(
    store: &dyn Store,
    name: &str,
    staging_dir: &Path,
) -> Result<Staged, StorageError> {
    check_name(name)?;
    if store.exists(name)? {
        return Err(StorageError::Exists {
            name: name.to_string(),
        });
    }
    Ok(Staged {
        name: name.to_string(),
        inner: Inner::Temp(temp_in(staging_dir)?),
    })
}

/// A private (0600) temporary file in `dir`, removed when dropped.
pub fn private_temp(dir: &Path) -> Result<tempfile::NamedTempFile, StorageError> {
    temp_in(dir)
}

/// The name prefix of staging files.
const PREFIX: &str = ".pgkeep-staging-";

/// How old a staging file must be before [`remove_dead`] looks at it: its creator locks it
/// right after creating it, and must not lose it in between.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A private (0600) temporary file in `dir`, locked (`flock`) for as long as it is open in this
/// process, so that [`remove_dead`] tells a live run's file from a killed one's.
fn temp_in(dir: &Path) -> Result<tempfile::NamedTempFile, StorageError> {
    let temp = tempfile::Builder::new()
        .prefix(PREFIX)
        .tempfile_in(dir)
        .map_err(|e| StorageError::io("cannot create a staging file in", dir.display(), e))?;
    temp.as_file()
        .lock()
        .map_err(|e| StorageError::io("cannot lock", temp.path().display(), e))?;
    Ok(temp)
}

/// Remove the staging files in `dir` that no live process holds: those of runs killed before
/// they could remove them (SIGKILL, OOM), which may hold a decrypted copy of a backup. Returns
/// the paths removed.
pub fn remove_dead(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let young = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_none_or(|age| age < SETTLE);
        if !meta.file_type().is_file() || young {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // Locked: a live run's. Unlocked: its owner is gone (the kernel dropped the lock).
        if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    Ok(removed)
}

impl Staged {
    /// The file to write (and read back before the commit).
    pub fn path(&self) -> &Path {
        match &self.inner {
            Inner::InPlace(_, p) => p,
            Inner::Temp(t) => t.path(),
        }
    }

    /// Make the file the committed object `name` of `store` (the store it was staged for).
    pub fn commit(self, store: &dyn Store) -> Result<(), StorageError> {
        match self.inner {
            Inner::InPlace(up, _) => up.commit(),
            Inner::Temp(temp) => {
                let mut file = temp
                    .reopen()
                    .map_err(|e| StorageError::io("cannot read", temp.path().display(), e))?;
                let mut up = store.create(&self.name)?;
                if let Err(e) = std::io::copy(&mut file, &mut up) {
                    let err = StorageError::from_write(&self.name, e);
                    let _ = up.abort();
                    return Err(err);
                }
                up.commit()
            }
        }
    }

    /// Give the write up; nothing of it stays.
    pub fn abort(self) -> Result<(), StorageError> {
        match self.inner {
            Inner::InPlace(up, _) => up.abort(),
            Inner::Temp(temp) => temp
                .close()
                .map_err(|e| StorageError::io("cannot remove", "a staging file", e)),
        }
    }
}

/// The staging directory when the caller names none: TMPDIR (only used by stores that are not
/// a local directory).
pub fn default_dir() -> PathBuf {
    std::env::temp_dir()
}

/// A committed object as a local file, for as long as this value lives.
pub struct LocalFile {
    path: PathBuf,
    /// The fetched copy (removed on drop); `None` when the file is the store's own.
    copy: Option<tempfile::TempPath>,
    /// The copy kept open: its lock tells [`remove_dead`] that it is in use.
    _held: Option<std::fs::File>,
}

impl LocalFile {
    /// A private copy (made by this module, so locked) that is removed when this value is
    /// dropped.
    pub fn temp(copy: tempfile::NamedTempFile) -> LocalFile {
        let (file, path) = copy.into_parts();
        LocalFile {
            path: path.to_path_buf(),
            copy: Some(path),
            _held: Some(file),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the object was fetched into the staging directory.
    pub fn is_copy(&self) -> bool {
        self.copy.is_some()
    }
}

impl std::fmt::Debug for LocalFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalFile({})", self.path.display())
    }
}

/// Object `name` as a local file: the local store's own file, or a copy fetched from another
/// store into `staging_dir` (which then needs room for it).
pub fn local_file(
    store: &dyn Store,
    name: &str,
    staging_dir: &Path,
) -> Result<LocalFile, StorageError> {
    if let Some(l) = local(store) {
        return Ok(LocalFile {
            path: l.file_of(name)?,
            copy: None,
            _held: None,
        });
    }
    let mut reader = store.open(name)?;
    let mut temp = temp_in(staging_dir)?;
    std::io::copy(&mut reader, temp.as_file_mut())
        .map_err(|e| StorageError::io("cannot fetch into", temp.path().display(), e))?;
    Ok(LocalFile::temp(temp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::{ObjectInfo, Unfinished};

    /// A store that is not the local store (it only delegates to one), so staging takes the
    /// path of every other backend: a temporary file, put into the store on commit.
    struct Elsewhere(LocalStore);

    impl Store for Elsewhere {
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn check_writable(&self) -> Result<(), StorageError> {
            self.0.check_writable()
        }
        fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError> {
            self.0.create(name)
        }
        fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
            self.0.put(name, data)
        }
        fn open(&self, name: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
            self.0.open(name)
        }
        fn stat(&self, name: &str) -> Result<Option<ObjectInfo>, StorageError> {
            self.0.stat(name)
        }
        fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
            self.0.list()
        }
        fn delete(&self, name: &str) -> Result<(), StorageError> {
            self.0.delete(name)
        }
        fn unfinished(&self) -> Result<Vec<Unfinished>, StorageError> {
            self.0.unfinished()
        }
        fn discard(&self, u: &Unfinished) -> Result<(), StorageError> {
            self.0.discard(u)
        }
        fn free_bytes(&self) -> Option<u64> {
            None
        }
    }

    #[test]
    fn other_stores_stage_through_a_private_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let store = Elsewhere(LocalStore::open(dir.path()).unwrap());
        let s = stage(&store, "d/a.dump", tmp.path()).unwrap();
        assert!(s.path().starts_with(tmp.path()), "{}", s.path().display());
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(s.path(), b"archive").unwrap();
        assert!(store.list().unwrap().is_empty());
        s.commit(&store).unwrap();
        assert_eq!(store.list().unwrap()[0].name, "d/a.dump");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "staging file gone"
        );
        assert!(
            stage(&store, "d/a.dump", tmp.path()).is_err(),
            "no overwrite"
        );

        let f = local_file(&store, "d/a.dump", tmp.path()).unwrap();
        assert!(f.is_copy());
        assert!(f.path().starts_with(tmp.path()));
        assert_eq!(std::fs::read(f.path()).unwrap(), b"archive");
        let copy = f.path().to_path_buf();
        drop(f);
        assert!(!copy.exists(), "the fetched copy is removed");

        let s = stage(&store, "d/b.dump", tmp.path()).unwrap();
        std::fs::write(s.path(), b"half").unwrap();
        s.abort().unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn the_local_store_stages_in_place_and_aborts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let s = stage(&store, "d/a.dump", tmp.path()).unwrap();
        assert!(s.path().starts_with(dir.path()), "{}", s.path().display());
        std::fs::write(s.path(), b"archive").unwrap();
        assert!(store.list().unwrap().is_empty());
        s.commit(&store).unwrap();
        assert_eq!(store.list().unwrap()[0].name, "d/a.dump");
        let f = local_file(&store, "d/a.dump", tmp.path()).unwrap();
        assert!(!f.is_copy());
        assert_eq!(std::fs::read(f.path()).unwrap(), b"archive");
        assert!(stage(&store, "d/a.dump", tmp.path()).is_err());
        let s = stage(&store, "d/b.dump", tmp.path()).unwrap();
        std::fs::write(s.path(), b"half").unwrap();
        s.abort().unwrap();
        assert!(store.unfinished().unwrap().is_empty());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn only_staging_files_no_live_run_holds_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let live = temp_in(tmp.path()).unwrap();
        live.as_file().set_modified(old).unwrap();
        let dead = tmp.path().join(".pgkeep-staging-dead");
        std::fs::File::create(&dead)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = tmp.path().join(".pgkeep-staging-fresh");
        std::fs::write(&fresh, b"just made").unwrap();
        let other = tmp.path().join("someone-elses");
        std::fs::File::create(&other)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let held = LocalFile::temp(temp_in(tmp.path()).unwrap());
        std::fs::File::options()
            .write(true)
            .open(held.path())
            .unwrap()
            .set_modified(old)
            .unwrap();

        assert_eq!(remove_dead(tmp.path()).unwrap(), vec![dead.clone()]);
        assert!(live.path().exists() && held.path().exists());
        assert!(fresh.exists() && other.exists());
        let paths = [live.path().to_path_buf(), held.path().to_path_buf()];
        drop((live, held));
        assert!(paths.iter().all(|p| !p.exists()), "removed when dropped");
    }
}
