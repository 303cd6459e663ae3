//! Feeding the stored bytes to psql or pg_restore while checking them: the sha256 runs on the
//! bytes as they are fed (a file swapped after the preflight read is caught), a plain dump goes
//! through the psql lexer (`crate::pipeline::guard`) on its way, and on any problem the child is
//! killed before it sees the end of its input, so what it holds never commits.

use std::io::{Read, Write};
use std::process::ChildStdin;
use std::time::Duration;

use super::load_error::{Input, LoadError, LoadStats};
use crate::model::Progress;
use crate::pipeline::guard::{self, GuardError, GuardOptions, HashingReader};
use crate::process::{Outcome, Running};

/// A finished child and what was fed to it.
pub(super) type Fed = (Outcome, LoadStats);

fn wait(running: Running) -> Result<Outcome, LoadError> {
    running.wait().map_err(|source| LoadError::Io {
        context: "cannot wait for the load".into(),
        source,
    })
}

/// Stop the child before it sees the end of its input, then close that input.
fn abort(running: Running, pipe: ChildStdin, err: LoadError) -> Result<Fed, LoadError> {
    running.killer().terminate(Duration::from_millis(500));
    let _ = running.wait();
    drop(pipe);
    Err(err)
}

fn open(input: &Input) -> Result<std::fs::File, LoadError> {
    std::fs::File::open(&input.path).map_err(|source| LoadError::Io {
        context: format!("cannot open {}", input.path.display()),
        source,
    })
}

/// The sha256 differs from the one the preflight (or the manifest) vouched for.
fn changed(input: &Input, sha256: &str) -> Option<LoadError> {
    let expected = input.sha256.as_deref()?;
    (expected != sha256).then(|| LoadError::Changed {
        file: input.path.display().to_string(),
        expected: expected.to_string(),
        actual: sha256.to_string(),
    })
}

/// Why a plain dump that was read to its end must not be committed: it is not the file that was
/// checked, or it lacks pg_dump's trailer.
pub(super) fn checked_end(
    input: &Input,
    sha256: &str,
    inspect: &crate::pipeline::inspect::Report,
) -> Option<LoadError> {
    changed(input, sha256).or_else(|| inspect.incomplete_reason().map(LoadError::Incomplete))
}

/// Feed a plain dump to psql through the guard.
pub(super) fn plain(
    mut running: Running,
    input: &Input,
    opts: GuardOptions,
    progress: &Progress,
) -> Result<Fed, LoadError> {
    let mut pipe = running.take_stdin().expect("stdin is piped");
    let file = match open(input) {
        Ok(f) => progress.reader("loading", f),
        Err(e) => return abort(running, pipe, e),
    };
    match guard::feed_psql(file, input.compression, &mut pipe, opts) {
        Ok(feed) => {
            let problem = checked_end(input, &feed.sha256, &feed.inspect);
            if let Some(e) = problem {
                return abort(running, pipe, e);
            }
            drop(pipe);
            let stats = LoadStats {
                raw_bytes: feed.guard.raw_bytes,
                report: Some(feed.inspect),
                ..LoadStats::default()
            };
            Ok((wait(running)?, stats))
        }
        // psql stopped reading: it failed; its status and stderr tell why.
        Err(GuardError::Write(_)) => {
            drop(pipe);
            Ok((wait(running)?, LoadStats::default()))
        }
        Err(GuardError::Refused(f)) => abort(running, pipe, LoadError::Refused(f.to_string())),
        Err(GuardError::Decode(e)) => abort(
            running,
            pipe,
            LoadError::Incomplete(format!("{} does not decompress: {e}", input.path.display())),
        ),
        Err(e) => abort(
            running,
            pipe,
            LoadError::Io {
                context: format!("cannot read {}", input.path.display()),
                source: std::io::Error::other(e.to_string()),
            },
        ),
    }
}

/// Feed a custom archive to pg_restore's stdin, hashing it; its last block is held back until
/// the whole file hashed as expected, so pg_restore cannot finish (and commit) a swapped file.
pub(super) fn custom(
    mut running: Running,
    input: &Input,
    progress: &Progress,
) -> Result<Fed, LoadError> {
    let mut pipe = running.take_stdin().expect("stdin is piped");
    let file = match open(input) {
        Ok(f) => progress.reader("loading", f),
        Err(e) => return abort(running, pipe, e),
    };
    let mut stored = HashingReader::new(file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut held: Vec<u8> = Vec::new();
    let mut open_pipe = true;
    loop {
        let n = match stored.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                let context = format!("cannot read {}", input.path.display());
                return abort(running, pipe, LoadError::Io { context, source });
            }
        };
        // After pg_restore stopped reading (it failed, or needs no more), only hash.
        open_pipe = open_pipe && pipe.write_all(&held).is_ok();
        held.clear();
        held.extend_from_slice(&buf[..n]);
    }
    let (stored_bytes, sha256) = match stored.finish() {
        Ok(r) => r,
        Err(source) => {
            let context = format!("cannot read {}", input.path.display());
            return abort(running, pipe, LoadError::Io { context, source });
        }
    };
    if let Some(e) = changed(input, &sha256) {
        return abort(running, pipe, e);
    }
    let _ = pipe.write_all(&held);
    drop(pipe);
    let stats = LoadStats {
        raw_bytes: stored_bytes,
        ..LoadStats::default()
    };
    Ok((wait(running)?, stats))
}

/// A parallel pg_restore reads the file itself: hash it again once it finished, so at least a
/// file changed for good during the load is caught.
/// With `second`, the late entries are restored by a second pg_restore once the first
/// succeeded.
pub(super) fn custom_parallel(
    running: Running,
    input: &Input,
    second: Option<(crate::process::Spec, super::custom_jobs::Lists)>,
) -> Result<Fed, LoadError> {
    let mut outcome = wait(running)?;
    if let Some((spec, lists)) = second
        && outcome.success()
    {
        outcome = super::custom_jobs::second_pass(spec, &lists.second, input)?;
    }
    let file = open(input)?;
    let (bytes, sha256) = crate::pipeline::hash_reader(file).map_err(|source| LoadError::Io {
        context: format!("cannot read {}", input.path.display()),
        source,
    })?;
    if let Some(e) = changed(input, &sha256) {
        return Err(e);
    }
    let stats = LoadStats {
        raw_bytes: bytes,
        ..LoadStats::default()
    };
    Ok((outcome, stats))
}
