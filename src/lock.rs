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
//!
//! **Per-run locks** ([`Lock::create_unique`]) are the exception: a file of a random name that
//! only its run ever creates, so that whoever finds it unlocked knows the run is dead (a pid
//! would not say so: pods that share a volume have pid namespaces of their own, and pgkeep is
//! often pid 1 in each). The sweeper takes the dead run's lock ([`Lock::take_dead`]) before it
//! removes what the run left and the lock file last; a run that locked a file that was unlinked
//! meanwhile notices it (the path no longer names its file) and takes a new name.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
        take(&mut file).map_err(|e| e.unwrap_or_else(io))?;
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

    /// Who holds the lock at `path`, without creating the file: `None` when nobody does (or the
    /// file does not exist), so that a mere check leaves no lock file behind.
    pub fn holder(path: &Path) -> Result<Option<String>, LockError> {
        match Lock::take_existing(path) {
            Ok(Some(_free)) => Ok(None),
            Ok(None) => Ok(None),
            Err(LockError::Busy { holder }) => Ok(Some(holder)),
            Err(e) => Err(e),
        }
    }

    /// A new per-run lock `DIR/PREFIX<random>.lock`, held by this run; see the module docs.
    pub fn create_unique(dir: &Path, prefix: &str, holder: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: dir.to_path_buf(),
            source,
        };
        loop {
            let (file, path) = tempfile::Builder::new()
                .prefix(prefix)
                .suffix(".lock")
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(dir)
                .map_err(io)?
                .keep()
                .map_err(|e| io(e.error))?;
            match file.try_lock() {
                Ok(()) => {}
                // A sweeper opened it between its creation and this lock: take another name.
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            let lock = Lock { file, path };
            // ... or a sweeper took and unlinked it before this lock.
            if !lock.still_named()? {
                continue;
            }
            lock.set_note(holder)?;
            return Ok(lock);
        }
    }

    /// Take the per-run lock at `path` if its run is dead (`Ok(Some)`); `Ok(None)` when the run
    /// lives, or when the file is gone or was replaced (another sweeper got there first).
    pub fn take_dead(path: &Path) -> Result<Option<Lock>, LockError> {
        match Lock::take_existing(path) {
            Ok(Some(lock)) if lock.still_named()? => Ok(Some(lock)),
            Ok(_) | Err(LockError::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove the lock file of a dead run whose leftovers were removed, then let go of it.
    pub fn remove_taken(self) -> Result<(), LockError> {
        std::fs::remove_file(&self.path).map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Lock an existing file without creating it: `Ok(None)` when there is none.
    fn take_existing(path: &Path) -> Result<Option<Lock>, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        take(&mut file).map_err(|e| e.unwrap_or_else(io))?;
        Ok(Some(Lock {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// True while the lock's path still names the locked file.
    fn still_named(&self) -> Result<bool, LockError> {
        use std::os::unix::fs::MetadataExt;
        let io = |source| LockError::Io {
            path: self.path.clone(),
            source,
        };
        let mine = self.file.metadata().map_err(io)?;
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.dev() == mine.dev() && m.ino() == mine.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(e)),
        }
    }
}

/// The holder's note, or a word that there is none.
fn describe(text: &str) -> String {
    let holder = text.trim();
    if holder.is_empty() {
        "the lock holder did not describe itself".into()
    } else {
        holder.to_string()
    }
}

/// The lock's descriptor, for a child that must hold the lock as long as it lives.
impl AsFd for Lock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Take the kernel lock of `file` without waiting: `Err(Ok(busy))` names the holder from the
/// file's note, `Err(Err(e))` is an I/O error for the caller to attach its path to.
fn take(file: &mut File) -> Result<(), Result<LockError, std::io::Error>> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Err(Ok(LockError::Busy {
                holder: describe(&text),
            }))
        }
        Err(TryLockError::Error(e)) => Err(Err(e)),
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

    /// A per-run lock is found busy while its run lives, taken once it is dead, and its file goes
    /// with the sweep; a check by `holder` creates nothing.
    #[test]
    fn a_per_run_lock_tells_a_live_run_from_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let live = Lock::create_unique(dir.path(), "pgkeep-run-", "verify (pid 1)").unwrap();
        let path = live.path().to_path_buf();
        assert!(
            Lock::take_dead(&path).unwrap().is_none(),
            "a live run is not dead"
        );
        assert_eq!(
            Lock::holder(&path).unwrap().as_deref(),
            Some("verify (pid 1)")
        );
        drop(live);
        // A fork by another test's thread holds a copy of every descriptor until its exec.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while Lock::holder(&path).unwrap().is_some() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(Lock::holder(&path).unwrap(), None);
        let dead = Lock::take_dead(&path).unwrap().expect("the run is dead");
        assert!(
            Lock::take_dead(&path).unwrap().is_none(),
            "one sweeper at a time"
        );
        dead.remove_taken().unwrap();
        assert!(!path.exists());
        assert!(Lock::take_dead(&path).unwrap().is_none());
        let never = dir.path().join("never.lock");
        assert_eq!(Lock::holder(&never).unwrap(), None);
        assert!(!never.exists(), "a check leaves no lock file");
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
