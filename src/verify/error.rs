//! Why a verification could not run at all (as opposed to finding a bad backup), and the error of
//! a run that found bad backups (exit 9).

use thiserror::Error;

use crate::catalog;
use crate::pg::tools::ToolError;
use crate::storage::StorageError;

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
    /// `verify --all` over a backup directory that holds none.
    #[error("no backups in {0} to verify")]
    NothingToVerify(String),
    #[error("cannot record the verification result: {0}")]
    Record(StorageError),
    #[error("interrupted by {} during verification", .0.name())]
    Interrupted(crate::shutdown::Reason),
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
    #[error("the test restore could not run: {0}")]
    Restore(String),
    /// The test restore cannot run with the admin role's privileges: inconclusive.
    #[error("the test restore could not run: {0}")]
    Privilege(String),
}

impl crate::exit::ExitCode for VerifyError {
    fn exit_code(&self) -> u8 {
        use crate::exit::{FAILED, STORAGE, USAGE};
        match self {
            VerifyError::NotFound(_) => USAGE,
            VerifyError::NoBackups(_)
            | VerifyError::NothingToVerify(_)
            | VerifyError::Restore(_) => FAILED,
            VerifyError::Interrupted(r) => r.exit_code(),
            VerifyError::Privilege(_) => crate::exit::INCONCLUSIVE,
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

/// `pgkeep verify` found no bad backup but could not prove some (exit code
/// `exit::INCONCLUSIVE`).
#[derive(Debug, Error)]
#[error(
    "{inconclusive} of {total} verified backup(s) could not be proven (inconclusive: kept like unverified backups)"
)]
pub struct Inconclusive {
    pub inconclusive: usize,
    pub total: usize,
}

impl crate::exit::ExitCode for Inconclusive {
    fn exit_code(&self) -> u8 {
        crate::exit::INCONCLUSIVE
    }
}
