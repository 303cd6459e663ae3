//! Stands between a stored plain backup and psql's stdin, so that what is checked is exactly what
//! is loaded: the sha256 runs on the stored bytes as they are read ([`HashingReader`], placed
//! before decompression), the psql lexer on the decompressed bytes as they are written to psql
//! ([`Guard`], [`GuardWriter`]). A refused meta-command never reaches psql: bytes are forwarded
//! only up to the scanner's safe point, so psql never receives the backslash of a refused
//! command, nor the end of the line on which it would act.
//!
//! Restricted mode is the second line: with a [`RestrictKey`], the stream opens with
//! `\restrict KEY \\ ` (on line 1, so psql's line numbers stay those of the file), after which
//! psql refuses every meta-command but `\unrestrict KEY`. The dump's own `\restrict` and
//! `\unrestrict` lines are always replaced by comments: psql refuses a second `\restrict` and an
//! `\unrestrict` with another key, and a psql without `\restrict` does not know them.
//!
//! How psql must run for the guard's reasoning to hold: `psql -X -v ON_ERROR_STOP=1 -f -`
//! (no psqlrc; the first failing statement ends psql, so COPY data is never read as SQL after a
//! refused COPY), `standard_conforming_strings` pinned to [`ScanOptions`]'s value
//! (`PGOPTIONS=-c standard_conforming_strings=on`) and an ASCII-safe `PGCLIENTENCODING` (the
//! database's encoding). On any error the caller must kill psql *before* closing its stdin:
//! at the end of its input psql would run what it holds and commit.
//!
//! ```text
//! let mut stdin = child.stdin.take();
//! match guard::feed_psql(File::open(path)?, compression, &mut stdin, opts) {
//!     Ok(feed) if feed.sha256 == manifest.sha256 => drop(stdin),          // psql may finish
//!     Ok(_) | Err(_) => { kill(child); wait(child); drop(stdin) }        // never commits
//! }
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::psql_scan::{Event, Finding, ScanEnd, ScanOptions, Scanner, Statement};
use crate::model::Compression;

/// Statements needing more than the owner's privilege kept for the report.
const PRIVILEGED_MAX: usize = 1000;

/// Where a stream is refused or fails.
#[derive(Debug, Error)]
pub enum GuardError {
    #[error("the backup holds a {}; nothing from there on reached psql", .0)]
    Refused(Finding),
    #[error("reading the backup failed: {0}")]
    Read(io::Error),
    #[error("the backup does not decompress: {0}")]
    Decode(io::Error),
    #[error("writing to psql failed: {0}")]
    Write(io::Error),
    #[error("cannot make a random key: {0}")]
    Random(String),
}

impl crate::exit::ExitCode for GuardError {
    fn exit_code(&self) -> u8 {
        match self {
            // Refused before psql saw what it would act on.
            GuardError::Refused(_) => crate::exit::REFUSED,
            GuardError::Read(_)
            | GuardError::Decode(_)
            | GuardError::Write(_)
            | GuardError::Random(_) => crate::exit::FAILED,
        }
    }
}

/// Which psql versions have `\restrict` (13.22+, 14.19+, 15.14+, 16.10+, 17.6+, 18beta3+ and
/// later majors), from a version as `psql --version` prints it (`15.18`, `18beta3`, `19devel`).
pub fn psql_supports_restrict(version: &str) -> bool {
    let digits = |s: &str| -> Option<u32> {
        let d: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        d.parse().ok()
    };
    let Some(major) = digits(version) else {
        return false;
    };
    let rest = &version[major.to_string().len()..];
    let minor = rest.strip_prefix('.').and_then(digits);
    let min_minor = match major {
        0..=12 => return false,
        13 => 22,
        14 => 19,
        15 => 14,
        16 => 10,
        17 => 6,
        18 => {
            return minor.is_some()
                || rest.starts_with("rc")
                || rest
                    .strip_prefix("beta")
                    .and_then(digits)
                    .is_some_and(|b| b >= 3);
        }
        _ => return true,
    };
    minor.is_some_and(|m| m >= min_minor)
}

/// pgkeep's own `\restrict` key: random, alphanumeric, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RestrictKey(String);

impl std::fmt::Debug for RestrictKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestrictKey(..)")
    }
}

/// `len` alphanumeric characters from the operating system's CSPRNG (about 5.95 bits each).
pub fn random_alnum(len: usize) -> Result<String, GuardError> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut key = String::with_capacity(len);
    while key.len() < len {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| GuardError::Random(e.to_string()))?;
        // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
        for b in buf.into_iter().filter(|&b| b < 248) {
            if key.len() < len {
                key.push(ALNUM[(b % 62) as usize] as char);
            }
        }
    }
    Ok(key)
}

impl RestrictKey {
    /// 32 characters from the operating system's CSPRNG (about 190 bits).
    pub fn random() -> Result<RestrictKey, GuardError> {
        random_alnum(32).map(RestrictKey)
    }

    /// The first bytes given to psql: restricts the session, then goes on with line 1.
    fn prefix(&self) -> Vec<u8> {
        format!("\\restrict {} \\\\ ", self.0).into_bytes()
    }

    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// How to guard a load.
#[derive(Debug, Clone, Default)]
pub struct GuardOptions {
    pub scan: ScanOptions,
    /// Open the session in restricted mode with this key (a psql for which
    /// [`psql_supports_restrict`] holds).
    pub restrict_key: Option<RestrictKey>,
    /// The major of the server the stream is loaded into: `SET`s of settings that newer client
    /// tools write and this server does not know (`crate::pipeline::compat`) are left out.
    pub server_major: Option<u32>,
}

/// What the guard saw of a stream it let through.
#[derive(Debug, Clone, Default)]
pub struct GuardReport {
    /// Bytes of the (decompressed) stream.
    pub raw_bytes: u64,
    /// Bytes written to psql (with the restricted-mode opening and rewritten lines).
    pub written: u64,
    pub end: ScanEnd,
    /// pg_dump's `\restrict` / `\unrestrict` lines seen (and replaced).
    pub pg_dump_restrict: bool,
    pub pg_dump_unrestrict: bool,
    /// Statements needing more than the owner's privilege (the first 1000).
    pub privileged: Vec<Statement>,
    /// Statements left out for the server (`line N: SET transaction_timeout = 0`), the first
    /// 1000.
    pub left_out: Vec<String>,
}

/// The psql lexer on the bytes given to psql, with the restricted-mode rewrites.
#[derive(Debug)]
pub struct Guard {
    scanner: Scanner,
    prefix: Option<Vec<u8>>,
    server_major: Option<u32>,
    /// Bytes fed but not yet forwarded, starting at stream offset `pending_off`.
    pending: Vec<u8>,
    pending_off: u64,
    /// Bytes `start..end` to replace by a comment (and as many newlines as they held): pg_dump's
    /// restrict lines, statements left out for the server.
    rewrites: VecDeque<(u64, u64, String)>,
    refusal: Option<Finding>,
    report: GuardReport,
}

/// What replaces pg_dump's own restrict lines.
const REPLACED_RESTRICT: &str = "-- pg_dump restrict line (replaced by pgkeep)";

impl Guard {
    pub fn new(opts: GuardOptions) -> Guard {
        Guard {
            scanner: Scanner::new(opts.scan),
            prefix: opts.restrict_key.as_ref().map(RestrictKey::prefix),
            server_major: opts.server_major,
            pending: Vec::new(),
            pending_off: 0,
            rewrites: VecDeque::new(),
            refusal: None,
            report: GuardReport::default(),
        }
    }

    /// Take the next bytes of the stream and write to `out` what may reach psql.
    pub fn feed<W: Write + ?Sized>(&mut self, data: &[u8], out: &mut W) -> Result<(), GuardError> {
        if let Some(f) = &self.refusal {
            return Err(GuardError::Refused(f.clone()));
        }
        self.write_prefix(out)?;
        self.scanner.feed(data);
        self.absorb_events();
        let base = self.pending_off + self.pending.len() as u64;
        if self.pending.is_empty() && self.rewrites.is_empty() {
            // The common case: forward straight from `data`, keep only what is held.
            let safe = self.safe_point();
            let n = (safe - base) as usize;
            write(out, &data[..n], &mut self.report.written)?;
            self.pending.extend_from_slice(&data[n..]);
            self.pending_off = safe;
        } else {
            self.pending.extend_from_slice(data);
            self.flush(out)?;
        }
        match &self.refusal {
            Some(f) => Err(GuardError::Refused(f.clone())),
            None => Ok(()),
        }
    }

    /// Everything fed was forwarded, the restricted-mode opening included, and psql is at the
    /// start of a fresh line of SQL (see [`Scanner::at_rest`]): a caller may write a unit it
    /// knows to be checked (a COPY block cut from a checked stream) straight to `out` and go on
    /// feeding the guard afterwards, as that unit leaves psql where it found it.
    pub fn at_rest(&self) -> bool {
        self.prefix.is_none()
            && self.pending.is_empty()
            && self.rewrites.is_empty()
            && self.refusal.is_none()
            && self.scanner.at_rest()
    }

    /// Write the restricted-mode opening if it was not written yet.
    pub fn open<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), GuardError> {
        self.write_prefix(out)
    }

    /// The stream ended: forward the rest and report.
    pub fn finish<W: Write + ?Sized>(mut self, out: &mut W) -> Result<GuardReport, GuardError> {
        if let Some(f) = self.refusal.take() {
            return Err(GuardError::Refused(f));
        }
        self.write_prefix(out)?;
        let end = self.scanner.finish();
        self.absorb_events();
        self.flush(out)?;
        if let Some(f) = self.refusal.take() {
            return Err(GuardError::Refused(f));
        }
        out.flush().map_err(GuardError::Write)?;
        self.report.raw_bytes = end.bytes;
        self.report.end = end;
        Ok(self.report)
    }

    fn write_prefix<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), GuardError> {
        match self.prefix.take() {
            Some(p) => write(out, &p, &mut self.report.written),
            None => Ok(()),
        }
    }

    fn absorb_events(&mut self) {
        for ev in self.scanner.take_events() {
            match ev {
                Event::Refused(f) => {
                    if self.refusal.is_none() {
                        self.refusal = Some(f);
                    }
                }
                Event::PgDumpRestrict {
                    start,
                    end,
                    unrestrict,
                    ..
                } => {
                    self.rewrites
                        .push_back((start, end, REPLACED_RESTRICT.to_string()));
                    if unrestrict {
                        self.report.pg_dump_unrestrict = true;
                    } else {
                        self.report.pg_dump_restrict = true;
                    }
                }
                Event::Statement(s) => {
                    self.leave_out(&s);
                    if s.privilege.is_some() && self.report.privileged.len() < PRIVILEGED_MAX {
                        self.report.privileged.push(s);
                    }
                }
                Event::CopyData { .. } => {}
            }
        }
    }

    /// Replace a `SET` of a setting the server does not know by a comment, if its bytes are still
    /// held (the scanner holds a `SET` back until its end, unless it is very long).
    fn leave_out(&mut self, s: &Statement) {
        let (Some(major), Some(setting)) = (self.server_major, s.setting.as_deref()) else {
            return;
        };
        if !super::compat::unknown_to(setting, major) || s.start < self.pending_off {
            return;
        }
        let since = super::compat::setting_since(setting).unwrap_or(0);
        self.rewrites.push_back((
            s.start,
            s.end,
            format!("/* left out by pgkeep: {setting} needs PostgreSQL {since}, the server is {major} */"),
        ));
        if self.report.left_out.len() < PRIVILEGED_MAX {
            self.report
                .left_out
                .push(format!("line {}: {}", s.line, s.head));
        }
    }

    /// Up to where bytes may be forwarded: the scanner's safe point, and never past a refusal
    /// (a refusal decided after some of its line was forwarded stops right here: psql acts on
    /// a line only when its end arrives, and that end is still held).
    fn safe_point(&self) -> u64 {
        let safe = self.scanner.safe_len();
        match &self.refusal {
            Some(f) => safe.min(f.offset.max(self.pending_off)),
            None => safe,
        }
    }

    fn flush<W: Write + ?Sized>(&mut self, out: &mut W) -> Result<(), GuardError> {
        let safe = self.safe_point();
        let at = |off: u64, this: &Guard| (off - this.pending_off) as usize;
        let mut pos = 0usize;
        while let Some((start, end, _)) = self.rewrites.front() {
            if *end > safe {
                break;
            }
            let (s, e) = (at(*start, self), at(*end, self));
            let (_, _, with) = self.rewrites.pop_front().expect("a front rewrite");
            write(out, &self.pending[pos..s], &mut self.report.written)?;
            write(out, with.as_bytes(), &mut self.report.written)?;
            // As many line ends as the bytes replaced, so psql's line numbers stay the file's.
            let lines = memchr::memchr_iter(b'\n', &self.pending[s..e]).count();
            write(out, &b"\n".repeat(lines), &mut self.report.written)?;
            pos = e;
        }
        let upto = at(safe, self).max(pos);
        write(out, &self.pending[pos..upto], &mut self.report.written)?;
        self.pending.drain(..upto);
        self.pending_off += upto as u64;
        Ok(())
    }
}

fn write<W: Write + ?Sized>(out: &mut W, b: &[u8], count: &mut u64) -> Result<(), GuardError> {
    if b.is_empty() {
        return Ok(());
    }
    out.write_all(b).map_err(GuardError::Write)?;
    *count += b.len() as u64;
    Ok(())
}

/// A `Write` adapter in front of psql's stdin that runs a [`Guard`]. A refusal comes back as an
/// `io::Error` whose inner error is the [`GuardError`].
#[derive(Debug)]
pub struct GuardWriter<W: Write> {
    guard: Guard,
    inner: W,
}

impl<W: Write> GuardWriter<W> {
    pub fn new(inner: W, opts: GuardOptions) -> GuardWriter<W> {
        GuardWriter {
            guard: Guard::new(opts),
            inner,
        }
    }

    /// End of the stream: forward the rest. The writer comes back in both cases, so that the
    /// caller decides when psql sees the end of its input.
    #[allow(clippy::result_large_err)]
    pub fn finish(self) -> Result<(GuardReport, W), (GuardError, W)> {
        let mut inner = self.inner;
        match self.guard.finish(&mut inner) {
            Ok(r) => Ok((r, inner)),
            Err(e) => Err((e, inner)),
        }
    }
}

impl<W: Write> Write for GuardWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.guard
            .feed(buf, &mut self.inner)
            .map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts the stored bytes read through it; place it before the decoder.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            failed: false,
        }
    }

    /// Whether reading the inner stream (not decoding it) failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Read what the decoder left (trailing bytes count, as they do in the stored file's
    /// checksum), then return the byte count and the hex sha256.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, hex::encode(self.hasher.finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = true;
            }
        })?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The outcome of [`feed_psql`].
#[derive(Debug, Clone)]
pub struct LoadFeed {
    /// Size and sha256 of the stored bytes, to compare with the manifest.
    pub stored_bytes: u64,
    pub sha256: String,
    pub guard: GuardReport,
    /// Rows per table, the completion trailer, truncation: the backup's own inspector.
    pub inspect: super::inspect::Report,
}

/// Feed a stored plain backup to psql: read `stored` once, hashing it, decompress, guard, and
/// write to `sink` (psql's stdin, which stays open: see the module documentation). Reading,
/// hashing and decompressing run on a thread of their own, a few [`CHUNK`]s ahead of the
/// guard, so that the guard's lexing never waits for the decompressor nor the other way round.
pub fn feed_psql<R: Read + Send, W: Write + ?Sized>(
    stored: R,
    compression: Compression,
    sink: &mut W,
    opts: GuardOptions,
) -> Result<LoadFeed, GuardError> {
    let mut guard = Guard::new(opts);
    let mut inspector = super::inspect::Inspector::new();
    let (stored_bytes, sha256) = each_chunk(stored, compression, |chunk| {
        inspector.feed(chunk);
        guard.feed(chunk, sink)
    })?;
    let report = guard.finish(sink)?;
    Ok(LoadFeed {
        stored_bytes,
        sha256,
        guard: report,
        inspect: inspector.finish(),
    })
}

/// Read, hash and decompress `stored` on a thread of its own, a few chunks ahead, and give
/// each decompressed chunk to `each` on this one, stopping at its first error; then the stored
/// size and sha256.
pub(super) fn each_chunk<R: Read + Send>(
    stored: R,
    compression: Compression,
    mut each: impl FnMut(&[u8]) -> Result<(), GuardError>,
) -> Result<(u64, String), GuardError> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(4);
        let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
        let decoder = scope.spawn(move || decode(stored, compression, &tx, &back_rx));
        let mut fed = Ok(());
        for (buf, n) in rx.iter() {
            if let Err(e) = each(&buf[..n]) {
                fed = Err(e);
                break;
            }
            let _ = back_tx.send(buf);
        }
        // A refusal stops the decoder: its next send fails.
        drop(rx);
        let decoded = decoder.join().expect("the decoder thread");
        fed?;
        decoded
    })
}

/// Decompressed bytes handed from the decoder thread to the guard at a time.
const CHUNK: usize = 1 << 20;

/// The decoder thread of [`feed_psql`]: read, hash and decompress `stored`, sending full chunks
/// (buffers come back on `back` to be filled again), then the stored size and sha256.
fn decode<R: Read>(
    stored: R,
    compression: Compression,
    tx: &mpsc::SyncSender<(Vec<u8>, usize)>,
    back: &mpsc::Receiver<Vec<u8>>,
) -> Result<(u64, String), GuardError> {
    let mut stored = HashingReader::new(stored);
    let failed = {
        let mut dec = super::decoder(&mut stored, compression).map_err(GuardError::Decode)?;
        'chunks: loop {
            let mut buf = back.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            let mut n = 0;
            let end = loop {
                match dec.read(&mut buf[n..]) {
                    Ok(0) => break Some(None),
                    Ok(k) => {
                        n += k;
                        if n == buf.len() {
                            break None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Some(Some(e)),
                }
            };
            if n > 0 && tx.send((buf, n)).is_err() {
                // The guard stopped (a refusal or psql gone): it reports why.
                return Ok((0, String::new()));
            }
            match end {
                None => {}
                Some(e) => break 'chunks e,
            }
        }
    };
    if let Some(e) = failed {
        // The decoders pass the stored file's read errors through; anything else is theirs.
        return Err(if stored.failed() {
            GuardError::Read(e)
        } else {
            GuardError::Decode(e)
        });
    }
    stored.finish().map_err(GuardError::Read)
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
