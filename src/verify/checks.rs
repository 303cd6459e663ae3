//! The checksum level of a verification: every byte of a stored backup read back, size and
//! sha256 compared with the manifest, the data decompressed in full and checked for completeness
//! (the plain-format trailer, the row counts of every COPY block; a custom archive replayed block
//! by block with pg_restore); a legacy file decompressed to its trailer; an orphan named as one.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::error::VerifyError;
use super::failure::Failure;
use super::read::{
    Hashing, compression_name, parse_manifest, plain_pass, read_manifest_bytes, size_of,
    written_by_pgkeep,
};
use super::record::{Kind, Level, RECORD_VERSION, Record, read_record};
use super::targets::Target;
use crate::catalog::{MANIFEST_SUFFIX, Manifest};
use crate::model::{Compression, Format, Progress};
use crate::pg::tools::{self, Search};
use crate::pipeline;
use crate::shutdown::Shutdown;
use crate::storage::{Store, staging};

/// Everything a verification needs, passed in by the command layer.
pub struct Request<'a> {
    pub store: &'a dyn Store,
    pub level: Level,
    /// Where to find pg_restore for custom-format archives.
    pub search: Search,
    /// The environment pg_restore may inherit.
    pub child_env: Vec<(String, String)>,
    pub now: fn() -> Timestamp,
    /// Stops reading at once when it fires; the verification then ends `Interrupted` and
    /// nothing is recorded.
    pub shutdown: Shutdown,
    /// Told the bytes read (`reading`) and, for custom archives, replayed (`reading back`).
    pub progress: Progress,
    /// Keys that check the manifests' signatures (`manifest_keys`).
    pub manifest_keys: Option<crate::model::ManifestKeys>,
    /// The age identities that decrypt encrypted backups (`None`: their content is not read).
    pub identities: Option<crate::model::age::AgeIdentities>,
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
        verdict: None,
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
            let sealed =
                super::read::check_seal(req.manifest_keys.as_ref(), &manifest_name, &bytes);
            match sealed.and_then(|note| parse_manifest(&manifest_name, &bytes).map(|m| (m, note)))
            {
                Ok((m, note)) => {
                    rec.database = Some(m.database.clone());
                    // No pg_restore is a problem of this machine, not of the backup.
                    let pg_restore = match m.format {
                        Format::Custom => Some(pg_restore_for(req, &m)?),
                        Format::Plain => None,
                    };
                    check_managed(req, &m, pg_restore.as_deref(), previous.as_ref(), &mut rec).map(
                        |msg| match note {
                            Some(n) => format!("{msg} ({n})"),
                            None => msg,
                        },
                    )
                }
                Err(f) => Err(f),
            }
        }
        None => check_unlisted(req, target, previous.as_ref(), checked_at, &mut rec),
    };
    if let Some(r) = req.shutdown.reason() {
        return Err(VerifyError::Interrupted(r));
    }
    rec.duration_seconds = started.elapsed().as_secs_f64();
    rec.conclude(result);
    Ok(rec)
}

/// A data file without a manifest: an old pod's `.sql.gz` is checked as a legacy backup; any
/// other (or one that had a manifest, or one pgkeep wrote) is an orphan, never a good backup.
fn check_unlisted(
    req: &Request<'_>,
    target: &Target,
    previous: Option<&Record>,
    checked_at: Timestamp,
    rec: &mut Record,
) -> Result<String, Failure> {
    let store = req.store;
    let had_manifest = previous.and_then(|p| p.manifest_sha256.clone());
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
                previous.map_or(checked_at, |p| p.checked_at)
            ),
        })
    } else if rec.kind == Kind::Orphan {
        Err(Failure::ManifestMissing {
            file: target.file.clone(),
            why: "pgkeep writes a manifest beside every backup it keeps".into(),
        })
    } else if written_by_pgkeep(store, &target.file) {
        rec.kind = Kind::Orphan;
        let content = match check_legacy(store, &target.file, &req.shutdown, rec) {
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
        check_legacy(store, &target.file, &req.shutdown, rec)
    }
}

/// Completeness of an inspected plain dump.
pub(super) fn completeness(report: &pipeline::Report) -> Result<(), Failure> {
    if let Some(t) = &report.ended_in_copy {
        return Err(Failure::CutInCopy { table: t.clone() });
    }
    if !report.trailer {
        return Err(Failure::NoTrailer);
    }
    Ok(())
}

/// Completeness of a globals file: pg_dumpall's trailer, no COPY data.
fn globals_completeness(report: &pipeline::Report) -> Result<(), Failure> {
    if let Some(t) = &report.ended_in_copy {
        return Err(Failure::CutInCopy { table: t.clone() });
    }
    if !report.cluster_trailer {
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
    let ReadBack {
        stored_bytes,
        sha256,
        raw_bytes,
        content,
    } = read_back(req, m, pg_restore)?;
    rec.stored_bytes = stored_bytes;
    rec.sha256 = sha256.clone();
    rec.raw_bytes = raw_bytes;
    if let Ok(r) = &content {
        rec.tables = r.tables.len();
        rec.rows = r.tables.values().sum();
    }
    // The content's own verdict: complete, with the manifest's row counts.
    let content_verdict = content.and_then(|r| {
        if m.database == crate::catalog::GLOBALS {
            globals_completeness(&r)?;
        } else if m.format == Format::Plain {
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
        return Err(checksum_mismatch(m, sha256, content_verdict, previous));
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

/// What reading a managed backup back found.
struct ReadBack {
    stored_bytes: u64,
    sha256: String,
    /// Bytes after decompression (plain) or archive bytes (custom).
    raw_bytes: u64,
    /// The content's report, or why it does not decode.
    content: Result<pipeline::Report, Failure>,
}

/// Read every byte of a managed backup: hash it, and decompress and inspect it (plain) or replay
/// it with pg_restore (custom).
fn read_back(
    req: &Request<'_>,
    m: &Manifest,
    pg_restore: Option<&std::path::Path>,
) -> Result<ReadBack, Failure> {
    let store = req.store;
    Ok(match m.format {
        Format::Plain => {
            let sealed = m
                .encryption
                .as_ref()
                .map(|e| (req.identities.as_ref(), e.recipients.as_slice()));
            let pass = plain_pass(
                store,
                &m.file,
                (m.compression, sealed),
                (&req.shutdown, &req.progress),
            )?;
            let content = pass.decoded.map_err(|e| match e {
                super::read::Undecoded::Key(why) => Failure::Encrypted(why),
                super::read::Undecoded::Corrupt(message) => Failure::Corrupt {
                    compression: compression_name(m.compression),
                    message,
                },
            });
            ReadBack {
                stored_bytes: pass.stored_bytes,
                sha256: pass.sha256,
                raw_bytes: pass.raw_bytes,
                content,
            }
        }
        Format::Custom => {
            let r = store
                .open(&m.file)
                .map_err(|e| Failure::Read(e.to_string()))?;
            let mut hashing = Hashing {
                inner: req.progress.reader("reading", r),
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
            ReadBack {
                stored_bytes: bytes,
                sha256: sha,
                raw_bytes: bytes,
                content,
            }
        }
    })
}

/// The sha256 differs from the manifest's: say which side most likely changed.
fn checksum_mismatch(
    m: &Manifest,
    sha256: String,
    content_verdict: Result<pipeline::Report, Failure>,
    previous: Option<&Record>,
) -> Failure {
    // Which side changed? Certain when the data is what verified good before; very likely
    // the manifest when the data's own checksums (gzip CRC32 per member, zstd content
    // checksum, zlib Adler-32 per custom-format block) all still match.
    let same_as_verified = previous.filter(|p| p.ok && p.sha256 == sha256);
    let self_checked = match m.format {
        Format::Plain => m.compression != Compression::None,
        Format::Custom => m.level > 0,
    };
    match (content_verdict, same_as_verified) {
        (Ok(_), Some(p)) => Failure::ManifestChecksum {
            evidence: format!(
                "the data is byte for byte what verified good at {}",
                p.checked_at.round(jiff::Unit::Second).unwrap_or(p.checked_at)
            ),
            actual: sha256,
            expected: m.sha256.clone(),
        },
        (Ok(_), None) if self_checked => Failure::ManifestChecksum {
            evidence: "the data's own checksums all match and it reads back complete with the recorded row counts".into(),
            actual: sha256,
            expected: m.sha256.clone(),
        },
        (Ok(_), None) => Failure::Checksum {
            actual: sha256,
            expected: m.sha256.clone(),
            detail: Some(
                "the content still reads back complete, so either it was changed in place or the manifest's checksum was edited".into(),
            ),
        },
        (Err(f), _) => Failure::Checksum {
            actual: sha256,
            expected: m.sha256.clone(),
            detail: Some(f.to_string()),
        },
    }
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
    // pg_restore reads the archive by name: the local store's own file, else a fetched copy
    // (decrypted, for an encrypted one).
    let local = match &m.encryption {
        None => staging::local_file(req.store, &m.file, &staging::default_dir())
            .map_err(|e| Failure::Staging(e.to_string()))?,
        Some(e) => {
            pipeline::crypt::decrypt_object(
                req.store,
                &m.file,
                &staging::default_dir(),
                req.identities.as_ref(),
                (&e.recipients, None),
            )
            .map_err(|e| match e {
                e if e.is_key_problem() => Failure::Encrypted(e.to_string()),
                pipeline::crypt::CryptError::Corrupt(why) => Failure::Archive(why),
                e => Failure::Staging(e.to_string()),
            })?
            .0
        }
    };
    crate::backup::replay_custom(pg_restore, local.path(), &req.child_env, &req.progress).map_err(
        |e| {
            let s = e.to_string();
            Failure::Archive(
                s.strip_prefix("the dump is incomplete: the archive does not read back: ")
                    .unwrap_or(&s)
                    .to_string(),
            )
        },
    )
}

/// An old pod's `.sql.gz`: decompress fully, check the trailer; no checksum exists to compare.
fn check_legacy(
    store: &dyn Store,
    file: &str,
    shutdown: &Shutdown,
    rec: &mut Record,
) -> Result<String, Failure> {
    let size = size_of(store, file).ok_or_else(|| Failure::Read(format!("{file} is gone")))?;
    if size == 0 {
        return Err(Failure::Empty { expected: None });
    }
    let pass = plain_pass(
        store,
        file,
        (Compression::Gzip, None),
        (shutdown, &Progress::none()),
    )?;
    rec.stored_bytes = pass.stored_bytes;
    rec.sha256 = pass.sha256;
    rec.raw_bytes = pass.raw_bytes;
    let report = pass.decoded.map_err(|e| Failure::Corrupt {
        compression: "gzip",
        message: match e {
            super::read::Undecoded::Key(m) | super::read::Undecoded::Corrupt(m) => m,
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::pg::tools::Search;
    use crate::storage::LocalStore;
    use crate::verify::record::read_record;

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
            manifest_keys: None,
            identities: None,
            shutdown,
            progress: Progress::none(),
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
