//! The local filesystem store: files 0600, directories 0700 whatever the umask; data is written to
//! `NAME.partial`, fsynced, renamed into place and the directory fsynced, so a committed object
//! survives a crash and an unfinished one is never listed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::store::{ObjectInfo, StorageError, Store, Unfinished, Upload, check_name};

/// Suffix of the files of unfinished writes.
pub const PARTIAL_SUFFIX: &str = ".partial";

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Open an existing directory (it is never created: a missing mount must not be papered over).
    pub fn open(root: &Path) -> Result<LocalStore, StorageError> {
        let shown = root.display().to_string();
        match fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::Missing { path: shown })
            }
            Err(e) => Err(StorageError::io("cannot read", shown, e)),
            Ok(m) if !m.is_dir() => Err(StorageError::NotADirectory { path: shown }),
            Ok(_) => Ok(LocalStore {
                root: root.to_path_buf(),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a committed object, for the staging place (`super::staging`) only: the
    /// restore and the custom format need a seekable local file.
    pub(super) fn file_of(&self, name: &str) -> Result<PathBuf, StorageError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    /// Start writing `name` like [`Store::create`], handing out the partial file's path so that
    /// a child (pg_dump's custom format) can write it itself.
    pub(super) fn create_file(&self, name: &str) -> Result<(LocalUpload, PathBuf), StorageError> {
        let up = self.start(name, false)?;
        let path = up.partial.clone();
        Ok((up, path))
    }

    fn start(&self, name: &str, replace: bool) -> Result<LocalUpload, StorageError> {
        let dest = self.file_of(name)?;
        self.ensure_parent(&dest)?;
        if !replace && dest.exists() {
            return Err(StorageError::Exists {
                name: name.to_string(),
            });
        }
        let partial = partial_of(&dest);
        if replace {
            let _ = fs::remove_file(&partial);
        }
        let file = create_private(&partial)?;
        Ok(LocalUpload {
            file: Some(file),
            partial,
            dest,
            written: 0,
            hinted: 0,
        })
    }

    fn ensure_parent(&self, path: &Path) -> Result<(), StorageError> {
        if let Some(parent) = path.parent()
            && parent != self.root
            && !parent.is_dir()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StorageError::io("cannot create directory", parent.display(), e))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700))
                .map_err(|e| StorageError::io("cannot set permissions on", parent.display(), e))?;
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Remove a file and the day directory it leaves empty.
    fn remove(&self, p: &Path) -> Result<(), StorageError> {
        match fs::remove_file(p) {
            Ok(()) => {}
            // Already gone (its directory too, perhaps): nothing to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io("cannot delete", p.display(), e)),
        }
        if let Some(parent) = p.parent() {
            sync_dir(parent)?;
            if parent != self.root && fs::read_dir(parent).is_ok_and(|mut d| d.next().is_none()) {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// Every regular file below the root (three levels deep), bookkeeping files left out.
    fn files(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut out = Vec::new();
        walk(&self.root, "", 0, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn partial_of(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(PARTIAL_SUFFIX);
    PathBuf::from(s)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("cannot sync directory", dir.display(), e))
}

fn create_private(path: &Path) -> Result<File, StorageError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io("cannot create", path.display(), e))?;
    // The mode given to open is filtered by the umask; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| StorageError::io("cannot set permissions on", path.display(), e))?;
    Ok(f)
}

/// A write into `NAME.partial`, renamed to `NAME` on commit.
pub(super) struct LocalUpload {
    file: Option<File>,
    partial: PathBuf,
    dest: PathBuf,
    /// Bytes written so far, and up to where the kernel was told to write them back.
    written: u64,
    hinted: u64,
}

/// Written bytes handed to the kernel's writeback in steps of this size, so that the commit's
/// fsync waits for the last step only rather than for the whole file.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

impl LocalUpload {
    /// Start the writeback of what was written since the last step. `POSIX_FADV_DONTNEED` on
    /// pages still dirty starts their writeback without waiting for it (and drops none of them:
    /// they are not clean yet). Advice only: the commit's fsync is what makes the data durable.
    fn write_back(&mut self) {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        let Some(file) = self.file.as_ref() else {
            return;
        };
        let len = (self.written - self.hinted) as i64;
        let advice = PosixFadviseAdvice::POSIX_FADV_DONTNEED;
        if let Err(e) = posix_fadvise(file, self.hinted as i64, len, advice) {
            tracing::debug!(error = %e, "cannot start the writeback of the backup file");
        }
        self.hinted = self.written;
    }
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.as_mut().expect("open until commit").write(buf)?;
        self.written += n as u64;
        if self.written - self.hinted >= WRITEBACK_STEP {
            self.write_back();
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Upload for LocalUpload {
    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let file = self.file.take().expect("committed once");
        let done = file
            .sync_all()
            .map_err(|e| StorageError::io("cannot sync", self.partial.display(), e))
            .and_then(|()| {
                drop(file);
                fs::rename(&self.partial, &self.dest).map_err(|e| {
                    StorageError::io("cannot rename into place", self.dest.display(), e)
                })
            });
        if let Err(e) = done {
            let _ = fs::remove_file(&self.partial);
            return Err(e);
        }
        match self.dest.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }

    fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        drop(self.file.take());
        match fs::remove_file(&self.partial) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("cannot remove", self.partial.display(), e)),
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        let probe = self
            .root
            .join(format!(".pgkeep-write-probe-{}", std::process::id()));
        let res = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)
            .and_then(|mut f| f.write_all(b"probe"));
        let _ = fs::remove_file(&probe);
        res.map_err(|source| match source.raw_os_error() {
            Some(28) | Some(122) => StorageError::Full {
                path: self.describe(),
            },
            _ => StorageError::NotWritable {
                path: self.describe(),
                source,
            },
        })
    }

    fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError> {
        Ok(Box::new(self.start(name, false)?))
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let mut up = Box::new(self.start(name, true)?);
        up.write_all(data)
            .map_err(|e| StorageError::from_write(name, e))?;
        crate::fault::point("store.put-before-rename");
        up.commit()
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let p = self.file_of(name)?;
        match File::open(&p) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(Box::new(f)),
            Ok(_) => Err(StorageError::NotFound {
                name: name.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound {
                name: name.to_string(),
            }),
            Err(e) => Err(StorageError::io("cannot open", p.display(), e)),
        }
    }

    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let p = self.file_of(name)?;
        match fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                name: name.to_string(),
                size: m.len(),
                modified: m.modified().unwrap_or(std::time::UNIX_EPOCH),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A name below a file ("a.sql.gz/x") does not exist either.
            Err(e) if e.raw_os_error() == Some(20) => Ok(None),
            Err(e) => Err(StorageError::io("cannot read", p.display(), e)),
        }
    }

    fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut files = self.files()?;
        files.retain(|o| !o.name.ends_with(PARTIAL_SUFFIX));
        Ok(files)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        let p = self.file_of(name)?;
        self.remove(&p)
    }

    fn unfinished(&self) -> Result<Vec<Unfinished>, StorageError> {
        Ok(self
            .files()?
            .into_iter()
            .filter_map(|o| {
                let name = o.name.strip_suffix(PARTIAL_SUFFIX)?.to_string();
                Some(Unfinished {
                    name,
                    handle: o.name,
                    size: o.size,
                    modified: o.modified,
                })
            })
            .collect())
    }

    fn in_progress(&self, name: &str) -> Result<bool, StorageError> {
        Ok(partial_of(&self.file_of(name)?).exists())
    }

    fn discard(&self, u: &Unfinished) -> Result<(), StorageError> {
        let p = self.file_of(&u.handle)?;
        if !u.handle.ends_with(PARTIAL_SUFFIX) {
            return Err(StorageError::InvalidName {
                name: u.handle.clone(),
                reason: "not an unfinished write",
            });
        }
        self.remove(&p)
    }

    fn free_bytes(&self) -> Option<u64> {
        nix::sys::statvfs::statvfs(&self.root)
            .ok()
            .map(|s| s.blocks_available() * s.fragment_size())
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<ObjectInfo>,
) -> Result<(), StorageError> {
    if depth > 3 {
        return Ok(());
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if depth > 0 && e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(StorageError::io("cannot list", dir.display(), e)),
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".pgkeep") {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&entry.path(), &rel, depth + 1, out)?;
        } else if meta.is_file() {
            out.push(ObjectInfo {
                name: rel,
                size: meta.len(),
                modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_upload_leaves_nothing_and_commit_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        {
            let mut up = s.create("2026-01-01/a.sql.gz").unwrap();
            up.write_all(b"half").unwrap();
            // dropped without commit
        }
        assert!(s.list().unwrap().is_empty());
        let mut up = s.create("2026-01-01/b.sql.gz").unwrap();
        up.write_all(b"whole").unwrap();
        up.commit().unwrap();
        let l = s.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "2026-01-01/b.sql.gz");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("2026-01-01/b.sql.gz")), 0o600);
        assert_eq!(mode(&dir.path().join("2026-01-01")), 0o700);
        assert!(s.create("2026-01-01/b.sql.gz").is_err());
        s.delete("2026-01-01/b.sql.gz").unwrap();
        assert!(!dir.path().join("2026-01-01").exists());
    }

    #[test]
    fn writeback_steps_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..3 * WRITEBACK_STEP + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut up = s.create("big").unwrap();
        for chunk in data.chunks(1_000_003) {
            up.write_all(chunk).unwrap();
        }
        up.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("big")).unwrap(), data);
    }

    #[test]
    fn missing_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = LocalStore::open(&dir.path().join("nope")).err().unwrap();
        assert!(e.to_string().contains("does not exist"));
    }
}
