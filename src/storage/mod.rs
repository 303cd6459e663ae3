//! Where backups are kept, behind one interface that an object store can implement without
//! touching its callers. The [`Store`] trait (in `store`) has no local paths in it: streamed
//! writes ([`Upload`]) that become visible only by an explicit `commit` and are removed by an
//! explicit `abort`, streamed reads, a listing of committed objects only, unfinished writes kept
//! apart ([`Unfinished`]) for the next run to discard, free space as an `Option`, and errors of
//! four kinds ([`ErrorKind`]: not found, no space, permission, other; all exit 4). The local
//! filesystem backend is in `local`; `tests/store_conformance.rs` holds the rules every backend
//! must pass, written over a store factory so that each new backend runs through them.
//!
//! Two things need a local directory whatever the store, and each has a place of its own outside
//! the trait:
//! - **Seekable files** (`staging`): pg_dump's custom format seeks back to write its data
//!   offsets (which `pg_restore -j` needs), and pg_restore reads an archive by name. A custom
//!   backup is written into a [`Staged`] file and put into the store on commit; a restore or a
//!   replay gets a [`LocalFile`]. For the local store both are the store's own file (the partial
//!   file pg_dump writes, the committed file pg_restore reads): nothing is copied. Any other
//!   store stages through a private temporary file in the staging directory (TMPDIR), which
//!   needs room for one archive.
//! - **The per-database locks** are kernel file locks in a local directory
//!   ([`Site::lock_dir`]): by default the backup directory itself, where they always were; a
//!   store that is not a local directory is given a local one. They never go through the store.
//!
//! ## Sync, and how an async multipart backend fits
//!
//! The trait is synchronous (`Read`, `Write`, blocking calls). Its callers are synchronous
//! already: the dump pipeline (pg_dump's pipe, the inspector, the parallel compressor, the
//! hasher) runs on a blocking thread and writes into an `impl Write`; verification reads with
//! `impl Read` through decompressors; the async callers (the daemon, `backup::run`) call the
//! store from `spawn_blocking`. Making the trait async would push an executor into every one of
//! those loops for the sake of one backend; a sync trait costs the async backend one bridge.
//!
//! An object store (S3 through `object_store`'s `MultipartStore`) implements the trait with a
//! handle to the tokio runtime and bridges like this:
//! - `create` starts the multipart upload (and first writes a small marker object naming it,
//!   since a listing never shows unfinished multipart uploads: that marker is what
//!   [`Store::unfinished`] returns and [`Store::discard`] aborts);
//! - the `Upload`'s `write` fills a part buffer on the caller's blocking thread; a full part is
//!   sent over a bounded channel to an async task that uploads parts, a few in flight, under a
//!   semaphore of bytes that covers the buffer and the parts in flight (the memory budget:
//!   part size times parts in flight within 64 MiB; the part size grows with the object so
//!   that 10,000 parts are never reached). A full channel blocks `write`: backpressure reaches
//!   pg_dump's pipe, and memory stays flat;
//! - `commit` sends the last part and waits for every part and the completion, then deletes
//!   the marker; `abort` aborts the upload and deletes the marker, and so does dropping the
//!   upload unfinished. A killed process leaves the marker: the object is never listed and the
//!   next run's culling discards it;
//! - every blocking call polls its future on the calling thread inside the store's own runtime
//!   context (its workers drive sockets and timers), so the store works from plain threads,
//!   blocking tasks and async tasks alike, and never starts a runtime inside another;
//! - reads: `open` returns a `Read` that polls the GET's byte stream chunk by chunk;
//! - `free_bytes` is `None`; errors map to [`ErrorKind`] (a quota error is `NoSpace`).
//!
//! The backup commits in the order the trait makes natural for every store: data committed,
//! manifest put last (the commit point: `catalog::list` shows a backup only once its manifest
//! exists), marker deleted.

pub mod local;
pub mod s3;
pub mod staging;
pub mod store;

use std::path::{Path, PathBuf};

use crate::model::S3Options;

pub use local::{LocalStore, PARTIAL_SUFFIX};
pub use staging::{LocalFile, Staged};
pub use store::{ErrorKind, ObjectInfo, StorageError, Store, Unfinished, Upload, check_name};

/// Open the store at `location`: an `s3://BUCKET/PREFIX` location is an [`s3::S3Store`]
/// reached as `s3` says (the `s3_*` settings); anything else is a local directory.
pub fn open(location: &Path, s3: &S3Options) -> Result<Box<dyn Store>, StorageError> {
    if let Some(url) = location.to_str().filter(|l| s3::is_s3(l)) {
        return Ok(Box::new(s3::S3Store::open(url, s3)?));
    }
    Ok(Box::new(LocalStore::open(location)?))
}

/// A store together with the local directory that holds its per-database locks.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub store: &'a dyn Store,
    pub lock_dir: &'a Path,
}

impl<'a> Site<'a> {
    pub fn new(store: &'a dyn Store, lock_dir: &'a Path) -> Site<'a> {
        Site { store, lock_dir }
    }
}

/// A local backup directory keeps its locks in itself.
impl<'a> From<&'a LocalStore> for Site<'a> {
    fn from(store: &'a LocalStore) -> Site<'a> {
        Site {
            store,
            lock_dir: store.root(),
        }
    }
}

/// The local lock directory `dir` (the `lock_dir` setting), created private (0700) when missing:
/// an object store's locks have no backup directory to live in.
pub fn lock_dir(dir: &Path) -> Result<PathBuf, StorageError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StorageError::io("cannot create the lock directory", dir.display(), e))?;
    }
    Ok(dir.to_path_buf())
}
