//! The one place where failures become process exit codes (documented in the README).

use crate::backup::BackupError;
use crate::config::ConfigError;
use crate::lock::LockError;
use crate::pg::PgError;
use crate::pg::tools::ToolError;
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
/// `pgkeep check` found problems (one line per reason on stdout).
pub const UNHEALTHY: u8 = 8;
/// `pgkeep verify` found at least one bad backup (one line per backup on stdout).
pub const BAD_BACKUP: u8 = 9;

/// Map an error chain to an exit code: the first classified error in the chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
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
                V::NotFound(_) | V::NoBackups(_) => USAGE,
                V::Interrupted(r) => r.exit_code(),
                V::Storage(_) | V::Catalog(_) | V::Record(_) => STORAGE,
                V::Tool(_) => TOOLS,
            };
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
