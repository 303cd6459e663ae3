//! Keeps two runs that would write the same thing from overlapping: an advisory file lock that
//! the kernel releases when the holder dies, with the holder's description inside for messages.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another pgkeep run is in progress: {holder}")]
    Busy { holder: String },
    #[error("cannot use lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::exit::ExitCode for LockError {
    fn exit_code(&self) -> u8 {
        match self {
            LockError::Busy { .. } => crate::exit::BUSY,
            LockError::Io { .. } => crate::exit::FAILED,
        }
    }
}

/// A held lock; released on drop (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Take the lock at `path` without waiting, recording `holder` in it.
    pub fn acquire(path: &Path, holder: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LockError::Busy {
                    holder: if holder.is_empty() {
                        "the lock holder did not describe itself".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Lock {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = Lock::acquire(&p, "backup abc (pid 1)").unwrap();
        let e = Lock::acquire(&p, "other").unwrap_err();
        assert!(e.to_string().contains("backup abc (pid 1)"), "{e}");
        drop(a);
        Lock::acquire(&p, "other").unwrap();
    }
}
