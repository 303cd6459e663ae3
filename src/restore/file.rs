//! The first step of every restore: prove the backup file by reading it fully before anything
//! else, against its manifest's size and sha256, or (a legacy file without one) by decompressing
//! it to pg_dump's trailer while counting its rows and collecting the roles it names.

use std::collections::BTreeSet;

use super::choose::Chosen;
use super::error::RestoreError;
use super::load::Input;
use super::roles::RoleScanner;
use crate::model::Format;
use crate::pipeline::psql_scan::{ScanOptions, Statement};
use crate::pipeline::{self, Inspector};

/// What reading a legacy file found: its row counts and trailer, and the roles it names.
pub type LegacyScan = (pipeline::Report, BTreeSet<String>);

/// Read a legacy plain file fully: it must decompress and end with pg_dump's trailer. Returns its
/// row counts and the roles it references.
pub fn scan_plain(input: &Input) -> Result<LegacyScan, RestoreError> {
    let file = std::fs::File::open(&input.path).map_err(|e| RestoreError::Io {
        context: format!("cannot open {}", input.path.display()),
        source: e,
    })?;
    let reader = pipeline::decoder(file, input.compression).map_err(|e| RestoreError::Io {
        context: format!("cannot read {}", input.path.display()),
        source: e,
    })?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    let mut inspector = Inspector::new();
    let mut scanner = RoleScanner::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(|e| {
            RestoreError::Refused(format!("{} does not decompress: {e}", input.path.display()))
        })?;
        if n == 0 {
            break;
        }
        inspector.feed(&line);
        scanner.line(&line);
    }
    let roles = scanner.roles;
    let report = inspector.finish();
    if let Some(reason) = report.incomplete_reason() {
        return Err(RestoreError::Refused(format!(
            "{} is incomplete: {reason}",
            input.path.display()
        )));
    }
    Ok((report, roles))
}

/// What the preflight read of a backup file found.
#[derive(Debug, Clone, Default)]
pub struct FileCheck {
    pub summary: String,
    /// sha256 of the stored bytes: the load feeds only bytes that hash the same.
    pub sha256: String,
    /// Row counts and roles of a legacy file.
    pub legacy: Option<LegacyScan>,
    /// Statements that need more than the database owner's privilege (plain dumps).
    pub privileged: Vec<Statement>,
    pub privileged_total: u64,
    /// Roles that own objects in the backup (`ALTER ... OWNER TO`).
    pub owners: BTreeSet<String>,
    /// The owner the backup gives the `public` schema, if it names one.
    pub public_owner: Option<String>,
    /// Every role the backup's statements name, when the check read them (a plain file's
    /// statements, a custom archive's schema): no second read needs to look for them.
    pub named_roles: Option<BTreeSet<String>>,
    /// A custom archive's table of contents (`pg_restore --list`), read beside its schema.
    pub toc: Option<std::sync::Arc<str>>,
}

fn refused(path: &std::path::Path, why: String) -> RestoreError {
    RestoreError::Refused(format!("{}: {why}", path.display()))
}

/// Read a plain file through the psql lexer: refuse meta-commands (line and start of each) and
/// incomplete files, whatever a manifest says.
fn vet_plain(
    backup: &Chosen,
) -> Result<(pipeline::preflight::Preflight, RoleScanner), RestoreError> {
    let file = std::fs::File::open(&backup.path).map_err(|e| RestoreError::Io {
        context: format!("cannot open {}", backup.path.display()),
        source: e,
    })?;
    let mut roles = RoleScanner::default();
    let pre = pipeline::preflight::scan_with(
        file,
        backup.compression,
        ScanOptions::default(),
        &mut |chunk| roles.chunk(chunk),
    )
    .map_err(|e| refused(&backup.path, e.to_string()))?;
    if !pre.acceptable() {
        let shown: Vec<String> = pre.refused.iter().take(3).map(|f| f.to_string()).collect();
        let more = pre.refused_total.saturating_sub(shown.len() as u64);
        return Err(refused(
            &backup.path,
            format!(
                "the file holds what a backup never holds, so none of it is given to psql: {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    let incomplete = pre.inspect.incomplete_reason().or_else(|| {
        pre.end
            .unterminated
            .map(|what| format!("it ends inside a {what}"))
    });
    if let Some(reason) = incomplete {
        return Err(refused(
            &backup.path,
            format!("the file is incomplete ({reason}), whatever its manifest says"),
        ));
    }
    Ok((pre, roles))
}

/// The statements of a custom archive's schema (as `pg_restore --schema-only` prints it): the
/// owners of its objects and what needs more than the owner's privilege.
pub fn custom_statements(
    backup: &Chosen,
    pg_restore: &std::path::Path,
    env: &[(String, String)],
    into: &mut FileCheck,
) -> Result<(), RestoreError> {
    let spec = crate::process::Spec::new(pg_restore)
        .envs(env.iter().cloned())
        .arg("--schema-only")
        .arg("--file=-")
        .arg(&backup.path);
    // The table of contents a parallel load needs is listed at the same time; it only spares
    // the load a read, so one that does not read is read again there.
    let (schema, toc) = std::thread::scope(|s| {
        let toc = s.spawn(|| super::custom_jobs::read_toc(pg_restore, &backup.path, env));
        let schema = crate::process::output(&spec, None);
        (schema, toc.join().ok().and_then(Result::ok))
    });
    into.toc = toc.map(Into::into);
    let (outcome, out) = schema.map_err(|e| RestoreError::Io {
        context: "cannot run pg_restore".into(),
        source: e,
    })?;
    if !outcome.success() {
        return Err(refused(
            &backup.path,
            format!("the archive's schema does not read: {}", outcome.describe()),
        ));
    }
    let mut roles = RoleScanner::default();
    let pre = pipeline::preflight::scan_with(
        &out[..],
        crate::model::Compression::None,
        ScanOptions::default(),
        &mut |chunk| roles.chunk(chunk),
    )
    .map_err(|e| refused(&backup.path, e.to_string()))?;
    into.privileged = pre.privileged;
    into.privileged_total = pre.privileged_total;
    into.owners = roles.owners;
    into.public_owner = roles.public_owner;
    into.named_roles = Some(roles.roles);
    Ok(())
}

fn mismatch(
    backup: &Chosen,
    m: &crate::catalog::Manifest,
    bytes: u64,
    sha: &str,
    detail: &dyn std::fmt::Display,
) -> RestoreError {
    if let Some(other) = other_backup(backup, m, sha) {
        return refused(
            &backup.path,
            format!(
                "this is the data file of backup {other} (its manifest records this sha256 {}), not of backup {}: the data files were swapped or copied",
                &sha[..16],
                m.id
            ),
        );
    }
    RestoreError::Refused(format!(
        "{} does not match its manifest (size {bytes}, sha256 {}; the manifest says size {}, sha256 {}): the file is damaged or truncated ({detail})",
        backup.path.display(),
        &sha[..16],
        m.stored_bytes,
        &m.sha256[..m.sha256.len().min(16)]
    ))
}

/// Which other backup's data this is, when its checksum is another manifest's.
fn other_backup(backup: &Chosen, m: &crate::catalog::Manifest, sha256: &str) -> Option<String> {
    let path = backup.path.to_string_lossy();
    let root = path.strip_suffix(m.file.as_str())?;
    let store = crate::storage::LocalStore::open(std::path::Path::new(root)).ok()?;
    crate::catalog::list(&store, None)
        .ok()?
        .into_iter()
        .find(|e| e.file != m.file && e.sha256.as_deref() == Some(sha256))
        .map(|e| e.id)
}

/// Check the file before anything else: a plain file is read fully through the psql lexer
/// (refused: meta-commands, incomplete content), then its size and sha256 are compared with the
/// manifest's; a legacy file is also scanned for row counts and roles.
pub fn check_file(backup: &Chosen) -> Result<FileCheck, RestoreError> {
    let mut out = FileCheck::default();
    let (bytes, sha) = if backup.format == Format::Plain {
        let pre = vet_plain(backup).map_err(|e| {
            // A file that does not match its manifest says so first.
            let file = std::fs::File::open(&backup.path).ok();
            match (
                &backup.manifest,
                file.and_then(|f| pipeline::hash_reader(f).ok()),
            ) {
                (Some(m), Some((bytes, sha))) if sha != m.sha256 || bytes != m.stored_bytes => {
                    mismatch(backup, m, bytes, &sha, &e)
                }
                _ => e,
            }
        })?;
        let (pre, roles) = pre;
        out.owners = roles.owners;
        out.public_owner = roles.public_owner;
        out.named_roles = Some(roles.roles);
        out.privileged = pre.privileged;
        out.privileged_total = pre.privileged_total;
        if backup.manifest.is_none() {
            // A legacy file's own row counts: the read that vetted it saw them.
            out.legacy = Some((pre.inspect, out.named_roles.clone().unwrap_or_default()));
        }
        (pre.stored_bytes, pre.sha256)
    } else {
        let file = std::fs::File::open(&backup.path).map_err(|e| RestoreError::Io {
            context: format!("cannot open {}", backup.path.display()),
            source: e,
        })?;
        pipeline::hash_reader(file).map_err(|e| RestoreError::Io {
            context: format!("cannot read {}", backup.path.display()),
            source: e,
        })?
    };
    out.sha256 = sha.clone();
    match &backup.manifest {
        Some(m) => {
            if bytes != m.stored_bytes || sha != m.sha256 {
                return Err(mismatch(backup, m, bytes, &sha, &"the content reads"));
            }
            out.summary = format!("sha256 {} matches the manifest ({bytes} bytes)", &sha[..16]);
        }
        None if backup.format == Format::Plain => {
            let tables = out.legacy.as_ref().map(|(r, _)| r.tables.clone());
            let tables = tables.unwrap_or_default();
            out.summary = format!(
                "{} (no manifest, no checksum): read fully, it decompresses and ends with pg_dump's trailer; {} tables, {} rows",
                if backup.uncommitted {
                    "uncommitted file, restored with --allow-unverified"
                } else {
                    "legacy file"
                },
                tables.len(),
                tables.values().sum::<u64>()
            );
        }
        None => {
            out.summary = "custom archive without manifest: no checksum to compare".into();
        }
    }
    Ok(out)
}
