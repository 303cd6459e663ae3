//! Why a backup is not good: every way a stored backup can be bad, each with its own message and
//! a stable code for scripts, metrics and notifications.

use thiserror::Error;

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
    #[error("the manifest {name} {why}")]
    Signature { name: String, why: String },
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
            | Failure::Signature { .. }
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
            Failure::Signature { .. } => "signature",
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
