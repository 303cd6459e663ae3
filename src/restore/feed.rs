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

/// Feed a plain dump to psql through the guard.
pub(super) fn plain(
    mut running: Running,
    input: &Input,
    opts: GuardOptions,
    progress: &Progress,
) -> Result<Fed, LoadError> {
    let pipe = running.take_stdin().expect("stdin is piped");
    let file = match open(input) {
        Ok(f) => progress.reader("loading", f),
        Err(e) => return abort(running, pipe, e),
    };
    let what = input.path.display().to_string();
    into_psql(
        running,
        pipe,
        (file, input.compression, &what),
        opts,
        |feed| input.changed(&feed.sha256),
    )
}

/// Stream `source` (compressed as said, named `what` in errors) through the guard into psql.
/// Before psql may see the end of its input, `judge` looks at the finished feed, then the
/// inspector checks that the stream is complete.
fn into_psql<R: Read + Send>(
    running: Running,
    mut pipe: ChildStdin,
    (source, compression, what): (R, crate::model::Compression, &str),
    opts: GuardOptions,
    judge: impl FnOnce(&guard::LoadFeed) -> Option<LoadError>,
) -> Result<Fed, LoadError> {
    match guard::feed_psql(source, compression, &mut pipe, opts) {
        Ok(feed) => {
            let problem = judge(&feed)
                .or_else(|| feed.inspect.incomplete_reason().map(LoadError::Incomplete));
            if let Some(e) = problem {
                return abort(running, pipe, e);
            }
            drop(pipe);
            let stats = LoadStats {
                raw_bytes: feed.guard.raw_bytes,
                left_out: feed.guard.left_out,
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
            LoadError::Incomplete(format!("{what} does not decompress: {e}")),
        ),
        Err(e) => abort(
            running,
            pipe,
            LoadError::Io {
                context: format!("cannot read {what}"),
                source: std::io::Error::other(e.to_string()),
            },
        ),
    }
}

/// The thread that feeds a custom archive to `pg_restore -f -` (see [`custom`]).
type Feeder = std::thread::JoinHandle<Result<Fed, LoadError>>;

/// Start feeding `input` to the script's pg_restore on a thread of its own.
fn feed_script(script: Running, input: &Input, progress: &Progress) -> Feeder {
    let (archive, prog) = (input.clone(), progress.clone());
    std::thread::spawn(move || custom(script, &archive, &prog))
}

/// Why a script must not be committed once it was read to its end: pg_restore did not finish
/// well, or the archive it read did not hash as expected.
fn script_verdict(feeder: Feeder, database: &str) -> Option<LoadError> {
    let fed = feeder.join().unwrap_or_else(|_| {
        Err(LoadError::Io {
            context: "the pg_restore feeder failed".into(),
            source: std::io::Error::other("thread panicked"),
        })
    });
    match fed {
        Ok((outcome, _)) if outcome.success() => None,
        Ok((outcome, _)) => Some(LoadError::LoadFailed {
            database: database.to_string(),
            message: outcome.describe(),
            sqlstate: None,
        }),
        Err(e) => Some(e),
    }
}

/// Load a custom archive as the script `pg_restore -f -` makes of it, through the guard into
/// psql: the archive is fed to pg_restore on a thread of its own (hashed, its last block held
/// back as in [`custom`]), and psql sees the end of its input only once pg_restore finished
/// well on a file that hashed as expected and the script ended with its trailer.
pub(super) fn custom_script(
    (mut script, mut psql): (Running, Running),
    input: &Input,
    database: &str,
    opts: GuardOptions,
    progress: &Progress,
) -> Result<Fed, LoadError> {
    let pipe = psql.take_stdin().expect("stdin is piped");
    let sql = script.take_stdout().expect("stdout is piped");
    let script_killer = script.killer();
    let pending = std::cell::RefCell::new(Some(feed_script(script, input, progress)));
    let what = format!("the script pg_restore wrote of {}", input.path.display());
    let fed = into_psql(
        psql,
        pipe,
        (sql, crate::model::Compression::None, &what),
        opts,
        |_| script_verdict(pending.borrow_mut().take()?, database),
    );
    if let Some(h) = pending.borrow_mut().take() {
        // psql failed or the script was refused: pg_restore has nobody to write to.
        script_killer.terminate(Duration::from_millis(500));
        let _ = h.join();
    }
    let (outcome, stats) = fed?;
    Ok((
        outcome,
        LoadStats {
            raw_bytes: input_bytes(input),
            ..stats
        },
    ))
}

/// The script of a custom archive on several connections: fed as in [`custom_script`], cut and
/// run by the parallel loader, whose post-data section starts only once pg_restore finished well
/// on a file that hashed as expected and the script ended with its trailer.
pub(super) fn custom_script_parallel(
    mut script: Running,
    p: &super::parallel::Parallel,
    input: &Input,
    progress: &Progress,
) -> Result<LoadStats, LoadError> {
    let sql = script.take_stdout().expect("stdout is piped");
    let script_killer = script.killer();
    let pending = std::cell::RefCell::new(Some(feed_script(script, input, progress)));
    let what = format!("the script pg_restore wrote of {}", input.path.display());
    let source = super::parallel::Source {
        reader: sql,
        compression: crate::model::Compression::None,
        what: &what,
    };
    let loaded = super::parallel::load_stream(p, source, |_| {
        script_verdict(pending.borrow_mut().take()?, &p.database)
    });
    if let Some(h) = pending.borrow_mut().take() {
        // A connection failed or the script was refused: pg_restore has nobody to write to.
        script_killer.terminate(Duration::from_millis(500));
        let _ = h.join();
    }
    Ok(LoadStats {
        raw_bytes: input_bytes(input),
        ..loaded?
    })
}

/// The stored size of the file fed (0 when it cannot be read).
fn input_bytes(input: &Input) -> u64 {
    std::fs::metadata(&input.path).map_or(0, |m| m.len())
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
    if let Some(e) = input.changed(&sha256) {
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

/// A parallel pg_restore reads the file itself: the file is hashed again while it runs (on a
/// thread of its own, so the check costs no wall time), and its identity and change time are
/// compared once it finished, so that a file changed during the load, before or after the hash
/// passed the changed bytes, is caught (any write to it moves its change time).
/// With `second`, the late entries are restored by a second pg_restore once the first
/// succeeded.
pub(super) fn custom_parallel(
    running: Running,
    input: &Input,
    second: Option<(crate::process::Spec, super::custom_jobs::Lists)>,
) -> Result<Fed, LoadError> {
    let file = open(input)?;
    let read_error = |source| LoadError::Io {
        context: format!("cannot read {}", input.path.display()),
        source,
    };
    let before = Identity::of(&file).map_err(read_error)?;
    let hasher = std::thread::spawn(move || crate::pipeline::hash_reader(file));
    let mut outcome = wait(running);
    if let (Ok(o), Some((spec, lists))) = (&outcome, second)
        && o.success()
    {
        outcome = super::custom_jobs::second_pass(spec, &lists.second, input);
    }
    let hashed = hasher
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread panicked")));
    let outcome = outcome?;
    let (bytes, sha256) = hashed.map_err(read_error)?;
    let after = std::fs::metadata(&input.path).map_err(read_error)?;
    if Identity::from(&after) != before {
        let now = open(input)
            .ok()
            .and_then(|f| crate::pipeline::hash_reader(f).ok())
            .map_or_else(|| "unreadable".to_string(), |(_, h)| h);
        return Err(LoadError::Changed {
            file: input.path.display().to_string(),
            expected: input.sha256.clone().unwrap_or_default(),
            actual: format!("{now} (the file changed during the load)"),
        });
    }
    if let Some(e) = input.changed(&sha256) {
        return Err(e);
    }
    let stats = LoadStats {
        raw_bytes: bytes,
        ..LoadStats::default()
    };
    Ok((outcome, stats))
}

/// What tells a file apart from a changed one: device, inode, size and change time.
#[derive(Debug, PartialEq, Eq)]
struct Identity(u64, u64, u64, i64, i64);

impl Identity {
    fn of(file: &std::fs::File) -> std::io::Result<Identity> {
        file.metadata().map(|m| Identity::from(&m))
    }
}

impl From<&std::fs::Metadata> for Identity {
    fn from(m: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity(m.dev(), m.ino(), m.size(), m.ctime(), m.ctime_nsec())
    }
}
