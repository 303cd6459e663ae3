//! The backup stream: dump bytes -> inspector -> compressor -> (age encryption) -> sha256 + byte
//! counter -> sink.
//! Runs on plain threads with bounded buffers, so memory stays flat whatever the dump size.

pub mod compat;
pub mod crypt;
pub mod guard;
mod gunzip;
pub mod hashing;
pub mod inspect;
pub mod pargz;
pub mod preflight;
pub mod psql_scan;

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use hashing::HashCount;

use crate::model::Compression;
use crate::model::age::AgeRecipients;
pub use inspect::{Inspector, Report};

/// Bytes read from the dump per step.
const READ_BUF: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("reading the dump failed: {0}")]
    Read(io::Error),
    #[error("writing the backup failed: {0}")]
    Write(io::Error),
}

impl crate::exit::ExitCode for PipelineError {
    fn exit_code(&self) -> u8 {
        match self {
            PipelineError::Read(_) => crate::exit::FAILED,
            PipelineError::Write(_) => crate::exit::STORAGE,
        }
    }
}

/// The encryption stage: the compressed bytes as they are, or encrypted with age; the bytes
/// hashed and counted are the stored ones.
pub enum Sealer<W: Write> {
    Clear(HashCount<W>),
    Age(Box<age::stream::StreamWriter<HashCount<W>>>),
}

impl<W: Write> Sealer<W> {
    pub fn new(sink: W, recipients: Option<&AgeRecipients>) -> io::Result<Self> {
        let sink = HashCount::new(sink);
        Ok(match recipients {
            None => Sealer::Clear(sink),
            Some(r) => Sealer::Age(Box::new(crypt::encrypt_to(sink, r)?)),
        })
    }

    /// Write the last encrypted chunk; the stored bytes' counter and hash.
    pub fn finish(self) -> io::Result<HashCount<W>> {
        match self {
            Sealer::Clear(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Sealer::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealer::Clear(w) => w.write(buf),
            Sealer::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealer::Clear(w) => w.flush(),
            Sealer::Age(w) => w.flush(),
        }
    }
}

/// The compressor stage.
enum Encoder<W: Write + Send + 'static> {
    Gzip(pargz::ParGzWriter<Sealer<W>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Sealer<W>>>),
    Plain(Sealer<W>),
}

impl<W: Write + Send + 'static> Encoder<W> {
    fn new(sink: W, opts: &Options) -> io::Result<Self> {
        let (compression, level, threads) = (opts.compression, opts.level, opts.threads);
        let sink = Sealer::new(sink, opts.encrypt.as_ref())?;
        Ok(match compression {
            Compression::Gzip => Encoder::Gzip(pargz::ParGzWriter::new(sink, level, threads)?),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(sink, level)?;
                // Even one worker compresses beside the reading thread rather than in it, so
                // pg_dump's pipe keeps draining while a block is compressed (as with gzip).
                e.multithread(threads.max(1) as u32)?;
                e.include_checksum(true)?;
                Encoder::Zstd(Box::new(e))
            }
            Compression::None => Encoder::Plain(sink),
        })
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(w) => w.write_all(data),
            Encoder::Zstd(w) => w.write_all(data),
            Encoder::Plain(w) => w.write_all(data),
        }
    }

    fn finish(self) -> io::Result<HashCount<W>> {
        match self {
            Encoder::Gzip(w) => w.finish()?.finish(),
            Encoder::Zstd(w) => w.finish()?.finish(),
            Encoder::Plain(w) => w.finish(),
        }
    }
}

/// How to process the stream.
#[derive(Debug, Clone)]
pub struct Options {
    pub compression: Compression,
    pub level: i32,
    pub threads: usize,
    /// Inspect as a plain-format dump (row counts, trailer).
    pub inspect: bool,
    /// Encrypt the compressed stream to these age recipients.
    pub encrypt: Option<AgeRecipients>,
}

/// What came out of the stream.
#[derive(Debug)]
pub struct Outcome<W> {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub sha256: String,
    pub report: Option<Report>,
    pub sink: W,
}

/// Stream `input` to `sink` until EOF. `progress` is called with the raw byte count so far.
pub fn run<R: Read, W: Write + Send + 'static>(
    mut input: R,
    sink: W,
    opts: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<Outcome<W>, PipelineError> {
    let mut enc = Encoder::new(sink, opts).map_err(PipelineError::Write)?;
    let mut inspector = opts.inspect.then(Inspector::new);
    let mut buf = vec![0u8; READ_BUF];
    let mut raw = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipelineError::Read(e)),
        };
        let chunk = &buf[..n];
        if let Some(i) = inspector.as_mut() {
            i.feed(chunk);
        }
        if let Err(e) = enc.write_all(chunk) {
            // The compressor's own finish carries the sink's root cause (e.g. ENOSPC).
            return Err(PipelineError::Write(enc.finish().err().unwrap_or(e)));
        }
        raw += n as u64;
        progress(raw);
    }
    let hc = enc.finish().map_err(PipelineError::Write)?;
    let (sink, stored_bytes, sha256) = hc.finish();
    Ok(Outcome {
        raw_bytes: raw,
        stored_bytes,
        sha256,
        report: inspector.map(Inspector::finish),
        sink,
    })
}

/// Read a whole stream, returning its size and sha256.
pub fn hash_reader<R: Read>(mut r: R) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, hex::encode(hasher.finalize())))
}

/// A reader that decompresses a stored plain backup.
pub fn decoder<'a, R: Read + 'a>(r: R, compression: Compression) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(gunzip::Gunzip::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Compression::None => Box::new(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut d = b"COPY public.t (a) FROM stdin;\n".to_vec();
        for i in 0..200_000 {
            d.extend_from_slice(format!("{i}\n").as_bytes());
        }
        d.extend_from_slice(b"\\.\n--\n-- PostgreSQL database dump complete\n--\n\n");
        d
    }

    #[test]
    fn every_codec_round_trips_and_hashes_what_it_stores() {
        let data = sample();
        for (c, level, threads) in [
            (Compression::Gzip, 6, 2),
            (Compression::Gzip, 6, 1),
            (Compression::Zstd, 1, 2),
            (Compression::Zstd, 3, 1),
            (Compression::None, 0, 1),
        ] {
            let opts = Options {
                compression: c,
                level,
                threads,
                inspect: true,
                encrypt: None,
            };
            let out = run(&data[..], Vec::new(), &opts, &mut |_| {}).unwrap();
            assert_eq!(out.raw_bytes, data.len() as u64);
            assert_eq!(out.stored_bytes, out.sink.len() as u64);
            assert_eq!(out.sha256, hash_reader(&out.sink[..]).unwrap().1);
            let r = out.report.unwrap();
            assert!(r.trailer);
            assert_eq!(r.tables["public.t"], 200_000);
            let mut back = Vec::new();
            decoder(&out.sink[..], c)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }
}
