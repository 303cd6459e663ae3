//! Where a backup's bytes go until its commit: a streamed upload, a staged local file that
//! pg_dump writes itself, or a staged archive encrypted on its way into the store.

use std::path::Path;

use crate::config::Settings;
use crate::model::Format;
use crate::pipeline;
use crate::storage::{self, Staged, StorageError, Store, Upload};

/// Where the dump goes: a streamed upload for plain dumps, a staging file for custom archives
/// (pg_dump writes those itself and seeks in them). An archive to be encrypted is staged apart
/// from the store (in TMPDIR) even for a local store, so that no plaintext lands beside the
/// backups; it is encrypted on its way into the store.
pub(super) fn open_output(
    store: &dyn Store,
    s: &Settings,
    file: &str,
) -> Result<Output, StorageError> {
    let tmp = std::env::temp_dir();
    Ok(match (s.format, s.age_recipients.is_some()) {
        (Format::Plain, _) => Output::Stream(store.create(file)?),
        (Format::Custom, false) => Output::Staged(storage::staging::stage(store, file, &tmp)?),
        (Format::Custom, true) => Output::Sealed(
            storage::staging::stage_apart(store, file, &tmp)?,
            file.to_string(),
        ),
    })
}

/// Where the dump goes until the commit: plain dumps stream into an upload; pg_dump writes a
/// custom archive into a staged local file itself (it seeks back to write the data offsets).
pub(crate) enum Output {
    Stream(Box<dyn Upload>),
    Staged(Staged),
    /// A custom archive staged apart, encrypted into object `.1` on commit.
    Sealed(Staged, String),
}

impl Output {
    /// The staged archive pg_dump writes, if any.
    pub(super) fn staged(&self) -> Option<&Staged> {
        match self {
            Output::Stream(_) => None,
            Output::Staged(s) | Output::Sealed(s, _) => Some(s),
        }
    }

    /// Commit the data object (not yet the backup: that is the manifest). An archive encrypted
    /// on its way into the store returns the stored size and sha256.
    pub(crate) fn commit(
        self,
        store: &dyn Store,
        recipients: Option<&crate::model::age::AgeRecipients>,
    ) -> Result<Option<(u64, String)>, StorageError> {
        match (self, recipients) {
            (Output::Stream(upload), _) => upload.commit().map(|()| None),
            (Output::Staged(staged), _) => staged.commit(store).map(|()| None),
            (Output::Sealed(staged, name), Some(r)) => {
                let sealed = seal_into(store, staged.path(), &name, r);
                let _ = staged.abort();
                sealed.map(Some)
            }
            (Output::Sealed(..), None) => unreachable!("sealed outputs have recipients"),
        }
    }

    /// Give the data up. An abort that fails leaves an unfinished write, never a listed object;
    /// culling removes it later.
    pub(crate) fn abort(self) {
        let aborted = match self {
            Output::Stream(upload) => upload.abort(),
            Output::Staged(staged) | Output::Sealed(staged, _) => staged.abort(),
        };
        if let Err(e) = aborted {
            tracing::warn!(error = %e, "cannot remove the unfinished backup data; culling removes it later");
        }
    }
}

/// The upload as the pipeline's sink, still reachable by the caller: when the stream fails
/// (and the pipeline drops its sink), the upload is aborted explicitly rather than dropped.
#[derive(Clone)]
pub(super) struct SharedUpload(
    pub(super) std::sync::Arc<std::sync::Mutex<Option<Box<dyn Upload>>>>,
);

impl SharedUpload {
    pub(super) fn take(&self) -> Option<Box<dyn Upload>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::io::Write for SharedUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(up) => up.write(buf),
            None => Err(std::io::Error::other("the upload was given up")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(up) => up.flush(),
            None => Ok(()),
        }
    }
}

/// Encrypt the staged archive at `path` into object `name` (through a streamed upload, hashing
/// what is stored); the stored size and sha256.
fn seal_into(
    store: &dyn Store,
    path: &Path,
    name: &str,
    recipients: &crate::model::age::AgeRecipients,
) -> Result<(u64, String), StorageError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| StorageError::io("cannot read", path.display(), e))?;
    let upload = store.create(name)?;
    let shared = SharedUpload(std::sync::Arc::new(std::sync::Mutex::new(Some(upload))));
    let copied = pipeline::Sealer::new(shared.clone(), Some(recipients)).and_then(|mut sealer| {
        std::io::copy(&mut file, &mut sealer)?;
        sealer.finish()
    });
    let upload = shared.take().expect("the upload is kept until now");
    match copied {
        Ok(hc) => {
            let (_, bytes, sha256) = hc.finish();
            upload.commit()?;
            Ok((bytes, sha256))
        }
        Err(e) => {
            let err = StorageError::from_write(name, e);
            let _ = upload.abort();
            Err(err)
        }
    }
}
