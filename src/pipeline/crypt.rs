//! Encryption at rest with age: the stage that encrypts the compressed stream while it is
//! written (to public keys only), and the readers that decrypt a stored backup for the checks and
//! loads that need its content. A missing or wrong identity is told apart from damaged bytes.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::age::{AgeIdentities, AgeRecipients};
use crate::storage::{LocalFile, StorageError, Store};

/// The suffix of an encrypted data file (`.sql.gz.age`, `.dump.age`).
pub const SUFFIX: &str = ".age";

#[derive(Debug, Error)]
pub enum CryptError {
    #[error(
        "the backup is encrypted with age and no identity is configured (set age_identity_file or PGKEEP_AGE_IDENTITY)"
    )]
    NoIdentity,
    #[error("the configured age identity cannot decrypt this backup (it was encrypted to {0})")]
    WrongIdentity(String),
    #[error("the encrypted data does not decrypt: {0}")]
    Corrupt(String),
    #[error("the stored bytes do not match the manifest: {0}")]
    Changed(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl crate::exit::ExitCode for CryptError {
    fn exit_code(&self) -> u8 {
        match self {
            // The backup cannot be read here: refused before anything changes.
            CryptError::NoIdentity
            | CryptError::WrongIdentity(_)
            | CryptError::Corrupt(_)
            | CryptError::Changed(_) => crate::exit::REFUSED,
            CryptError::Storage(e) => crate::exit::ExitCode::exit_code(e),
        }
    }
}

impl CryptError {
    /// True when the content could not be read for want of the right key (not a damaged file).
    pub fn is_key_problem(&self) -> bool {
        matches!(self, CryptError::NoIdentity | CryptError::WrongIdentity(_))
    }
}

/// Wrap `sink` so that everything written is encrypted to `recipients`; `finish` the returned
/// writer to write the last chunk.
pub fn encrypt_to<W: Write>(
    sink: W,
    recipients: &AgeRecipients,
) -> io::Result<age::stream::StreamWriter<W>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.keys().iter().map(|k| k as &dyn age::Recipient))
            .map_err(|e| io::Error::other(e.to_string()))?;
    encryptor.wrap_output(sink)
}

/// A reader of the plaintext of an age stream. `recipients` (the manifest's) name the keys in
/// the message when the identity does not fit.
pub fn decrypt<'a, R: Read + 'a>(
    stored: R,
    identities: Option<&AgeIdentities>,
    recipients: &[String],
) -> Result<Box<dyn Read + 'a>, CryptError> {
    let ids = identities.ok_or(CryptError::NoIdentity)?;
    let decryptor = age::Decryptor::new(stored).map_err(|e| CryptError::Corrupt(e.to_string()))?;
    match decryptor.decrypt(ids.keys().iter().map(|k| k as &dyn age::Identity)) {
        Ok(r) => Ok(Box::new(r)),
        Err(age::DecryptError::NoMatchingKeys) => {
            Err(CryptError::WrongIdentity(shown_recipients(recipients)))
        }
        Err(e) => Err(CryptError::Corrupt(e.to_string())),
    }
}

fn shown_recipients(r: &[String]) -> String {
    match r {
        [] => "unrecorded recipients".into(),
        [one] => one.clone(),
        many => format!("{} and {} more", many[0], many.len() - 1),
    }
}

/// Hashes and counts the stored (encrypted) bytes as they are read.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The plaintext of an encrypted backup as a private local file (for pg_restore, which reads
/// archives by name, and for a restore's several passes), with its size and sha256. The stored
/// bytes (`stored`, named `name` in messages) are checked against `expected` (the manifest's
/// size and sha256) while they are read: a mismatch is [`CryptError::Changed`], and the copy is
/// removed.
pub fn decrypt_to_local(
    stored: impl Read,
    name: &str,
    staging_dir: &Path,
    identities: Option<&AgeIdentities>,
    (recipients, expected): (&[String], Option<(u64, &str)>),
) -> Result<(LocalFile, u64, String), CryptError> {
    let ids = identities.ok_or(CryptError::NoIdentity)?;
    let mut stored = Hashing {
        inner: stored,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut temp = crate::storage::staging::private_temp(staging_dir)?;
    let temp_path = temp.path().display().to_string();
    let (plain_bytes, plain_sha) = {
        let mut reader = decrypt(&mut stored, Some(ids), recipients)?;
        let mut out = super::hashing::HashCount::new(temp.as_file_mut());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CryptError::Corrupt(e.to_string())),
            };
            out.write_all(&buf[..n])
                .map_err(|e| StorageError::io("cannot decrypt into", &temp_path, e))?;
        }
        let (_, bytes, sha) = out.finish();
        (bytes, sha)
    };
    io::copy(&mut stored, &mut io::sink()).map_err(|e| StorageError::io("cannot read", name, e))?;
    let stored_sha = hex::encode(stored.hasher.finalize());
    if let Some((size, sha)) = expected
        && (stored.bytes != size || stored_sha != sha)
    {
        return Err(CryptError::Changed(format!(
            "{name} has {} bytes with sha256 {}, the manifest records {size} bytes with sha256 {}",
            stored.bytes,
            &stored_sha[..16],
            &sha[..sha.len().min(16)]
        )));
    }
    Ok((LocalFile::temp(temp), plain_bytes, plain_sha))
}

/// [`decrypt_to_local`] of a stored object.
pub fn decrypt_object(
    store: &dyn Store,
    name: &str,
    staging_dir: &Path,
    identities: Option<&AgeIdentities>,
    keys: (&[String], Option<(u64, &str)>),
) -> Result<(LocalFile, u64, String), CryptError> {
    let ids = identities.ok_or(CryptError::NoIdentity)?;
    decrypt_to_local(store.open(name)?, name, staging_dir, Some(ids), keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn keys() -> (AgeRecipients, AgeIdentities) {
        let id = age::x25519::Identity::generate();
        (
            AgeRecipients::parse(&id.to_public().to_string())
                .unwrap()
                .unwrap(),
            AgeIdentities::parse(id.to_string().expose_secret()).unwrap(),
        )
    }

    #[test]
    fn what_is_encrypted_decrypts_with_the_identity_only() {
        let (r, ids) = keys();
        let (_, other) = keys();
        let mut w = encrypt_to(Vec::new(), &r).unwrap();
        w.write_all(b"secret rows").unwrap();
        let stored = w.finish().unwrap();
        assert!(!stored.windows(6).any(|x| x == b"secret"));
        let mut back = Vec::new();
        decrypt(&stored[..], Some(&ids), &r.public_keys())
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b"secret rows");
        let e = decrypt(&stored[..], Some(&other), &r.public_keys())
            .err()
            .unwrap();
        assert!(matches!(e, CryptError::WrongIdentity(_)), "{e}");
        assert!(matches!(
            decrypt(&stored[..], None, &[]).err().unwrap(),
            CryptError::NoIdentity
        ));
        let e = decrypt(&b"not age"[..], Some(&ids), &[]).err().unwrap();
        assert!(matches!(e, CryptError::Corrupt(_)), "{e}");
    }
}
