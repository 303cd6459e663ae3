//! The databases of a server that a command works over: the server's list read through a
//! maintenance database, the `databases` setting applied to it (see [`crate::model::databases`]),
//! and the error of a run over the set in which some databases failed and the others went on.

use thiserror::Error;

use crate::catalog::Entry;
use crate::config::Settings;
use crate::model::databases::{DatabaseSet, Selection, ServerDatabase, select};
use crate::pg::{ConnParams, PgError};

/// Databases tried, in order, to read the server's list from.
const MAINTENANCE: [&str; 2] = ["postgres", "template1"];

/// Every database of the server, templates and those refusing connections included.
pub async fn server_databases(params: &ConnParams) -> Result<Vec<ServerDatabase>, PgError> {
    let mut last = None;
    for db in MAINTENANCE {
        match params.with_dbname(db).connect().await {
            Ok(client) => {
                let rows = client
                    .query(
                        "SELECT datname::text, datistemplate, datallowconn FROM pg_database \
                         ORDER BY datname",
                        &[],
                    )
                    .await
                    .map_err(|e| crate::pg::query_error("list the databases", e))?;
                return Ok(rows
                    .iter()
                    .map(|r| ServerDatabase {
                        name: r.get(0),
                        is_template: r.get(1),
                        allows_connections: r.get(2),
                    })
                    .collect());
            }
            Err(e @ PgError::NoDatabase { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("a maintenance database was tried"))
}

/// The databases the backup directory holds backups of, for the configured host.
pub fn with_backups(entries: &[Entry]) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| !crate::catalog::is_globals(e))
        .filter_map(|e| e.database.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What `set` means on the configured server now, with the databases that have backups in
/// `entries` but are gone from the server.
pub async fn resolve(
    settings: &Settings,
    set: &DatabaseSet,
    entries: &[Entry],
) -> Result<Selection, PgError> {
    let params = ConnParams::from_settings(settings, &settings.database);
    let server = server_databases(&params).await?;
    Ok(select(
        set,
        &settings.exclude_databases,
        &server,
        &with_backups(entries),
    ))
}

/// What `set` means on the configured server now, the backups of the configured host read from
/// the backup location (so that a database gone from the server is reported).
pub async fn resolve_stored(
    settings: &Settings,
    set: &DatabaseSet,
) -> Result<Selection, ResolveError> {
    let store = crate::storage::open(&settings.backup_dir, &settings.s3)?;
    let entries = crate::catalog::list(&*store, Some(&settings.host))?;
    Ok(resolve(settings, set, &entries).await?)
}

/// Why the set could not be read.
#[derive(Debug, Error)]
pub enum ResolveError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("cannot read the list of databases from the server: {0}")]
    Server(#[from] PgError),
}

impl crate::exit::ExitCode for ResolveError {
    fn exit_code(&self) -> u8 {
        match self {
            ResolveError::Storage(e) => e.exit_code(),
            ResolveError::Catalog(e) => e.exit_code(),
            ResolveError::Server(e) => e.exit_code(),
        }
    }
}

/// How messages name a database, or the globals.
pub fn label(db: &str) -> String {
    if db == crate::catalog::GLOBALS {
        "the globals".into()
    } else {
        format!("database \"{db}\"")
    }
}

/// The note on a database that is gone from the server.
pub fn gone_note(db: &str) -> String {
    format!(
        "database \"{db}\" is gone from the server; its backups are kept and never culled for it"
    )
}

/// A run over several databases in which some failed (the others went on). The exit code is
/// that of the first failure. The globals ([`crate::catalog::GLOBALS`]) may fail with them, and
/// are named as such, never counted as a database.
#[derive(Debug, Error)]
#[error("{}: {}", headline(*total, failed), causes(failed))]
pub struct SetFailed {
    /// The databases of the run, the globals not counted.
    pub total: usize,
    /// Each failed database (or the globals) with its one-line error.
    pub failed: Vec<(String, String)>,
    pub code: u8,
}

fn headline(total: usize, failed: &[(String, String)]) -> String {
    let globals = failed.iter().any(|(db, _)| db == crate::catalog::GLOBALS);
    let databases = failed
        .iter()
        .filter(|(db, _)| db != crate::catalog::GLOBALS)
        .count();
    let plural = if total == 1 { "database" } else { "databases" };
    match (databases, globals) {
        (0, true) => format!("the globals failed, the {total} {plural} did not"),
        (n, true) => format!("{n} of {total} {plural} and the globals failed"),
        (n, false) => format!("{n} of {total} {plural} failed"),
    }
}

fn causes(failed: &[(String, String)]) -> String {
    failed
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl crate::exit::ExitCode for SetFailed {
    fn exit_code(&self) -> u8 {
        self.code
    }
}

#[cfg(test)]
mod tests {
    use super::SetFailed;
    use crate::catalog::GLOBALS;

    fn line(total: usize, failed: &[&str]) -> String {
        SetFailed {
            total,
            failed: failed
                .iter()
                .map(|db| (db.to_string(), format!("{db:?} broke")))
                .collect(),
            code: 3,
        }
        .to_string()
    }

    #[test]
    fn the_globals_are_named_never_counted_as_a_database() {
        assert_eq!(
            line(4, &["a", "b"]),
            r#"2 of 4 databases failed: "a" broke; "b" broke"#
        );
        assert_eq!(
            line(4, &["a", GLOBALS]),
            r#"1 of 4 databases and the globals failed: "a" broke; "" broke"#
        );
        // Two tablespaces of the globals failed: still one globals, no database.
        assert_eq!(
            line(1, &[GLOBALS, GLOBALS]),
            r#"the globals failed, the 1 database did not: "" broke; "" broke"#
        );
        assert!(line(1, &["a"]).starts_with("1 of 1 database failed: "));
    }
}
