//! Which exit code an error chain ends pgkeep with: the registry of every error type of pgkeep,
//! each asked through its own [`ExitCode`](crate::exit::ExitCode), and the usage errors the
//! commands themselves find.

use thiserror::Error;

use crate::backup::BackupError;
use crate::check::Unhealthy;
use crate::config::ConfigError;
use crate::exit::{self, ExitCode, Probe, probe};
use crate::pg::PgError;
use crate::pg::tools::ToolError;
use crate::pipeline::PipelineError;
use crate::pipeline::guard::GuardError;
use crate::prune::PruneError;
use crate::restore::{LoadError, RestoreError};
use crate::verify::{BadBackups, Failure, Inconclusive, VerifyError};

/// A usage error found by a command (not by clap).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl ExitCode for UsageError {
    fn exit_code(&self) -> u8 {
        exit::USAGE
    }
}

/// Every error type of pgkeep, each once.
const KNOWN: &[Probe] = &[
    probe::<UsageError>,
    probe::<ConfigError>,
    probe::<crate::model::PolicyError>,
    probe::<BackupError>,
    probe::<RestoreError>,
    probe::<LoadError>,
    probe::<VerifyError>,
    probe::<BadBackups>,
    probe::<Inconclusive>,
    probe::<Failure>,
    probe::<PruneError>,
    probe::<crate::copy::CopyError>,
    probe::<Unhealthy>,
    probe::<crate::databases::SetFailed>,
    probe::<crate::databases::ResolveError>,
    probe::<crate::catalog::CatalogError>,
    probe::<PipelineError>,
    probe::<crate::pipeline::crypt::CryptError>,
    probe::<GuardError>,
    probe::<PgError>,
    probe::<ToolError>,
    probe::<crate::storage::StorageError>,
    probe::<crate::lock::LockError>,
    probe::<crate::fault::FaultError>,
];

/// The exit code of a failed command: the first error of the chain that pgkeep knows decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    exit::code_for(err, KNOWN)
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;
    use crate::catalog::CatalogError;
    use crate::exit::{BUSY, CONNECTION, FAILED, REFUSED, STORAGE, TOOLS, USAGE, one_line};
    use crate::lock::LockError;
    use crate::model::PolicyError;
    use crate::shutdown::Reason;
    use crate::storage::StorageError;

    #[test]
    fn storage_errors_inside_a_backup_error_map_to_storage_and_print_once() {
        let io = std::io::Error::from_raw_os_error(13);
        let e = anyhow::Error::new(BackupError::Storage(StorageError::NotWritable {
            path: "/backups".into(),
            source: io,
        }))
        .context("backup of database \"app\" failed");
        assert_eq!(exit_code(&e), STORAGE);
        let line = one_line(&e);
        assert_eq!(line.matches("os error 13").count(), 1, "{line}");
        assert!(line.starts_with("backup of database \"app\" failed: backup directory /backups"));
    }

    #[test]
    fn transparent_backup_errors_keep_their_codes() {
        let busy: anyhow::Result<()> = Err(BackupError::Lock(LockError::Busy {
            holder: "backup x".into(),
        }))
        .context("backup of database \"d\" failed");
        assert_eq!(exit_code(&busy.unwrap_err()), BUSY);
        let storage: anyhow::Result<()> = Err(BackupError::Storage(StorageError::Missing {
            path: "/x".into(),
        }))
        .context("backup failed");
        assert_eq!(exit_code(&storage.unwrap_err()), STORAGE);
        let empty: anyhow::Result<()> =
            Err(PruneError::Policy(PolicyError::Empty)).context("prune");
        assert_eq!(exit_code(&empty.unwrap_err()), USAGE);
        let busy: anyhow::Result<()> = Err(PruneError::Lock(LockError::Busy {
            holder: "backup y".into(),
        }))
        .context("prune");
        assert_eq!(exit_code(&busy.unwrap_err()), BUSY);
    }

    /// The same inner error can mean different things in different operations.
    #[test]
    fn wrapped_errors_map_as_their_operation_says() {
        let lock_io = || LockError::Io {
            path: "/x".into(),
            source: std::io::Error::other("eio"),
        };
        let query = || PgError::Query {
            context: "c".into(),
            message: "m".into(),
            sqlstate: None,
        };
        let unreachable = || PgError::Unreachable {
            target: "t".into(),
            message: "m".into(),
        };
        let bad_manifest = || CatalogError::BadManifest {
            name: "n".into(),
            message: "m".into(),
        };
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (BackupError::Lock(lock_io()).into(), STORAGE),
            (RestoreError::Lock(lock_io()).into(), FAILED),
            (PruneError::Lock(lock_io()).into(), FAILED),
            (lock_io().into(), FAILED),
            (RestoreError::Pg(query()).into(), FAILED),
            (RestoreError::Pg(unreachable()).into(), CONNECTION),
            (BackupError::Pg(query()).into(), CONNECTION),
            (query().into(), CONNECTION),
            (
                RestoreError::Load {
                    source: LoadError::Interrupted(Reason::Terminate),
                    state: "s".into(),
                }
                .into(),
                143,
            ),
            (
                RestoreError::Load {
                    source: LoadError::Pg(unreachable()),
                    state: "s".into(),
                }
                .into(),
                FAILED,
            ),
            (
                RestoreError::WithHooks {
                    source: Box::new(RestoreError::Refused("r".into())),
                    hooks: "h".into(),
                }
                .into(),
                REFUSED,
            ),
            (
                RestoreError::Stopped {
                    why: "w".into(),
                    state: "s".into(),
                }
                .into(),
                REFUSED,
            ),
            (
                RestoreError::Failed {
                    source: Box::new(RestoreError::Pg(unreachable())),
                    state: "s".into(),
                }
                .into(),
                CONNECTION,
            ),
            (VerifyError::Catalog(bad_manifest()).into(), STORAGE),
            (PruneError::Catalog(bad_manifest()).into(), STORAGE),
            (bad_manifest().into(), FAILED),
            (
                CatalogError::Storage(StorageError::Missing { path: "/x".into() }).into(),
                STORAGE,
            ),
            (
                VerifyError::Tool(ToolError::NotFound {
                    tool: "pg_restore".into(),
                    searched: "PATH".into(),
                })
                .into(),
                TOOLS,
            ),
            (VerifyError::Interrupted(Reason::Interrupt).into(), 130),
            (UsageError("u".into()).into(), USAGE),
            (anyhow::anyhow!("plain"), FAILED),
        ];
        for (e, code) in cases {
            let e = e.context("outer");
            assert_eq!(exit_code(&e), code, "{}", one_line(&e));
        }
    }
}
