//! Why a backup is not good: every way a stored backup can be bad, each with its own message and
//! a stable code for scripts, metrics and notifications.

use thiserror::Error;

use crate::model::Verdict;

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
    #[error("the archive cannot be staged for pg_restore here: {0}")]
    Staging(String),
    #[error("no suitable tools here: {0}")]
    Tools(String),
    #[error("the test restore ran out of a resource of the test server: {0}")]
    RestoreResources(String),
    #[error("the test restore lacks a privilege here: {0}")]
    RestorePrivilege(String),
    #[error("the test restore's server failed or is unreachable: {0}")]
    RestoreServer(String),
    #[error("no server of a suitable major for the test restore: {0}")]
    RestoreVersion(String),
    #[error("the test restore failed for a reason that does not prove the backup wrong: {0}")]
    RestoreUnproven(String),
    /// An encrypted backup whose content cannot be decrypted here (no identity, or another one):
    /// the stored bytes were checked, the content was not.
    #[error("its size and sha256 match the manifest, its content was not read: {0}")]
    Encrypted(String),
}

impl crate::exit::ExitCode for Failure {
    fn exit_code(&self) -> u8 {
        match self.verdict() {
            Verdict::Bad => crate::exit::BAD_BACKUP,
            Verdict::Good | Verdict::Inconclusive => crate::exit::INCONCLUSIVE,
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
            Failure::Staging(_) => "staging",
            Failure::Tools(_) => "tools",
            Failure::RestoreResources(_) => "restore-resources",
            Failure::RestorePrivilege(_) => "restore-privilege",
            Failure::RestoreServer(_) => "restore-server",
            Failure::RestoreVersion(_) => "restore-version",
            Failure::RestoreUnproven(_) => "restore-unproven",
            Failure::Encrypted(_) => "encrypted",
        }
    }

    /// What this failure proves (the table in `crate::model::verdict`).
    pub fn verdict(&self) -> Verdict {
        Verdict::of_failure(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::verdict::FAILURE_CODES;

    /// Every failure has its row in the verdict table (none falls through to "unknown").
    #[test]
    fn every_failure_code_is_in_the_verdict_table() {
        let s = || "x".to_string();
        let all = [
            Failure::Empty { expected: None },
            Failure::DataMissing { file: s() },
            Failure::Truncated {
                actual: 1,
                expected: 2,
                detail: None,
            },
            Failure::Grown {
                actual: 2,
                expected: 1,
            },
            Failure::Checksum {
                actual: s(),
                expected: s(),
                detail: None,
            },
            Failure::ManifestChecksum {
                actual: s(),
                expected: s(),
                evidence: s(),
            },
            Failure::ManifestMissing {
                file: s(),
                why: s(),
            },
            Failure::ManifestUnreadable {
                name: s(),
                message: s(),
            },
            Failure::Corrupt {
                compression: "gzip",
                message: s(),
            },
            Failure::CutInCopy { table: s() },
            Failure::NoTrailer,
            Failure::RowCounts(s()),
            Failure::Archive(s()),
            Failure::Read(s()),
            Failure::RestoreLoad(s()),
            Failure::RestoreRows(s()),
            Failure::RestoreCheck(s()),
            Failure::Staging(s()),
            Failure::Tools(s()),
            Failure::RestoreResources(s()),
            Failure::RestorePrivilege(s()),
            Failure::RestoreServer(s()),
            Failure::RestoreVersion(s()),
            Failure::RestoreUnproven(s()),
            Failure::Encrypted(s()),
            Failure::Signature {
                name: s(),
                why: s(),
            },
        ];
        assert_eq!(all.len(), FAILURE_CODES.len());
        for f in &all {
            assert!(
                FAILURE_CODES.iter().any(|(c, _)| *c == f.code()),
                "{} has no verdict",
                f.code()
            );
        }
        assert_eq!(Failure::RestoreCheck(s()).verdict(), Verdict::Inconclusive);
        assert_eq!(
            crate::exit::ExitCode::exit_code(&Failure::NoTrailer),
            crate::exit::BAD_BACKUP
        );
    }
}
