//! What every store provides, so that callers never depend on where backups are kept: streamed
//! writes that become visible only on an explicit commit, streamed reads, a listing of committed
//! objects only, unfinished writes kept apart for cleanup, and errors typed by what went wrong.

use std::any::Any;
use std::fmt;
use std::io::{Read, Write};
use std::time::SystemTime;

use thiserror::Error;

/// What kind of failure a [`StorageError`] is, whatever the backend: callers decide on this,
/// never on a backend's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store's location or the named object does not exist.
    NotFound,
    /// The device, quota or bucket is full.
    NoSpace,
    /// The store refuses the operation (file mode, read-only mount, credentials, policy).
    Permission,
    /// Anything else (I/O errors, a refused overwrite, an invalid name, a backend failure).
    Other,
}

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("backup directory {path} does not exist")]
    Missing { path: String },
    #[error("backup directory {path} is not a directory")]
    NotADirectory { path: String },
    #[error("backup directory {path} is not writable: {source}")]
    NotWritable {
        path: String,
        source: std::io::Error,
    },
    #[error("no space left on the device holding {path}")]
    Full { path: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("object {name} not found")]
    NotFound { name: String },
    #[error("refusing to overwrite {name}: it exists")]
    Exists { name: String },
    #[error("invalid object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A failure of another backend, already classified by it.
    #[error("{message}")]
    Backend { kind: ErrorKind, message: String },
}

impl crate::exit::ExitCode for StorageError {
    /// Every kind is exit 4 ("`BACKUP_DIR` missing, not a directory, not writable, or full").
    fn exit_code(&self) -> u8 {
        match self.kind() {
            ErrorKind::NotFound | ErrorKind::NoSpace | ErrorKind::Permission | ErrorKind::Other => {
                crate::exit::STORAGE
            }
        }
    }
}

/// ENOSPC and EDQUOT.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122))
}

impl StorageError {
    /// Classify an I/O error on `path`; ENOSPC and EDQUOT become `Full`.
    pub fn io(action: &'static str, path: impl fmt::Display, source: std::io::Error) -> Self {
        if is_no_space(&source) {
            return StorageError::Full {
                path: path.to_string(),
            };
        }
        StorageError::Io {
            action,
            path: path.to_string(),
            source,
        }
    }

    /// The error behind a failed write to an [`Upload`]: the store's own error when the writer
    /// carried one inside the `io::Error`, else the I/O error classified.
    pub fn from_write(name: &str, e: std::io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<StorageError>().expect("checked above");
        }
        StorageError::io("cannot write", name, e)
    }

    /// Wrap into an `io::Error` (for `Write` and `Read` impls) that [`from_write`] unwraps.
    ///
    /// [`from_write`]: StorageError::from_write
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Missing { .. } | StorageError::NotFound { .. } => ErrorKind::NotFound,
            StorageError::Full { .. } => ErrorKind::NoSpace,
            StorageError::NotWritable { source, .. } if is_no_space(source) => ErrorKind::NoSpace,
            StorageError::NotWritable { .. } => ErrorKind::Permission,
            StorageError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::Permission
                }
                _ => ErrorKind::Other,
            },
            StorageError::NotADirectory { .. }
            | StorageError::Exists { .. }
            | StorageError::InvalidName { .. } => ErrorKind::Other,
            StorageError::Backend { kind, .. } => *kind,
        }
    }
}

/// One committed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name: relative, `/`-separated (see [`check_name`]).
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// A write that was started and neither committed nor aborted: its process died (or the abort
/// itself failed). Never listed as an object; found by [`Store::unfinished`] and removed with
/// [`Store::discard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The object it would have become.
    pub name: String,
    /// How the store shows it (the local store: the `*.partial` file; an object store: the
    /// marker recording the upload), for messages and reports.
    pub handle: String,
    /// Bytes written so far, 0 when the store cannot tell.
    pub size: u64,
    /// When it was started or last written.
    pub modified: SystemTime,
}

/// An object being written. It becomes visible under its name only by [`commit`]; [`abort`]
/// removes everything written so far and says whether that worked. Dropping it unfinished is an
/// abort without an answer: a backend that cannot abort without blocking (an object store,
/// whose abort is a request) leaves an [`Unfinished`] write instead, never a listed object.
///
/// [`commit`]: Upload::commit
/// [`abort`]: Upload::abort
pub trait Upload: Write + Send {
    /// Make the object durable and visible under its final name.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
    /// Give the write up and remove what was written.
    fn abort(self: Box<Self>) -> Result<(), StorageError>;
}

/// Where backups are kept. Object names are relative and `/`-separated (`2026-11-25/x.sql.gz`);
/// every method validates them with [`check_name`].
///
/// Rules every store keeps (`tests/store_conformance.rs` checks them):
/// - [`create`](Store::create) refuses a name that is already committed, [`put`](Store::put)
///   replaces atomically: a reader sees the old or the new object, never a mix;
/// - a write that failed, was aborted, or was interrupted (writer dropped, process killed) leaves
///   no object that [`list`](Store::list), [`stat`](Store::stat) or [`open`](Store::open) see;
/// - [`delete`](Store::delete) of a missing object succeeds;
/// - [`free_bytes`](Store::free_bytes) is `None` when the store cannot tell (object stores).
pub trait Store: Send + Sync + Any {
    /// Human-readable location, for messages.
    fn describe(&self) -> String;
    /// Fail unless objects can be created.
    fn check_writable(&self) -> Result<(), StorageError>;
    /// Start a streamed write of `name`; it becomes visible only on commit.
    fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError>;
    /// Write a small object atomically, replacing an existing one.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Stream a committed object.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError>;
    /// A committed object's size and time, `None` if there is none.
    fn stat(&self, name: &str) -> Result<Option<ObjectInfo>, StorageError>;
    fn exists(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self.stat(name)?.is_some())
    }
    /// Every committed object, sorted by name.
    fn list(&self) -> Result<Vec<ObjectInfo>, StorageError>;
    /// Remove a committed object; a missing one is not an error.
    fn delete(&self, name: &str) -> Result<(), StorageError>;
    /// Writes that were never committed nor aborted (left by a killed process).
    fn unfinished(&self) -> Result<Vec<Unfinished>, StorageError>;
    /// True while a write of `name` is unfinished (in progress, or left by a killed process).
    fn in_progress(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self.unfinished()?.iter().any(|u| u.name == name))
    }
    /// Remove an unfinished write and what it stored.
    fn discard(&self, unfinished: &Unfinished) -> Result<(), StorageError>;
    /// Bytes free where new objects go, `None` when unknown or unlimited.
    fn free_bytes(&self) -> Option<u64>;
}

/// The most `/`-separated components a name may have (backups use two: `DAY/FILE`).
pub const MAX_COMPONENTS: usize = 4;

/// Refuse names a store could not keep the same way everywhere: empty, absolute, with empty,
/// `.` or `..` components, control characters, more than [`MAX_COMPONENTS`] components, or a
/// component starting with `.pgkeep` (the stores' own bookkeeping: probes, locks, upload
/// markers).
pub fn check_name(name: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.starts_with('/') {
        return bad("it is absolute");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name.split('/').count() > MAX_COMPONENTS {
        return bad("it has more than four components");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("it has an empty component"),
            "." | ".." => return bad("it has a `.` or `..` component"),
            p if p.starts_with(".pgkeep") => return bad("`.pgkeep` names are reserved"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in [
            "a",
            "2026-01-01/x.sql.gz",
            "sp ace/ü%+#'@,=;!~$&()[]{}",
            "a..b",
        ] {
            check_name(ok).unwrap();
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            "x\n",
            ".pgkeep-lock",
            "d/.pgkeep/u",
            "a/b/c/d/e",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_have_kinds_and_survive_a_writer() {
        let full = StorageError::io("cannot write", "/b", std::io::Error::from_raw_os_error(28));
        assert_eq!(full.kind(), ErrorKind::NoSpace);
        let perm = StorageError::io("cannot create", "/b", std::io::Error::from_raw_os_error(13));
        assert_eq!(perm.kind(), ErrorKind::Permission);
        let carried = StorageError::Backend {
            kind: ErrorKind::NoSpace,
            message: "quota exceeded".into(),
        };
        let back = StorageError::from_write("x", carried.into_io());
        assert_eq!(back.kind(), ErrorKind::NoSpace);
        assert_eq!(back.to_string(), "quota exceeded");
    }
}
