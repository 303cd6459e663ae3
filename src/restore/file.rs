//! The first step of every restore: prove the backup file by reading it fully before anything
//! else, against its manifest's size and sha256, or (a legacy file without one) by decompressing
//! it to pg_dump's trailer while counting its rows and collecting the roles it names.

use std::collections::BTreeSet;

use super::choose::Chosen;
use super::error::RestoreError;
use super::load::Input;
use super::roles::RoleScanner;
use crate::model::Format;
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

/// Check the file before anything else: the manifest's sha256 and size, or for legacy files a
/// full read (decompress, trailer, row counts, roles).
pub fn check_file(backup: &Chosen) -> Result<(String, Option<LegacyScan>), RestoreError> {
    match &backup.manifest {
        Some(m) => {
            let file = std::fs::File::open(&backup.path).map_err(|e| RestoreError::Io {
                context: format!("cannot open {}", backup.path.display()),
                source: e,
            })?;
            let (bytes, sha) = pipeline::hash_reader(file).map_err(|e| RestoreError::Io {
                context: format!("cannot read {}", backup.path.display()),
                source: e,
            })?;
            if bytes != m.stored_bytes || sha != m.sha256 {
                return Err(RestoreError::Refused(format!(
                    "{} does not match its manifest (size {bytes}, sha256 {}; the manifest says size {}, sha256 {}): the file is damaged or truncated",
                    backup.path.display(),
                    &sha[..16],
                    m.stored_bytes,
                    &m.sha256[..m.sha256.len().min(16)]
                )));
            }
            Ok((
                format!("sha256 {} matches the manifest ({bytes} bytes)", &sha[..16]),
                None,
            ))
        }
        None if backup.format == Format::Plain => {
            let (report, roles) = scan_plain(&backup.input())?;
            Ok((
                format!(
                    "legacy file (no manifest, no checksum): read fully, it decompresses and ends with pg_dump's trailer; {} tables, {} rows",
                    report.tables.len(),
                    report.tables.values().sum::<u64>()
                ),
                Some((report, roles)),
            ))
        }
        None => Ok((
            "custom archive without manifest: no checksum to compare".into(),
            None,
        )),
    }
}
