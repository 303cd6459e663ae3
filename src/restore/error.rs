//! How a restore fails: refused before anything changed, or failed with the state it left.

use thiserror::Error;

use super::load::LoadError;
use crate::catalog::CatalogError;
use crate::lock::LockError;
use crate::pg::PgError;
use crate::pg::tools::ToolError;
use crate::shutdown::Reason;
use crate::storage::StorageError;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// No backup matches the selection.
    #[error("{0}")]
    NoBackup(String),
    /// Stopped before anything was changed (checksum, incomplete file, roles, privileges,
    /// a failed pre-restore hook).
    #[error("{0}; nothing was changed")]
    Refused(String),
    #[error("{source}; {state}")]
    Load { source: LoadError, state: String },
    /// Refused after the scratch database was made, which could not be undone entirely: the
    /// state found on the server instead of "nothing was changed".
    #[error("{why}; {state}")]
    Stopped { why: String, state: String },
    /// Failed after the scratch database was made, with the state found on the server.
    #[error("{source}; {state}")]
    Failed {
        #[source]
        source: Box<RestoreError>,
        state: String,
    },
    #[error("the swap failed: {0}")]
    Swap(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The restore failed and post-restore hooks failed as well.
    #[error("{source}; {hooks}")]
    WithHooks {
        #[source]
        source: Box<RestoreError>,
        hooks: String,
    },
    #[error("interrupted by {}; {state}", .reason.name())]
    Interrupted { reason: Reason, state: String },
}

impl crate::exit::ExitCode for RestoreError {
    fn exit_code(&self) -> u8 {
        use crate::exit::{FAILED, REFUSED, STORAGE, USAGE};
        match self {
            RestoreError::Refused(_) | RestoreError::Stopped { .. } => REFUSED,
            RestoreError::NoBackup(_) => USAGE,
            RestoreError::Interrupted { reason, .. } => reason.exit_code(),
            RestoreError::Load { source, .. } => source.exit_code(),
            RestoreError::Swap(_) | RestoreError::Io { .. } => FAILED,
            // The connection worked; a statement of the restore failed.
            RestoreError::Pg(PgError::Query { .. }) => FAILED,
            RestoreError::Pg(e) => e.exit_code(),
            RestoreError::Tool(e) => e.exit_code(),
            RestoreError::Storage(_) | RestoreError::Catalog(_) => STORAGE,
            RestoreError::Lock(e) => e.exit_code(),
            RestoreError::WithHooks { source, .. } | RestoreError::Failed { source, .. } => {
                source.exit_code()
            }
        }
    }
}
