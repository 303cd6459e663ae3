//! The one place where failures become process exit codes (documented in the README).

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::lock::LockError;
use crate::pg::PgError;
use crate::pg::tools::ToolError;
use crate::restore::{LoadError, RestoreError};
use crate::storage::StorageError;

pub const OK: u8 = 0;
/// The operation failed (the dump failed or was incomplete, an unexpected error).
pub const FAILED: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;
/// PostgreSQL unreachable, login refused, or database missing.
pub const CONNECTION: u8 = 3;
/// The backup directory is missing, not writable, or full.
pub const STORAGE: u8 = 4;
/// Another run holds the lock.
pub const BUSY: u8 = 5;
/// No suitable PostgreSQL client tools.
pub const TOOLS: u8 = 6;
/// A restore stopped before changing anything: the file does not match its manifest or is
/// incomplete, roles are missing on the target, the admin role lacks a privilege, or a
/// pre-restore hook failed.
pub const REFUSED: u8 = 7;

/// Map an error chain to an exit code: the first classified error in the chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<RestoreError>() {
            match e {
                RestoreError::Refused(_) => return REFUSED,
                RestoreError::NoBackup(_) => return USAGE,
                RestoreError::Interrupted { reason, .. } => return reason.exit_code(),
                RestoreError::Load {
                    source: LoadError::Interrupted(r),
                    ..
                } => {
                    return r.exit_code();
                }
                RestoreError::Load { .. } | RestoreError::Swap(_) | RestoreError::Io { .. } => {
                    return FAILED;
                }
                // `transparent` variants hide the inner error from the chain: map them here.
                RestoreError::Pg(PgError::Query { .. }) => return FAILED,
                RestoreError::Pg(_) => return CONNECTION,
                RestoreError::Tool(_) => return TOOLS,
                RestoreError::Storage(_) | RestoreError::Catalog(_) => return STORAGE,
                RestoreError::Lock(LockError::Busy { .. }) => return BUSY,
                RestoreError::Lock(_) => return FAILED,
                RestoreError::WithHooks { .. } => continue,
            }
        }
        if let Some(e) = cause.downcast_ref::<BackupError>() {
            match e {
                BackupError::Interrupted(r) => return r.exit_code(),
                BackupError::DumpFailed(_)
                | BackupError::Incomplete(_)
                | BackupError::Io { .. }
                | BackupError::Manifest(_) => return FAILED,
                _ => continue,
            }
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return USAGE;
        }
        if cause.downcast_ref::<PgError>().is_some() {
            return CONNECTION;
        }
        if cause.downcast_ref::<StorageError>().is_some() {
            return STORAGE;
        }
        if let Some(LockError::Busy { .. }) = cause.downcast_ref::<LockError>() {
            return BUSY;
        }
        if cause.downcast_ref::<ToolError>().is_some() {
            return TOOLS;
        }
        if let Some(u) = cause.downcast_ref::<crate::commands::UsageError>() {
            let _ = u;
            return USAGE;
        }
    }
    FAILED
}

/// The error as one line: context and causes joined, newlines removed.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}
