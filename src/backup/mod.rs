//! One backup of one database, from preflight to commit, following the commit protocol: lock,
//! preflight (connect, versions, metadata), stream pg_dump into a partial object, check that the
//! dump is complete, commit the data, then write the manifest (the commit point).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use thiserror::Error;

use crate::catalog::{self, MANIFEST_VERSION, Manifest};
use crate::config::Settings;
use crate::fault;
use crate::lock::{Lock, LockError};
use crate::model::{Format, Progress};
use crate::pg::catalog::{DatabaseInfo, ServerInfo};
use crate::pg::passfile::{self, PrivatePassfile};
use crate::pg::tools::{self, Search, Tool, ToolError};
use crate::pg::{ConnParams, PgError};
use crate::pipeline::{self, PipelineError};
use crate::process::{Running, Spec};
use crate::shutdown::{Reason, Shutdown};
use crate::storage::{self, StorageError, Store, Upload};

mod compression;
mod output;

pub use compression::ZSTD_PG_DUMP_MAJOR;
use compression::{
    check_compression, custom_compress_arg, recorded_compression, stored_compression,
};
pub(crate) use output::Output;
use output::{SharedUpload, open_output};

#[derive(Debug, Error)]
pub enum BackupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{0}")]
    DumpFailed(String),
    #[error("the dump is incomplete: {0}")]
    Incomplete(String),
    #[error("interrupted by {} during the backup; nothing was kept", .0.name())]
    Interrupted(Reason),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("cannot write the manifest: {0}")]
    Manifest(String),
    /// The requested compression cannot be honoured with the pg_dump chosen for the server.
    #[error("{0}")]
    Unsupported(String),
}

impl From<compression::Refused> for BackupError {
    fn from(r: compression::Refused) -> BackupError {
        match r {
            compression::Refused::Unsupported(m) => BackupError::Unsupported(m),
            compression::Refused::Io(source) => BackupError::Io {
                context: "cannot start pg_dump".into(),
                source,
            },
        }
    }
}

impl crate::exit::ExitCode for BackupError {
    fn exit_code(&self) -> u8 {
        use crate::exit::{FAILED, STORAGE};
        match self {
            BackupError::Interrupted(r) => r.exit_code(),
            BackupError::DumpFailed(_)
            | BackupError::Incomplete(_)
            | BackupError::Io { .. }
            | BackupError::Manifest(_) => FAILED,
            BackupError::Unsupported(_) => crate::exit::USAGE,
            BackupError::Storage(e) => e.exit_code(),
            // A lock file that cannot be used is a problem of the backup directory.
            BackupError::Lock(LockError::Io { .. }) => STORAGE,
            BackupError::Lock(e) => e.exit_code(),
            BackupError::Pg(e) => e.exit_code(),
            BackupError::Tool(e) => e.exit_code(),
        }
    }
}

/// Everything a backup needs, passed in by the command layer.
pub struct Request<'a> {
    pub settings: &'a Settings,
    pub database: String,
    /// The environment children may inherit (already filtered).
    pub child_env: Vec<(String, String)>,
    /// The PATH used to find client tools.
    pub path_env: Option<std::ffi::OsString>,
    pub shutdown: Shutdown,
    /// Told the dump bytes so far (`dumping`), then the archive bytes read back (`reading back`,
    /// custom format).
    pub progress: Progress,
    /// The clock.
    pub now: fn() -> Timestamp,
}

/// A committed backup.
#[derive(Debug, Clone)]
pub struct Done {
    pub manifest: Manifest,
    /// Where the data is (the store's location joined with the file), for messages.
    pub path: PathBuf,
}

/// The lock path for one database, or for the server's globals ([`catalog::GLOBALS`]), in a
/// local lock directory ([`storage::lock_dir`]).
pub fn lock_path(dir: &Path, host: &str, db: &str) -> PathBuf {
    dir.join(format!(".pgkeep-{}.lock", catalog::series(host, db)))
}

/// Facts gathered before anything is written.
pub struct Preflight {
    pub server: ServerInfo,
    pub database: DatabaseInfo,
    pub pg_dump: Tool,
}

/// Connect, read versions and metadata, pick pg_dump. Changes nothing.
pub async fn preflight(
    params: &ConnParams,
    settings: &Settings,
    path_env: Option<std::ffi::OsString>,
) -> Result<Preflight, BackupError> {
    let client = params.connect().await?;
    let server = crate::pg::catalog::server_info(&client).await?;
    let database = crate::pg::catalog::database_info(&client).await?;
    drop(client);
    let search = Search {
        bindir: settings.pg_bindir.clone(),
        path_env,
    };
    let major = tools::server_major(server.version_num);
    let pg_dump = tools::select("pg_dump", major, settings.pg_dump.as_deref(), &search)?;
    Ok(Preflight {
        server,
        database,
        pg_dump,
    })
}

/// The environment for a libpq child: connection parameters and a passfile, never a password.
pub fn libpq_env(
    params: &ConnParams,
    base: &[(String, String)],
    passfile: Option<&Path>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base.to_vec();
    let mut set = |k: &str, v: String| {
        env.retain(|(n, _)| n != k);
        env.push((k.to_string(), v));
    };
    set("PGHOST", params.host.clone());
    set("PGPORT", params.port.to_string());
    set("PGUSER", params.user.clone());
    set("PGDATABASE", params.dbname.clone());
    set("PGSSLMODE", params.sslmode.as_str().to_string());
    set("PGAPPNAME", "pgkeep".to_string());
    set(
        "PGCONNECT_TIMEOUT",
        params.connect_timeout.max(2).to_string(),
    );
    if let Some(rc) = &params.sslrootcert {
        set("PGSSLROOTCERT", rc.display().to_string());
    }
    match passfile.or(params.passfile.as_deref()) {
        Some(p) => set("PGPASSFILE", p.display().to_string()),
        // No password known: make sure libpq does not find one in an unexpected place.
        None => set("PGPASSFILE", passfile::NONE.to_string()),
    }
    env
}

/// Run one backup to its commit. Names have one-second resolution: a backup right after another
/// of the same database waits for the next free second.
pub async fn run(req: Request<'_>) -> Result<Done, BackupError> {
    let s = req.settings;
    let store = storage::open(&s.backup_dir, &s.s3)?;
    let started_at = loop {
        let at = (req.now)();
        let (day, stem) = catalog::backup_stem(&s.host, &req.database, at);
        if !catalog::stem_taken(&*store, &day, &stem)? {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    run_at(req, started_at).await
}

/// Run one backup whose start time (and so its id, see [`catalog::backup_stem`]) the caller
/// fixed beforehand, e.g. to answer an API request with the id before the backup ends.
pub async fn run_at(mut req: Request<'_>, started_at: Timestamp) -> Result<Done, BackupError> {
    let s = req.settings;
    let store = storage::open(&s.backup_dir, &s.s3)?;
    store.check_writable()?;
    let started = Instant::now();
    let (day, stem) = catalog::backup_stem(&s.host, &req.database, started_at);
    let ext = catalog::extension(s.format, s.compression, s.age_recipients.is_some());
    let file = format!("{day}/{stem}{ext}");

    let holder = holder(&stem, &req.database, started_at);
    // The lock file is made only once the directory and the database proved usable: a
    // refused run leaves none behind.
    let params = ConnParams::from_settings(s, &req.database);
    let pre = preflight(&params, s, req.path_env.clone()).await?;
    let lock = lock_and_sweep(&*store, s, &req.database, &holder)?;
    fault::point("backup.locked");
    tracing::debug!(
        server = %pre.server.version,
        pg_dump = %pre.pg_dump.path.display(),
        "preflight done"
    );

    check_compression(&pre.pg_dump, &pre.server.version, s, &req.child_env)?;
    let newer_pg_dump = newer_pg_dump(&pre);

    let passfile = private_passfile(&params)?;
    let env = libpq_env(&params, &req.child_env, passfile.as_ref().map(|p| p.path()));
    let output = open_output(&*store, s, &file)?;
    let shown = format!("{file} in {}", store.describe());
    let dumped = dump(
        &mut req,
        &pre.pg_dump,
        env,
        output,
        &shown,
        (&lock, &holder),
    )
    .await?;
    drop(passfile);
    let accepted = match req.shutdown.reason() {
        Some(r) => Err(BackupError::Interrupted(r)),
        None => check_plausible(&dumped, s.min_dump_bytes),
    };
    if let Err(e) = accepted {
        dumped.output.abort();
        return Err(e);
    }
    let Dumped {
        raw_bytes,
        stored_bytes,
        sha256,
        report,
        output,
        warnings,
    } = dumped;
    fault::point("backup.dumped");
    let (stored_bytes, sha256) = output
        .commit(&*store, s.age_recipients.as_ref())?
        .unwrap_or((stored_bytes, sha256));
    fault::point("backup.data-renamed");

    let finished_at = (req.now)();
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        id: stem.clone(),
        file: file.clone(),
        database: req.database.clone(),
        host: s.host.clone(),
        port: s.port,
        server_version: pre.server.version.clone(),
        pg_dump_version: pre.pg_dump.version.clone(),
        pgkeep_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        finished_at,
        duration_seconds: started.elapsed().as_secs_f64(),
        format: s.format,
        compression: recorded_compression(s),
        level: s.level,
        stored_bytes,
        raw_bytes,
        sha256,
        dump_encoding: report.client_encoding,
        tables: report.tables,
        large_objects: report.large_objects,
        database_info: pre.database,
        warnings,
        globals: None,
        newer_pg_dump,
        encryption: crate::model::age::Encryption::of(s.age_recipients.as_ref()),
    };
    commit_manifest(&*store, &manifest, req.settings.manifest_keys.as_ref())?;
    fault::point("backup.committed");
    drop(lock);
    Ok(Done {
        path: Path::new(&store.describe()).join(&file),
        manifest,
    })
}

/// The note a backup's lock carries: what holds it, since when, in which process.
fn holder(stem: &str, database: &str, started_at: Timestamp) -> String {
    format!(
        "backup {stem} of database \"{database}\" started {} by pid {}",
        started_at.round(jiff::Unit::Second).unwrap_or(started_at),
        std::process::id()
    )
}

/// Whether pg_dump is of a newer major than the server (none of the server's major was found),
/// with a warning saying what that means.
fn newer_pg_dump(pre: &Preflight) -> bool {
    let server_major = tools::server_major(pre.server.version_num);
    let newer = pre.pg_dump.major > server_major;
    if newer {
        tracing::warn!(
            server = %pre.server.version,
            pg_dump = %format!("{} ({})", pre.pg_dump.version, pre.pg_dump.path.display()),
            "pg_dump is newer than the server (none of its major was found): the manifest records it (newer_pg_dump), and a restore into a PostgreSQL {0} server leaves out what pg_dump writes for newer servers (SET transaction_timeout); install the pg_dump of PostgreSQL {0}",
            server_major
        );
    }
    newer
}

/// Take the database's lock and remove the unfinished writes of its backups: only a run holding
/// the lock writes them (a pg_dump that outlived its pgkeep holds it too), so every one found
/// now is a dead run's. Other databases' writes and files pgkeep did not name are left alone.
fn lock_and_sweep(
    store: &dyn Store,
    s: &Settings,
    database: &str,
    holder: &str,
) -> Result<Lock, BackupError> {
    let lock = Lock::acquire(
        &lock_path(&storage::lock_dir(&s.lock_dir)?, &s.host, database),
        holder,
    )?;
    let own = catalog::series(&s.host, database);
    let mut swept = Vec::new();
    for u in store.unfinished()? {
        if catalog::series_of(&u.name) == Some(own.as_str()) {
            store.discard(&u)?;
            swept.push(u.handle);
        }
    }
    if !swept.is_empty() {
        tracing::info!(
            database = %database,
            files = %swept.join(", "),
            "removed {} unfinished file(s) left by a killed backup of this database",
            swept.len()
        );
    }
    Ok(lock)
}

/// The password for pg_dump, in a private in-memory passfile (none without a password).
pub(crate) fn private_passfile(
    params: &ConnParams,
) -> Result<Option<PrivatePassfile>, BackupError> {
    match params.resolve_password() {
        Some(pw) if params.password.is_some() => {
            Ok(Some(PrivatePassfile::new(&pw).map_err(|source| {
                BackupError::Io {
                    context: "cannot create a private passfile".into(),
                    source,
                }
            })?))
        }
        _ => Ok(None),
    }
}

/// Run pg_dump into the output (plain: streamed through the pipeline, `target` naming it in
/// errors; custom: written by pg_dump itself, then read back), stopping it at once when
/// shutdown fires.
async fn dump(
    req: &mut Request<'_>,
    pg_dump: &Tool,
    env: Vec<(String, String)>,
    output: Output,
    target: &str,
    (lock, holder): (&Lock, &str),
) -> Result<Dumped, BackupError> {
    let s = req.settings;
    let mut spec = Spec::new(&pg_dump.path)
        .envs(env.clone())
        .arg("--no-password")
        .arg(match s.format {
            Format::Plain => "--format=plain",
            Format::Custom => "--format=custom",
        });
    if let Some(staged) = output.staged() {
        spec = spec
            .arg(custom_compress_arg(s))
            .arg("--file")
            .arg(staged.path());
    }

    // pg_dump holds the lock too, until it is reaped: one that outlived pgkeep still blocks the
    // next backup of the database, which then names it.
    let cannot_start = |source| BackupError::Io {
        context: "cannot start pg_dump".into(),
        source,
    };
    let spec = spec.inherit_fd(lock).map_err(cannot_start)?;
    let running = Running::spawn(
        &spec,
        match s.format {
            Format::Plain => Stdio::piped(),
            Format::Custom => Stdio::null(),
        },
    )
    .map_err(cannot_start)?;
    lock.set_note(&format!("{holder}, pg_dump pid {}", running.pid()))?;
    fault::point("backup.dump-started");
    let killer = running.killer();
    let opts = pipeline::Options {
        compression: stored_compression(s),
        level: s.level,
        threads: s.threads,
        inspect: s.format == Format::Plain,
        encrypt: s.age_recipients.clone(),
    };
    let progress = req.progress.clone();
    let target = target.to_string();
    let pg_restore = match s.format {
        Format::Custom => Some(
            tools::sibling(
                pg_dump,
                "pg_restore",
                &Search {
                    bindir: s.pg_bindir.clone(),
                    path_env: req.path_env.clone(),
                },
            )?
            .path,
        ),
        Format::Plain => None,
    };
    let task = tokio::task::spawn_blocking(move || {
        let mut progress_fn = |n: u64| {
            fault::point("backup.streamed");
            progress.report("dumping", n);
        };
        match (output, pg_restore) {
            (Output::Stream(upload), _) => {
                stream_plain(running, upload, &opts, &target, &mut progress_fn)
            }
            (staged, Some(pg_restore)) => {
                dump_custom(running, staged, &pg_restore, &env, &progress)
            }
            (_, None) => unreachable!("custom archives have a pg_restore"),
        }
    });

    finish_or_stop(task, &killer, &req.shutdown, "the backup task failed").await
}

/// Wait for the dump task; on shutdown, stop pg_dump (or pg_dumpall) and give up its output.
pub(crate) async fn finish_or_stop(
    mut task: tokio::task::JoinHandle<Result<Dumped, BackupError>>,
    killer: &crate::process::Killer,
    shutdown: &Shutdown,
    failed: &str,
) -> Result<Dumped, BackupError> {
    let mut shutdown = shutdown.clone();
    let joined = tokio::select! {
        r = &mut task => r,
        reason = shutdown.wait() => {
            killer.terminate(Duration::from_secs(3));
            if let Ok(Ok(dumped)) = task.await {
                dumped.output.abort();
            }
            return Err(BackupError::Interrupted(reason));
        }
    };
    joined.map_err(|e| BackupError::Io {
        context: failed.into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// The dump counts only if it is complete (trailer seen, no cut COPY block) and not implausibly
/// small.
fn check_plausible(dumped: &Dumped, min_dump_bytes: u64) -> Result<(), BackupError> {
    let raw_bytes = dumped.raw_bytes;
    if let Some(reason) = dumped.report.incomplete_reason() {
        let hint = if raw_bytes == 0 {
            " (pg_dump wrote nothing)"
        } else {
            ""
        };
        return Err(BackupError::Incomplete(format!(
            "{reason}{hint}; pg_dump exited 0 after {raw_bytes} bytes"
        )));
    }
    if raw_bytes < min_dump_bytes {
        return Err(BackupError::Incomplete(format!(
            "only {raw_bytes} bytes of dump, fewer than the plausible minimum of {min_dump_bytes}"
        )));
    }
    Ok(())
}

/// The result of dumping into the partial object.
pub(crate) struct Dumped {
    pub(crate) raw_bytes: u64,
    pub(crate) stored_bytes: u64,
    pub(crate) sha256: String,
    pub(crate) report: pipeline::Report,
    pub(crate) output: Output,
    /// pg_dump's warnings.
    pub(crate) warnings: Vec<String>,
}

/// Bytes the pipe from pg_dump may hold: with the default 64 KiB, a moment's delay in our reader
/// (the compressor busy, a context switch) fills the pipe and stalls pg_dump and the server
/// behind it; 1 MiB (the usual `/proc/sys/fs/pipe-max-size`) absorbs that.
const PIPE_BYTES: i32 = 1024 * 1024;

/// Best effort: a pipe that cannot grow (an unprivileged lower limit) still works, only slower.
fn enlarge_pipe(pipe: &impl std::os::fd::AsFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    if let Err(e) = fcntl(pipe, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES)) {
        tracing::debug!(error = %e, "cannot enlarge the pipe from pg_dump");
    }
}

/// Plain format: stream pg_dump's stdout through the pipeline into the upload.
pub(crate) fn stream_plain(
    mut running: Running,
    upload: Box<dyn Upload>,
    opts: &pipeline::Options,
    target: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Dumped, BackupError> {
    let stdout = running.take_stdout().expect("stdout is piped");
    enlarge_pipe(&stdout);
    let shared = SharedUpload(std::sync::Arc::new(std::sync::Mutex::new(Some(upload))));
    let streamed = pipeline::run(stdout, shared.clone(), opts, progress);
    if streamed.is_err()
        && let Some(upload) = shared.take()
    {
        Output::Stream(upload).abort();
    }
    let wait = |running: Running| {
        running.wait().map_err(|source| BackupError::Io {
            context: "cannot wait for pg_dump".into(),
            source,
        })
    };
    match streamed {
        Ok(out) => {
            let upload = out.sink.take().expect("the upload is kept until now");
            let outcome = wait(running).and_then(|outcome| match outcome.success() {
                true => Ok(outcome),
                false => Err(BackupError::DumpFailed(outcome.describe())),
            });
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    Output::Stream(upload).abort();
                    return Err(e);
                }
            };
            Ok(Dumped {
                raw_bytes: out.raw_bytes,
                stored_bytes: out.stored_bytes,
                sha256: out.sha256,
                report: out.report.expect("plain dumps are inspected"),
                output: Output::Stream(upload),
                warnings: outcome.warnings,
            })
        }
        Err(PipelineError::Write(e)) => {
            // Stop pg_dump at once: nothing more can be stored.
            running.killer().terminate(Duration::from_secs(2));
            let _ = wait(running);
            Err(StorageError::from_write(target, e).into())
        }
        Err(PipelineError::Read(e)) => {
            let outcome = wait(running)?;
            Err(BackupError::DumpFailed(format!(
                "reading pg_dump's output failed: {e}; {}",
                outcome.describe()
            )))
        }
    }
}

/// Custom format: pg_dump writes the staged file itself (so the archive has data offsets and
/// allows parallel restore); then the file is read back for its checksum and row counts.
fn dump_custom(
    running: Running,
    output: Output,
    pg_restore: &Path,
    env: &[(String, String)],
    progress: &Progress,
) -> Result<Dumped, BackupError> {
    let staged = output.staged().expect("custom archives are staged");
    let outcome =
        wait_growing(running, staged.path(), progress).map_err(|source| BackupError::Io {
            context: "cannot wait for pg_dump".into(),
            source,
        })?;
    if !outcome.success() {
        if no_room(staged.path(), &outcome) {
            return Err(StorageError::Full {
                path: staged.path().display().to_string(),
            }
            .into());
        }
        return Err(BackupError::DumpFailed(outcome.describe()));
    }
    let path = staged.path().to_path_buf();
    let cannot_read = |e| StorageError::io("cannot read", path.display(), e);
    let file = std::fs::File::open(&path).map_err(cannot_read)?;
    let (bytes, sha256) = pipeline::hash_reader(file).map_err(cannot_read)?;
    let mut report = if bytes == 0 {
        pipeline::Report::default()
    } else {
        replay_custom(pg_restore, &path, env, progress)?
    };
    if bytes > 0 && !report.trailer {
        return Err(BackupError::Incomplete(
            "the archive's replay lacks the completion trailer".into(),
        ));
    }
    report.ended_mid_line = false;
    Ok(Dumped {
        raw_bytes: bytes,
        stored_bytes: bytes,
        sha256,
        report,
        output,
        warnings: outcome.warnings,
    })
}

/// pg_dump writes a custom archive itself: when it fails on a full disk, that is the store's
/// problem (exit 4, as for a plain dump), told by the file system having no room left or by
/// pg_dump's own words for ENOSPC.
fn no_room(archive: &Path, outcome: &crate::process::Outcome) -> bool {
    let dir = archive.parent().unwrap_or(archive);
    outcome.stderr_tail.contains("No space left on device")
        || nix::sys::statvfs::statvfs(dir).is_ok_and(|s| s.blocks_available() == 0)
}

/// Wait for pg_dump writing a custom archive itself, reporting the archive's size as it grows.
fn wait_growing(
    running: Running,
    archive: &Path,
    progress: &Progress,
) -> std::io::Result<crate::process::Outcome> {
    if !progress.is_observed() {
        return running.wait();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = std::fs::metadata(archive) {
                    progress.report("dumping", m.len());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let outcome = running.wait();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    })
}

/// Write the manifest atomically; if that fails, remove the data so nothing unlisted remains.
pub(crate) fn commit_manifest(
    store: &dyn Store,
    m: &Manifest,
    keys: Option<&crate::model::ManifestKeys>,
) -> Result<(), BackupError> {
    let json =
        catalog::manifest_bytes(m, keys).map_err(|e| BackupError::Manifest(e.to_string()))?;
    if let Err(e) = store.put(&m.manifest_name(), &json) {
        let _ = store.delete(&m.file);
        return Err(e.into());
    }
    Ok(())
}

/// Count rows per table of a custom-format archive by replaying it through `pg_restore -f -`,
/// which also proves that every data block of the archive decodes.
pub fn replay_custom(
    pg_restore: &Path,
    archive: &Path,
    env: &[(String, String)],
    progress: &Progress,
) -> Result<pipeline::Report, BackupError> {
    let spec = Spec::new(pg_restore)
        .envs(env.iter().cloned())
        .arg("--file=-")
        .arg(archive);
    let mut running = Running::spawn(&spec, Stdio::piped()).map_err(|source| BackupError::Io {
        context: "cannot start pg_restore".into(),
        source,
    })?;
    let mut out = running.take_stdout().expect("piped");
    let mut inspector = pipeline::Inspector::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = progress.reader("reading back", &mut out);
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                fault::point("backup.replayed");
                inspector.feed(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(BackupError::Io {
                    context: "reading pg_restore output".into(),
                    source,
                });
            }
        }
    }
    let outcome = running.wait().map_err(|source| BackupError::Io {
        context: "cannot wait for pg_restore".into(),
        source,
    })?;
    if !outcome.success() {
        return Err(BackupError::Incomplete(format!(
            "the archive does not read back: {}",
            outcome.describe()
        )));
    }
    Ok(inspector.finish())
}
