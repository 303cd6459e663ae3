//! The local filesystem store: files 0600, directories 0700 whatever the umask; data is fsynced,
//! renamed into place and the directory fsynced, so a committed object survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::store::{ObjectInfo, PARTIAL_SUFFIX, StorageError, Store, Upload};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Open an existing directory (it is never created: a missing mount must not be papered over).
    pub fn open(root: &Path) -> Result<LocalStore, StorageError> {
        match fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::Missing {
                path: root.to_path_buf(),
            }),
            Err(e) => Err(StorageError::io("cannot read", root, e)),
            Ok(m) if !m.is_dir() => Err(StorageError::NotADirectory {
                path: root.to_path_buf(),
            }),
            Ok(_) => Ok(LocalStore {
                root: root.to_path_buf(),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
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
                .map_err(|e| StorageError::io("cannot create directory", parent, e))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700))
                .map_err(|e| StorageError::io("cannot set permissions on", parent, e))?;
            sync_dir(&self.root)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("cannot sync directory", dir, e))
}

fn create_private(path: &Path) -> Result<File, StorageError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io("cannot create", path, e))?;
    // The mode given to open is filtered by the umask; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| StorageError::io("cannot set permissions on", path, e))?;
    Ok(f)
}

struct LocalUpload {
    file: Option<File>,
    partial: PathBuf,
    dest: PathBuf,
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Upload for LocalUpload {
    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let file = self.file.take().expect("committed once");
        file.sync_all()
            .map_err(|e| StorageError::io("cannot sync", &self.partial, e))?;
        drop(file);
        fs::rename(&self.partial, &self.dest)
            .map_err(|e| StorageError::io("cannot rename into place", &self.dest, e))?;
        if let Some(parent) = self.dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.partial)
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
                path: self.root.clone(),
            },
            _ => StorageError::NotWritable {
                path: self.root.clone(),
                source,
            },
        })
    }

    fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError> {
        let dest = self.path_of(name);
        self.ensure_parent(&dest)?;
        if dest.exists() {
            return Err(StorageError::io(
                "refusing to overwrite",
                &dest,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", dest.display()));
        let file = create_private(&partial)?;
        Ok(Box::new(LocalUpload {
            file: Some(file),
            partial,
            dest,
        }))
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let mut up = self.create_replace(name)?;
        up.write_all(data)
            .map_err(|e| StorageError::io("cannot write", &self.path_of(name), e))?;
        crate::fault::point("store.put-before-rename");
        up.commit()
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let p = self.path_of(name);
        match File::open(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound {
                name: name.to_string(),
            }),
            Err(e) => Err(StorageError::io("cannot open", &p, e)),
        }
    }

    fn exists(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self.path_of(name).exists())
    }

    fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut out = Vec::new();
        walk(&self.root, "", 0, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), StorageError> {
        let p = self.path_of(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("cannot delete", &p, e)),
        }
        if let Some(parent) = p.parent() {
            sync_dir(parent)?;
            // Remove the day directory once it is empty.
            if parent != self.root && fs::read_dir(parent).is_ok_and(|mut d| d.next().is_none()) {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    fn free_bytes(&self) -> Option<u64> {
        nix::sys::statvfs::statvfs(&self.root)
            .ok()
            .map(|s| s.blocks_available() * s.fragment_size())
    }
}

impl LocalStore {
    /// Like `create`, but replacing an existing object (used for small metadata objects).
    fn create_replace(&self, name: &str) -> Result<Box<dyn Upload>, StorageError> {
        let dest = self.path_of(name);
        self.ensure_parent(&dest)?;
        let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", dest.display()));
        let _ = fs::remove_file(&partial);
        let file = create_private(&partial)?;
        Ok(Box::new(LocalUpload {
            file: Some(file),
            partial,
            dest,
        }))
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
        Err(e) => return Err(StorageError::io("cannot list", dir, e)),
    };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".pgkeep-") {
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
    fn missing_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = LocalStore::open(&dir.path().join("nope")).err().unwrap();
        assert!(e.to_string().contains("does not exist"));
    }
}
