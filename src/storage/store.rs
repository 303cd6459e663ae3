//! What every store provides (the `Store` trait, its objects and errors): an atomic put of a
//! streamed object (written as `*.partial`, visible under its name only once committed), get,
//! list and delete.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use thiserror::Error;

/// Suffix of objects that are still being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("backup directory {path} does not exist")]
    Missing { path: PathBuf },
    #[error("backup directory {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("backup directory {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no space left on the device holding {path}")]
    Full { path: PathBuf },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object {name} not found")]
    NotFound { name: String },
}

impl crate::exit::ExitCode for StorageError {
    fn exit_code(&self) -> u8 {
        match self {
            StorageError::Missing { .. }
            | StorageError::NotADirectory { .. }
            | StorageError::NotWritable { .. }
            | StorageError::Full { .. }
            | StorageError::Io { .. }
            | StorageError::NotFound { .. } => crate::exit::STORAGE,
        }
    }
}

impl StorageError {
    /// Classify an I/O error on `path`; ENOSPC and EDQUOT become `Full`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> StorageError {
        match source.raw_os_error() {
            Some(28) | Some(122) => StorageError::Full {
                path: path.to_path_buf(),
            },
            _ => StorageError::Io {
                action,
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// One stored object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Path relative to the store root, `/`-separated.
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// An object being written. Dropping it without `commit` removes it.
pub trait Upload: Write + Send {
    /// Make the object durable and visible under its final name.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
    /// The local file being written, when the store is a filesystem.
    fn local_path(&self) -> Option<&Path>;
}

pub trait Store: Send + Sync {
    /// Human-readable location, for messages.
    fn describe(&self) -> String;
    /// Fail unless objects can be created.
    fn check_writable(&self) -> Result<(), StorageError>;
    /// Start writing `name`; it becomes visible only on commit.
    fn create(&self, name: &str) -> Result<Box<dyn Upload>, StorageError>;
    /// Write a small object atomically.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError>;
    fn exists(&self, name: &str) -> Result<bool, StorageError>;
    /// Every object, recursively (partial objects included).
    fn list(&self) -> Result<Vec<ObjectInfo>, StorageError>;
    fn delete(&self, name: &str) -> Result<(), StorageError>;
    /// Bytes free where new objects go, when known.
    fn free_bytes(&self) -> Option<u64>;
}
