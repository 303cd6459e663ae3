//! Proves that a stored backup is what its manifest says: every byte read back, size and sha256
//! compared, the data decompressed in full and checked for completeness (the plain-format trailer
//! and the row counts of every COPY block; for custom format a full `pg_restore` replay of every
//! data block), each failure with its own message. The result is recorded beside the backup
//! (`<file>.verify.json`) without touching the committed manifest.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::catalog::{self, Entry, MANIFEST_SUFFIX, Manifest, Status, VERIFY_SUFFIX};
use crate::model::{Compression, Format};
use crate::pg::tools::{self, Search, ToolError};
use crate::pipeline::{self, Inspector};
use crate::storage::{LocalStore, PARTIAL_SUFFIX, StorageError, Store};

pub const RECORD_VERSION: u32 = 1;

/// Extensions of data files pgkeep writes.
use crate::catalog::DATA_EXTENSIONS;

/// How deep a verification goes. `Checksum` reads the stored file; a `Restore` level (load into a
/// scratch database and compare row counts) joins this enum with the restore engine's loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Read every byte, compare size and sha256 with the manifest, decompress fully, check
    /// completeness and row counts.
    Checksum,
    /// The checksum level, then load into a scratch database with the restore engine's loader,
    /// compare every table's row count with the manifest, run the user's checks, drop it.
    Restore,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Checksum => "checksum",
            Level::Restore => "restore",
        }
    }
}

/// What was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Committed by pgkeep, with a manifest.
    Managed,
    /// A `.sql.gz` of the old backup pod: no manifest, so no checksum to compare.
    Legacy,
    /// A data file written by pgkeep whose manifest is missing.
    Orphan,
}

/// Why a backup is not good. Every failure mode has its own message and a stable code.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Failure {
    #[error("the data file is empty (0 bytes){}", expected_note(*.expected))]
    Empty { expected: Option<u64> },
    #[error("the data file {file} is missing although its manifest exists")]
    DataMissing { file: String },
    #[error(
        "the file is truncated: {actual} bytes instead of the {expected} the manifest records ({} bytes missing){}",
        .expected - .actual, detail_note(.detail)
    )]
    Truncated {
        actual: u64,
        expected: u64,
        detail: Option<String>,
    },
    #[error(
        "the file grew: {actual} bytes instead of the {expected} the manifest records ({} bytes too many)",
        .actual - .expected
    )]
    Grown { actual: u64, expected: u64 },
    #[error(
        "the content changed since the backup: sha256 {}… differs from the manifest's {}…{}",
        short(.actual), short(.expected), detail_note(.detail)
    )]
    Checksum {
        actual: String,
        expected: String,
        detail: Option<String>,
    },
    #[error(
        "the manifest's checksum was altered: it says sha256 {}…, the data has {}…, and {evidence}",
        short(.expected), short(.actual)
    )]
    ManifestChecksum {
        actual: String,
        expected: String,
        evidence: String,
    },
    #[error(
        "the manifest is missing for data file {file}: {why}; this is not a committed backup (the manifest was deleted, or the backup never finished)"
    )]
    ManifestMissing { file: String, why: String },
    #[error("the manifest {name} is unreadable: {message}")]
    ManifestUnreadable { name: String, message: String },
    #[error("the data does not decompress ({compression}): {message}")]
    Corrupt {
        compression: &'static str,
        message: String,
    },
    #[error(
        "the dump is cut in the middle of the data of table {table} (psql would load it without an error, silently missing rows)"
    )]
    CutInCopy { table: String },
    #[error(
        "the dump lacks pg_dump's completion trailer (\"-- PostgreSQL database dump complete\"): it was cut short or is not a pg_dump output"
    )]
    NoTrailer,
    #[error("row counts differ from the manifest: {0}")]
    RowCounts(String),
    #[error("the custom-format archive does not replay: {0}")]
    Archive(String),
    #[error("the backup cannot be read: {0}")]
    Read(String),
    #[error("the test restore failed: {0}")]
    RestoreLoad(String),
    #[error("the test restore's row counts differ from the manifest: {0}")]
    RestoreRows(String),
    #[error("the test restore's check failed: {0}")]
    RestoreCheck(String),
}

impl crate::exit::ExitCode for Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Empty { .. }
            | Failure::DataMissing { .. }
            | Failure::Truncated { .. }
            | Failure::Grown { .. }
            | Failure::Checksum { .. }
            | Failure::ManifestChecksum { .. }
            | Failure::ManifestMissing { .. }
            | Failure::ManifestUnreadable { .. }
            | Failure::Corrupt { .. }
            | Failure::CutInCopy { .. }
            | Failure::NoTrailer
            | Failure::RowCounts(_)
            | Failure::Archive(_)
            | Failure::Read(_)
            | Failure::RestoreLoad(_)
            | Failure::RestoreRows(_)
            | Failure::RestoreCheck(_) => crate::exit::BAD_BACKUP,
        }
    }
}

fn expected_note(expected: Option<u64>) -> String {
    match expected {
        Some(n) => format!("; the manifest records {n} bytes"),
        None => String::new(),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(16)]
}

fn detail_note(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!("; {d}"),
        None => String::new(),
    }
}

impl Failure {
    /// A stable short code for scripts, metrics and notifications.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Empty { .. } => "empty",
            Failure::DataMissing { .. } => "data-missing",
            Failure::Truncated { .. } => "truncated",
            Failure::Grown { .. } => "grown",
            Failure::Checksum { .. } => "checksum",
            Failure::ManifestChecksum { .. } => "manifest-checksum",
            Failure::ManifestMissing { .. } => "manifest-missing",
            Failure::ManifestUnreadable { .. } => "manifest-unreadable",
            Failure::Corrupt { .. } => "corrupt",
            Failure::CutInCopy { .. } => "cut-in-copy",
            Failure::NoTrailer => "no-trailer",
            Failure::RowCounts(_) => "row-count",
            Failure::Archive(_) => "archive",
            Failure::Read(_) => "read-error",
            Failure::RestoreLoad(_) => "restore-load",
            Failure::RestoreRows(_) => "restore-row-count",
            Failure::RestoreCheck(_) => "restore-check",
        }
    }
}

/// Errors that stop verification from running at all (as opposed to a bad backup).
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("no backup matches `{0}` (give an id or file name as shown by `pgkeep list`)")]
    NotFound(String),
    #[error("no backups of database \"{0}\" to verify")]
    NoBackups(String),
    #[error("cannot record the verification result: {0}")]
    Record(StorageError),
    #[error("interrupted by {} during verification", .0.name())]
    Interrupted(crate::shutdown::Reason),
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
    #[error("the test restore could not run: {0}")]
    Restore(String),
}

impl crate::exit::ExitCode for VerifyError {
    fn exit_code(&self) -> u8 {
        use crate::exit::{FAILED, STORAGE, USAGE};
        match self {
            VerifyError::NotFound(_) => USAGE,
            VerifyError::NoBackups(_) | VerifyError::Restore(_) => FAILED,
            VerifyError::Interrupted(r) => r.exit_code(),
            VerifyError::Storage(_) | VerifyError::Catalog(_) | VerifyError::Record(_) => STORAGE,
            VerifyError::Tool(e) => e.exit_code(),
            VerifyError::Pg(e) => e.exit_code(),
        }
    }
}

/// `pgkeep verify` found bad backups (exit code `exit::BAD_BACKUP`).
#[derive(Debug, Error)]
#[error("{failed} of {total} verified backup(s) failed verification")]
pub struct BadBackups {
    pub failed: usize,
    pub total: usize,
}

impl crate::exit::ExitCode for BadBackups {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_BACKUP
    }
}

/// The verification record written beside the data file as `<file>.verify.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub record_version: u32,
    pub id: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub kind: Kind,
    pub level: Level,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// One line: what was proven, or what is wrong.
    pub message: String,
    pub checked_at: Timestamp,
    pub duration_seconds: f64,
    /// Bytes read from the stored file and their sha256.
    pub stored_bytes: u64,
    pub sha256: String,
    /// Bytes after decompression (plain) or archive bytes (custom).
    pub raw_bytes: u64,
    pub tables: usize,
    pub rows: u64,
    /// sha256 of the manifest file as it was read (or last seen), to notice a later change or
    /// deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    pub pgkeep_version: String,
}

impl Record {
    pub fn name(&self) -> String {
        record_name(&self.file)
    }
}

/// The name of the verification record of a data file.
pub fn record_name(file: &str) -> String {
    format!("{file}{VERIFY_SUFFIX}")
}

/// Everything a verification needs, passed in by the command layer.
pub struct Request<'a> {
    pub store: &'a LocalStore,
    pub level: Level,
    /// Where to find pg_restore for custom-format archives.
    pub search: Search,
    /// The environment pg_restore may inherit.
    pub child_env: Vec<(String, String)>,
    pub now: fn() -> Timestamp,
    /// Stops reading at once when it fires; the verification then ends `Interrupted` and
    /// nothing is recorded.
    pub shutdown: crate::shutdown::Shutdown,
}

/// One thing to verify: a listed backup, or a data file that has lost its manifest.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub file: String,
    pub database: Option<String>,
    pub time: Timestamp,
    pub status: Option<Status>,
    /// Without manifest and modified within `SETTLE_SECONDS`: possibly still being committed.
    pub settling: bool,
}

impl From<&Entry> for Target {
    fn from(e: &Entry) -> Target {
        Target {
            id: e.id.clone(),
            file: e.file.clone(),
            database: e.database.clone(),
            time: e.time,
            status: Some(e.status),
            settling: false,
        }
    }
}

/// A data file without manifest younger than this may be a backup between its data commit and
/// its manifest (or an old-pod `gzip` still writing): `--all` and `--latest` leave it alone.
pub const SETTLE_SECONDS: i64 = 120;

/// Every listed backup plus every data file without a manifest that the listing leaves out
/// (a `.dump`, `.sql.zst` or `.sql` whose manifest is gone), newest first.
pub fn targets(
    store: &dyn Store,
    host_hint: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Target>, VerifyError> {
    let entries = catalog::list(store, host_hint)?;
    let objects = store.list()?;
    let modified: BTreeMap<&str, Timestamp> = objects
        .iter()
        .map(|o| {
            (
                o.name.as_str(),
                Timestamp::try_from(o.modified).unwrap_or(Timestamp::UNIX_EPOCH),
            )
        })
        .collect();
    let settling = |name: &str| {
        modified
            .get(name)
            .is_some_and(|m| now.as_second() - m.as_second() < SETTLE_SECONDS)
    };
    let mut out: Vec<Target> = entries
        .iter()
        .map(|e| {
            let mut t = Target::from(e);
            t.settling = e.status == Status::Legacy && settling(&e.file);
            t
        })
        .collect();
    for o in &objects {
        if o.name.ends_with(PARTIAL_SUFFIX)
            || o.name.ends_with(".sql.gz")
            || !DATA_EXTENSIONS.iter().any(|e| o.name.ends_with(e))
            || modified.contains_key(format!("{}{MANIFEST_SUFFIX}", o.name).as_str())
        {
            continue;
        }
        out.push(Target {
            id: catalog::id_of(&o.name),
            file: o.name.clone(),
            database: None,
            time: Timestamp::try_from(o.modified).unwrap_or(Timestamp::UNIX_EPOCH),
            status: None,
            settling: settling(&o.name),
        });
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Find targets by id, file name (relative to the backup directory) or path. An id can name
/// more than one file (backups of different formats started in the same second): all are
/// returned.
pub fn find(targets: &[Target], wanted: &str, root: &std::path::Path) -> Vec<Target> {
    let rel = std::path::Path::new(wanted)
        .strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| wanted.to_string());
    let rel = rel
        .strip_suffix(MANIFEST_SUFFIX)
        .or_else(|| rel.strip_suffix(VERIFY_SUFFIX))
        .unwrap_or(&rel)
        .to_string();
    if let Some(t) = targets.iter().find(|t| t.file == rel) {
        return vec![t.clone()];
    }
    let by_id: Vec<Target> = targets.iter().filter(|t| t.id == rel).cloned().collect();
    if !by_id.is_empty() {
        return by_id;
    }
    targets
        .iter()
        .filter(|t| catalog::id_of(&t.file) == rel)
        .cloned()
        .collect()
}

/// Verify one backup. A bad backup is an `Ok(Record)` with `ok == false`; `Err` means the
/// verification itself could not run. Store the result with [`record`].
///
/// The level decides how deep it goes; a restore level (load into a scratch database with the
/// restore engine's loader, compare row counts, run the user's checks) runs after the checksum
/// level has passed, so a file that does not read back is never loaded.
pub fn verify(req: &Request<'_>, target: &Target) -> Result<Record, VerifyError> {
    let started = Instant::now();
    let checked_at = (req.now)();
    let store = req.store;
    let previous = read_record(store, &target.file);
    let manifest_name = format!("{}{MANIFEST_SUFFIX}", target.file);
    let mut rec = Record {
        record_version: RECORD_VERSION,
        id: target.id.clone(),
        file: target.file.clone(),
        database: target.database.clone(),
        kind: Kind::Managed,
        level: req.level,
        ok: false,
        failure: None,
        message: String::new(),
        checked_at,
        duration_seconds: 0.0,
        stored_bytes: 0,
        sha256: String::new(),
        raw_bytes: 0,
        tables: 0,
        rows: 0,
        manifest_sha256: None,
        pgkeep_version: env!("CARGO_PKG_VERSION").to_string(),
    };

    let result = match read_manifest_bytes(store, &manifest_name)? {
        Some(bytes) => {
            rec.manifest_sha256 = Some(hex::encode(Sha256::digest(&bytes)));
            match parse_manifest(&manifest_name, &bytes) {
                Ok(m) => {
                    rec.database = Some(m.database.clone());
                    // No pg_restore is a problem of this machine, not of the backup.
                    let pg_restore = match m.format {
                        Format::Custom => Some(pg_restore_for(req, &m)?),
                        Format::Plain => None,
                    };
                    check_managed(req, &m, pg_restore.as_deref(), previous.as_ref(), &mut rec)
                }
                Err(f) => Err(f),
            }
        }
        None => {
            let had_manifest = previous.as_ref().and_then(|p| p.manifest_sha256.clone());
            rec.kind = if target.file.ends_with(".sql.gz") && had_manifest.is_none() {
                Kind::Legacy
            } else {
                Kind::Orphan
            };
            if had_manifest.is_some() {
                rec.kind = Kind::Orphan;
                // Keep the memory of the manifest for the next run.
                rec.manifest_sha256 = had_manifest.clone();
                Err(Failure::ManifestMissing {
                    file: target.file.clone(),
                    why: format!(
                        "it had one when it was verified at {}",
                        previous.as_ref().map_or(checked_at, |p| p.checked_at)
                    ),
                })
            } else if rec.kind == Kind::Orphan {
                Err(Failure::ManifestMissing {
                    file: target.file.clone(),
                    why: "pgkeep writes a manifest beside every backup it keeps".into(),
                })
            } else if written_by_pgkeep(store, &target.file) {
                rec.kind = Kind::Orphan;
                let content = match check_legacy(store, &target.file, &req.shutdown, &mut rec) {
                    Ok(_) => "its content decompresses complete".to_string(),
                    Err(f) => format!("its content is bad too: {f}"),
                };
                Err(Failure::ManifestMissing {
                    file: target.file.clone(),
                    why: format!(
                        "its gzip header is pgkeep's (OS field 255), not GNU gzip's as the old backup pod wrote; {content}"
                    ),
                })
            } else {
                check_legacy(store, &target.file, &req.shutdown, &mut rec)
            }
        }
    };
    if let Some(r) = req.shutdown.reason() {
        return Err(VerifyError::Interrupted(r));
    }
    rec.duration_seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(msg) => {
            rec.ok = true;
            rec.message = msg;
        }
        Err(f) => {
            rec.ok = false;
            rec.failure = Some(f.code().to_string());
            rec.message = f.to_string();
        }
    }
    Ok(rec)
}

/// What a restore-level verification needs: the admin connection (its `dbname` is the
/// maintenance database), a private passfile for children, the tools search, the user's checks.
pub struct RestoreRequest<'a> {
    pub admin: &'a crate::pg::ConnParams,
    pub passfile: Option<&'a std::path::Path>,
    pub child_env: &'a [(String, String)],
    pub search: &'a Search,
    /// SQL that must succeed (and return at least one row) in the loaded copy.
    pub checks: &'a [String],
    pub shutdown: &'a crate::shutdown::Shutdown,
    pub now: Timestamp,
    /// The server is a throwaway cluster (`--local`): create the roles the backup references
    /// first (no passwords, no login), so its owners and grants load.
    pub create_roles: bool,
}

/// The restore level on top of a checksum-level record that passed: load the backup into a
/// scratch database with the restore engine's loader, compare the row counts with the
/// manifest's (legacy files: with the counts seen in the file), run the checks, drop the scratch
/// database. Updates `rec`; `Err` when the test restore could not run at all (server
/// unreachable, no client tools) rather than the backup being bad.
pub async fn restore_level(
    store: &LocalStore,
    rr: &RestoreRequest<'_>,
    rec: &mut Record,
) -> Result<(), VerifyError> {
    use crate::restore::load::{Input, LoadError, Loader, ScratchLoad, Tools};
    rec.level = Level::Restore;
    if !rec.ok {
        return Ok(());
    }
    let started = Instant::now();
    let manifest = match read_manifest_bytes(store, &format!("{}{MANIFEST_SUFFIX}", rec.file))? {
        Some(bytes) => Some(
            parse_manifest(&rec.file, &bytes).map_err(|f| VerifyError::Restore(f.to_string()))?,
        ),
        None => None,
    };
    let client = rr.admin.connect().await?;
    let server = crate::pg::catalog::server_info(&client).await?;
    if rr.create_roles
        && let Some(m) = &manifest
    {
        let created = create_roles(&client, &rr.admin.user, &m.database_info.roles).await?;
        if !created.is_empty() {
            tracing::info!(roles = %created.join(", "), "created the backup's roles in the throwaway cluster");
        }
    }
    drop(client);
    let tools = Tools::find(server.version_num, rr.search)?;
    let loader = Loader {
        admin: rr.admin,
        tools: &tools,
        child_env: rr.child_env,
        passfile: rr.passfile,
        shutdown: rr.shutdown,
        server_version_num: server.version_num,
    };
    let input = Input {
        path: store.path_of(&rec.file),
        format: manifest.as_ref().map_or(Format::Plain, |m| m.format),
        compression: manifest
            .as_ref()
            .map_or(Compression::Gzip, |m| m.compression),
    };
    let db = rec
        .database
        .clone()
        .unwrap_or_else(|| "pgkeep_verify".to_string());
    let scratch = crate::restore::scratch_name(&db, rr.now);
    let res = loader
        .load_and_check(&ScratchLoad {
            database: &scratch,
            input: &input,
            info: manifest.as_ref().map(|m| &m.database_info),
            expected: manifest.as_ref().map(|m| &m.tables),
            checks: rr.checks,
            jobs: 1,
        })
        .await;
    let outcome = match res {
        Ok(checked) => {
            // It proved what it had to; the copy goes.
            if let Err(e) = loader.drop(&scratch).await {
                tracing::warn!(database = %scratch, error = %e, "cannot drop the scratch database");
            }
            Ok(format!(
                "loaded into scratch database \"{scratch}\" in {:.1}s: {} rows in {} tables as recorded{}; dropped again",
                checked.load.duration.as_secs_f64(),
                checked.rows_checked,
                checked.tables_checked,
                if rr.checks.is_empty() {
                    String::new()
                } else {
                    format!(", {} check(s) passed", rr.checks.len())
                }
            ))
        }
        Err(LoadError::Pg(e)) => return Err(e.into()),
        Err(LoadError::Interrupted(r)) => return Err(VerifyError::Interrupted(r)),
        Err(e @ LoadError::Io { .. }) => return Err(VerifyError::Restore(e.to_string())),
        Err(e @ LoadError::RowCounts(_)) => Err(Failure::RestoreRows(
            e.to_string()
                .trim_start_matches("row counts differ from the backup's: ")
                .to_string(),
        )),
        Err(e @ LoadError::CheckFailed { .. }) => Err(Failure::RestoreCheck(e.to_string())),
        Err(e @ (LoadError::LoadFailed { .. } | LoadError::Incomplete(_))) => {
            Err(Failure::RestoreLoad(e.to_string()))
        }
    };
    rec.duration_seconds += started.elapsed().as_secs_f64();
    match outcome {
        Ok(m) => rec.message = format!("{}; {m}", rec.message),
        Err(f) => {
            rec.ok = false;
            rec.failure = Some(f.code().to_string());
            rec.message = f.to_string();
        }
    }
    Ok(())
}

/// Create the roles of `roles` that do not exist yet, without password and without login (a
/// throwaway cluster only needs them to own objects and hold grants). The connecting superuser
/// and the predefined `pg_*` roles are left alone. Returns the roles created.
pub async fn create_roles(
    client: &tokio_postgres::Client,
    superuser: &str,
    roles: &[String],
) -> Result<Vec<String>, crate::pg::PgError> {
    let mut created = Vec::new();
    for role in roles {
        if role == superuser || role == "postgres" || role.starts_with("pg_") {
            continue;
        }
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
            .await
            .map_err(|e| crate::pg::query_error("looking up a role", e))?
            .is_some();
        if exists {
            continue;
        }
        client
            .batch_execute(&format!(
                "CREATE ROLE {} NOLOGIN",
                crate::pg::ident::quote_ident(role)
            ))
            .await
            .map_err(|e| crate::pg::query_error(&format!("creating role \"{role}\""), e))?;
        created.push(role.clone());
    }
    Ok(created)
}

/// Write the record beside its backup (`<file>.verify.json`, atomically replacing the previous
/// one). The committed manifest is never rewritten.
pub fn record(store: &dyn Store, rec: &Record) -> Result<(), VerifyError> {
    let json = serde_json::to_vec_pretty(rec).expect("the record serializes");
    store.put(&rec.name(), &json).map_err(VerifyError::Record)
}

/// The previous verification record of a data file.
pub fn read_record(store: &dyn Store, file: &str) -> Option<Record> {
    let mut text = String::new();
    store
        .open(&record_name(file))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

fn read_manifest_bytes(store: &dyn Store, name: &str) -> Result<Option<Vec<u8>>, VerifyError> {
    match store.open(name) {
        Ok(mut r) => {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)
                .map_err(|e| StorageError::io("cannot read", std::path::Path::new(name), e))?;
            Ok(Some(bytes))
        }
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn parse_manifest(name: &str, bytes: &[u8]) -> Result<Manifest, Failure> {
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
fn written_by_pgkeep(store: &dyn Store, file: &str) -> bool {
    let mut head = [0u8; 10];
    match store.open(file) {
        Ok(mut r) => {
            r.read_exact(&mut head).is_ok() && head[..3] == [0x1f, 0x8b, 8] && head[9] == 255
        }
        Err(_) => false,
    }
}

/// A reader that hashes and counts what passes through it.
struct Hashing<'s, R> {
    inner: R,
    shutdown: &'s crate::shutdown::Shutdown,
    hasher: Sha256,
    bytes: u64,
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

/// What one pass over a plain backup found.
struct PlainPass {
    stored_bytes: u64,
    sha256: String,
    raw_bytes: u64,
    /// `Err(message)` when decompression failed.
    decoded: Result<pipeline::Report, String>,
}

/// Read the stored file once: hash every byte while decompressing and inspecting the dump.
fn plain_pass(
    store: &dyn Store,
    file: &str,
    compression: Compression,
    shutdown: &crate::shutdown::Shutdown,
) -> Result<PlainPass, Failure> {
    let r = store.open(file).map_err(|e| Failure::Read(e.to_string()))?;
    let mut hashing = Hashing {
        inner: r,
        shutdown,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut raw = 0u64;
    let decoded = {
        let mut inspector = Inspector::new();
        let res = (|| -> io::Result<()> {
            let mut dec = pipeline::decoder(&mut hashing, compression)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match dec.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        inspector.feed(&buf[..n]);
                        raw += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })();
        match res {
            Ok(()) => Ok(inspector.finish()),
            Err(e) => Err(e.to_string()),
        }
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

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "none",
    }
}

/// Completeness of an inspected plain dump.
fn completeness(report: &pipeline::Report) -> Result<(), Failure> {
    if let Some(t) = &report.ended_in_copy {
        return Err(Failure::CutInCopy { table: t.clone() });
    }
    if !report.trailer {
        return Err(Failure::NoTrailer);
    }
    Ok(())
}

/// Compare the row counts read back with the manifest's.
fn compare_rows(
    found: &BTreeMap<String, u64>,
    expected: &BTreeMap<String, u64>,
) -> Result<(), Failure> {
    let mut diffs = Vec::new();
    for (t, n) in expected {
        match found.get(t) {
            Some(f) if f == n => {}
            Some(f) => diffs.push(format!("table {t} has {f} rows, the manifest records {n}")),
            None => diffs.push(format!("table {t} ({n} rows in the manifest) is missing")),
        }
    }
    for (t, f) in found {
        if !expected.contains_key(t) {
            diffs.push(format!("table {t} ({f} rows) is not in the manifest"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        let more = if diffs.len() > 3 {
            format!(" (and {} more)", diffs.len() - 3)
        } else {
            String::new()
        };
        diffs.truncate(3);
        Err(Failure::RowCounts(format!("{}{more}", diffs.join("; "))))
    }
}

fn check_managed(
    req: &Request<'_>,
    m: &Manifest,
    pg_restore: Option<&std::path::Path>,
    previous: Option<&Record>,
    rec: &mut Record,
) -> Result<String, Failure> {
    let store = req.store;
    let size = match size_of(store, &m.file) {
        Some(s) => s,
        None => {
            return Err(Failure::DataMissing {
                file: m.file.clone(),
            });
        }
    };
    if size == 0 {
        return Err(Failure::Empty {
            expected: Some(m.stored_bytes),
        });
    }
    // Read every byte: hash, decompress, replay.
    let (stored_bytes, sha256, raw_bytes, content): (
        u64,
        String,
        u64,
        Result<pipeline::Report, Failure>,
    ) = match m.format {
        Format::Plain => {
            let pass = plain_pass(store, &m.file, m.compression, &req.shutdown)?;
            let content = pass.decoded.map_err(|message| Failure::Corrupt {
                compression: compression_name(m.compression),
                message,
            });
            (pass.stored_bytes, pass.sha256, pass.raw_bytes, content)
        }
        Format::Custom => {
            let r = store
                .open(&m.file)
                .map_err(|e| Failure::Read(e.to_string()))?;
            let mut hashing = Hashing {
                inner: r,
                shutdown: &req.shutdown,
                hasher: Sha256::new(),
                bytes: 0,
            };
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| Failure::Read(e.to_string()))?;
            let (bytes, sha) = (hashing.bytes, hex::encode(hashing.hasher.finalize()));
            let content = replay(
                req,
                m,
                pg_restore.expect("pg_restore is chosen for custom archives"),
            );
            (bytes, sha, bytes, content)
        }
    };
    rec.stored_bytes = stored_bytes;
    rec.sha256 = sha256.clone();
    rec.raw_bytes = raw_bytes;
    if let Ok(r) = &content {
        rec.tables = r.tables.len();
        rec.rows = r.tables.values().sum();
    }
    // The content's own verdict: complete, with the manifest's row counts.
    let content_verdict = content.and_then(|r| {
        if m.format == Format::Plain {
            completeness(&r)?;
        }
        compare_rows(&r.tables, &m.tables)?;
        Ok(r)
    });
    if stored_bytes < m.stored_bytes {
        return Err(Failure::Truncated {
            actual: stored_bytes,
            expected: m.stored_bytes,
            detail: content_verdict.err().map(|f| f.to_string()),
        });
    }
    if stored_bytes > m.stored_bytes {
        return Err(Failure::Grown {
            actual: stored_bytes,
            expected: m.stored_bytes,
        });
    }
    if sha256 != m.sha256 {
        // Which side changed? Certain when the data is what verified good before; very likely
        // the manifest when the data's own checksums (gzip CRC32 per member, zstd content
        // checksum, zlib Adler-32 per custom-format block) all still match.
        let same_as_verified = previous.filter(|p| p.ok && p.sha256 == sha256);
        let self_checked = match m.format {
            Format::Plain => m.compression != Compression::None,
            Format::Custom => m.level > 0,
        };
        return match (content_verdict, same_as_verified) {
            (Ok(_), Some(p)) => Err(Failure::ManifestChecksum {
                evidence: format!(
                    "the data is byte for byte what verified good at {}",
                    p.checked_at.round(jiff::Unit::Second).unwrap_or(p.checked_at)
                ),
                actual: sha256,
                expected: m.sha256.clone(),
            }),
            (Ok(_), None) if self_checked => Err(Failure::ManifestChecksum {
                evidence: "the data's own checksums all match and it reads back complete with the recorded row counts".into(),
                actual: sha256,
                expected: m.sha256.clone(),
            }),
            (Ok(_), None) => Err(Failure::Checksum {
                actual: sha256,
                expected: m.sha256.clone(),
                detail: Some(
                    "the content still reads back complete, so either it was changed in place or the manifest's checksum was edited".into(),
                ),
            }),
            (Err(f), _) => Err(Failure::Checksum {
                actual: sha256,
                expected: m.sha256.clone(),
                detail: Some(f.to_string()),
            }),
        };
    }
    let r = content_verdict?;
    Ok(format!(
        "{} read back, sha256 matches the manifest, {}; {} rows in {} tables as recorded",
        crate::report::human_bytes(stored_bytes),
        match m.format {
            Format::Plain => format!(
                "{} of dump decompressed with its completion trailer",
                crate::report::human_bytes(raw_bytes)
            ),
            Format::Custom => "every archive block replayed by pg_restore".to_string(),
        },
        r.tables.values().sum::<u64>(),
        r.tables.len()
    ))
}

/// The pg_restore for an archive made by the manifest's pg_dump (same major or newer).
fn pg_restore_for(req: &Request<'_>, m: &Manifest) -> Result<PathBuf, VerifyError> {
    let major = tools::parse_major(&format!("pg_dump {}", m.pg_dump_version))
        .map(|(m, _)| m)
        .unwrap_or(0);
    Ok(tools::select("pg_restore", major, None, &req.search)?.path)
}

/// Replay a custom-format archive with pg_restore (every data block, not just the TOC).
fn replay(
    req: &Request<'_>,
    m: &Manifest,
    pg_restore: &std::path::Path,
) -> Result<pipeline::Report, Failure> {
    let path = req.store.path_of(&m.file);
    crate::backup::replay_custom(pg_restore, &path, &req.child_env).map_err(|e| {
        let s = e.to_string();
        Failure::Archive(
            s.strip_prefix("the dump is incomplete: the archive does not read back: ")
                .unwrap_or(&s)
                .to_string(),
        )
    })
}

/// An old pod's `.sql.gz`: decompress fully, check the trailer; no checksum exists to compare.
fn check_legacy(
    store: &LocalStore,
    file: &str,
    shutdown: &crate::shutdown::Shutdown,
    rec: &mut Record,
) -> Result<String, Failure> {
    let size = size_of(store, file).ok_or_else(|| Failure::Read(format!("{file} is gone")))?;
    if size == 0 {
        return Err(Failure::Empty { expected: None });
    }
    let pass = plain_pass(store, file, Compression::Gzip, shutdown)?;
    rec.stored_bytes = pass.stored_bytes;
    rec.sha256 = pass.sha256;
    rec.raw_bytes = pass.raw_bytes;
    let report = pass.decoded.map_err(|message| Failure::Corrupt {
        compression: "gzip",
        message,
    })?;
    rec.tables = report.tables.len();
    rec.rows = report.tables.values().sum();
    completeness(&report)?;
    Ok(format!(
        "legacy backup without manifest: {} decompressed to {} with its completion trailer ({} rows in {} tables); no checksum to compare",
        crate::report::human_bytes(pass.stored_bytes),
        crate::report::human_bytes(pass.raw_bytes),
        rec.rows,
        rec.tables
    ))
}

/// The size of a stored file, `None` if it does not exist.
fn size_of(store: &LocalStore, name: &str) -> Option<u64> {
    std::fs::metadata(store.path_of(name))
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// The verification state of a listed backup for retention (`prune::VerifiedFn`): `None` never
/// verified, `Some(false)` its last verification failed.
pub fn verified_state(e: &Entry) -> Option<bool> {
    e.verification.as_ref().map(|v| v.ok)
}

/// The verification state of one database, for `/metrics` and `pgkeep check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseState {
    pub database: String,
    /// The most recent verification of any of the database's backups.
    pub last: Option<Record>,
    /// When a backup of this database last verified good.
    pub last_ok_at: Option<Timestamp>,
    /// Verification records found that failed (backups currently known bad).
    pub failed_backups: usize,
}

/// Verification results per database, from the records in the store (for `/metrics`).
pub fn states(store: &dyn Store) -> Result<Vec<DatabaseState>, VerifyError> {
    let mut by_db: BTreeMap<String, DatabaseState> = BTreeMap::new();
    for o in store.list()? {
        let Some(file) = o.name.strip_suffix(VERIFY_SUFFIX) else {
            continue;
        };
        let Some(r) = read_record(store, file) else {
            continue;
        };
        let db = r.database.clone().unwrap_or_else(|| "?".into());
        let st = by_db.entry(db.clone()).or_insert(DatabaseState {
            database: db,
            last: None,
            last_ok_at: None,
            failed_backups: 0,
        });
        if r.ok {
            st.last_ok_at = Some(st.last_ok_at.map_or(r.checked_at, |t| t.max(r.checked_at)));
        } else {
            st.failed_backups += 1;
        }
        if st.last.as_ref().is_none_or(|l| r.checked_at > l.checked_at) {
            st.last = Some(r);
        }
    }
    Ok(by_db.into_values().collect())
}

/// The verification states in Prometheus text format, for the daemon's `/metrics`.
pub fn metrics_text(states: &[DatabaseState]) -> String {
    fn label(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&DatabaseState) -> Option<f64>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for s in states {
            if let Some(v) = value(s) {
                out.push_str(&format!(
                    "{name}{{database=\"{}\"}} {v}\n",
                    label(&s.database)
                ));
            }
        }
    };
    family(
        "pgkeep_verify_last_ok",
        "1 if the most recent verification of a backup of the database passed, 0 if it failed.",
        &|s| s.last.as_ref().map(|r| if r.ok { 1.0 } else { 0.0 }),
    );
    family(
        "pgkeep_verify_last_timestamp_seconds",
        "When the most recent verification ran (Unix time).",
        &|s| s.last.as_ref().map(|r| r.checked_at.as_second() as f64),
    );
    family(
        "pgkeep_verify_last_ok_timestamp_seconds",
        "When a backup of the database last verified good (Unix time).",
        &|s| s.last_ok_at.map(|t| t.as_second() as f64),
    );
    family(
        "pgkeep_verify_failed_backups",
        "Backups whose recorded verification failed.",
        &|s| Some(s.failed_backups as f64),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file: &str, db: &str, ok: bool, at: &str) -> Record {
        Record {
            record_version: RECORD_VERSION,
            id: catalog::id_of(file),
            file: file.into(),
            database: Some(db.into()),
            kind: Kind::Managed,
            level: Level::Checksum,
            ok,
            failure: (!ok).then(|| "truncated".into()),
            message: "m".into(),
            checked_at: at.parse().unwrap(),
            duration_seconds: 0.1,
            stored_bytes: 1,
            sha256: "0".repeat(64),
            raw_bytes: 1,
            tables: 1,
            rows: 1,
            manifest_sha256: None,
            pgkeep_version: "0".into(),
        }
    }

    #[test]
    fn states_and_metrics_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for r in [
            record(
                "d/h-a_2026-11-01_00-00-00.sql.gz",
                "a",
                true,
                "2026-11-02T00:00:00Z",
            ),
            record(
                "d/h-a_2026-11-03_00-00-00.sql.gz",
                "a",
                false,
                "2026-11-04T00:00:00Z",
            ),
            record(
                "d/h-b\"x_2026-11-03_00-00-00.sql.gz",
                "b\"x",
                true,
                "2026-11-05T00:00:00Z",
            ),
        ] {
            store
                .put(&r.name(), &serde_json::to_vec(&r).unwrap())
                .unwrap();
        }
        let st = states(&store).unwrap();
        assert_eq!(st.len(), 2);
        let a = &st[0];
        assert_eq!(a.database, "a");
        assert!(!a.last.as_ref().unwrap().ok);
        assert_eq!(a.last_ok_at, Some("2026-11-02T00:00:00Z".parse().unwrap()));
        assert_eq!(a.failed_backups, 1);
        let text = metrics_text(&st);
        assert!(
            text.contains("pgkeep_verify_last_ok{database=\"a\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_last_ok{database=\"b\\\"x\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_last_ok_timestamp_seconds{database=\"a\"} 1793577600\n"),
            "{text}"
        );
        assert!(
            text.contains("pgkeep_verify_failed_backups{database=\"a\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_shutdown_stops_verification_and_nothing_is_recorded() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let file = "h-db_2026-11-01_00-00-00.sql.gz";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"-- PostgreSQL database dump complete\n")
            .unwrap();
        store.put(file, &gz.finish().unwrap()).unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let req = Request {
            store: &store,
            level: Level::Checksum,
            search: Search::default(),
            child_env: Vec::new(),
            now: Timestamp::now,
            shutdown,
        };
        let t = Target {
            id: catalog::id_of(file),
            file: file.into(),
            database: None,
            time: Timestamp::now(),
            status: None,
            settling: false,
        };
        // Not fired: it runs (and finds the file lacks a manifest).
        assert_eq!(
            verify(&req, &t).unwrap().failure.as_deref(),
            Some("manifest-missing")
        );
        trigger.fire(crate::shutdown::Reason::Terminate);
        assert!(matches!(verify(&req, &t), Err(VerifyError::Interrupted(_))));
        assert!(read_record(&store, file).is_none());
    }

    #[test]
    fn find_by_file_id_or_path_and_all_files_of_a_shared_id() {
        let t = |file: &str| Target {
            id: catalog::id_of(file),
            file: file.into(),
            database: None,
            time: Timestamp::UNIX_EPOCH,
            status: None,
            settling: false,
        };
        let all = vec![
            t("d/h-a_2026-11-01_00-00-00.sql.gz"),
            t("d/h-a_2026-11-01_00-00-00.dump"),
            t("d/h-a_2026-11-02_00-00-00.sql.gz"),
        ];
        let root = std::path::Path::new("/backups");
        assert_eq!(find(&all, "h-a_2026-11-01_00-00-00", root).len(), 2);
        let one = find(&all, "/backups/d/h-a_2026-11-01_00-00-00.dump", root);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].file, "d/h-a_2026-11-01_00-00-00.dump");
        let m = find(&all, "d/h-a_2026-11-02_00-00-00.sql.gz.manifest.json", root);
        assert_eq!(m[0].file, "d/h-a_2026-11-02_00-00-00.sql.gz");
        assert!(find(&all, "nope", root).is_empty());
    }

    #[test]
    fn row_count_differences_are_named() {
        let exp: BTreeMap<String, u64> = [("a".to_string(), 2), ("b".to_string(), 3)].into();
        let found: BTreeMap<String, u64> = [("a".to_string(), 2), ("c".to_string(), 1)].into();
        let e = compare_rows(&found, &exp).unwrap_err().to_string();
        assert!(
            e.contains("table b (3 rows in the manifest) is missing"),
            "{e}"
        );
        assert!(e.contains("table c (1 rows) is not in the manifest"), "{e}");
        assert!(compare_rows(&exp, &exp).is_ok());
    }
}
