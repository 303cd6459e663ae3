//! How a load fails, what it loads and what it measured: shared by the loader, the feeders of
//! psql and pg_restore, and the load role.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::model::{Compression, Format};
use crate::pg::PgError;
use crate::pipeline;
use crate::shutdown::Reason;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("loading the backup into \"{database}\" failed: {message}")]
    LoadFailed {
        database: String,
        message: String,
        /// The failing statement's SQLSTATE, when the loader printed it (psql does).
        sqlstate: Option<String>,
    },
    #[error("the file is incomplete, so its load was stopped: {0}")]
    Incomplete(String),
    #[error("row counts differ from the backup's: {}", describe_mismatches(.0))]
    RowCounts(Vec<Mismatch>),
    #[error("check `{sql}` failed: {message}")]
    CheckFailed { sql: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("interrupted by {} during the load", .0.name())]
    Interrupted(Reason),
    /// The guard refused what it was about to give psql (the file changed since the preflight).
    #[error("the backup holds a {0}; psql was stopped before it, the load was rolled back")]
    Refused(String),
    #[error(
        "{file} changed after the preflight read: the bytes loaded have sha256 {}…, not the {}… that were checked; the load was rolled back",
        &.actual[..16.min(.actual.len())], &.expected[..16.min(.expected.len())]
    )]
    Changed {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    RoleRefused(String),
}

impl crate::exit::ExitCode for LoadError {
    fn exit_code(&self) -> u8 {
        match self {
            LoadError::Interrupted(r) => r.exit_code(),
            LoadError::Refused(_) | LoadError::Changed { .. } | LoadError::RoleRefused(_) => {
                crate::exit::REFUSED
            }
            // A query that fails while loading is the load failing, not the connection.
            LoadError::Pg(_)
            | LoadError::LoadFailed { .. }
            | LoadError::Incomplete(_)
            | LoadError::RowCounts(_)
            | LoadError::CheckFailed { .. }
            | LoadError::Io { .. } => crate::exit::FAILED,
        }
    }
}

/// A table whose row count differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub table: String,
    pub expected: u64,
    /// `None` when the table does not exist after the load.
    pub found: Option<u64>,
}

fn describe_mismatches(m: &[Mismatch]) -> String {
    let mut parts: Vec<String> = m
        .iter()
        .take(5)
        .map(|m| match m.found {
            Some(f) => format!("{} has {f} rows, expected {}", m.table, m.expected),
            None => format!("{} is missing (expected {} rows)", m.table, m.expected),
        })
        .collect();
    if m.len() > 5 {
        parts.push(format!("and {} more", m.len() - 5));
    }
    parts.join("; ")
}

/// What to load.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
    /// pgkeep's compression of a plain file (`None` for custom archives).
    pub compression: Compression,
    /// The sha256 the bytes fed must have (the manifest's, else the preflight's): a file
    /// changed after it was checked is caught while it loads.
    pub sha256: Option<String>,
    /// A custom archive's table of contents as `pg_restore --list` printed it when the file was
    /// checked: a parallel load makes its lists from it instead of reading the archive again
    /// (the load's own hash of the file catches an archive swapped since).
    pub toc: Option<std::sync::Arc<str>>,
    /// The rows of the largest table and of all tables, as the manifest records them (`None`
    /// without one): whether a parallel load of a custom archive cuts its script (see
    /// [`super::load::split_pays`]).
    pub rows: Option<RowShare>,
}

/// The rows the largest table must hold before a parallel load cuts its COPY rather than give
/// the table to one connection of pg_restore (a few blocks of the splitter's 4 MiB).
pub const SPLIT_MIN_ROWS: u64 = 100_000;

impl Input {
    /// The sha256 differs from the one the preflight (or the manifest) vouched for.
    pub fn changed(&self, sha256: &str) -> Option<LoadError> {
        let expected = self.sha256.as_deref()?;
        (expected != sha256).then(|| LoadError::Changed {
            file: self.path.display().to_string(),
            expected: expected.to_string(),
            actual: sha256.to_string(),
        })
    }

    /// Whether one table holds more than a connection's share of the rows (and at least
    /// [`SPLIT_MIN_ROWS`]) of a load on `jobs` connections: `pg_restore --jobs` loads each table
    /// on one connection, leaving the others idle while the largest loads, where the plain
    /// loader cuts that table's COPY across all of them.
    pub fn one_table_dominates(&self, jobs: usize) -> bool {
        jobs > 1
            && self.rows.is_some_and(|r| {
                r.largest >= SPLIT_MIN_ROWS && r.largest.saturating_mul(jobs as u64) > r.total
            })
    }
}

/// The rows of the largest table and of all tables of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShare {
    pub largest: u64,
    pub total: u64,
}

impl RowShare {
    pub fn of(tables: &std::collections::BTreeMap<String, u64>) -> Option<RowShare> {
        let largest = tables.values().copied().max()?;
        Some(RowShare {
            largest,
            total: tables.values().sum(),
        })
    }
}

/// Timings and counts of a load.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    pub duration: Duration,
    /// Bytes fed to psql (plain dumps).
    pub raw_bytes: u64,
    /// What the stream looked like (plain dumps): rows per table in the file, trailer seen.
    pub report: Option<pipeline::Report>,
    /// Statements left out for the server (`line N: SET transaction_timeout = 0`).
    pub left_out: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rows: &[u64]) -> Input {
        let tables = rows
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("public.t{i}"), *n))
            .collect();
        Input {
            path: PathBuf::from("/nonexistent/archive.dump"),
            format: Format::Custom,
            compression: Compression::None,
            sha256: None,
            toc: None,
            rows: RowShare::of(&tables),
        }
    }

    #[test]
    fn one_table_dominates_past_a_connections_share_of_enough_rows() {
        // One table of most rows: cut on 2 or 4 connections, never on one.
        let big = input(&[SPLIT_MIN_ROWS, 10, 10]);
        assert!(big.one_table_dominates(2) && big.one_table_dominates(4));
        assert!(!big.one_table_dominates(1));
        // Exactly a connection's share is not more than it.
        assert!(!input(&[SPLIT_MIN_ROWS, SPLIT_MIN_ROWS]).one_table_dominates(2));
        // Too few rows to be worth a cut, and no manifest at all.
        assert!(!input(&[SPLIT_MIN_ROWS - 1]).one_table_dominates(2));
        assert!(!input(&[]).one_table_dominates(2));
    }
}
