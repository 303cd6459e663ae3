//! The globals of a server as a backup of their own kind: `pg_dumpall --globals-only` (roles,
//! memberships, role settings, tablespaces) streamed through the same pipeline as a database
//! dump, committed by its manifest (database [`GLOBALS`]), so that listing, checksums,
//! verification and retention treat it like any other backup. Role passwords are in the file only
//! when the backup role may read them; the manifest says so otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::backup::{self, BackupError, Done, Output};
use crate::catalog::{self, GLOBALS, MANIFEST_VERSION, Manifest};
use crate::config::Settings;
use crate::lock::Lock;
use crate::model::{Compression, Format};
use crate::pg::catalog::{DatabaseInfo, GlobalsInfo, ServerInfo};
use crate::pg::tools::{self, Search};
use crate::pg::{ConnParams, PgError};
use crate::pipeline;
use crate::process::{Running, Spec};
use crate::shutdown::Shutdown;
use crate::storage;

/// Everything a globals backup needs, passed in by the command layer.
pub struct Request<'a> {
    pub settings: &'a Settings,
    pub child_env: Vec<(String, String)>,
    pub path_env: Option<std::ffi::OsString>,
    pub shutdown: Shutdown,
    pub now: fn() -> Timestamp,
}

/// `YYYY-MM-DD/<host>-@globals_YYYY-MM-DD_HH-MM-SS` (no database's name gives this stem).
pub fn stem(host: &str, at: Timestamp) -> (String, String) {
    let (day, db_stem) = catalog::backup_stem(host, "x", at);
    let time = &db_stem[db_stem.len() - 19..];
    (day, format!("{}_{time}", catalog::series(host, GLOBALS)))
}

/// The lock of the server's globals in a local lock directory: the one culling looks at.
pub fn lock_path(dir: &Path, host: &str) -> PathBuf {
    crate::backup::lock_path(dir, host, GLOBALS)
}

/// The compression of globals files: the configured one for plain backups, gzip when the
/// databases are backed up in custom format (pg_dumpall writes SQL only).
fn compression(s: &Settings) -> (Compression, i32) {
    match s.format {
        Format::Plain => (s.compression, s.level),
        Format::Custom => (Compression::Gzip, Compression::Gzip.default_level()),
    }
}

/// Connect to the first maintenance database that exists; read the server's version and globals.
async fn preflight(s: &Settings) -> Result<(ConnParams, ServerInfo, GlobalsInfo), PgError> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let params = ConnParams::from_settings(s, db);
        match params.connect().await {
            Ok(client) => {
                let server = crate::pg::catalog::server_info(&client).await?;
                let info = crate::pg::catalog::globals_info(&client).await?;
                return Ok((params, server, info));
            }
            Err(e @ PgError::NoDatabase { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("a maintenance database was tried"))
}

/// Record the globals of the configured server, to their commit.
pub async fn run(req: Request<'_>) -> Result<Done, BackupError> {
    let s = req.settings;
    let store = storage::open(&s.backup_dir, &s.s3)?;
    store.check_writable()?;
    let (compression, level) = compression(s);
    let ext = catalog::extension(Format::Plain, compression, s.age_recipients.is_some());
    let (started_at, day, stem) = loop {
        let at = (req.now)();
        let (day, stem) = stem(&s.host, at);
        if !catalog::stem_taken(&*store, &day, &stem)? {
            break (at, day, stem);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = Instant::now();
    let file = format!("{day}/{stem}{ext}");
    let holder = format!(
        "globals backup {stem} started by pid {}",
        std::process::id()
    );
    let lock = Lock::acquire(
        &lock_path(&storage::lock_dir(&s.lock_dir)?, &s.host),
        &holder,
    )?;
    let (params, server, info) = preflight(s).await?;
    let (running, passfile, version) = start(&req, &params, &server, &info, &lock)?;
    let killer = running.killer();
    let upload = store.create(&file)?;
    let opts = pipeline::Options {
        compression,
        level,
        threads: s.threads,
        inspect: true,
        encrypt: s.age_recipients.clone(),
    };
    let target = format!("{file} in {}", store.describe());
    let task = tokio::task::spawn_blocking(move || {
        backup::stream_plain(running, upload, &opts, &target, &mut |_| {})
    });
    let dumped = backup::finish_or_stop(
        task,
        &killer,
        &req.shutdown,
        "the globals backup task failed",
    )
    .await?;
    drop(passfile);
    if !dumped.report.cluster_trailer {
        dumped.output.abort();
        return Err(BackupError::Incomplete(
            "pg_dumpall's output lacks its completion trailer \
             (\"-- PostgreSQL database cluster dump complete\")"
                .into(),
        ));
    }
    let output: Output = dumped.output;
    output.commit(&*store, s.age_recipients.as_ref())?;
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        id: stem.clone(),
        file: file.clone(),
        database: GLOBALS.into(),
        host: s.host.clone(),
        port: s.port,
        server_version: server.version.clone(),
        pg_dump_version: version,
        pgkeep_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        finished_at: (req.now)(),
        duration_seconds: started.elapsed().as_secs_f64(),
        format: Format::Plain,
        compression,
        level,
        stored_bytes: dumped.stored_bytes,
        raw_bytes: dumped.raw_bytes,
        sha256: dumped.sha256,
        tables: Default::default(),
        dump_encoding: dumped.report.client_encoding,
        large_objects: 0,
        database_info: DatabaseInfo::default(),
        warnings: dumped.warnings,
        // The globals load statement by statement through `restore::globals`, which keeps only
        // the kinds it knows whatever pg_dumpall's major; there is nothing to leave out.
        newer_pg_dump: false,
        globals: Some(info),
        encryption: crate::model::age::Encryption::of(s.age_recipients.as_ref()),
    };
    backup::commit_manifest(&*store, &manifest, s.manifest_keys.as_ref())?;
    drop(lock);
    Ok(Done {
        path: Path::new(&store.describe()).join(&file),
        manifest,
    })
}

/// Start pg_dumpall for the globals (holding the lock too), with its private passfile.
fn start(
    req: &Request<'_>,
    params: &ConnParams,
    server: &ServerInfo,
    info: &GlobalsInfo,
    lock: &Lock,
) -> Result<
    (
        Running,
        Option<crate::pg::passfile::PrivatePassfile>,
        String,
    ),
    BackupError,
> {
    let s = req.settings;
    let search = Search {
        bindir: s.pg_bindir.clone(),
        path_env: req.path_env.clone(),
    };
    let pg_dumpall = tools::select(
        "pg_dumpall",
        tools::server_major(server.version_num),
        None,
        &search,
    )?;
    let passfile = backup::private_passfile(params)?;
    let env = backup::libpq_env(params, &req.child_env, passfile.as_ref().map(|p| p.path()));
    let mut spec = Spec::new(&pg_dumpall.path)
        .envs(env)
        .arg("--globals-only")
        .arg("--no-password")
        .arg(format!("--database={}", params.dbname));
    if !info.role_passwords {
        spec = spec.arg("--no-role-passwords");
    }
    let cannot_start = |source| BackupError::Io {
        context: "cannot start pg_dumpall".into(),
        source,
    };
    let spec = spec.inherit_fd(lock).map_err(cannot_start)?;
    let running = Running::spawn(&spec, Stdio::piped()).map_err(cannot_start)?;
    Ok((running, passfile, pg_dumpall.version))
}
