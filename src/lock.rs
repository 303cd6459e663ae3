//! Keeps two runs that would write the same thing from overlapping: an advisory file lock that
//! the kernel releases when the holder dies, with the holder's description inside for messages.
//!
//! The lock (`flock`) belongs to the open file description, not to a process: a child given a
//! descriptor of it ([`crate::process::Spec::inherit_fd`]) keeps it held for as long as the child
//! lives, even when pgkeep dies first, and the note can name the child ([`Lock::set_note`]). So a
//! lock is never released explicitly; it ends when the last descriptor of it is closed: pgkeep's
//! own when the [`Lock`] is dropped, a child's when it has been reaped (or exits, if pgkeep is
//! gone). For the same reason lock files are never deleted: a run that opened the old file would
//! hold a lock on it while the next run locks a new file under the same name beside it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};
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
        let lock = Lock {
            file,
            path: path.to_path_buf(),
        };
        lock.set_note(holder)?;
        Ok(lock)
    }

    /// Replace the holder's description (e.g. to add the pid of a child that holds it too).
    pub fn set_note(&self, holder: &str) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = &self.file;
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.flush().map_err(io)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock's descriptor, for a child that must hold the lock as long as it lives.
impl AsFd for Lock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
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
        assert!(p.exists(), "lock files stay");
    }

    /// Start a `sleep` in a session of its own (out of reach of the process group kill), wait
    /// until it is there, print its pid.
    const DETACHED_SLEEP: &str = "setsid sleep 30 </dev/null >/dev/null 2>&1 & p=$!; \
        until [ \"$(cut -d' ' -f6 /proc/$p/stat)\" = \"$p\" ]; do sleep 0.01; done; echo $p";

    /// A descendant given the lock keeps it after pgkeep let go of every descriptor of it (here a
    /// `sleep` that left the process group, as a pg_dump that outlived pgkeep would), and the
    /// note names pgkeep's child.
    #[test]
    fn an_inherited_lock_stays_held_by_the_child() {
        use crate::process::{Spec, output};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let lock = Lock::acquire(&p, "backup abc (pid 1)").unwrap();
        let spec = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg(DETACHED_SLEEP)
            .inherit_fd(&lock)
            .unwrap();
        lock.set_note("backup abc (pid 1), pg_dump pid 7").unwrap();
        let (o, out) = output(&spec, None).unwrap();
        assert!(o.success(), "{}", o.describe());
        // Every descriptor pgkeep had is closed now: the spec's duplicate, the lock's own.
        drop(spec);
        drop(lock);
        let sleeper: i32 = String::from_utf8_lossy(&out).trim().parse().unwrap();
        let e = Lock::acquire(&p, "other").unwrap_err();
        assert!(e.to_string().contains("pg_dump pid 7"), "{e}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sleeper),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Lock::acquire(&p, "other").is_err() {
            assert!(
                std::time::Instant::now() < until,
                "the lock was not released"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Without `inherit_fd` a child gets no descriptor of the lock.
    #[test]
    fn a_child_not_given_the_lock_does_not_hold_it() {
        use crate::process::{Spec, output};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let lock = Lock::acquire(&p, "backup abc (pid 1)").unwrap();
        let spec = Spec::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg(DETACHED_SLEEP);
        let (o, out) = output(&spec, None).unwrap();
        assert!(o.success(), "{}", o.describe());
        drop(lock);
        let sleeper: i32 = String::from_utf8_lossy(&out).trim().parse().unwrap();
        // A fork by another thread of this process (another test starting a child) holds a copy
        // of every descriptor, this lock's too, until its exec closes them: retry for a while.
        // The sleeper lives for 30 s, so a lock it inherited would still be refused at the end.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut got = Lock::acquire(&p, "other");
        while got.is_err() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
            got = Lock::acquire(&p, "other");
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sleeper),
            nix::sys::signal::Signal::SIGKILL,
        );
        got.unwrap();
    }
}
