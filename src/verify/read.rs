//! Reading a stored backup back: its manifest, its size, and one pass over a plain backup that
//! hashes every byte while decompressing and inspecting the dump (stopping at a shutdown).

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::error::VerifyError;
use super::failure::Failure;
use crate::catalog::{self, Manifest};
use crate::model::age::AgeIdentities;
use crate::model::{Compression, Progress};
use crate::pipeline::{self, Inspector};
use crate::shutdown::Shutdown;
use crate::storage::{StorageError, Store};

pub(super) fn read_manifest_bytes(
    store: &dyn Store,
    name: &str,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match store.open(name) {
        Ok(mut r) => {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)
                .map_err(|e| StorageError::io("cannot read", name, e))?;
            Ok(Some(bytes))
        }
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the manifest's signature lets it be trusted: `Ok(None)` without keys or when signed,
/// `Ok(Some(note))` for an unsigned manifest that is allowed, a failure otherwise.
pub(super) fn check_seal(
    keys: Option<&crate::model::ManifestKeys>,
    name: &str,
    bytes: &[u8],
) -> Result<Option<String>, Failure> {
    match crate::catalog::seal_of(keys, bytes) {
        Ok(note) => Ok(note),
        Err(why) => Err(Failure::Signature {
            name: name.to_string(),
            why,
        }),
    }
}

pub(super) fn parse_manifest(name: &str, bytes: &[u8]) -> Result<Manifest, Failure> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| Failure::ManifestUnreadable {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    if m.manifest_version > catalog::MANIFEST_VERSION {
        return Err(Failure::ManifestUnreadable {
            name: name.to_string(),
            message: format!(
                "manifest version {} is newer than this pgkeep understands",
                m.manifest_version
            ),
        });
    }
    Ok(m)
}

/// gzip members written by pgkeep's compressor (libdeflate) carry OS byte 255 ("unknown");
/// GNU gzip, as used by the old backup pod, writes 3 (Unix).
pub(super) fn written_by_pgkeep(store: &dyn Store, file: &str) -> bool {
    crate::catalog::made_by_pgkeep(file, &crate::catalog::head_of(store, file))
}

/// A reader that hashes and counts what passes through it.
pub(super) struct Hashing<'s, R> {
    pub(super) inner: R,
    pub(super) shutdown: &'s Shutdown,
    pub(super) hasher: Sha256,
    pub(super) bytes: u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shutdown.reason().is_some() {
            return Err(io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Why the content of a plain backup was not read.
pub(super) enum Undecoded {
    /// Encrypted, and no identity here decrypts it.
    Key(String),
    /// It does not decrypt or decompress.
    Corrupt(String),
}

/// What one pass over a plain backup found.
pub(super) struct PlainPass {
    pub(super) stored_bytes: u64,
    pub(super) sha256: String,
    pub(super) raw_bytes: u64,
    /// Why the content was not read, when it was not.
    pub(super) decoded: Result<pipeline::Report, Undecoded>,
}

/// The identities and the recorded recipients of an encrypted backup.
pub(super) type Sealed<'a> = (Option<&'a AgeIdentities>, &'a [String]);

/// Read the stored file once: hash every byte while decrypting (an encrypted backup),
/// decompressing and inspecting the dump.
pub(super) fn plain_pass(
    store: &dyn Store,
    file: &str,
    (compression, sealed): (Compression, Option<Sealed<'_>>),
    (shutdown, progress): (&Shutdown, &Progress),
) -> Result<PlainPass, Failure> {
    let r = store.open(file).map_err(|e| Failure::Read(e.to_string()))?;
    let mut hashing = Hashing {
        inner: progress.reader("reading", r),
        shutdown,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut raw = 0u64;
    let decoded = {
        let mut inspector = Inspector::new();
        let res = (|| -> Result<(), Undecoded> {
            let corrupt = |e: io::Error| Undecoded::Corrupt(e.to_string());
            let clear: Box<dyn Read + '_> = match sealed {
                None => Box::new(&mut hashing),
                Some((ids, recipients)) => pipeline::crypt::decrypt(&mut hashing, ids, recipients)
                    .map_err(|e| match e.is_key_problem() {
                        true => Undecoded::Key(e.to_string()),
                        false => Undecoded::Corrupt(e.to_string()),
                    })?,
            };
            let mut dec = pipeline::decoder(clear, compression).map_err(corrupt)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match dec.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        inspector.feed(&buf[..n]);
                        raw += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(corrupt(e)),
                }
            }
        })();
        res.map(|()| inspector.finish())
    };
    // Whatever the decoder left unread still counts toward size and checksum.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| Failure::Read(e.to_string()))?;
    Ok(PlainPass {
        stored_bytes: hashing.bytes,
        sha256: hex::encode(hashing.hasher.finalize()),
        raw_bytes: raw,
        decoded,
    })
}

pub(super) fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "none",
    }
}

/// The size of a stored file, `None` if it does not exist (or cannot be asked about).
pub(super) fn size_of(store: &dyn Store, name: &str) -> Option<u64> {
    store.stat(name).ok().flatten().map(|o| o.size)
}
