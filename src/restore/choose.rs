//! Which backup a restore loads: the newest good one of the database, one by id or time, or a
//! file (with its manifest when it lies beside it, or an old pod's `.sql.gz` without one). The
//! loader reads a local file: a backup of the store is its own file for the local store, else a
//! copy fetched into the staging directory (see `storage::staging`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use super::error::RestoreError;
use super::load::{Input, RowShare};
use crate::catalog::{self, CatalogError, Entry, Manifest, Status};
use crate::model::{Compression, Format};
use crate::storage::{LocalFile, Store, staging};

/// How a backup is chosen.
#[derive(Debug, Clone)]
pub enum Selector {
    /// The newest good backup of the database (the newest legacy file when there is none).
    Latest,
    /// A backup id (or a unique prefix of one).
    Id(String),
    /// A local file, or an object of the store; its manifest is used when it lies beside it.
    File(PathBuf),
    /// The newest good backup started before this time.
    Before(Timestamp),
}

/// The chosen backup.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub id: String,
    pub path: PathBuf,
    pub format: Format,
    pub compression: Compression,
    pub stored_bytes: u64,
    pub time: Option<Timestamp>,
    /// `None` for legacy files (the old pod's `.sql.gz` without manifest) and for an
    /// uncommitted file given with `--allow-unverified`.
    pub manifest: Option<Manifest>,
    /// A pgkeep-made file whose manifest is missing ([`Status::Uncommitted`]).
    pub uncommitted: bool,
    /// Keeps `path` in place while the restore runs (a fetched copy is removed with it).
    pub local: Option<Arc<LocalFile>>,
    /// Newer backups `--latest` / `--before` passed over, each with why (verified bad).
    pub skipped: Vec<String>,
}

impl Chosen {
    pub fn is_legacy(&self) -> bool {
        self.manifest.is_none()
    }

    pub fn input(&self) -> Input {
        Input {
            path: self.path.clone(),
            format: self.format,
            compression: self.compression,
            sha256: self.manifest.as_ref().map(|m| m.sha256.clone()),
            toc: None,
            rows: self.manifest.as_ref().and_then(|m| RowShare::of(&m.tables)),
        }
    }
}

fn from_entry(store: &dyn Store, staging_dir: &Path, e: &Entry) -> Result<Chosen, RestoreError> {
    let local = staging::local_file(store, &e.file, staging_dir)?;
    Ok(Chosen {
        id: e.id.clone(),
        path: local.path().to_path_buf(),
        format: e.format,
        compression: e.compression,
        stored_bytes: e.stored_bytes,
        time: Some(e.time),
        manifest: e.manifest.clone(),
        uncommitted: e.status == Status::Uncommitted,
        local: Some(Arc::new(local)),
        skipped: Vec::new(),
    })
}

/// An encrypted backup (age) is decrypted into a private file in `staging_dir` before anything
/// else, its stored bytes checked against the manifest's size and sha256 while they are read;
/// from then on the restore works on that file, whose size and sha256 the in-memory manifest
/// now carries. Without an identity that fits, it is refused before anything changes.
pub fn decrypt(
    mut chosen: Chosen,
    staging_dir: &Path,
    identities: Option<&crate::model::age::AgeIdentities>,
) -> Result<Chosen, RestoreError> {
    let recipients = match &chosen.manifest {
        Some(m) => match &m.encryption {
            Some(e) => e.recipients.clone(),
            None => return Ok(chosen),
        },
        None if catalog::is_encrypted(&chosen.path.to_string_lossy()) => Vec::new(),
        None => return Ok(chosen),
    };
    let shown = chosen.path.display().to_string();
    let file = std::fs::File::open(&chosen.path).map_err(|e| RestoreError::Io {
        context: format!("cannot open {shown}"),
        source: e,
    })?;
    let expected = chosen
        .manifest
        .as_ref()
        .map(|m| (m.stored_bytes, m.sha256.clone()));
    let (local, bytes, sha256) = crate::pipeline::crypt::decrypt_to_local(
        file,
        &shown,
        staging_dir,
        identities,
        (
            &recipients,
            expected.as_ref().map(|(n, s)| (*n, s.as_str())),
        ),
    )
    .map_err(|e| match e {
        crate::pipeline::crypt::CryptError::Storage(s) => RestoreError::Storage(s),
        e => RestoreError::Refused(format!("cannot decrypt {shown}: {e}")),
    })?;
    chosen.path = local.path().to_path_buf();
    chosen.stored_bytes = bytes;
    if let Some(m) = chosen.manifest.as_mut() {
        m.stored_bytes = bytes;
        m.sha256 = sha256;
    }
    // The fetched copy of the encrypted object (if any) is no longer needed.
    chosen.local = Some(Arc::new(local));
    Ok(chosen)
}

/// Verified `bad`: its last verification proved it is not a restorable backup.
fn is_bad(e: &Entry) -> bool {
    e.verification.as_ref().is_some_and(|v| v.is_bad())
}

/// Why a backup was passed over.
fn skip_note(e: &Entry) -> String {
    let v = e
        .verification
        .as_ref()
        .expect("only verified backups are skipped");
    format!(
        "skipped {} ({}): verified bad at {} [{}] {}",
        e.id,
        e.file,
        v.checked_at
            .round(jiff::Unit::Second)
            .unwrap_or(v.checked_at),
        v.failure.as_deref().unwrap_or("?"),
        v.message
    )
}

/// The newest restorable backup among `candidates` (newest first): committed ones before legacy
/// files, verified `bad` ones skipped (and named in [`Chosen::skipped`]). Unverified and
/// inconclusive backups are restorable. `Ok(None)` when there is no candidate at all.
fn newest_restorable<'e>(
    candidates: &[&'e Entry],
    what: &str,
    newest_good_anywhere: Option<&Entry>,
) -> Result<Option<(&'e Entry, Vec<String>)>, RestoreError> {
    let pick = candidates
        .iter()
        .position(|e| e.status == Status::Good && !is_bad(e))
        .or_else(|| candidates.iter().position(|e| !is_bad(e)));
    let Some(at) = pick else {
        if candidates.is_empty() {
            return Ok(None);
        }
        let bad: Vec<String> = candidates.iter().map(|e| skip_note(e)).collect();
        return Err(RestoreError::Refused(format!(
            "nothing restorable: every {what} is verified bad ({}){}",
            bad.join("; "),
            match newest_good_anywhere {
                Some(g) => format!(
                    "; the newest backup that is not bad is {} ({})",
                    g.id, g.file
                ),
                None => String::new(),
            }
        )));
    };
    let skipped = candidates[..at]
        .iter()
        .filter(|e| is_bad(e))
        .map(|e| skip_note(e))
        .collect();
    Ok(Some((candidates[at], skipped)))
}

/// The refusal of an uncommitted data file.
fn uncommitted(path: &Path) -> RestoreError {
    RestoreError::Refused(format!(
        "{} is not a committed backup: pgkeep made it, but its manifest is missing (deleted, or the backup never finished), so neither its checksum nor its row counts can be checked; restore it anyway with --file {} --allow-unverified",
        path.display(),
        path.display()
    ))
}

/// Parse `--before`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD` (UTC).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let utc = |dt: jiff::civil::DateTime| dt.to_zoned(jiff::tz::TimeZone::UTC).ok();
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = jiff::civil::DateTime::strptime(f, s) {
            return utc(dt).map(|z| z.timestamp());
        }
    }
    jiff::civil::Date::strptime("%Y-%m-%d", s)
        .ok()
        .and_then(|d| utc(d.to_datetime(jiff::civil::Time::midnight())))
        .map(|z| z.timestamp())
}

/// Pick a backup of `database` from `store`; a backup that is not a local file already is
/// fetched into `staging_dir`. Uncommitted files are never picked; one named by `--file` is
/// taken only with `allow_unverified`.
pub fn choose(
    store: &dyn Store,
    staging_dir: &Path,
    host_hint: &str,
    database: &str,
    selector: &Selector,
    allow_unverified: bool,
) -> Result<Chosen, RestoreError> {
    if let Selector::File(p) = selector {
        let c = chosen_file(store, staging_dir, p)?;
        if c.uncommitted && !allow_unverified {
            return Err(uncommitted(p));
        }
        return Ok(c);
    }
    let mut entries = catalog::list(store, Some(host_hint))?;
    if let Selector::Id(id) = selector
        && let Some(e) = entries
            .iter()
            .find(|e| e.status == Status::Uncommitted && (e.id == *id || e.file == *id))
    {
        return Err(uncommitted(&Path::new(&store.describe()).join(&e.file)));
    }
    if let Selector::Id(id) = selector
        && let Some(e) = entries
            .iter()
            .find(|e| e.status == Status::Unreadable && (e.id == *id || e.file == *id))
    {
        return Err(RestoreError::Refused(format!(
            "the manifest of backup `{}` cannot be used: {}",
            e.id,
            e.unreadable.as_deref().unwrap_or("unreadable")
        )));
    }
    entries.retain(|e| !matches!(e.status, Status::Uncommitted | Status::Unreadable));
    let from_entry = |e: &Entry| from_entry(store, staging_dir, e);
    let of_db: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.database.as_deref() == Some(database))
        .collect();
    let none = |what: String| RestoreError::NoBackup(format!("{what} in {}", store.describe()));
    let newest_good = of_db.iter().copied().find(|e| !is_bad(e));
    let pick = |candidates: &[&Entry], what: &str, missing: String| {
        let (e, skipped) =
            newest_restorable(candidates, what, newest_good)?.ok_or_else(|| none(missing))?;
        let mut c = from_entry(e)?;
        c.skipped = skipped;
        Ok(c)
    };
    match selector {
        Selector::Latest => pick(
            &of_db,
            &format!("backup of database \"{database}\""),
            format!("no backup of database \"{database}\""),
        ),
        Selector::Before(t) => {
            let before: Vec<&Entry> = of_db.iter().copied().filter(|e| e.time < *t).collect();
            pick(
                &before,
                &format!("backup of database \"{database}\" before {t}"),
                format!("no backup of database \"{database}\" before {t}"),
            )
        }
        Selector::Id(id) => {
            if let Some(e) = entries.iter().find(|e| e.id == *id) {
                return from_entry(e);
            }
            let matches: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.id.starts_with(id.as_str()))
                .collect();
            match matches.as_slice() {
                [e] => from_entry(e),
                [] => Err(none(format!("no backup with id `{id}`"))),
                many => Err(RestoreError::NoBackup(format!(
                    "backup id `{id}` is ambiguous: {}",
                    many.iter()
                        .map(|e| e.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        Selector::File(_) => unreachable!(),
    }
}

/// With `manifest_keys`: whether the chosen backup's manifest may be trusted. `Ok(Some(note))`
/// for an unsigned manifest that is allowed; a refusal (exit 7) for a signature no key verifies,
/// or for an unsigned manifest when signatures are required. Legacy and uncommitted files have no
/// manifest to check.
pub fn check_seal(
    store: &dyn Store,
    selector: &Selector,
    chosen: &Chosen,
    keys: Option<&crate::model::ManifestKeys>,
) -> Result<Option<String>, RestoreError> {
    let (Some(_), Some(m)) = (keys, &chosen.manifest) else {
        return Ok(None);
    };
    let (shown, bytes) = match selector {
        Selector::File(p) if p.is_file() || p.is_absolute() => {
            let name = format!("{}{}", p.display(), catalog::MANIFEST_SUFFIX);
            let bytes = std::fs::read(&name).map_err(|e| RestoreError::Io {
                context: format!("cannot read {name}"),
                source: e,
            })?;
            (name, bytes)
        }
        _ => {
            let name = m.manifest_name();
            let mut bytes = Vec::new();
            store
                .open(&name)?
                .read_to_end(&mut bytes)
                .map_err(|e| RestoreError::Io {
                    context: format!("cannot read {name}"),
                    source: e,
                })?;
            (
                Path::new(&store.describe())
                    .join(&name)
                    .display()
                    .to_string(),
                bytes,
            )
        }
    };
    catalog::seal_of(keys, &bytes).map_err(|why| {
        RestoreError::Refused(format!("the manifest {shown} {why}; nothing was changed"))
    })
}

/// `--file`: a local file (absolute, or found from the current directory), else an object of
/// the store by its name.
fn chosen_file(store: &dyn Store, staging_dir: &Path, p: &Path) -> Result<Chosen, RestoreError> {
    let (path, stored_bytes, manifest, local) = if p.is_file() || p.is_absolute() {
        let (size, manifest) = local_backup_file(p)?;
        (p.to_path_buf(), size, manifest, None)
    } else {
        // `./DAY/FILE` names the object `DAY/FILE`, as it named that file of the directory.
        let name = p
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect::<PathBuf>()
            .to_string_lossy()
            .into_owned();
        let cannot = |e: String| {
            RestoreError::NoBackup(format!(
                "cannot read backup file {}: {e}",
                Path::new(&store.describe()).join(p).display()
            ))
        };
        let info = store
            .stat(&name)
            .map_err(|e| cannot(e.to_string()))?
            .ok_or_else(|| cannot("there is no such backup".into()))?;
        let manifest_name = format!("{name}{}", catalog::MANIFEST_SUFFIX);
        let manifest = if store.exists(&manifest_name)? {
            Some(catalog::read_manifest(store, &manifest_name)?)
        } else {
            None
        };
        let local = staging::local_file(store, &name, staging_dir)?;
        (
            local.path().to_path_buf(),
            info.size,
            manifest,
            Some(Arc::new(local)),
        )
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plain_name = name
        .strip_suffix(catalog::ENCRYPTED_SUFFIX)
        .unwrap_or(&name);
    let (format, compression) = match &manifest {
        Some(m) => (m.format, m.compression),
        None if plain_name.ends_with(".gz") => (Format::Plain, Compression::Gzip),
        None if plain_name.ends_with(".zst") => (Format::Plain, Compression::Zstd),
        None if plain_name.ends_with(".dump") => (Format::Custom, Compression::None),
        None if plain_name.ends_with(".sql") => (Format::Plain, Compression::None),
        None => {
            return Err(RestoreError::NoBackup(format!(
                "{} is not a backup file pgkeep can restore (.sql.gz, .sql.zst, .sql or .dump)",
                p.display()
            )));
        }
    };
    let uncommitted = manifest.is_none() && {
        let mut head = Vec::new();
        if let Ok(f) = std::fs::File::open(&path) {
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(f, 10), &mut head);
        }
        catalog::made_by_pgkeep(&name, &head)
    };
    Ok(Chosen {
        id: catalog::id_of(&name),
        path,
        format,
        compression,
        stored_bytes,
        time: manifest.as_ref().map(|m| m.started_at),
        manifest,
        uncommitted,
        local,
        skipped: Vec::new(),
    })
}

/// A backup file outside the store: its size and the manifest beside it, if there is one.
fn local_backup_file(path: &Path) -> Result<(u64, Option<Manifest>), RestoreError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        RestoreError::NoBackup(format!("cannot read backup file {}: {e}", path.display()))
    })?;
    let manifest_path = PathBuf::from(format!("{}{}", path.display(), catalog::MANIFEST_SUFFIX));
    let manifest = if manifest_path.is_file() {
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| RestoreError::Io {
            context: format!("cannot read {}", manifest_path.display()),
            source: e,
        })?;
        Some(
            serde_json::from_str::<Manifest>(&text).map_err(|e| CatalogError::BadManifest {
                name: manifest_path.display().to_string(),
                message: e.to_string(),
            })?,
        )
    } else {
        None
    };
    Ok((meta.len(), manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_for_before() {
        let t = parse_time("2026-11-25").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T00:00:00Z");
        assert_eq!(
            parse_time("2026-11-25 10:30").unwrap().to_string(),
            "2026-11-25T10:30:00Z"
        );
        assert!(parse_time("2026-11-25T10:30:00+01:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
