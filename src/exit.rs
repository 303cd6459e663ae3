//! The one place where failures become process exit codes (documented in the README).

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::lock::LockError;
use crate::model::PolicyError;
use crate::pg::PgError;
use crate::pg::tools::ToolError;
use crate::prune::PruneError;
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
/// `pgkeep check` found problems (one line per reason on stdout).
pub const UNHEALTHY: u8 = 8;
/// `pgkeep verify` found at least one bad backup (one line per backup on stdout).
pub const BAD_BACKUP: u8 = 9;

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
                // Transparent variants forward `source()` past the inner error: decide here.
                BackupError::Storage(_) => return STORAGE,
                BackupError::Lock(LockError::Busy { .. }) => return BUSY,
                BackupError::Lock(_) => return STORAGE,
                BackupError::Pg(_) => return CONNECTION,
                BackupError::Tool(_) => return TOOLS,
            }
        }
        if cause.downcast_ref::<crate::check::Unhealthy>().is_some() {
            return UNHEALTHY;
        }
        if cause.downcast_ref::<crate::verify::BadBackups>().is_some() {
            return BAD_BACKUP;
        }
        if let Some(e) = cause.downcast_ref::<crate::verify::VerifyError>() {
            use crate::verify::VerifyError as V;
            return match e {
                V::NotFound(_) => USAGE,
                V::NoBackups(_) => FAILED,
                V::Interrupted(r) => r.exit_code(),
                V::Storage(_) | V::Catalog(_) | V::Record(_) => STORAGE,
                V::Tool(_) => TOOLS,
                V::Pg(_) => CONNECTION,
                V::Restore(_) => FAILED,
            };
        }
        if let Some(e) = cause.downcast_ref::<PruneError>() {
            match e {
                PruneError::Policy(_) => return USAGE,
                PruneError::Lock(LockError::Busy { .. }) => return BUSY,
                PruneError::Storage(_) | PruneError::Catalog(_) => return STORAGE,
                PruneError::Lock(_) => return FAILED,
            }
        }
        if cause.downcast_ref::<PolicyError>().is_some() {
            return USAGE;
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
        if let Some(u) = cause.downcast_ref::<crate::app::UsageError>() {
            let _ = u;
            return USAGE;
        }
    }
    FAILED
}

/// The error as one line: context and causes joined, newlines removed.
/// A cause whose text already ends the line (an error that prints its source) is not repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_inside_a_backup_error_map_to_storage_and_print_once() {
        let io = std::io::Error::from_raw_os_error(13);
        let e = anyhow::Error::new(BackupError::Storage(StorageError::NotWritable {
            path: "/backups".into(),
            source: io,
        }))
        .context("backup of database \"app\" failed");
        assert_eq!(code_for(&e), STORAGE);
        let line = one_line(&e);
        assert_eq!(line.matches("os error 13").count(), 1, "{line}");
        assert!(line.starts_with("backup of database \"app\" failed: backup directory /backups"));
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&e), "outer: middle: inner");
    }
}

#[cfg(test)]
mod transparent_tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn transparent_backup_errors_keep_their_codes() {
        let busy: anyhow::Result<()> = Err(BackupError::Lock(LockError::Busy {
            holder: "backup x".into(),
        }))
        .context("backup of database \"d\" failed");
        assert_eq!(code_for(&busy.unwrap_err()), BUSY);
        let storage: anyhow::Result<()> = Err(BackupError::Storage(StorageError::Missing {
            path: "/x".into(),
        }))
        .context("backup failed");
        assert_eq!(code_for(&storage.unwrap_err()), STORAGE);
        let empty: anyhow::Result<()> =
            Err(PruneError::Policy(PolicyError::Empty)).context("prune");
        assert_eq!(code_for(&empty.unwrap_err()), USAGE);
        let busy: anyhow::Result<()> = Err(PruneError::Lock(LockError::Busy {
            holder: "backup y".into(),
        }))
        .context("prune");
        assert_eq!(code_for(&busy.unwrap_err()), BUSY);
    }
}
