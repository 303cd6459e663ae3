//! The catalog of backups: the versioned manifest written beside each data file (its existence is
//! the commit point), backup ids and names, listing newest first, and the one rule for what a data
//! file without a manifest is: a `.sql.gz` of the old backup pod (legacy, restorable) or a file
//! pgkeep made whose manifest is missing (uncommitted: never a backup).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{Compression, Format, ManifestKeys, Seal};
use crate::pg::catalog::DatabaseInfo;
use crate::storage::{StorageError, Store};

pub const MANIFEST_VERSION: u32 = 1;
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("manifest {name} is unreadable: {message}")]
    BadManifest { name: String, message: String },
}

impl crate::exit::ExitCode for CatalogError {
    fn exit_code(&self) -> u8 {
        match self {
            CatalogError::Storage(e) => e.exit_code(),
            CatalogError::BadManifest { .. } => crate::exit::FAILED,
        }
    }
}

/// The `database` of a globals backup (roles, memberships, role settings, tablespaces of the
/// whole server): empty, which no database can be named.
pub const GLOBALS: &str = "";

/// The database part of globals backups' file names (`<host>-@globals_<time>`): no database's
/// name gives it (`@` is replaced in those).
pub const GLOBALS_LABEL: &str = "@globals";

/// True for a backup of the server's globals rather than of a database.
pub fn is_globals(e: &Entry) -> bool {
    e.database.as_deref() == Some(GLOBALS)
}

/// Everything known about one committed backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub id: String,
    /// The data file, relative to the backup directory.
    pub file: String,
    pub database: String,
    pub host: String,
    pub port: u16,
    pub server_version: String,
    pub pg_dump_version: String,
    pub pgkeep_version: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub duration_seconds: f64,
    pub format: Format,
    /// Compression applied by pgkeep (`none` for custom format, which compresses internally).
    pub compression: Compression,
    pub level: i32,
    pub stored_bytes: u64,
    /// Bytes of dump text (plain) or archive bytes (custom).
    pub raw_bytes: u64,
    pub sha256: String,
    /// Rows per table as counted in the dump's data, keyed by the name as pg_dump prints it:
    /// text when its bytes (in `dump_encoding`) are UTF-8, else `hex:<hex of the bytes>`.
    pub tables: BTreeMap<String, u64>,
    /// The encoding of the dump's names (pg_dump's `SET client_encoding`); absent in older
    /// manifests, whose dumps are in the database's encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_encoding: Option<String>,
    pub large_objects: u64,
    pub database_info: DatabaseInfo,
    /// pg_dump's warnings (e.g. "subscriptions not dumped because current user is not a
    /// superuser"): objects of the database that the file does not hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a backup of the server's globals (`database` is [`GLOBALS`]): its roles, tablespaces
    /// and whether the role passwords are in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<crate::pg::catalog::GlobalsInfo>,
    /// The pg_dump was of a newer major than the server (none of the server's major was
    /// found): a restore into a server of the backup's own major leaves out what that server
    /// does not know (`crate::pipeline::compat`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newer_pg_dump: bool,
    /// Set when the data file is encrypted (age): the recipients' public keys. `stored_bytes`
    /// and `sha256` are those of the encrypted file as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::model::age::Encryption>,
}

impl Manifest {
    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.file)
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.values().sum()
    }

    /// The major of the pg_dump that wrote the file (0 when unreadable).
    pub fn pg_dump_major(&self) -> u32 {
        major_of(&self.pg_dump_version)
    }

    /// The major of the server the backup came from (0 when unreadable).
    pub fn server_major(&self) -> u32 {
        major_of(&self.server_version)
    }
}

/// The major of a version as the manifest records it (`15.18 (Debian 15.18-0+deb12u1)`, `18.6`).
fn major_of(version: &str) -> u32 {
    crate::pg::tools::parse_major(&format!("PostgreSQL {version}")).map_or(0, |(m, _)| m)
}

/// The state of a listed backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Committed by pgkeep: complete and checksummed.
    Good,
    /// A `.sql.gz` without manifest (made by the old backup pod): never verified.
    Legacy,
    /// A data file pgkeep made whose manifest is missing (deleted, or the backup was killed
    /// before its commit): not a backup. Restored only by `--file PATH --allow-unverified`.
    Uncommitted,
    /// A manifest that cannot be read or parsed, or one of a newer manifest version than this
    /// pgkeep knows: listed with the reason (`Entry::unreadable`), never culled, never restored
    /// or verified by choice, and it stops no command.
    Unreadable,
}

/// Whether a data file without a manifest was made by pgkeep (then it is [`Status::Uncommitted`])
/// rather than by the old backup pod ([`Status::Legacy`]), from its name and first bytes. The old
/// pod only wrote `.sql.gz` through GNU gzip, whose header names the OS (3, Unix); pgkeep's gzip
/// members carry 255 ("unknown"), and pgkeep alone writes `.sql.zst`, `.sql` and `.dump` under
/// its names (`<host>-<db>_YYYY-MM-DD_HH-MM-SS`).
pub fn made_by_pgkeep(name: &str, head: &[u8]) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.ends_with(".sql.gz") {
        return head.len() >= 10 && head[..3] == [0x1f, 0x8b, 8] && head[9] == 255;
    }
    DATA_EXTENSIONS.iter().any(|e| base.ends_with(e)) && stamp_of(&id_of(base)).is_some()
}

/// The first 10 bytes of a stored object (fewer when it is shorter or unreadable).
pub fn head_of(store: &dyn Store, name: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(10);
    if let Ok(r) = store.open(name) {
        let _ = r.take(10).read_to_end(&mut head);
    }
    head
}

/// Format and compression of a data file, from its extension (an encrypted one's, `….age`,
/// too: see [`is_encrypted`]).
pub fn format_of(name: &str) -> Option<(Format, Compression)> {
    let name = name.strip_suffix(ENCRYPTED_SUFFIX).unwrap_or(name);
    if name.ends_with(".sql.gz") {
        Some((Format::Plain, Compression::Gzip))
    } else if name.ends_with(".sql.zst") {
        Some((Format::Plain, Compression::Zstd))
    } else if name.ends_with(".dump") {
        Some((Format::Custom, Compression::None))
    } else if name.ends_with(".sql") {
        Some((Format::Plain, Compression::None))
    } else {
        None
    }
}

/// One row of `pgkeep list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub time: Timestamp,
    pub database: Option<String>,
    pub format: Format,
    pub compression: Compression,
    pub stored_bytes: u64,
    pub duration_seconds: Option<f64>,
    pub status: Status,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// The last verification recorded beside the backup (`<file>.verify.json`), if any.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Why `database` is unknown (an old pod's file named for another host), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_unknown: Option<String>,
    /// Why the manifest could not be used ([`Status::Unreadable`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Suffix of the verification record written beside a data file (never the manifest, which
/// stays as committed).
pub const VERIFY_SUFFIX: &str = ".verify.json";

/// The part of a verification record that listings show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    /// `good`, `bad` or `inconclusive` (absent in records from before verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::model::Verdict>,
    pub level: String,
    pub checked_at: Timestamp,
    /// Stable failure code (`truncated`, `checksum`, ...), absent when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub message: String,
}

impl Verification {
    /// What the verification concluded (a record from before verdicts: from `ok` and its code).
    pub fn verdict(&self) -> crate::model::Verdict {
        self.verdict
            .unwrap_or_else(|| crate::model::Verdict::of_legacy(self.ok, self.failure.as_deref()))
    }

    /// Its last verification proved it is not a restorable backup.
    pub fn is_bad(&self) -> bool {
        self.verdict() == crate::model::Verdict::Bad
    }
}

/// Read the verification record of a data file, if there is a readable one.
pub fn read_verification(store: &dyn Store, file: &str) -> Option<Verification> {
    let mut text = String::new();
    store
        .open(&format!("{file}{VERIFY_SUFFIX}"))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// Keep a name readable and safe as a file-name part: `[A-Za-z0-9._-]`, others become `_`.
pub fn sanitize(part: &str) -> String {
    let s: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "_".into() } else { s }
}

/// The host part of backup names: the service name, or `local` for a Unix socket.
pub fn host_label(host: &str) -> String {
    if host.starts_with('/') {
        "local".into()
    } else {
        sanitize(host)
    }
}

/// A time cut to its second, the way backup ids name it (never rounded up past the id's second).
pub fn second_of(t: Timestamp) -> Timestamp {
    let trunc = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    t.round(trunc).unwrap_or(t)
}

/// `YYYY-MM-DD/<host>-<db>_YYYY-MM-DD_HH-MM-SS` (without extension), in UTC.
pub fn backup_stem(host: &str, db: &str, at: Timestamp) -> (String, String) {
    let t = at.to_zoned(jiff::tz::TimeZone::UTC);
    let day = t.strftime("%Y-%m-%d").to_string();
    let stem = format!(
        "{}-{}_{}",
        host_label(host),
        sanitize(db),
        t.strftime("%Y-%m-%d_%H-%M-%S")
    );
    (day, stem)
}

/// The file extension for a format and compression, encrypted (age) or not.
pub fn extension(format: Format, compression: Compression, encrypted: bool) -> &'static str {
    match (format, compression, encrypted) {
        (Format::Custom, _, false) => ".dump",
        (Format::Plain, Compression::Gzip, false) => ".sql.gz",
        (Format::Plain, Compression::Zstd, false) => ".sql.zst",
        (Format::Plain, Compression::None, false) => ".sql",
        (Format::Custom, _, true) => ".dump.age",
        (Format::Plain, Compression::Gzip, true) => ".sql.gz.age",
        (Format::Plain, Compression::Zstd, true) => ".sql.zst.age",
        (Format::Plain, Compression::None, true) => ".sql.age",
    }
}

/// What an encrypted data file's name ends with.
pub const ENCRYPTED_SUFFIX: &str = ".age";

/// Whether a data file is encrypted (age), from its name.
pub fn is_encrypted(name: &str) -> bool {
    name.ends_with(ENCRYPTED_SUFFIX)
}

/// Every data-file extension pgkeep writes (encrypted ones first, so that the longest matches).
pub const DATA_EXTENSIONS: [&str; 8] = [
    ".sql.gz.age",
    ".sql.zst.age",
    ".sql.age",
    ".dump.age",
    ".sql.gz",
    ".sql.zst",
    ".sql",
    ".dump",
];

/// True when a backup with this stem exists in any format, committed or still being written:
/// ids are unique across formats.
pub fn stem_taken(store: &dyn Store, day: &str, stem: &str) -> Result<bool, StorageError> {
    for ext in DATA_EXTENSIONS {
        let file = format!("{day}/{stem}{ext}");
        if store.exists(&file)? || store.in_progress(&file)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The `<host>-<db>` series of backups that `name` belongs to, when it is one of the objects a
/// backup writes under pgkeep's naming (a data file or its manifest); `None` for anything else
/// (verification records, files of other tools).
pub fn series_of(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let data = base.strip_suffix(MANIFEST_SUFFIX).unwrap_or(base);
    let ext = DATA_EXTENSIONS.iter().find(|e| data.ends_with(*e))?;
    stamp_of(&data[..data.len() - ext.len()]).map(|(_, head)| head)
}

/// The series of the backups of database `db` of `host`, or of its globals ([`GLOBALS`]):
/// the head of their file names and of their lock's name (see [`series_of`]).
pub fn series(host: &str, db: &str) -> String {
    match db == GLOBALS {
        true => format!("{}-{GLOBALS_LABEL}", host_label(host)),
        false => format!("{}-{}", host_label(host), sanitize(db)),
    }
}

/// The id of a data file: its name without directory and extension.
pub fn id_of(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    for ext in DATA_EXTENSIONS {
        if let Some(s) = base.strip_suffix(ext) {
            return s.to_string();
        }
    }
    base.to_string()
}

/// Parse the `_YYYY-MM-DD_HH-MM-SS` stamp at the end of a stem (UTC).
fn stamp_of(stem: &str) -> Option<(Timestamp, &str)> {
    if stem.len() < 20 {
        return None;
    }
    let (head, stamp) = stem.split_at(stem.len() - 20);
    let stamp = stamp.strip_prefix('_')?;
    let dt = jiff::civil::DateTime::strptime("%Y-%m-%d_%H-%M-%S", stamp).ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some((ts, head))
}

/// Read every manifest and every legacy file, newest first.
pub fn list(store: &dyn Store, host_hint: Option<&str>) -> Result<Vec<Entry>, CatalogError> {
    let objects = store.list()?;
    let names: std::collections::BTreeSet<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    let verification_of = |file: &str| {
        names
            .contains(format!("{file}{VERIFY_SUFFIX}").as_str())
            .then(|| read_verification(store, file))
            .flatten()
    };
    let mut entries = Vec::new();
    // The store lists committed objects only: unfinished writes never show here.
    for o in &objects {
        if let Some(data) = o.name.strip_suffix(MANIFEST_SUFFIX) {
            let m = match read_manifest(store, &o.name) {
                Ok(m) => m,
                Err(e) => {
                    entries.push(unreadable_entry(&objects, data, e, host_hint));
                    continue;
                }
            };
            entries.push(Entry {
                id: m.id.clone(),
                time: m.started_at,
                database: Some(m.database.clone()),
                format: m.format,
                compression: m.compression,
                stored_bytes: m.stored_bytes,
                duration_seconds: Some(m.duration_seconds),
                status: Status::Good,
                file: m.file.clone(),
                sha256: Some(m.sha256.clone()),
                verification: verification_of(&m.file),
                database_unknown: None,
                unreadable: None,
                manifest: Some(m),
            });
        } else if let Some((format, compression)) = format_of(&o.name)
            && !names.contains(format!("{}{MANIFEST_SUFFIX}", o.name).as_str())
        {
            let status = if made_by_pgkeep(&o.name, &head_of(store, &o.name)) {
                Status::Uncommitted
            } else if compression == Compression::Gzip && !is_encrypted(&o.name) {
                Status::Legacy
            } else {
                continue;
            };
            let (id, time, database, database_unknown) = named(&o.name, o.modified, host_hint);
            entries.push(Entry {
                id,
                time,
                database,
                format,
                compression,
                stored_bytes: o.size,
                duration_seconds: None,
                status,
                file: o.name.clone(),
                sha256: None,
                manifest: None,
                verification: verification_of(&o.name),
                database_unknown,
                unreadable: None,
            });
        }
    }
    entries.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    Ok(entries)
}

/// Id, time and database of a file known only by its name (and modification time): the
/// database from `<host>-<database>_<time>` with the configured host, else unknown and why.
fn named(
    name: &str,
    modified: std::time::SystemTime,
    host_hint: Option<&str>,
) -> (String, Timestamp, Option<String>, Option<String>) {
    let id = id_of(name);
    let (time, head) = match stamp_of(&id) {
        Some((t, head)) => (t, Some(head)),
        None => (
            Timestamp::try_from(modified).unwrap_or(Timestamp::UNIX_EPOCH),
            None,
        ),
    };
    let host = host_hint.map(host_label);
    let database = head.and_then(|h| {
        host.as_ref()
            .and_then(|host| h.strip_prefix(&format!("{host}-")).map(str::to_string))
    });
    let database_unknown = match (&database, head, &host) {
        (Some(_), _, _) => None,
        (None, Some(_), Some(host)) => Some(format!(
            "its name does not start with `{host}-` (the configured host), so it was made \
             for another service name; its database is unknown and prune never culls it"
        )),
        (None, _, _) => Some(
            "its name has no `<host>-<database>_<time>` form; its database is unknown and \
             prune never culls it"
                .into(),
        ),
    };
    (id, time, database, database_unknown)
}

/// The entry of a backup whose manifest `<data>.manifest.json` cannot be used: known by its
/// data file's name (and size, when the data file is there).
fn unreadable_entry(
    objects: &[crate::storage::ObjectInfo],
    data: &str,
    e: CatalogError,
    host_hint: Option<&str>,
) -> Entry {
    let object = objects.iter().find(|o| o.name == data);
    let modified = object.map_or(std::time::SystemTime::UNIX_EPOCH, |o| o.modified);
    let (id, time, database, database_unknown) = named(data, modified, host_hint);
    let (format, compression) = format_of(data).unwrap_or((Format::Plain, Compression::None));
    let why = match e {
        CatalogError::BadManifest { message, .. } => message,
        other => other.to_string(),
    };
    Entry {
        id,
        time,
        database,
        format,
        compression,
        stored_bytes: object.map_or(0, |o| o.size),
        duration_seconds: None,
        status: Status::Unreadable,
        file: data.to_string(),
        sha256: None,
        manifest: None,
        verification: None,
        database_unknown,
        unreadable: Some(why),
    }
}

/// What the configured manifest keys say of a manifest's bytes: `Ok(None)` when there are no
/// keys or its signature verifies, `Ok(Some(note))` when it is unsigned and that is allowed,
/// `Err(why)` (to follow "the manifest NAME") when it must not be trusted.
pub fn seal_of(keys: Option<&ManifestKeys>, bytes: &[u8]) -> Result<Option<String>, String> {
    let Some(keys) = keys else {
        return Ok(None);
    };
    match keys.check(bytes) {
        Seal::Valid => Ok(None),
        Seal::Unsigned if keys.required => Err(
            "is not signed, and manifest_keys_required is set: it may have been written by \
             someone without the key"
                .into(),
        ),
        Seal::Unsigned => Ok(Some("its manifest is not signed".into())),
        Seal::Invalid => Err(
            "has a signature that none of manifest_keys verifies: it was changed after pgkeep \
             wrote it, or signed with a key that is no longer configured"
                .into(),
        ),
    }
}

/// The manifest's bytes as stored: signed with the first of `keys`, if any.
pub fn manifest_bytes(m: &Manifest, keys: Option<&ManifestKeys>) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec_pretty(m)?;
    Ok(match keys {
        Some(k) => k.sign(&json),
        None => json,
    })
}

pub fn read_manifest(store: &dyn Store, name: &str) -> Result<Manifest, CatalogError> {
    let mut text = String::new();
    store
        .open(name)?
        .read_to_string(&mut text)
        .map_err(|e| CatalogError::BadManifest {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    let bad = |message: String| CatalogError::BadManifest {
        name: name.to_string(),
        message,
    };
    // The version first: a newer manifest may lack or change fields this pgkeep needs.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(v) = value
        .get("manifest_version")
        .and_then(serde_json::Value::as_u64)
        && v > u64::from(MANIFEST_VERSION)
    {
        return Err(bad(format!(
            "manifest version {v} is newer than this pgkeep understands ({MANIFEST_VERSION})"
        )));
    }
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

use std::io::Read;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        let at: Timestamp = "2026-11-25T01:02:03Z".parse().unwrap();
        let (day, stem) = backup_stem("postgresql", "sbi db/ü", at);
        assert_eq!(day, "2026-11-25");
        assert_eq!(stem, "postgresql-sbi_db___2026-11-25_01-02-03");
        assert_eq!(
            backup_stem("/var/run/postgresql", "x", at).1,
            "local-x_2026-11-25_01-02-03"
        );
        assert_eq!(
            id_of("2026-11-25/a_2026-11-25_01-02-03.sql.gz"),
            "a_2026-11-25_01-02-03"
        );
        let (t, head) = stamp_of("postgresql-sbi_2026-11-25_01-02-03").unwrap();
        assert_eq!(t, at);
        assert_eq!(head, "postgresql-sbi");
        assert!(stamp_of("short").is_none());
        assert_eq!(sanitize(".."), "_");
    }

    #[test]
    fn series_of_backup_objects_only() {
        let s = series("postgresql", "sbi db");
        assert_eq!(s, "postgresql-sbi_db");
        for name in [
            "2026-11-25/postgresql-sbi_db_2026-11-25_01-02-03.sql.gz",
            "2026-11-25/postgresql-sbi_db_2026-11-25_01-02-03.sql",
            "2026-11-25/postgresql-sbi_db_2026-11-25_01-02-03.dump.manifest.json",
        ] {
            assert_eq!(series_of(name), Some(s.as_str()), "{name}");
        }
        for name in [
            "2026-11-25/postgresql-sbi_db_2026-11-25_01-02-03.sql.gz.verify.json",
            "2026-11-25/notes.txt",
            "2026-11-25/postgresql-sbi_db.sql.gz",
        ] {
            assert_eq!(series_of(name), None, "{name}");
        }
    }
}
