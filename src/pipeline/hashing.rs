//! Counting and hashing the bytes on their way to a sink: the stored size and sha256 of a backup
//! are those of the bytes that reached the store.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// Counts and hashes the bytes that reach the sink.
pub struct HashCount<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashCount<W> {
    pub fn new(inner: W) -> Self {
        HashCount {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
